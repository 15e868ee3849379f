//! `rpc_batch`'s topology options (`spread_by`, `max_per_group`, `group_by`, `group_order`,
//! `max_group_failures`, `last`, `leaders_last`), read from the option map; the facts and
//! leaders come from [`crate::rollout::gather`], the plan from [`crate::rollout::topology`].

use super::{fleet_error, Host, Options, Res};
use crate::fleet::discovery::inventory::Inventory;
use crate::fleet::Fleet;
use crate::rollout::policy::Amount;
use crate::rollout::topology::{Plan, Topology};

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

/// Plans `nodes` by the topology (asking the fleet for the facts and leaders it needs).
pub(crate) fn plan(
    host: &Host,
    fleet: &Fleet,
    nodes: &[String],
    ramp: &[Amount],
    t: &Topology,
    inventory: Option<&Inventory>,
) -> Res<Plan> {
    let hard = host.interrupt.hard();
    host.rt
        .block_on(crate::rollout::gather::plan(fleet, nodes, ramp, t, inventory, &hard, &host.reporter))
        .map_err(|e| fleet_error(host, e))
}
