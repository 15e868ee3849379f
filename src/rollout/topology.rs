//! Topology-aware batches: which node goes in which batch when the fleet has racks, sites
//! and leaders. A pure planner over the nodes and their facts, so it is tested on its own.
//!
//! - `group_by`: one group (e.g. a site) is finished before the next starts; groups in
//!   `group_order`, then the rest by name, then the nodes without the fact. The batch sizes
//!   apply within each group.
//! - `spread_by`: nodes are interleaved across the fact's values so each batch mixes them;
//!   with `max_per_group` no batch holds more than that many of one value (a percentage is of
//!   that value's nodes, at least 1). Nodes that do not fit wait for a later batch, so a
//!   capped plan may have more, smaller batches; the plan says so.
//! - `last` (and the election leaders, with `leaders_last`) go in a final batch of their own.
//!
//! Nodes without the fact form their own group, named [`NO_FACT`] and reported.

use std::collections::{BTreeMap, HashMap};

use super::policy::{plan_sizes, Amount};

/// The group of nodes that lack the fact.
pub const NO_FACT: &str = "(no fact)";

/// How to lay the batches out over the fleet's topology.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Topology {
    pub spread_by: Option<String>,
    pub max_per_group: Option<Amount>,
    pub group_by: Option<String>,
    pub group_order: Vec<String>,
    /// Failures allowed per `group_by` group.
    pub max_group_failures: Option<Amount>,
    /// Identities for the final batch.
    pub last: Vec<String>,
    /// The current election leaders go in the final batch too.
    pub leaders_last: bool,
}

impl Topology {
    /// Whether anything differs from plain batches.
    pub fn is_set(&self) -> bool {
        self.spread_by.is_some() || self.group_by.is_some() || !self.last.is_empty() || self.leaders_last
    }

    /// The facts the plan needs, in a stable order.
    pub fn facts(&self) -> Vec<String> {
        let mut f: Vec<String> = self.group_by.iter().chain(self.spread_by.iter()).cloned().collect();
        f.dedup();
        f
    }
}

/// The batches, and for each its `group_by` group and its nodes counted by the spread (or
/// group) fact's value; and what a person should know about the plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub batches: Vec<Vec<String>>,
    pub groups: Vec<Option<String>>,
    pub counts: Vec<BTreeMap<String, usize>>,
    pub notes: Vec<String>,
}

/// A node's value of `fact`, or [`NO_FACT`].
fn value<'a>(facts: &'a HashMap<String, BTreeMap<String, String>>, node: &str, fact: &str) -> &'a str {
    facts.get(node).and_then(|f| f.get(fact)).map_or(NO_FACT, String::as_str)
}

/// Splits `nodes` by their value of `fact`, keeping their order; values sorted, except that
/// the ones in `order` come first in that order and the nodes without the fact come last.
fn split<'a>(
    nodes: &[String],
    facts: &'a HashMap<String, BTreeMap<String, String>>,
    fact: &str,
    order: &[String],
) -> Vec<(&'a str, Vec<String>)> {
    let mut by: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for n in nodes {
        by.entry(value(facts, n, fact)).or_default().push(n.clone());
    }
    let rank = |v: &str| match (order.iter().position(|o| o == v), v == NO_FACT) {
        (Some(i), _) => (0, i),
        (None, false) => (1, 0),
        (None, true) => (2, 0),
    };
    let mut groups: Vec<(&str, Vec<String>)> = by.into_iter().collect();
    groups.sort_by(|a, b| rank(a.0).cmp(&rank(b.0)).then(a.0.cmp(b.0)));
    groups
}

/// Batches of `nodes` spread over `fact`'s values, each value capped per batch.
fn spread(
    nodes: &[String],
    facts: &HashMap<String, BTreeMap<String, String>>,
    fact: &str,
    cap: Option<Amount>,
    ramp: &[Amount],
    notes: &mut Vec<String>,
    first_batch: usize,
) -> Vec<Vec<String>> {
    let groups = split(nodes, facts, fact, &[]);
    let caps: HashMap<&str, usize> =
        groups.iter().map(|(v, ns)| (*v, cap.map_or(usize::MAX, |c| c.allowed(ns.len()).max(1)))).collect();
    // Round robin over the values: each batch taken in this order mixes them.
    let mut order = Vec::with_capacity(nodes.len());
    let longest = groups.iter().map(|(_, ns)| ns.len()).max().unwrap_or(0);
    for i in 0..longest {
        order.extend(groups.iter().filter_map(|(v, ns)| ns.get(i).map(|n| (*v, n.clone()))));
    }
    let sizes = plan_sizes(nodes.len(), ramp);
    let mut batches = Vec::new();
    while !order.is_empty() {
        let size = sizes.get(batches.len()).or(sizes.last()).copied().unwrap_or(order.len()).max(1);
        let mut taken: HashMap<&str, usize> = HashMap::new();
        let (mut batch, mut rest, mut waited) = (Vec::new(), Vec::new(), 0);
        for (v, n) in order {
            let count = taken.entry(v).or_default();
            if batch.len() < size && *count < caps[v] {
                *count += 1;
                batch.push(n);
            } else {
                waited += usize::from(batch.len() < size);
                rest.push((v, n));
            }
        }
        if waited > 0 {
            notes.push(format!(
                "batch {}: {waited} node(s) wait for a later batch (max_per_group per {fact})",
                first_batch + batches.len() + 1
            ));
        }
        batches.push(batch);
        order = rest;
    }
    batches
}

