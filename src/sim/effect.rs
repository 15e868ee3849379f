//! What happens to a node after an action's splay: the state transitions of restart,
//! reprovision and shutdown, and the lifecycle events they publish.

use std::sync::Arc;

use super::node::{Fault, Mode, Node, State};
use super::simulator::Shared;
use crate::lifecycle;
use crate::lock;

/// A state change that happens after the reply, when the splay has passed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Effect {
    /// Publish `shutdown`, go down briefly, publish `startup`. Seconds of simulated time.
    Restart(u64),
    /// As restart, but come back in provisioning mode.
    Reprovision(u64),
    /// Publish `shutdown` and stay gone.
    Shutdown(u64),
    /// `configure` succeeded: publish `provisioned` now.
    Provisioned,
}

/// Applies `f` to node `i` if nothing else changed it since `epoch`; returns what to publish.
fn transition(s: &Shared, i: usize, epoch: u64, f: impl FnOnce(&mut Node)) -> Option<Node> {
    let mut nodes = lock(&s.nodes);
    let node = nodes.get_mut(i)?;
    if node.epoch != epoch || node.state == State::Gone {
        return None;
    }
    f(node);
    Some(node.clone())
}

async fn publish_event(s: &Shared, kind: &str, node: &Node) {
    let inner =
        lifecycle::choria_event(kind, &node.identity, node.component(), Some(&node.version), chrono::Utc::now());
    let event = lifecycle::cloud_event(inner);
    let body = serde_json::to_vec(&event).unwrap_or_default();
    *lock(&s.stats).events.entry(kind.to_string()).or_default() += 1;
    let _ = s.nats.publish(lifecycle::subject(kind, node.component()), body.into()).await;
}

/// Runs the part of an action that happens after the splay.
pub(crate) fn schedule(s: Arc<Shared>, i: usize, epoch: u64, effect: Effect) {
    let spawner = s.spawner.clone();
    spawner.spawn(async move { run(&s, i, epoch, effect).await });
}

async fn run(s: &Shared, i: usize, epoch: u64, effect: Effect) {
    let cfg = &s.cfg;
    match effect {
        // `configure` succeeded, so the event is due even when the Provisioner's restart
        // (a new epoch) got to the node before this task ran; it used to be lost then.
        Effect::Provisioned => {
            let node = lock(&s.nodes).get(i).filter(|n| n.state != State::Gone).cloned();
            if let Some(n) = node {
                publish_event(s, "provisioned", &n).await;
            }
        }
        Effect::Restart(secs) => {
            tokio::time::sleep(cfg.scaled(secs as f64)).await;
            // A configured provisioning-mode node comes back as a normal server.
            restart(s, i, epoch, |n| {
                if n.mode == Mode::Provisioning && n.configured {
                    n.mode = Mode::Normal;
                }
            })
            .await;
        }
        Effect::Reprovision(secs) => {
            tokio::time::sleep(cfg.scaled(secs as f64)).await;
            let back = restart(s, i, epoch, |n| {
                n.mode = Mode::Provisioning;
                n.configured = false;
            })
            .await;
            if let (true, Some(after)) = (back, cfg.auto_provision) {
                tokio::time::sleep(after).await;
                auto_provision(s, i, epoch).await;
            }
        }
        Effect::Shutdown(secs) => {
            tokio::time::sleep(cfg.scaled(secs as f64)).await;
            if let Some(n) = transition(s, i, epoch, |n| n.state = State::Gone) {
                publish_event(s, "shutdown", &n).await;
            }
        }
    }
}

/// The one restart every path takes (restart, reprovision, the stand-in Provisioner's):
/// `shutdown`, down for a simulated second, then `startup` as `come_back` leaves the node.
/// A stuck node is gone for good at the shutdown. True when the node came back.
async fn restart(s: &Shared, i: usize, epoch: u64, come_back: impl FnOnce(&mut Node)) -> bool {
    let down = |n: &mut Node| n.state = if n.fault == Fault::Stuck { State::Gone } else { State::Restarting };
    let Some(n) = transition(s, i, epoch, down) else { return false };
    publish_event(s, "shutdown", &n).await;
    tokio::time::sleep(s.cfg.scaled(1.0)).await;
    let up = |n: &mut Node| {
        n.state = State::Up;
        n.daemon = n.daemon.restarted(chrono::Utc::now().timestamp());
        come_back(n);
    };
    let Some(n) = transition(s, i, epoch, up) else { return false };
    publish_event(s, "startup", &n).await;
    true
}

/// Stands in for a Provisioner: provisioned, then restarted as a normal server.
async fn auto_provision(s: &Shared, i: usize, epoch: u64) {
    let Some(n) = transition(s, i, epoch, |n| n.configured = true) else {
        return;
    };
    if n.mode != Mode::Provisioning {
        return;
    }
    publish_event(s, "provisioned", &n).await;
    // Only a node that came back from a reprovision gets here, so it is not stuck.
    restart(s, i, epoch, |n| n.mode = Mode::Normal).await;
}
