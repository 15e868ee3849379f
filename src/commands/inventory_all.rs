//! `fleetbook inventory --all --out FILE`: every node the filters select is asked for its
//! `rpcutil#inventory`, in batches, and the answers are written in Choria's inventory file
//! format, as `choria tool inventory FILE` does. As there, nothing is written unless every
//! node answered: a file that quietly misses nodes would make a twin (`--sim-from`) that
//! plans different batches from the real fleet.

use std::path::PathBuf;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::cli::FilterArgs;
use crate::config::Settings;
use crate::env::FleetEnv;
use crate::error::Error;
use crate::fleet::discovery::inventory::{Inventory, InventoryNode};
use crate::fleet::discovery::inventory_writer::FileFormat;
use crate::fleet::discovery::DiscoveryOptions;
use crate::fleet::filter::Filter;
use crate::fleet::rpc::Arrival;
use crate::progress::{NodeStatus, Reporter, RunEvent};

/// Nodes asked at a time unless `--batch` says otherwise: small enough that a slow fleet
/// shows progress, large enough that 10,000 nodes take a few dozen waits.
const DEFAULT_BATCH: usize = 250;

/// How many of the nodes that did not answer are named.
const SHOWN: usize = 10;

/// What `inventory --all` was asked for, validated.
pub(crate) struct InventoryAllOptions {
    discovery: DiscoveryOptions,
    out: PathBuf,
    batch: usize,
}

fn usage(message: impl Into<String>) -> Error {
    Error::Usage { message: message.into() }
}

impl InventoryAllOptions {
    /// Checks the filters, the batch size and the file: its extension must name a format,
    /// and a file already there must be an inventory (its groups are kept), before any node
    /// is asked.
    pub(crate) fn from_cli(filter: &FilterArgs, out: PathBuf, batch: Option<usize>) -> Result<Self, Error> {
        let mut discovery = super::options::discovery(filter)?;
        // As `choria tool inventory`: the nodes that run rpcutil.
        discovery.rpc_agent = Some("rpcutil".into());
        FileFormat::for_path(&out).map_err(|e| usage(format!("--out {e}")))?;
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty() && !d.is_dir()) {
            return Err(usage(format!("--out {}: the directory {} does not exist", out.display(), dir.display())));
        }
        Inventory::for_file(&out, Vec::new()).map_err(|e| usage(format!("--out {e}")))?;
        let batch = match batch {
            Some(0) => return Err(usage("--batch must be at least 1")),
            Some(n) => n,
            None => DEFAULT_BATCH,
        };
        Ok(InventoryAllOptions { discovery, out, batch })
    }
}

/// What the walk gathered.
#[derive(Default)]
struct Walk {
    nodes: Vec<InventoryNode>,
    /// `identity: why` for each node that did not give its inventory.
    missing: Vec<String>,
}

/// Discovers, asks every node in batches with a progress bar (plain lines off a terminal),
/// and writes the file.
pub(crate) async fn run(settings: Settings, a: InventoryAllOptions, cancel: &CancellationToken) -> Result<(), Error> {
    let env = FleetEnv::open(settings).await?;
    let reporter = Reporter::for_terminal(false);
    reporter.emit(RunEvent::Discovering { what: "the nodes to inventory".into() });
    let found = match env.fleet.discover_until(&a.discovery, cancel).await {
        Ok(found) => found,
        Err(e) => {
            reporter.emit(RunEvent::DiscoveryFailed);
            return Err(e.into());
        }
    };
    reporter.discovered(&found.nodes);
    if found.interrupted {
        return Err(Error::Interrupted);
    }
    if found.nodes.is_empty() {
        return Err(Error::NoNodes);
    }
    let walk = walk(&env, &a, &found.nodes, &reporter, cancel).await?;
    if !walk.missing.is_empty() {
        let n = walk.missing.len();
        reporter.say(&format!("not writing {}: {n} node(s) did not give their inventory:", a.out.display()));
        for m in walk.missing.iter().take(SHOWN) {
            reporter.say(&format!("   {}", crate::redact::printable(m)));
        }
        if n > SHOWN {
            reporter.say(&format!("   and {} more not shown", n - SHOWN));
        }
        return Err(Error::NodesFailed { failed: n, total: found.nodes.len() });
    }
    let count = walk.nodes.len();
    let inventory = Inventory::for_file(&a.out, walk.nodes).map_err(|e| usage(format!("--out {e}")))?;
    crate::blocking::blocking(|| inventory.write(&a.out)).map_err(|e| Error::Output(std::io::Error::other(e)))?;
    println!("Wrote {count} nodes to {}", a.out.display());
    Ok(())
}

