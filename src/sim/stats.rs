//! What the simulator has seen, and its answer on [`STATS_SUBJECT`].

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::node::{Fault, Mode, Node, State};

/// Subject on which a simulator answers with its [`SimStats`] as JSON.
pub const STATS_SUBJECT: &str = "fleetbook.sim.stats";

/// What the simulator has seen, for tests and `fleetbook.sim.stats`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SimStats {
    /// Requests handled by some node, by `agent#action` (`discovery` for discovery).
    pub requests: BTreeMap<String, u64>,
    /// Per node, the RPC actions it received in order (discovery excluded).
    pub received: BTreeMap<String, Vec<String>>,
    /// Messages that did not decode.
    pub malformed: u64,
    /// Requests dropped for an expired TTL.
    pub ttl_expired: u64,
    /// Requests refused in secure mode, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Lifecycle events published, by type.
    pub events: BTreeMap<String, u64>,
    /// Nodes with an injected fault, by identity.
    pub faults: BTreeMap<String, String>,
    /// Nodes by state: up, restarting, gone, provisioning.
    pub states: BTreeMap<String, u64>,
    /// Set in a NATS answer that left out per-node detail (`received`, then `faults`) to fit
    /// the broker's maximum message size.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl SimStats {
    /// These counters with the nodes' faults, states and the requests each received added.
    pub(crate) fn with_nodes(mut self, nodes: &[Node]) -> SimStats {
        for n in nodes {
            if !n.received.is_empty() {
                self.received.insert(n.identity.clone(), n.received.iter().map(str::to_string).collect());
            }
            if n.fault != Fault::None {
                self.faults.insert(n.identity.clone(), n.fault.name().to_string());
            }
            let state = match (n.state, n.mode) {
                (State::Gone, _) => "gone",
                (State::Restarting, _) => "restarting",
                (State::Up, Mode::Provisioning) => "provisioning",
                (State::Up, Mode::Normal) => "up",
            };
            *self.states.entry(state.to_string()).or_default() += 1;
        }
        self
    }

    /// The JSON answer to a stats request. A body `{"identities": [...]}` limits the per-node
    /// maps to those nodes. The answer always fits in `max` bytes (the broker's maximum
    /// payload): at tens of thousands of nodes the per-node maps alone exceed it (the publish
    /// failed and the requester timed out), so they are dropped, `received` first, and
    /// `truncated` is set.
    pub(crate) fn answer(mut self, request: &[u8], max: usize) -> Vec<u8> {
        let wanted: Option<BTreeSet<String>> = serde_json::from_slice::<Value>(request)
            .ok()
            .and_then(|v| serde_json::from_value(v.get("identities")?.clone()).ok());
        if let Some(ids) = wanted {
            self.received.retain(|k, _| ids.contains(k));
            self.faults.retain(|k, _| ids.contains(k));
        }
        let max = max.max(1024);
        let mut body = serde_json::to_vec(&self).unwrap_or_default();
        if body.len() > max {
            self.truncated = true;
            self.received.clear();
            body = serde_json::to_vec(&self).unwrap_or_default();
        }
        if body.len() > max {
            self.faults.clear();
            body = serde_json::to_vec(&self).unwrap_or_default();
        }
        body
    }
}
