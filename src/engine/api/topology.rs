//! `rpc_batch`'s topology options (`spread_by`, `max_per_group`, `group_by`, `group_order`,
//! `max_group_failures`, `last`, `leaders_last`): the facts come from the fleet with one
//! read-only `rpcutil get_facts` request before planning (also under `--dry-run`), the
//! leaders from the election bucket; the plan itself is [`crate::rollout::topology`].

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use super::{fleet_error, Host, Options, Res};
use crate::fleet::Fleet;
use crate::rollout::policy::Amount;
use crate::rollout::topology::{self, Plan, Topology};

/// Reads the topology options.
pub(crate) fn options(o: &Options) -> Res<Topology> {
    let t = Topology {
        spread_by: o.string("spread_by"),
        max_per_group: o.amount("max_per_group")?,
        group_by: o.string("group_by"),
        group_order: o.strings("group_order")?.unwrap_or_default(),
        max_group_failures: o.amount("max_group_failures")?,
        last: o.strings("last")?.unwrap_or_default(),
        leaders_last: o.bool("leaders_last"),
    };
    let needs = |k: &str, on: &str| super::runtime_error("invalid", format!("rpc_batch.{k}: give {on} too"));
    if t.max_per_group.is_some() && t.spread_by.is_none() {
        return Err(needs("max_per_group", "spread_by"));
    }
    if (!t.group_order.is_empty() || t.max_group_failures.is_some()) && t.group_by.is_none() {
        let k = if t.group_order.is_empty() { "max_group_failures" } else { "group_order" };
        return Err(needs(k, "group_by"));
    }
    Ok(t)
}

/// Each node's values of `facts`, asked with one `rpcutil get_facts`; nodes that do not
/// answer have none (and are reported by the plan as lacking the fact).
fn fetch_facts(
    host: &Host,
    fleet: &Fleet,
    nodes: &[String],
    facts: &[String],
) -> Res<HashMap<String, BTreeMap<String, String>>> {
    let mut inputs = serde_json::Map::new();
    inputs.insert("facts".into(), json!(facts.join(",")));
    host.reporter.say(&format!(
        "asking {} node(s) for their {} fact(s) to plan the batches",
        nodes.len(),
        facts.join(", ")
    ));
    let out = host.rt.block_on(async {
        let mut s = fleet.rpc_session("rpcutil", "get_facts", &inputs, None, None, Default::default()).await?;
        s.send_batch(nodes, &host.interrupt.hard(), &mut |_| {}).await
    });
    let out = out.map_err(|e| fleet_error(host, e))?;
    let mut by_node = HashMap::new();
    for r in out.replies.iter().filter(|r| r.ok()) {
        let values = r.data.get("values").and_then(Value::as_object);
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
        host.reporter.say(&format!("{silent} node(s) did not give their facts: they count as lacking them"));
    }
    Ok(by_node)
}

/// The current leaders of every election in the election bucket (none when it is absent).
fn leaders(host: &Host, fleet: &Fleet) -> Vec<String> {
    match host.rt.block_on(fleet.bucket_info(crate::fleet::election::BUCKET)) {
        Ok(b) => b.elections.into_iter().map(|(_, leader)| leader).collect(),
        Err(e) => {
            host.reporter.say(&format!("leaders_last: no election leaders known ({e})"));
            Vec::new()
        }
    }
}

/// Plans `nodes` by the topology; reports the plan's notes.
pub(crate) fn plan(host: &Host, fleet: &Fleet, nodes: &[String], ramp: &[Amount], t: &Topology) -> Res<Plan> {
    let facts = match t.facts() {
        f if f.is_empty() || nodes.is_empty() => HashMap::new(),
        f => fetch_facts(host, fleet, nodes, &f)?,
    };
    let leaders = if t.leaders_last { leaders(host, fleet) } else { Vec::new() };
    let p = topology::plan(nodes, ramp, &facts, &leaders, t);
    for n in &p.notes {
        host.reporter.say(&format!("plan: {n}"));
    }
    Ok(p)
}
