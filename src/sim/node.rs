//! One simulated Choria server: its identity, mode, state and injected fault.

use std::sync::Arc;

use rand::rngs::SmallRng;
use serde_json::Value;

use super::daemon::Daemon;
use super::facts::{lookup, Profile};
use super::scout::ScoutCheck;

/// Provisioning state of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A configured server in the normal collective.
    Normal,
    /// Waiting to be provisioned, in collective `provisioning`.
    Provisioning,
}

/// Whether the process is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Running and answering.
    Up,
    /// Between the shutdown and startup of a restart.
    Restarting,
    /// Shut down for good.
    Gone,
}

/// An injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Behaves.
    None,
    /// Answers mutating actions with this status code (1 or 5).
    Failing(u8),
    /// Answers discovery, never RPC.
    Silent,
    /// Answers RPC after the configured delay.
    Slow,
    /// Accepts a restart or reprovision, shuts down, and never comes back.
    Stuck,
}

impl Fault {
    /// A short name for stats and logs.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::Failing(_) => "failing",
            Fault::Silent => "silent",
            Fault::Slow => "slow",
            Fault::Stuck => "stuck",
        }
    }
}

/// A simulated server.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its identity, `nNNN.<domain>`.
    pub identity: String,
    /// Its facts as a JSON tree.
    pub facts: Value,
    /// Puppet-style classes.
    pub classes: Vec<String>,
    /// Agents it runs, sorted.
    /// Shared between nodes with the same list (generated nodes have one of two): each reply
    /// checks it, and one list per node was a cache miss per reply at 50,000 nodes (issue 15).
    pub agents: Arc<[String]>,
    /// The collectives it serves when in service; empty: the fleet's one collective
    /// ([`super::SimConfig::collective`]). A twin's nodes have their own (see [`super::twin`]).
    pub collectives: Vec<String>,
    /// Normal or waiting to be provisioned.
    pub mode: Mode,
    /// Running, restarting or gone.
    pub state: State,
    /// The injected fault.
    pub fault: Fault,
    /// Set by `configure` while in provisioning mode.
    pub configured: bool,
    /// The Choria version it reports.
    pub version: String,
    /// Its Scout checks and their states.
    pub checks: Vec<ScoutCheck>,
    /// Bumped on every state change, so stale timers can tell they are stale.
    pub epoch: u64,
    /// Its server process: PID, start time, message counters.
    pub daemon: Daemon,
    /// The RPC actions it received, in order (discovery excluded), as `agent#action`: kept
    /// here rather than in a map by identity, looked up per reply (issue 15).
    pub received: History,
}

/// The actions a node received, in order, as runs of the same action: a node pinged every
/// minute for a day keeps one run, not 1,440 entries (the list grew without end in a
/// long-running simulator). The latest run is kept in the node itself: adding to a list of
/// its own per node and request missed the processor's caches and was the simulator's
/// largest single cost at 50,000 nodes (issue 15).
#[derive(Debug, Clone, Default)]
pub struct History {
    earlier: Vec<(Arc<str>, u64)>,
    latest: Option<(Arc<str>, u64)>,
}

