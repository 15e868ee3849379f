//! `fleetbook req AGENT ACTION`: one RPC to the matching nodes, optionally in batches.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::cli::FilterArgs;
use crate::config::{discovery_options, Settings};
use crate::env::FleetEnv;
use crate::error::Error;
use crate::fleet::rpc::{plan_batches, status_name, BatchOutcome, NodeReply};

/// What `req` was asked to do, validated.
pub struct ReqArgs<'a> {
    pub agent: &'a str,
    pub action: &'a str,
    pub inputs: &'a [String],
    pub filter: &'a FilterArgs,
    pub batch: Option<usize>,
    pub batch_sleep: Option<f64>,
    pub broadcast: bool,
    pub json: bool,
}

/// The merged outcome of all batches.
#[derive(Debug, Default)]
struct Report {
    discovered: usize,
    replies: Vec<NodeReply>,
    malformed: BTreeMap<String, String>,
    no_reply: Vec<String>,
    unexpected: Vec<String>,
    batches: usize,
}

impl Report {
    fn absorb(&mut self, b: BatchOutcome) {
        self.replies.extend(b.replies);
        self.malformed.extend(b.malformed);
        self.no_reply.extend(b.no_reply);
        self.unexpected.extend(b.unexpected);
        self.batches += 1;
    }

    fn failures(&self) -> usize {
        self.replies.iter().filter(|r| !r.ok()).count() + self.malformed.len() + self.no_reply.len()
    }
}

/// Runs the request and prints the result.
pub async fn run(settings: Settings, a: ReqArgs<'_>, cancel: &CancellationToken) -> Result<(), Error> {
    if a.batch == Some(0) {
        return Err(Error::Usage { message: "--batch must be at least 1".into() });
    }
    let sleep = match a.batch_sleep {
        Some(s) if !(s.is_finite() && s >= 0.0) => {
            return Err(Error::Usage { message: format!("--batch-sleep {s}: must be >= 0") })
        }
        // go-choria sleeps 1 s between batches when no (or a zero) sleep is given.
        Some(s) if s > 0.0 => {
            crate::config::parse_seconds(s).map_err(|e| Error::Usage { message: format!("--batch-sleep: {e}") })?
        }
        _ => Duration::from_secs(1),
    };
    // Reject unknown agents, actions and bad inputs before connecting or sending anything.
    let inputs = settings.ddl.parse_cli(a.agent, a.action, a.inputs)?;
    let mut dopts = discovery_options(a.filter)?;
    dopts.rpc_agent = Some(a.agent.to_string());
    let env = FleetEnv::open(settings).await?;
    let fleet = &env.fleet;
    let started = Instant::now();
    let mut report = Report::default();
    let collective = dopts.collective.as_deref();
    let (discovery_time, request_id) = if a.broadcast {
        let mut session = fleet.rpc_session(a.agent, a.action, &inputs, collective, None, dopts.filter.clone()).await?;
        report.absorb(session.broadcast(cancel).await?);
        report.discovered = report.replies.len() + report.malformed.len();
        (Duration::ZERO, session.request_id.clone())
    } else {
        let found = fleet.discover(&dopts, cancel).await?;
        let discovery_time = started.elapsed();
        if found.nodes.is_empty() {
            return Err(Error::NoNodes);
        }
        report.discovered = found.nodes.len();
        let mut session = fleet.rpc_session(a.agent, a.action, &inputs, collective, None, dopts.filter.clone()).await?;
        let batches = match a.batch {
            Some(n) => plan_batches(&found.nodes, &[n]),
            None => vec![found.nodes.clone()],
        };
        let total = batches.len();
        for (i, nodes) in batches.iter().enumerate() {
            if i > 0 {
                tokio::select! {
                    _ = cancel.cancelled() => return Err(Error::Interrupted),
                    _ = tokio::time::sleep(sleep) => {}
                }
            }
            if total > 1 {
                eprintln!(
                    "{} batch {}/{total}: {} node(s)",
                    chrono::Local::now().format("%H:%M:%S"),
                    i + 1,
                    nodes.len()
                );
            }
            report.absorb(session.send_batch(nodes, cancel).await?);
        }
        (discovery_time, session.request_id.clone())
    };
    let elapsed = started.elapsed();
    let mut out = std::io::stdout().lock();
    if a.json {
        let v = json_report(&report, a.agent, a.action, &request_id, discovery_time, elapsed);
        writeln!(out, "{v}")?;
    } else {
        write_text(&mut out, &report, elapsed)?;
    }
    match report.failures() {
        0 => Ok(()),
        failed => Err(Error::NodesFailed { failed, total: report.discovered.max(failed) }),
    }
}

