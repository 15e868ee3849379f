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
    /// Ctrl-C twice: stop giving back (what is not given back ages out).
    abort: tokio_util::sync::CancellationToken,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // All at once, so a broker that is away costs one wait, not one per lease; bounded
        // by the fleet's deadline, and Ctrl-C twice ends it. A lease not given back ages out.
        let releases = futures::future::join_all(self.leases.drain(..).map(Lease::release));
        let abort = self.abort.clone();
        self.rt.block_on(async {
            tokio::select! {
                _ = abort.cancelled() => {}
                _ = releases => {}
            }
        });
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

/// How long one attempt at a batch's leases may wait for its next slot before giving back
/// what it holds and starting over.
const ATTEMPT: Duration = Duration::from_secs(1);

/// Takes one lease per node of batch `batch` within `g.max_wait`, reporting the wait.
///
/// All or nothing: two rollouts that each hold part of what they need would otherwise wait
/// for each other until `max_wait` (a batch of 2 on a governor of 2, one lease each). So an
/// attempt that cannot get its next slot within [`ATTEMPT`] gives back everything it holds
/// and tries again after a random pause; a batch bigger than the governor never fits and
/// stops at once.
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
    let capacity = match rt.block_on(governor::info(fleet, &g.name)) {
        Ok(i) => i.limits.capacity,
        Err(e) => return Err(end_of(e, batch, batches)),
    };
    if nodes.len() as i64 > capacity {
        let why = format!(
            "batch {batch}/{batches} needs {} leases but governor {} has room for {capacity}; make the batch at most {capacity}",
            nodes.len(),
            g.name
        );
        return Err(End::Stopped(Stop::Governor { batch, batches, why }));
    }
    reporter.emit(RunEvent::GovernorWait { governor: g.name.clone(), batch: Some(batch), leases: nodes.len() });
    let started = Instant::now();
    let deadline = started + g.max_wait;
    loop {
        // What was taken is given back as `held` drops.
        let mut held = Held { rt, leases: Vec::with_capacity(nodes.len()), abort: interrupt.hard() };
        let mut full = false;
        for node in nodes {
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = if held.leases.is_empty() { left } else { left.min(ATTEMPT) };
            let who = format!("{} {node}", g.who);
            match rt.block_on(governor::acquire(fleet, &g.name, &who, wait, &interrupt.hard())) {
                Ok(l) => held.leases.push(l),
                Err(GovernorError::WaitExpired { .. }) if Instant::now() < deadline => {
                    full = true;
                    break;
                }
                Err(GovernorError::WaitExpired { name, .. }) => {
                    let waited_s = started.elapsed().as_secs_f64();
                    return Err(end_of(GovernorError::WaitExpired { name, waited_s }, batch, batches));
                }
                Err(e) => return Err(end_of(e, batch, batches)),
            }
        }
        if !full {
            let waited_ms = started.elapsed().as_millis() as u64;
            reporter.emit(RunEvent::Governor {
                governor: g.name.clone(),
                batch: Some(batch),
                leases: nodes.len(),
                waited_ms,
            });
            return Ok(held);
        }
        drop(held);
        // A random pause, so two rollouts backing off together do not collide again.
        let pause = Duration::from_millis(rand::random::<u64>() % 400 + 100);
        let cancel = interrupt.hard();
        rt.block_on(async {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        });
        if interrupt.hard().is_cancelled() {
            return Err(End::Stopped(Stop::Interrupted { after: batch - 1, batches }));
        }
    }
}
