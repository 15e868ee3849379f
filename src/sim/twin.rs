//! A simulated twin of a real fleet: its nodes taken from an inventory file (the format
//! `choria tool inventory` and `fleetbook inventory --all --out` write), read by the
//! discovery code's reader. Each node keeps its identity, facts, classes, agents and
//! collectives, and the Choria version our writer keeps in [`VERSION_FACT`]; faults, the
//! time scale and everything else still come from [`SimConfig`](super::SimConfig).

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::node::Node;
use crate::fleet::discovery::inventory::Inventory;
use crate::fleet::discovery::inventory_writer::VERSION_FACT;

/// One node of a twin, as the file describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct TwinNode {
    pub identity: String,
    /// Its facts, without [`VERSION_FACT`].
    pub facts: Value,
    pub classes: Vec<String>,
    /// Sorted, as a server reports them.
    pub agents: Vec<String>,
    /// At least one.
    pub collectives: Vec<String>,
    /// `None`: the simulator's version.
    pub version: Option<String>,
}

/// The nodes of a twin, sorted by identity and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Twin {
    /// The file it came from, for messages.
    pub origin: String,
    pub nodes: Vec<TwinNode>,
}

/// Whether `name` can be a NATS subject token of a Choria subject (a collective).
fn subject_token(name: &str) -> bool {
    !name.is_empty() && !name.contains(['.', '*', '>']) && !name.contains(char::is_whitespace)
}

impl Twin {
    /// Reads the inventory file at `path`; errors name it and say what is wrong.
    pub fn read(path: &str) -> Result<Twin, String> {
        let inv = crate::fleet::discovery::method::read_inventory(path)?;
        Twin::from_inventory(path, &inv)
    }

    /// The twin of `inv` (read from `origin`): every node must have a unique identity that
    /// can be addressed, at least one collective, and facts that are an object.
    pub fn from_inventory(origin: &str, inv: &Inventory) -> Result<Twin, String> {
        if inv.nodes().is_empty() {
            return Err(format!("{origin}: the inventory has no nodes to simulate"));
        }
        let mut seen = HashSet::new();
        let mut nodes = Vec::with_capacity(inv.nodes().len());
        for (i, n) in inv.nodes().iter().enumerate() {
            let bad = |what: String| format!("{origin}: node {} ({:?}): {what}", i + 1, n.name);
            if n.name.is_empty() || n.name.contains(['*', '>']) || n.name.contains(char::is_whitespace) {
                return Err(bad("not an identity a server can have".into()));
            }
            if !seen.insert(n.name.as_str()) {
                return Err(bad("listed twice".into()));
            }
            if n.collectives.is_empty() {
                return Err(bad("no collectives: a server serves at least one".into()));
            }
            if let Some(c) = n.collectives.iter().find(|c| !subject_token(c) || *c == "provisioning") {
                return Err(bad(format!("collective {c:?} is not one a configured server can serve")));
            }
            let mut facts = match &n.facts {
                Value::Null => Map::new(),
                Value::Object(m) => m.clone(),
                other => return Err(bad(format!("facts must be an object, not {other}"))),
            };
            let version = match facts.remove(VERSION_FACT) {
                None => None,
                Some(Value::String(v)) => Some(v),
                Some(other) => return Err(bad(format!("{VERSION_FACT} must be a string, not {other}"))),
            };
            let mut agents = n.agents.clone();
            agents.sort();
            agents.dedup();
            nodes.push(TwinNode {
                identity: n.name.clone(),
                facts: Value::Object(facts),
                classes: n.classes.clone(),
                agents,
                collectives: n.collectives.clone(),
                version,
            });
        }
        nodes.sort_by(|a, b| a.identity.cmp(&b.identity));
        Ok(Twin { origin: origin.to_string(), nodes })
    }

    /// Every collective a node of the twin serves, sorted.
    pub fn collectives(&self) -> Vec<String> {
        let mut all: Vec<String> = self.nodes.iter().flat_map(|n| n.collectives.iter().cloned()).collect();
        all.sort();
        all.dedup();
        all
    }

    /// The collective most nodes serve (the first by name of those tied).
    pub fn most_served(&self) -> Option<String> {
        let mut count: std::collections::BTreeMap<&str, usize> = Default::default();
        for c in self.nodes.iter().flat_map(|n| &n.collectives) {
            *count.entry(c).or_default() += 1;
        }
        let best = count.values().max().copied()?;
        count.into_iter().find(|(_, n)| *n == best).map(|(c, _)| c.to_string())
    }
}

impl TwinNode {
    /// The simulated server of this node; `version` when the file gives none.
    pub(crate) fn node(&self, version: &str) -> Node {
        let mut node = Node::described(&self.identity, self.facts.clone(), self.classes.clone(), self.agents.clone());
        node.collectives = self.collectives.clone();
        node.version = self.version.clone().unwrap_or_else(|| version.to_string());
        node.checks = super::scout::ScoutCheck::defaults();
        node.daemon = super::daemon::Daemon::for_identity(&self.identity, chrono::Utc::now().timestamp());
        node
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn twin(text: &str) -> Result<Twin, String> {
        Twin::from_inventory("t.yaml", &Inventory::parse("t.yaml", text)?)
    }

    const HEAD: &str = "$schema: https://choria.io/schemas/choria/discovery/v1/inventory_file.json\n";

    #[test]
    fn the_go_choria_test_file_is_a_twin() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/choria/discovery/inventory/good-inventory.yaml");
        let t = twin(&std::fs::read_to_string(path).unwrap()).unwrap();
        let ids: Vec<&str> = t.nodes.iter().map(|n| n.identity.as_str()).collect();
        assert_eq!(ids, ["dev1.example.net", "dev2.example.net"]);
        assert_eq!(t.collectives(), ["de_collective", "mcollective", "mt_collective"]);
        assert_eq!(t.nodes[1].agents, ["other", "rpcutil"]);
        assert_eq!(t.nodes[0].version, None);
    }

    #[test]
    fn the_version_fact_becomes_the_version() {
        let t = twin(&format!(
            "{HEAD}nodes:\n  - name: a\n    collectives: [mcollective]\n    facts: {{x: 1, {VERSION_FACT}: 0.28.0}}\n"
        ))
        .unwrap();
        assert_eq!(t.nodes[0].version.as_deref(), Some("0.28.0"));
        assert_eq!(t.nodes[0].facts, serde_json::json!({"x": 1}));
        assert_eq!(t.nodes[0].node("0.29.4").version, "0.28.0");
    }

    #[test]
    fn bad_twins_say_which_node_and_why() {
        let cases = [
            (format!("{HEAD}nodes: []\n"), "has no nodes"),
            (format!("{HEAD}nodes:\n  - name: a\n    facts: {{}}\n"), "node 1 (\"a\"): no collectives"),
            (format!("{HEAD}nodes:\n  - name: a b\n    collectives: [m]\n"), "not an identity"),
            (
                format!("{HEAD}nodes:\n  - name: a\n    collectives: [m]\n  - name: a\n    collectives: [m]\n"),
                "node 2 (\"a\"): listed twice",
            ),
            (format!("{HEAD}nodes:\n  - name: a\n    collectives: [m.x]\n"), "collective \"m.x\""),
            (format!("{HEAD}nodes:\n  - name: a\n    collectives: [m]\n    facts: [1]\n"), "facts must be an object"),
        ];
        for (text, want) in cases {
            let e = twin(&text).unwrap_err();
            assert!(e.starts_with("t.yaml") && e.contains(want), "{e} (want {want})");
        }
    }
}