fn json_report(r: &Report, agent: &str, action: &str, request_id: &str, discovery: Duration, total: Duration) -> Value {
    let mut ok: Vec<&str> = r.replies.iter().filter(|x| x.ok()).map(|x| x.sender.as_str()).collect();
    ok.sort();
    let failed: serde_json::Map<String, Value> = r
        .replies
        .iter()
        .filter(|x| !x.ok())
        .map(|x| (x.sender.clone(), json!({"statuscode": x.statuscode, "statusmsg": x.statusmsg})))
        .collect();
    json!({
        "request_id": request_id,
        "agent": agent,
        "action": action,
        "discovered": r.discovered,
        "replies": r.replies,
        "ok": ok,
        "failed": failed,
        "no_reply": r.no_reply,
        "malformed": r.malformed,
        "unexpected": r.unexpected,
        "batches": r.batches,
        "timing": {"discovery_ms": discovery.as_millis() as u64, "total_ms": total.as_millis() as u64},
    })
}

/// A short per-node table and a summary, like `choria req`.
fn write_text(w: &mut impl Write, r: &Report, elapsed: Duration) -> std::io::Result<()> {
    let mut rows: Vec<(String, String, String)> = Vec::new();
    for x in &r.replies {
        let msg = if x.ok() { summarize(&x.data) } else { x.statusmsg.clone() };
        rows.push((x.sender.clone(), status_name(x.statuscode).to_string(), msg));
    }
    for (n, why) in &r.malformed {
        rows.push((n.clone(), "Malformed Reply".into(), why.clone()));
    }
    for n in &r.no_reply {
        rows.push((n.clone(), "No Reply".into(), String::new()));
    }
    rows.sort();
    let wn = rows.iter().map(|r| r.0.len()).max().unwrap_or(4).max(4);
    let ws = rows.iter().map(|r| r.1.len()).max().unwrap_or(6).max(6);
    writeln!(w, "{:wn$}  {:ws$}  MESSAGE", "NODE", "STATUS")?;
    for (n, s, m) in &rows {
        writeln!(w, "{n:wn$}  {s:ws$}  {m}")?;
    }
    let ok = r.replies.iter().filter(|x| x.ok()).count();
    let failed = r.replies.len() - ok + r.malformed.len();
    writeln!(w)?;
    writeln!(
        w,
        "Finished processing {} / {} hosts in {:.2}s: {ok} ok, {failed} failed, {} no reply",
        r.replies.len() + r.malformed.len(),
        r.discovered,
        elapsed.as_secs_f64(),
        r.no_reply.len()
    )?;
    if !r.no_reply.is_empty() {
        writeln!(w, "No response from: {}", r.no_reply.join(", "))?;
    }
    Ok(())
}

/// One line for a reply's data: its `message` if it has one, else compact JSON.
fn summarize(data: &Value) -> String {
    if let Some(m) = data.get("message").and_then(Value::as_str) {
        return m.to_string();
    }
    let s = data.to_string();
    if s.chars().count() > 80 {
        let cut: String = s.chars().take(77).collect();
        format!("{cut}...")
    } else {
        s
    }
}
