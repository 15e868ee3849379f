//! `--dm inventory`: discovery from an inventory file, the format `choria tool inventory`
//! writes (`providers/discovery/inventory`): YAML (by a `.yaml`/`.yml` name, or when the
//! text is no JSON object) or JSON, with
//! `$schema`, named `groups` (each a saved filter) and `nodes` (name, collectives, facts,
//! classes, agents). Filters are applied here as a server applies them (the simulator's
//! matcher); `-I group:NAME` selects a group's nodes and cannot be combined with other
//! filters. Nodes outside the collective (the main one unless `-T`) are never selected.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::super::filter::{parse_fact, Filter};
use crate::sim::matcher::Matcher;
use crate::sim::node::Node;

/// The `$schema` of an inventory file.
pub const DATA_SCHEMA: &str = "https://choria.io/schemas/choria/discovery/v1/inventory_file.json";

/// An inventory file, read and checked. Serialised (by [`super::inventory_writer`]) in
/// go-choria's field order and with its omissions, so `choria tool inventory --validate`
/// takes what we write.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Inventory {
    #[serde(rename = "$schema")]
    pub(crate) schema: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) groups: Vec<Group>,
    #[serde(default)]
    pub(crate) nodes: Vec<InventoryNode>,
}

/// A filter saved by name.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Group {
    pub(crate) name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) filter: Option<GroupFilter>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupFilter {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) agents: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) classes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) facts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) identities: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) compound: String,
}

/// One node of the fleet as the inventory describes it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryNode {
    /// Its identity.
    pub name: String,
    /// The collectives it serves.
    #[serde(default)]
    pub collectives: Vec<String>,
    /// Its facts (an object; null when the file leaves them out).
    #[serde(default)]
    pub facts: Value,
    /// Its classes.
    #[serde(default)]
    pub classes: Vec<String>,
    /// Its agents.
    #[serde(default)]
    pub agents: Vec<String>,
}

impl Inventory {
    /// Parses the text of the inventory file `origin`; errors start with its name.
    pub fn parse(origin: &str, text: &str) -> Result<Inventory, String> {
        // go-choria goes by the name; a file named otherwise that is no JSON object is read
        // as YAML too, so a written inventory need not be renamed.
        let yaml = origin.ends_with(".yaml") || origin.ends_with(".yml") || !text.trim_start().starts_with('{');
        let inv: Inventory = if yaml {
            serde_yaml::from_str(text).map_err(|e| match e.location() {
                Some(l) => format!("{origin}:{}: not an inventory file: {e}", l.line()),
                None => format!("{origin}: not an inventory file: {e}"),
            })?
        } else {
            serde_json::from_str(text).map_err(|e| format!("{origin}:{}: not an inventory file: {e}", e.line()))?
        };
        if inv.schema != DATA_SCHEMA {
            return Err(format!("{origin}: invalid schema {:?} expected {DATA_SCHEMA:?}", inv.schema));
        }
        for g in &inv.groups {
            g.filter().map_err(|e| format!("{origin}: group {:?}: {e}", g.name))?;
        }
        Ok(inv)
    }

    /// Every node the file describes, in its order.
    pub fn nodes(&self) -> &[InventoryNode] {
        &self.nodes
    }

    /// The nodes `filter` selects in `collective`, sorted. The filter's `group:NAME`
    /// identities select groups instead (in every collective, as go-choria does).
    pub fn select(&self, filter: &Filter, collective: &str) -> Result<Vec<String>, String> {
        let groups: Vec<&str> = filter.identity.iter().filter_map(|i| i.strip_prefix("group:")).collect();
        let mut found = if groups.is_empty() {
            self.matching(filter, Some(collective))
        } else {
            let others = filter.identity.len() != groups.len()
                || !filter.fact.is_empty()
                || !filter.cf_class.is_empty()
                || filter.agent.len() > 1
                || !filter.compound.is_empty();
            if others {
                return Err("group matches cannot be combined with other filters".into());
            }
            let mut all = Vec::new();
            for name in groups {
                let g = self.groups.iter().find(|g| g.name == name).ok_or_else(|| format!("unknown group '{name}'"))?;
                all.extend(self.matching(&g.filter()?, None));
            }
            all
        };
        found.sort();
        found.dedup();
        Ok(found)
    }

