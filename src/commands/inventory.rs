//! `fleetbook inventory IDENTITY`: one node's inventory and server statistics, laid out with
//! the format strings of go-choria's `cmd/inventory.go`.

use std::io::Write;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::cli::FilterArgs;
use crate::config::Settings;
use crate::env::FleetEnv;
use crate::error::Error;
use crate::fleet::inventory::{InventoryOutcome, NodeInventory};
use crate::progress::table::go_tabwriter;

/// What `inventory` was asked for.
pub(crate) struct InventoryOptions {
    /// The node to ask.
    identity: String,
    /// The collective it is in; `None`: the main one.
    target: Option<String>,
    /// Print the inventory as JSON.
    json: bool,
    /// Show the facts (`--no-facts` hides them, as `choria inventory --no-facts`).
    facts: bool,
}

impl InventoryOptions {
    /// Any identity may be asked; of the filter flags only `-T` applies to one node (the
    /// others select nodes for `--all`).
    pub(crate) fn from_cli(
        identity: Option<String>,
        filter: &FilterArgs,
        json: bool,
        no_facts: bool,
    ) -> Result<InventoryOptions, Error> {
        let identity = identity.ok_or_else(|| Error::Usage {
            message: "inventory needs an IDENTITY, or --all --out FILE for every node".into(),
        })?;
        let f = filter;
        let filters = [&f.fact, &f.class, &f.agent, &f.identity, &f.with, &f.compound, &f.discovery_options];
        let sources = [&f.dm, &f.nodes, &f.limit];
        let discovery = f.discovery_timeout.is_some() || f.discovery_window;
        if filters.iter().any(|v| !v.is_empty()) || sources.iter().any(|o| o.is_some()) || discovery {
            return Err(Error::Usage {
                message: format!("inventory {identity}: filters and discovery flags select nodes for --all --out FILE"),
            });
        }
        Ok(InventoryOptions { identity, target: filter.target.clone(), json, facts: !no_facts })
    }
}

/// Asks one node for its inventory and statistics and prints them.
pub(crate) async fn run(settings: Settings, a: InventoryOptions, cancel: &CancellationToken) -> Result<(), Error> {
    let identity = a.identity.as_str();
    let env = FleetEnv::open(settings).await?;
    let node = match env.fleet.inventory(identity, a.target.as_deref(), cancel).await? {
        InventoryOutcome::Answered(n) => n,
        InventoryOutcome::BrokerLost(reason) => return Err(Error::BrokerLost { reason }),
        InventoryOutcome::Interrupted => return Err(Error::Interrupted),
        InventoryOutcome::NoReply { waited } => {
            eprintln!("{identity} did not answer within {:.1}s", waited.as_secs_f64());
            return Err(Error::NodesFailed { failed: 1, total: 1 });
        }
        InventoryOutcome::Refused { statuscode, statusmsg } => {
            let msg = crate::redact::printable(&statusmsg);
            eprintln!("{identity}: {msg} ({})", crate::fleet::rpc::status_name(statuscode));
            return Err(Error::NodesFailed { failed: 1, total: 1 });
        }
    };
    let mut w = std::io::stdout().lock();
    if a.json {
        let mut v = node.to_json();
        if !a.facts {
            if let Some(m) = v.as_object_mut() {
                m.remove("facts");
            }
        }
        writeln!(w, "{}", serde_json::to_string_pretty(&v).unwrap_or_default())?;
        return Ok(());
    }
    write!(w, "{}", render(&node, a.facts))?;
    Ok(())
}