/// Asks `nodes` for their inventory, `a.batch` at a time.
async fn walk(
    env: &FleetEnv,
    a: &InventoryAllOptions,
    nodes: &[String],
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Walk, Error> {
    let collective = a.discovery.collective.as_deref();
    let mut session =
        env.fleet.rpc_session("rpcutil", "inventory", &Map::new(), collective, None, Filter::default()).await?;
    let batches = nodes.len().div_ceil(a.batch);
    reporter.emit(RunEvent::RolloutStart {
        call: 1,
        agent: "rpcutil".into(),
        action: "inventory".into(),
        inputs: Value::Object(Map::new()),
        nodes: nodes.len(),
        batches,
        dry_run: false,
    });
    let mut w = Walk::default();
    for (i, chunk) in nodes.chunks(a.batch).enumerate() {
        let batch = i + 1;
        reporter.emit(RunEvent::BatchStart {
            call: 1,
            batch,
            batches,
            nodes: chunk.to_vec(),
            groups: None,
            dry_run: false,
        });
        let shown = reporter.clone();
        let mut on = move |arrival: Arrival<'_>| {
            let (node, status) = match arrival {
                Arrival::Reply(r) if r.ok() => (r.sender.clone(), NodeStatus::Ok),
                Arrival::Reply(r) => (r.sender.clone(), NodeStatus::Failed),
                Arrival::Malformed { node, .. } => (node.to_string(), NodeStatus::Malformed),
            };
            shown.emit(result(node, status));
        };
        let out = session.send_batch(chunk, cancel, &mut on).await?;
        let (mut ok, mut failed) = (0, 0);
        for r in &out.replies {
            let data = r.data.value();
            let node = match (&*data, r.ok()) {
                (Value::Object(m), true) => InventoryNode::from_reply(&r.sender, m),
                (_, true) => Err(format!("the inventory is not an object: {}", r.data)),
                (_, false) => Err(r.statusmsg.clone()),
            };
            match node {
                Ok(n) => {
                    ok += 1;
                    w.nodes.push(n);
                }
                Err(why) => {
                    failed += 1;
                    w.missing.push(format!("{}: {why}", r.sender));
                }
            }
        }
        for (node, why) in &out.malformed {
            failed += 1;
            w.missing.push(format!("{node}: {why}"));
        }
        for node in &out.no_reply {
            reporter.emit(result(node.clone(), NodeStatus::NoReply));
            w.missing.push(format!("{node}: no reply"));
        }
        for node in &out.unknown {
            reporter.emit(result(node.clone(), NodeStatus::Unknown));
        }
        reporter.emit(RunEvent::BatchEnd {
            batch,
            batches,
            ok,
            failed,
            no_reply: out.no_reply.len(),
            unknown: out.unknown.len(),
        });
        if let Some(reason) = out.broker_lost {
            return Err(Error::BrokerLost { reason });
        }
        if out.interrupted {
            return Err(Error::Interrupted);
        }
    }
    reporter.emit(RunEvent::RolloutEnd);
    Ok(w)
}

/// A node's result for the progress display.
fn result(node: String, status: NodeStatus) -> RunEvent {
    RunEvent::NodeResult { node, status, statuscode: None, statusmsg: None, data: None, resumed: false }
}
