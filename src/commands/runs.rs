//! `fleetbook runs` and `fleetbook runs show ID`: what the run journal holds.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::Value;

use crate::cli::RunsCommand;
use crate::config::Settings;
use crate::env::FleetEnv;
use crate::error::Error;
use crate::journal::read::{self, RunSummary};
use crate::journal::RunId;
use crate::redact::printable;

/// What `runs` was asked to show, validated.
pub(crate) enum RunsOptions {
    List { json: bool, limit: usize },
    Show { id: RunId, json: bool },
}

impl RunsOptions {
    /// Checks the run id.
    pub(crate) fn from_cli(show: Option<RunsCommand>, json: bool, limit: usize) -> Result<RunsOptions, Error> {
        Ok(match show {
            None => RunsOptions::List { json, limit: limit.max(1) },
            Some(RunsCommand::Show { id, json: j }) => RunsOptions::Show {
                id: RunId::parse(&id).map_err(|message| Error::Usage { message })?,
                json: json || j,
            },
        })
    }
}

/// Lists runs or shows one.
pub(crate) async fn run(settings: Settings, o: RunsOptions) -> Result<(), Error> {
    let env = FleetEnv::open(settings).await?;
    let mut out = std::io::stdout().lock();
    match o {
        RunsOptions::List { json, limit } => {
            let runs = read::list(&env.fleet, limit).await.map_err(|e| unreadable(&env.fleet, e))?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&runs).unwrap_or_default())?;
            } else {
                write_list(&mut out, &runs)?;
            }
        }
        RunsOptions::Show { id, json } => {
            let events = read::show(&env.fleet, &id).await.map_err(|e| unreadable(&env.fleet, e))?;
            if events.is_empty() {
                return Err(Error::Usage { message: format!("no run {id} in the run journal") });
            }
            if json {
                for e in &events {
                    writeln!(out, "{e}")?;
                }
            } else {
                write_timeline(&mut out, &events)?;
            }
        }
    }
    Ok(())
}

/// A journal that cannot be read: a lost connection stays what it is; on a connected broker
/// (most often one without JetStream) the error says what the journal needs.
fn unreadable(fleet: &crate::fleet::Fleet, e: crate::fleet::FleetError) -> Error {
    if !fleet.connected() {
        return e.into();
    }
    Error::Journal {
        reason: format!(
            "cannot read the run journal (JetStream stream {}): {e}; the journal needs JetStream (Choria Streams) enabled on the broker",
            crate::journal::STREAM
        ),
    }
}

fn write_list(w: &mut impl Write, runs: &[RunSummary]) -> std::io::Result<()> {
    if runs.is_empty() {
        return writeln!(w, "no runs in the run journal");
    }
    writeln!(w, "{:27}  {:20}  {:11}  {:>11}  {:16}  RUNBOOK", "RUN", "STARTED", "STATUS", "DONE/PLAN", "BY")?;
    for r in runs {
        let started: String = r.started.chars().take(19).collect::<String>().replace('T', " ");
        let by = format!("{}@{}", r.user, r.host);
        let progress = format!("{}/{}", r.done, r.planned);
        writeln!(
            w,
            "{:27}  {:20}  {:11}  {:>11}  {:16}  {}",
            r.run_id,
            started,
            r.status,
            progress,
            printable(&by),
            printable(&r.runbook)
        )?;
    }
    Ok(())
}

fn text(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).map(|s| printable(s).into_owned()).unwrap_or_default()
}

/// One line per call and batch, then the nodes that did not succeed.
fn write_timeline(w: &mut impl Write, events: &[Value]) -> std::io::Result<()> {
    let mut bad: BTreeMap<String, String> = BTreeMap::new();
    for e in events {
        let time: String = text(e, "time").chars().skip(11).take(12).collect();
        let n = |k: &str| e.get(k).map(|v| v.to_string()).unwrap_or_default();
        let line = match text(e, "event").as_str() {
            "run_start" if e.get("attempt").and_then(Value::as_u64).unwrap_or(1) > 1 => format!(
                "resumed (attempt {}) {} {} by {}@{}",
                n("attempt"),
                text(e, "command"),
                text(e, "runbook"),
                text(e, "user"),
                text(e, "host")
            ),
            "run_start" => format!(
                "started {} {} by {}@{}",
                text(e, "command"),
                text(e, "runbook"),
                text(e, "user"),
                text(e, "host")
            ),
            "discovered" => format!("discovered {} node(s)", n("count")),
            "rollout_start" => format!(
                "{}#{} on {} node(s) in {} batch(es)",
                text(e, "agent"),
                text(e, "action"),
                n("nodes"),
                n("batches")
            ),
            "batch_start" => format!(
                "  batch {}/{}: {} node(s)",
                n("batch"),
                n("batches"),
                e["nodes"].as_array().map_or(0, Vec::len)
            ),
            "batch_end" => format!(
                "  batch {}/{} done: {} ok, {} failed, {} no reply, {} unknown",
                n("batch"),
                n("batches"),
                n("ok"),
                n("failed"),
                n("no_reply"),
                n("unknown")
            ),
            "gate" => format!("  gate after batch {}: {}", n("batch"), text(e, "decision")),
            "rollout_stopped" => format!("stopped: {}", text(e, "reason")),
            "evict" if e.get("resumed") == Some(&Value::Bool(true)) => continue,
            "evict" => format!("evicted {} from election {}", n("evicted"), text(e, "election")),
            "confirmed" if text(e, "by") != "journal" => {
                format!("confirmed ({}): {}", text(e, "by"), text(e, "question"))
            }
            "run_end" => format!(
                "ended {} (exit {}){}",
                text(e, "status"),
                n("exit_code"),
                e.get("reason").and_then(Value::as_str).map(|r| format!(": {}", printable(r))).unwrap_or_default()
            ),
            "node_result" => {
                let node = text(e, "node");
                match text(e, "status").as_str() {
                    "ok" | "late_ok" => {
                        bad.remove(&node);
                    }
                    status => {
                        bad.insert(node, format!("{status} {}", text(e, "statusmsg")).trim_end().to_string());
                    }
                }
                continue;
            }
            _ => continue,
        };
        writeln!(w, "{time}  {line}")?;
    }
    if !bad.is_empty() {
        writeln!(w, "\nNodes that did not succeed:")?;
        for (node, why) in &bad {
            writeln!(w, "  {node}: {why}")?;
        }
    }
    Ok(())
}