/// Plans the batches. `facts` holds each node's values of the facts [`Topology::facts`]
/// names; `leaders` the current election leaders.
pub fn plan(
    nodes: &[String],
    ramp: &[Amount],
    facts: &HashMap<String, BTreeMap<String, String>>,
    leaders: &[String],
    t: &Topology,
) -> Plan {
    let mut p = Plan::default();
    let mut final_batch: Vec<String> = Vec::new();
    for n in nodes {
        if t.last.contains(n) || (t.leaders_last && leaders.contains(n)) {
            final_batch.push(n.clone());
        }
    }
    let rest: Vec<String> = nodes.iter().filter(|n| !final_batch.contains(n)).cloned().collect();
    let grouped = match &t.group_by {
        Some(fact) => {
            split(&rest, facts, fact, &t.group_order).into_iter().map(|(v, ns)| (Some(v.to_string()), ns)).collect()
        }
        None => vec![(None, rest)],
    };
    for (group, members) in grouped {
        let batches = match &t.spread_by {
            Some(fact) => spread(&members, facts, fact, t.max_per_group, ramp, &mut p.notes, p.batches.len()),
            None => super::policy::plan_batches(&members, &plan_sizes(members.len(), ramp)),
        };
        for b in batches {
            p.groups.push(group.clone());
            p.batches.push(b);
        }
    }
    if !final_batch.is_empty() {
        p.notes.push(format!("last batch: {} (kept for last)", final_batch.join(", ")));
        p.groups.push(None);
        p.batches.push(final_batch);
    }
    for fact in t.facts() {
        let missing = nodes.iter().filter(|n| value(facts, n, &fact) == NO_FACT).count();
        if missing > 0 {
            p.notes.push(format!("{missing} node(s) have no {fact} fact: they form the group {NO_FACT}"));
        }
    }
    let counted = t.spread_by.as_ref().or(t.group_by.as_ref());
    p.counts = p
        .batches
        .iter()
        .map(|b| {
            let mut c = BTreeMap::new();
            if let Some(fact) = counted {
                for n in b {
                    *c.entry(value(facts, n, fact).to_string()).or_default() += 1;
                }
            }
            c
        })
        .collect();
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn fleet(
        n: usize,
        values: &[&str],
        rng: &mut rand::rngs::SmallRng,
    ) -> (Vec<String>, HashMap<String, BTreeMap<String, String>>) {
        let nodes: Vec<String> = (0..n).map(|i| format!("n{i:04}")).collect();
        let mut facts = HashMap::new();
        for node in &nodes {
            let mut f = BTreeMap::new();
            // One node in twenty has no rack fact.
            if rng.gen_range(0..20) != 0 {
                f.insert("rack".to_string(), values[rng.gen_range(0..values.len())].to_string());
                f.insert("site".to_string(), ["fra1", "ams1"][rng.gen_range(0..2)].to_string());
            }
            facts.insert(node.clone(), f);
        }
        (nodes, facts)
    }

    /// Every node exactly once; no batch over the per-value cap; batch sizes within the ramp.
    #[test]
    fn spread_caps_hold_for_every_batch_over_random_fleets() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        for _ in 0..300 {
            let n = rng.gen_range(1..120);
            let (nodes, facts) = fleet(n, &["r1", "r2", "r3", "r4"], &mut rng);
            let size = rng.gen_range(1..20);
            let cap = rng.gen_range(1..5);
            let t = Topology {
                spread_by: Some("rack".into()),
                max_per_group: Some(Amount::Count(cap)),
                ..Default::default()
            };
            let p = plan(&nodes, &[Amount::Count(size)], &facts, &[], &t);
            let mut all: Vec<String> = p.batches.iter().flatten().cloned().collect();
            all.sort();
            assert_eq!(all, nodes, "every node once");
            for (b, counts) in p.batches.iter().zip(&p.counts) {
                assert!(!b.is_empty() && b.len() <= size, "{b:?}");
                assert!(counts.values().all(|c| *c <= cap), "cap {cap}: {counts:?}");
            }
        }
    }

    #[test]
    fn spread_mixes_values_and_groups_finish_in_order() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let (nodes, facts) = fleet(60, &["r1", "r2", "r3"], &mut rng);
        let t = Topology { spread_by: Some("rack".into()), ..Default::default() };
        let p = plan(&nodes, &[Amount::Count(3)], &facts, &[], &t);
        assert!(p.counts[0].len() == 3, "the first batch takes one of each rack: {:?}", p.counts[0]);
        assert!(p.notes.iter().any(|n| n.contains("have no rack fact")), "{:?}", p.notes);

        let t = Topology { group_by: Some("site".into()), group_order: vec!["fra1".into()], ..Default::default() };
        let p = plan(&nodes, &[Amount::Count(5)], &facts, &[], &t);
        let order: Vec<&str> = p.groups.iter().map(|g| g.as_deref().unwrap()).collect();
        let mut seen: Vec<&str> = order.clone();
        seen.dedup();
        assert_eq!(seen, ["fra1", "ams1", NO_FACT], "one group after another: {order:?}");
        for (b, g) in p.batches.iter().zip(&p.groups) {
            let g = g.as_deref().unwrap();
            assert!(b.iter().all(|n| value(&facts, n, "site") == g), "no batch mixes groups");
        }
    }

    #[test]
    fn leaders_and_named_nodes_go_last_once() {
        let nodes: Vec<String> = (1..=6).map(|i| format!("n{i}")).collect();
        let t = Topology { last: vec!["n2".into()], leaders_last: true, ..Default::default() };
        let p = plan(&nodes, &[Amount::Count(2)], &HashMap::new(), &["n1".into()], &t);
        assert_eq!(p.batches.last().unwrap(), &vec!["n1".to_string(), "n2".to_string()]);
        assert_eq!(p.batches.iter().flatten().count(), 6);
        assert_eq!(p.batches[0], vec!["n3".to_string(), "n4".to_string()]);
    }
}
