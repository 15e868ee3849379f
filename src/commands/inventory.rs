//! `fleetbook inventory IDENTITY`: the rpcutil inventory of one node.

use std::io::Write;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::env::FleetEnv;
use crate::error::Error;
use crate::fleet::filter::Filter;
use crate::fleet::FleetError;

/// What `inventory` was asked for.
pub(crate) struct InventoryOptions {
    /// The node to ask.
    identity: String,
    /// The collective it is in; `None`: the main one.
    target: Option<String>,
    /// Print the inventory as JSON.
    json: bool,
}

impl InventoryOptions {
    /// Nothing to check: any identity may be asked.
    pub(crate) fn from_cli(identity: String, target: Option<String>, json: bool) -> InventoryOptions {
        InventoryOptions { identity, target, json }
    }
}

/// Asks one node for its inventory and prints it.
pub(crate) async fn run(settings: Settings, a: InventoryOptions, cancel: &CancellationToken) -> Result<(), Error> {
    let (identity, target, json) = (a.identity.as_str(), a.target.as_deref(), a.json);
    let env = FleetEnv::open(settings).await?;
    let mut session =
        env.fleet.rpc_session("rpcutil", "inventory", &Map::new(), target, None, Filter::default()).await?;
    let out = session.send_batch(&[identity.to_string()], cancel, &mut |_| {}).await?;
    if let Some(reason) = out.broker_lost {
        return Err(Error::BrokerLost { reason });
    }
    if out.interrupted {
        return Err(Error::Interrupted);
    }
    if let Some(reason) = out.malformed.get(identity) {
        return Err(FleetError::Malformed { what: "inventory reply", reason: reason.clone() }.into());
    }
    let Some(reply) = out.replies.into_iter().next() else {
        eprintln!("{identity} did not answer within {:.1}s", session.timeout().as_secs_f64());
        return Err(Error::NodesFailed { failed: 1, total: 1 });
    };
    let mut w = std::io::stdout().lock();
    if json {
        writeln!(w, "{}", serde_json::to_string_pretty(&reply.data).unwrap_or_default())?;
        return Ok(());
    }
    if !reply.ok() {
        let msg = crate::redact::printable(&reply.statusmsg);
        eprintln!("{identity}: {msg} ({})", crate::fleet::rpc::status_name(reply.statuscode));
        return Err(Error::NodesFailed { failed: 1, total: 1 });
    }
    write_inventory(&mut w, identity, &reply.data)?;
    Ok(())
}

/// The layout of `choria inventory`.
fn write_inventory(w: &mut impl Write, identity: &str, d: &Value) -> std::io::Result<()> {
    // Everything below came from the network: control characters are shown escaped.
    let clean = |s: &str| crate::redact::printable(s).into_owned();
    let s = |k: &str| clean(d.get(k).and_then(Value::as_str).unwrap_or(""));
    let list = |k: &str| -> Vec<String> {
        d.get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|x| x.as_str().map(clean)).collect())
            .unwrap_or_default()
    };
    writeln!(w, "Inventory for {identity}\n")?;
    let upgradable = if d.get("upgradable").and_then(Value::as_bool) == Some(true) {
        " (upgradable during provisioning)"
    } else {
        ""
    };
    writeln!(w, "{:>28} {}{upgradable}", "Version:", s("version"))?;
    writeln!(w, "{:>28} {}", "Main Collective:", s("main_collective"))?;
    writeln!(w, "{:>28} {}\n", "Collectives:", list("collectives").join(", "))?;
    writeln!(w, "  Agents:")?;
    write_columns(w, &list("agents"))?;
    writeln!(w, "\n  Configuration Management Classes:")?;
    write_columns(w, &list("classes"))?;
    writeln!(w, "\n  Facts:")?;
    if let Some(facts) = d.get("facts").and_then(Value::as_object) {
        let mut flat = Vec::new();
        flatten("", facts, &mut flat);
        for (k, v) in flat {
            writeln!(w, "    {}: {}", clean(&k), clean(&v))?;
        }
    }
    Ok(())
}

fn flatten(prefix: &str, m: &Map<String, Value>, out: &mut Vec<(String, String)>) {
    for (k, v) in m {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            Value::Object(inner) => flatten(&key, inner, out),
            Value::String(s) => out.push((key, s.clone())),
            other => out.push((key, other.to_string())),
        }
    }
}

fn write_columns(w: &mut impl Write, items: &[String]) -> std::io::Result<()> {
    let width = items.iter().map(String::len).max().unwrap_or(0) + 2;
    for row in items.chunks(3) {
        let line: String = row.iter().map(|i| format!("{i:width$}")).collect();
        writeln!(w, "    {}", line.trim_end())?;
    }
    Ok(())
}
