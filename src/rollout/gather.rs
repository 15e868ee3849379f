//! What a topology plan needs from the fleet: each node's values of the facts it names (one
//! read-only `rpcutil get_facts` request, also under `--dry-run`) and the current election
//! leaders. Shared by `rpc_batch` and `req`.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::policy::Amount;
use super::topology::{self, Plan, Topology};
use crate::fleet::discovery::inventory::Inventory;
use crate::fleet::{Fleet, FleetError};
use crate::progress::Reporter;

/// Each node's values of `facts`; nodes that do not answer have none (the plan reports them
/// as lacking the fact).
pub async fn facts(
    fleet: &Fleet,
    nodes: &[String],
    facts: &[String],
    cancel: &CancellationToken,
    reporter: &Reporter,
) -> Result<HashMap<String, BTreeMap<String, String>>, FleetError> {
    let mut inputs = serde_json::Map::new();
    inputs.insert("facts".into(), json!(facts.join(",")));
    reporter.say(&format!("asking {} node(s) for their {} fact(s) to plan the batches", nodes.len(), facts.join(", ")));
    let mut s = fleet.rpc_session("rpcutil", "get_facts", &inputs, None, None, Default::default()).await?;
    let out = s.send_batch(nodes, cancel, &mut |_| {}).await?;
    let mut by_node = HashMap::new();
    for r in out.replies.iter().filter(|r| r.ok()) {
        let data = r.data.value();
        let values = data.get("values").and_then(Value::as_object);
        let mut m = BTreeMap::new();
        for f in facts {
            match values.and_then(|v| v.get(f)) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) if s.is_empty() => {}
                Some(Value::String(s)) => {
                    m.insert(f.clone(), s.clone());
                }
                Some(v) => {
                    m.insert(f.clone(), v.to_string());
                }
            }
        }
        by_node.insert(r.sender.clone(), m);
    }
    let silent = nodes.len() - by_node.len();
    if silent > 0 {
        reporter.say(&format!("{silent} node(s) did not give their facts: they count as lacking them"));
    }
    Ok(by_node)
}

/// The current leaders of every election in the election bucket (none when it is absent).
pub async fn leaders(fleet: &Fleet, reporter: &Reporter) -> Vec<String> {
    match fleet.bucket_info(crate::fleet::election::BUCKET).await {
        Ok(b) => b.elections.into_iter().map(|(_, leader)| leader).collect(),
        Err(e) => {
            reporter.say(&format!("leaders_last: no election leaders known ({e})"));
            Vec::new()
        }
    }
}

/// Each node's values of `facts` as an inventory file describes them (dotted paths allowed).
pub fn facts_from(inventory: &Inventory, facts: &[String]) -> HashMap<String, BTreeMap<String, String>> {
    let lookup = |v: &Value, path: &str| path.split('.').try_fold(v, |v, k| v.get(k)).cloned();
    inventory
        .nodes()
        .iter()
        .map(|n| {
            let mut m = BTreeMap::new();
            for f in facts {
                match lookup(&n.facts, f) {
                    None | Some(Value::Null) => {}
                    Some(Value::String(s)) => {
                        m.insert(f.clone(), s);
                    }
                    Some(v) => {
                        m.insert(f.clone(), v.to_string());
                    }
                }
            }
            (n.name.clone(), m)
        })
        .collect()
}

/// Asks the fleet what the topology needs (the facts come from `inventory` instead when the
/// nodes came from an inventory file), plans, and reports the plan's notes.
pub async fn plan(
    fleet: &Fleet,
    nodes: &[String],
    ramp: &[Amount],
    t: &Topology,
    inventory: Option<&Inventory>,
    cancel: &CancellationToken,
    reporter: &Reporter,
) -> Result<Plan, FleetError> {
    let wanted = t.facts();
    let by_node = match (wanted.is_empty() || nodes.is_empty(), inventory) {
        (true, _) => HashMap::new(),
        (false, Some(inv)) => facts_from(inv, &wanted),
        (false, None) => facts(fleet, nodes, &wanted, cancel, reporter).await?,
    };
    let leaders = if t.leaders_last { leaders(fleet, reporter).await } else { Vec::new() };
    let p = topology::plan(nodes, ramp, &by_node, &leaders, t);
    for n in &p.notes {
        reporter.say(&format!("plan: {n}"));
    }
    Ok(p)
}