impl History {
    /// One more action received.
    pub fn push(&mut self, action: &Arc<str>) {
        match &mut self.latest {
            Some((a, n)) if Arc::ptr_eq(a, action) || **a == **action => *n += 1,
            _ => {
                if let Some(run) = self.latest.replace((action.clone(), 1)) {
                    self.earlier.push(run);
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_none()
    }

    /// Every action received, in order, one item each.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.earlier.iter().chain(&self.latest).flat_map(|(a, n)| std::iter::repeat_n(&**a, *n as usize))
    }
}

impl Node {
    /// A node with seeded facts. `index` is 1-based.
    pub fn generate(index: usize, width: usize, domain: &str, version: &str, rng: &mut SmallRng) -> Node {
        let identity = format!("n{index:0width$}.{domain}");
        let Profile { facts, classes, agents } = Profile::generate(&identity, rng);
        let mut node = Node::described(&identity, facts, classes, agents);
        node.version = version.to_string();
        node.checks = ScoutCheck::defaults();
        node.daemon = Daemon::for_identity(&identity, chrono::Utc::now().timestamp());
        node
    }

    /// A node as an inventory file describes it, for matching filters against it.
    pub(crate) fn described(
        identity: &str,
        facts: Value,
        classes: Vec<String>,
        agents: impl Into<Arc<[String]>>,
    ) -> Node {
        Node {
            identity: identity.to_string(),
            facts,
            classes,
            agents: agents.into(),
            collectives: Vec::new(),
            mode: Mode::Normal,
            state: State::Up,
            fault: Fault::None,
            configured: false,
            version: String::new(),
            checks: Vec::new(),
            epoch: 0,
            daemon: Daemon::for_identity(identity, 0),
            received: History::default(),
        }
    }

    /// The lifecycle component this node publishes as.
    pub(crate) fn component(&self) -> &'static str {
        match self.mode {
            Mode::Normal => "server",
            Mode::Provisioning => "provision_mode_server",
        }
    }

    /// Whether it takes requests in `collective` now; `normal` is the fleet's collective.
    pub(crate) fn serves(&self, normal: &str, collective: &str) -> bool {
        match self.mode {
            Mode::Provisioning => collective == "provisioning",
            Mode::Normal if self.collectives.is_empty() => collective == normal,
            Mode::Normal => self.collectives.iter().any(|c| c == collective),
        }
    }

    /// Its collectives and main collective as `rpcutil` reports them: the fleet's main one
    /// when it is among them (a twin's node keeps its own list), else its first.
    pub(crate) fn collectives<'a>(&'a self, normal: &'a str) -> (Vec<&'a str>, &'a str) {
        match self.mode {
            Mode::Provisioning => (vec!["provisioning"], "provisioning"),
            Mode::Normal if self.collectives.is_empty() => (vec![normal], normal),
            Mode::Normal => {
                let all: Vec<&str> = self.collectives.iter().map(String::as_str).collect();
                let main = if all.contains(&normal) { normal } else { all[0] };
                (all, main)
            }
        }
    }

    /// Whether it answers requests for `agent`: one of its agents, and active. go-choria's
    /// scout agent is not active in provisioning mode (`scout/agent/scout/util.go`,
    /// `activationCheck`).
    pub(crate) fn runs(&self, agent: &str) -> bool {
        self.agents.iter().any(|a| a == agent) && !(agent == "scout" && self.mode == Mode::Provisioning)
    }

    /// A fact by gjson-like dotted path.
    pub(crate) fn fact(&self, path: &str) -> Option<&Value> {
        lookup(&self.facts, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs of the same action, equal or merely the same text, come back one item each, in
    /// the order received; a long run is one entry.
    #[test]
    fn the_history_is_every_action_in_order() {
        let (ping, restart): (Arc<str>, Arc<str>) = ("rpcutil#ping".into(), "choria_provision#restart".into());
        let mut h = History::default();
        assert!(h.is_empty() && h.iter().next().is_none());
        let mut expected = Vec::new();
        for (action, times) in [(&ping, 3), (&restart, 1), (&ping, 2), (&Arc::from("rpcutil#ping"), 1), (&restart, 2)] {
            for _ in 0..times {
                h.push(action);
                expected.push(action.to_string());
            }
        }
        assert!(!h.is_empty());
        assert_eq!(h.iter().collect::<Vec<_>>(), expected);
        assert_eq!(h.earlier.len(), 3, "ping, restart, ping (twice the same text): {h:?}");
        for _ in 0..100_000 {
            h.push(&restart);
        }
        assert_eq!(h.earlier.len(), 3);
        assert_eq!(h.iter().filter(|a| *a == "choria_provision#restart").count(), 100_003);
    }

    #[test]
    fn a_twin_node_serves_its_own_collectives_until_it_is_reprovisioned() {
        let mut n = Node::described("a", Value::Null, vec![], vec![]);
        assert!(n.serves("mcollective", "mcollective") && !n.serves("mcollective", "eu"));
        assert_eq!(n.collectives("mcollective"), (vec!["mcollective"], "mcollective"));
        n.collectives = vec!["eu".into(), "mcollective".into()];
        assert!(n.serves("mcollective", "eu") && n.serves("mcollective", "mcollective"));
        assert_eq!(n.collectives("mcollective"), (vec!["eu", "mcollective"], "mcollective"));
        assert_eq!(n.collectives("choria"), (vec!["eu", "mcollective"], "eu"), "else its first");
        n.mode = Mode::Provisioning;
        assert!(n.serves("mcollective", "provisioning") && !n.serves("mcollective", "eu"));
        assert_eq!(n.collectives("mcollective"), (vec!["provisioning"], "provisioning"));
    }
}