/// The text of `choria inventory IDENTITY`.
pub(crate) fn render(node: &NodeInventory, facts: bool) -> String {
    // Everything below came from the network: control characters are shown escaped.
    let clean = |s: &str| crate::redact::printable(s).into_owned();
    let d = &node.inventory;
    let empty = Map::new();
    let st = node.daemon_stats.as_ref().unwrap_or(&empty);
    let s = |m: &Map<String, Value>, k: &str| clean(m.get(k).and_then(Value::as_str).unwrap_or(""));
    let n = |k: &str| st.get(k).and_then(Value::as_i64).unwrap_or(0);
    let list = |k: &str| -> Vec<String> {
        d.get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|x| x.as_str().map(clean)).collect())
            .unwrap_or_default()
    };
    let mut o = format!("Inventory for {}\n\n", clean(&node.identity));
    o.push_str("  Choria Server Statistics:\n\n");
    let upgradable = d.get("upgradable").and_then(Value::as_bool) == Some(true);
    let upgradable = if upgradable { " (upgradable during provisioning)" } else { "" };
    o.push_str(&format!("                    Version: {}{upgradable}\n", s(d, "version")));
    o.push_str(&format!("                 Start Time: {}\n", go_local_time(n("starttime"))));
    o.push_str(&format!("                Config File: {}\n", s(st, "configfile")));
    o.push_str(&format!("                Collectives: {}\n", list("collectives").join(", ")));
    o.push_str(&format!("            Main Collective: {}\n", s(d, "main_collective")));
    o.push_str(&format!("                 Process ID: {}\n", n("pid")));
    o.push_str(&format!("             Total Messages: {}\n", n("total")));
    o.push_str(&format!("    Messages Passed Filters: {}\n", n("passed")));
    o.push_str(&format!("          Messages Filtered: {}\n", n("filtered")));
    o.push_str(&format!("           Expired Messages: {}\n", n("ttlexpired")));
    o.push_str(&format!("               Replies Sent: {}\n", n("replies")));
    o.push_str(&format!("           Events Published: {}\n", n("events")));
    o.push_str("\n  Agents:\n\n");
    for g in vertical_groups(&list("agents"), 3) {
        o.push_str(&format!("    {:<15} {:<15} {:<15}\n", g[0], g[1], g[2]));
    }
    o.push_str("\n  Tagged Classes:\n\n");
    let classes = list("classes");
    // go-choria's LongestString: byte lengths, capped at 40.
    let longest = classes.iter().map(String::len).max().unwrap_or(0).min(40);
    for g in vertical_groups(&classes, 2) {
        o.push_str(&format!("    {:<longest$} {:<longest$}\n", g[0], g[1]));
    }
    o.push('\n');
    let machines: Vec<Vec<String>> = d
        .get("machines")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|m| ["name", "version", "state"].iter().map(|k| s(m.as_object().unwrap_or(&empty), k)).collect())
        .map(|mut r: Vec<String>| {
            r[0] = format!("    {}", r[0]);
            r
        })
        .collect();
    if !machines.is_empty() {
        o.push_str("  Autonomous Agents:\n\n");
        for line in go_tabwriter(&machines) {
            o.push_str(&line);
            o.push('\n');
        }
        o.push('\n');
    }
    if facts {
        o.push_str("  Facts:\n\n");
        o.push_str(&pretty_facts(d.get("facts").unwrap_or(&Value::Null)));
        o.push('\n');
    }
    o
}

/// go-choria's `util.SliceVerticalGroups`: the items padded with empty strings to a multiple
/// of `size`, then read down the columns, so a sorted list reads top to bottom.
fn vertical_groups(items: &[String], size: usize) -> Vec<Vec<String>> {
    let mut items = items.to_vec();
    while !items.len().is_multiple_of(size) {
        items.push(String::new());
    }
    let rows = items.len() / size;
    (0..rows).map(|i| (0..size).map(|c| items[i + c * rows].clone()).collect()).collect()
}

/// The facts as `tidwall/pretty` prints them for `choria inventory`: keys sorted, two-space
/// indent, every line prefixed by four spaces, one element a line, ending in a newline.
fn pretty_facts(v: &Value) -> String {
    const PREFIX: &str = "    ";
    fn walk(v: &Value, depth: usize, out: &mut String) {
        let pad = |out: &mut String, depth: usize| {
            out.push('\n');
            out.push_str(PREFIX);
            out.push_str(&"  ".repeat(depth));
        };
        match v {
            Value::Object(m) if !m.is_empty() => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    pad(out, depth + 1);
                    out.push_str(&Value::String((*k).clone()).to_string());
                    out.push_str(": ");
                    walk(&m[k.as_str()], depth + 1, out);
                    if i + 1 < keys.len() {
                        out.push(',');
                    }
                }
                pad(out, depth);
                out.push('}');
            }
            Value::Array(a) if !a.is_empty() => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    pad(out, depth + 1);
                    walk(x, depth + 1, out);
                    if i + 1 < a.len() {
                        out.push(',');
                    }
                }
                pad(out, depth);
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::from(PREFIX);
    walk(v, 0, &mut out);
    out.push('\n');
    out
}

/// Go's `time.Unix(secs, 0).String()` in the local time zone:
/// `2006-01-02 15:04:05 -0700 MST`.
fn go_local_time(secs: i64) -> String {
    let t = secs as libc::time_t;
    // SAFETY: an all-zero `tm` is a valid value of this plain C struct.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r reads `t` and writes only into `tm`, both alive across the call.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return chrono::DateTime::from_timestamp(secs, 0)
            .map(|d| d.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
            .unwrap_or_default();
    }
    let zone = if tm.tm_zone.is_null() {
        String::new()
    } else {
        // SAFETY: a non-null tm_zone points at a NUL-terminated name that the C library keeps.
        unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }.to_string_lossy().into_owned()
    };
    let off = tm.tm_gmtoff;
    let sign = if off < 0 { '-' } else { '+' };
    let (h, m) = (off.abs() / 3600, (off.abs() % 3600) / 60);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {sign}{h:02}{m:02} {zone}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vertical_groups_read_down_the_columns() {
        let v: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        assert_eq!(vertical_groups(&v, 3), vec![vec!["a", "c", ""], vec!["b", "d", ""]]);
        assert_eq!(vertical_groups(&v[..3], 3), vec![vec!["a", "b", "c"]]);
        assert!(vertical_groups(&[], 2).is_empty());
    }

    #[test]
    fn facts_print_as_tidwall_pretty() {
        let v = serde_json::json!({"b": [1, {"y": true, "x": "s"}], "a": {}, "c": []});
        let want = "    {\n      \"a\": {},\n      \"b\": [\n        1,\n        {\n          \"x\": \"s\",\n          \"y\": true\n        }\n      ],\n      \"c\": []\n    }\n";
        assert_eq!(pretty_facts(&v), want);
    }
}
