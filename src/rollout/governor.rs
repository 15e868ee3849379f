//! Governor leases around a batch: before a batch is sent, one lease per node is taken on a
//! Choria Governor (so rollouts sharing it never have more nodes in flight together than its
//! capacity); the leases are given back when the batch is over, whatever happened.

use std::time::{Duration, Instant};

use super::{End, Stop};
use crate::fleet::governor::{self, GovernorError, Lease};
use crate::fleet::{ErrorKind, Fleet};
use crate::interrupt::Interrupt;
use crate::progress::{Reporter, RunEvent};

/// `rpc_batch`'s `governor` option: which governor, how long a batch may wait for its slots.
#[derive(Debug, Clone, PartialEq)]
pub struct GovernorUse {
    pub name: String,
    pub max_wait: Duration,
    /// Who holds the leases, as `governor view` shows it.
    pub who: String,
}

/// Leases held for one batch; given back when dropped.
pub(crate) struct Held<'a> {
    rt: &'a tokio::runtime::Handle,
    leases: Vec<Lease>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        for l in self.leases.drain(..) {
            // Bounded by the fleet's deadline; a lease not given back ages out.
            let _ = self.rt.block_on(l.release());
        }
    }
}

/// The end a governor failure brings.
fn end_of<E>(e: GovernorError, batch: usize, batches: usize) -> End<E> {
    match e {
        GovernorError::Cancelled { .. } => End::Stopped(Stop::Interrupted { after: batch - 1, batches }),
        GovernorError::Fleet(f) if f.kind() == ErrorKind::Connection => End::BrokerLost(f.to_string()),
        e => End::Stopped(Stop::Governor { batch, batches, why: e.to_string() }),
    }
}

/// Takes one lease per node of batch `batch` within `g.max_wait`, reporting the wait.
#[allow(clippy::too_many_arguments)]
pub(crate) fn take<'a, E>(
    rt: &'a tokio::runtime::Handle,
    fleet: &Fleet,
    g: &GovernorUse,
    nodes: &[String],
    batch: usize,
    batches: usize,
    reporter: &Reporter,
    interrupt: &Interrupt,
) -> Result<Held<'a>, End<E>> {
    reporter.emit(RunEvent::GovernorWait { governor: g.name.clone(), batch: Some(batch), leases: nodes.len() });
    let started = Instant::now();
    let deadline = started + g.max_wait;
    let mut held = Held { rt, leases: Vec::with_capacity(nodes.len()) };
    for node in nodes {
        let left = deadline.saturating_duration_since(Instant::now());
        let who = format!("{} {node}", g.who);
        match rt.block_on(governor::acquire(fleet, &g.name, &who, left, &interrupt.hard())) {
            Ok(l) => held.leases.push(l),
            // What was taken is given back as `held` drops.
            Err(e) => return Err(end_of(e, batch, batches)),
        }
    }
    let waited_ms = started.elapsed().as_millis() as u64;
    reporter.emit(RunEvent::Governor { governor: g.name.clone(), batch: Some(batch), leases: nodes.len(), waited_ms });
    Ok(held)
}
