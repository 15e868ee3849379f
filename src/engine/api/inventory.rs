//! `inventory(identity)`: what `fleetbook inventory` shows, as a map. Read-only, so it runs
//! for real under `--dry-run` too.

use std::sync::Arc;

use rhai::{Dynamic, Engine, FuncRegistration, Map};

use super::{fleet_error, runtime_error, Host, Options, Res};
use crate::engine::convert::from_json;
use crate::fleet::inventory::InventoryOutcome;

/// The option keys of `inventory(identity, opts)`.
pub(crate) const KEYS: [&str; 1] = ["collective"];

fn inventory(host: &Host, identity: &str, opts: &Map) -> Res<Dynamic> {
    let collective = Options::new(opts, "inventory", &KEYS)?.string("collective");
    let fleet = host.fleet()?;
    let cancel = host.interrupt.hard();
    let asked = fleet.inventory(identity, collective.as_deref(), &cancel);
    match host.rt.block_on(asked).map_err(|e| fleet_error(host, e))? {
        InventoryOutcome::Answered(n) => Ok(from_json(&n.to_json())),
        InventoryOutcome::NoReply { waited } => Err(runtime_error(
            "timeout",
            format!("{identity} did not answer the inventory request within {:.1}s", waited.as_secs_f64()),
        )),
        InventoryOutcome::Refused { statuscode, statusmsg } => Err(runtime_error(
            "denied",
            format!(
                "{identity} refused the inventory request: {statusmsg} ({})",
                crate::fleet::rpc::status_name(statuscode)
            ),
        )),
        InventoryOutcome::BrokerLost(reason) => Err(host.broker_lost(reason)),
        InventoryOutcome::Interrupted => Err(host.guardrail("interrupted (Ctrl-C)")),
    }
}

/// Registers `inventory(identity)` and `inventory(identity, opts)`.
pub(crate) fn register(engine: &mut Engine, host: &Arc<Host>) {
    let h = host.clone();
    FuncRegistration::new("inventory")
        .with_params_info(["identity: &str", "Map"])
        .with_comments(["/// One node's rpcutil inventory and server statistics, as `fleetbook inventory` shows them:\n/// #{identity, version, upgradable, main_collective, collectives, agents, classes, facts,\n/// machines, data_plugins, stats}; stats is the daemon_stats reply (starttime, pid, configfile,\n/// total, passed, filtered, ttlexpired, replies, events, ...) or () when the node gave none.\n/// A node that does not answer is an error of kind \"timeout\"."])
        .register_into_engine(engine, move |identity: &str| inventory(&h, identity, &Map::new()));
    let h = host.clone();
    FuncRegistration::new("inventory")
        .with_params_info(["identity: &str", "opts: Map", "Map"])
        .with_comments(["/// As inventory(identity), with opts #{collective} (default: the main collective)."])
        .register_into_engine(engine, move |identity: &str, opts: Map| inventory(&h, identity, &opts));
}