    /// The names of the nodes `filter` matches, in `collective` when given.
    fn matching(&self, filter: &Filter, collective: Option<&str>) -> Vec<String> {
        let m = Matcher::new(filter);
        self.nodes
            .iter()
            .filter(|n| collective.is_none_or(|c| n.collectives.iter().any(|x| x == c)))
            .filter(|n| {
                let node = Node::described(&n.name, n.facts.clone(), n.classes.clone(), n.agents.clone());
                m.matches(&node)
            })
            .map(|n| n.name.clone())
            .collect()
    }
}

impl Group {
    /// The group's filter as a request filter; no filter selects every node.
    fn filter(&self) -> Result<Filter, String> {
        let g = self.filter.clone().unwrap_or_default();
        let mut f = Filter { cf_class: g.classes, agent: g.agents, identity: g.identities, ..Default::default() };
        for fact in &g.facts {
            f.fact.push(parse_fact(fact).map_err(|e| e.to_string())?);
        }
        if !g.compound.is_empty() {
            f.add_compound(&g.compound);
        }
        f.validate().map_err(|e| e.to_string())?;
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Inventory {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/choria/discovery/inventory/good-inventory.yaml");
        let text = std::fs::read_to_string(path).expect("the shared inventory file");
        Inventory::parse("good-inventory.yaml", &text).unwrap()
    }

    fn select(f: Filter, collective: &str) -> Result<Vec<String>, String> {
        good().select(&f, collective)
    }

    const DEV1: &str = "dev1.example.net";
    const DEV2: &str = "dev2.example.net";

    /// The cases of go-choria's `inventory_test.go`, on the same file.
    #[test]
    fn selects_as_go_choria_does() {
        let none = Filter::default();
        assert_eq!(select(none.clone(), "mt_collective").unwrap(), [DEV1]);
        assert_eq!(select(none.clone(), "mcollective").unwrap(), [DEV1, DEV2]);
        let mt = Filter { fact: vec![parse_fact("country=mt").unwrap()], ..Default::default() };
        assert_eq!(select(mt, "mcollective").unwrap(), [DEV1]);
        let acme = Filter { fact: vec![parse_fact("customer=acme").unwrap()], ..Default::default() };
        assert_eq!(select(acme, "mcollective").unwrap(), [DEV1]);
        let mut classes = Filter { cf_class: vec!["one".into()], ..Default::default() };
        assert_eq!(select(classes.clone(), "mcollective").unwrap(), [DEV1, DEV2]);
        classes.cf_class.push("three".into());
        assert_eq!(select(classes, "mcollective").unwrap(), [DEV2]);
        let agents = Filter { agent: vec!["rpcutil".into(), "other".into()], ..Default::default() };
        assert_eq!(select(agents, "mcollective").unwrap(), [DEV2]);
        let mut compound = Filter::default();
        compound.add_compound(r#"with("customer=acme") and with("one")"#);
        assert_eq!(select(compound, "mcollective").unwrap(), [DEV1]);
    }

    #[test]
    fn groups_select_their_nodes_alone() {
        let group = |names: &[&str]| Filter {
            identity: names.iter().map(|n| format!("group:{n}")).collect(),
            ..Default::default()
        };
        assert_eq!(select(group(&["malta"]), "x").unwrap(), [DEV1]);
        assert_eq!(select(group(&["all"]), "x").unwrap(), [DEV1, DEV2]);
        assert_eq!(select(group(&["acme"]), "x").unwrap(), [DEV1]);
        assert_eq!(select(group(&["malta", "germany"]), "x").unwrap(), [DEV1, DEV2]);
        assert_eq!(select(group(&["nope"]), "x").unwrap_err(), "unknown group 'nope'");
        let mut mixed = group(&["malta"]);
        mixed.cf_class.push("one".into());
        assert!(select(mixed, "x").unwrap_err().contains("cannot be combined"));
    }

    #[test]
    fn bad_files_are_refused_with_their_name() {
        let e = Inventory::parse("inv.json", r#"{"$schema": "x", "nodes": []}"#).unwrap_err();
        assert!(e.starts_with("inv.json: invalid schema"), "{e}");
        let e = Inventory::parse("inv.yaml", "$schema: x\nnodes:\n  - nmae: a\n").unwrap_err();
        assert!(e.starts_with("inv.yaml:3: not an inventory file"), "{e}");
    }
}
