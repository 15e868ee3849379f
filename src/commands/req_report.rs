//! What `req` prints when it is done: a node table like `choria req`, the failures grouped by
//! message (a wrong token reads as one line, not a thousand) and a summary; or, with `--json`,
//! one JSON object.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::error::Error;
use crate::fleet::rpc::status_name;
use crate::progress::table::{self, Row};
use crate::redact::printable;
use crate::rollout::Tally;

/// How long discovery and the whole command took.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) discovery: Duration,
    pub(crate) total: Duration,
}

/// The `--dry-run` plan on stdout.
pub(crate) fn print_plan(agent: &str, action: &str, json: bool, batches: &[Vec<String>]) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    let total = batches.len();
    let nodes: usize = batches.iter().map(Vec::len).sum();
    if json {
        let v = json!({"dry_run": true, "agent": agent, "action": action, "discovered": nodes, "batches": batches});
        writeln!(out, "{v}")?;
    } else {
        writeln!(out, "dry-run: would call {agent}#{action} on {nodes} node(s) in {total} batch(es); nothing sent")?;
        for (i, b) in batches.iter().enumerate() {
            writeln!(out, "batch {}/{total}: {}", i + 1, b.join(", "))?;
        }
    }
    Ok(())
}

/// Writes the report of a finished (or stopped) request; `result` is how it ends.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_report(
    w: &mut impl Write,
    agent: &str,
    action: &str,
    json: bool,
    t: &Tally,
    discovered: usize,
    (request_id, run_id): (Option<&str>, Option<&str>),
    timing: Timing,
    result: &Result<(), Error>,
) -> std::io::Result<()> {
    // The same status words as `run_end`.
    let (status, error, _) = super::run::run_status(result);
    if json {
        let (status, rid) = (status.as_str(), request_id.unwrap_or(""));
        let mut v = json_report(t, agent, action, rid, discovered, timing, status, error);
        v["run_id"] = json!(run_id);
        return writeln!(w, "{v}");
    }
    write_text(w, t, discovered, timing.total)?;
    if let Some(id) = run_id {
        writeln!(w, "Run {id} (fleetbook runs show {id})")?;
    }
    if let Some(why) = error {
        writeln!(w, "Stopped: {why}")?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn json_report(
    t: &Tally,
    agent: &str,
    action: &str,
    request_id: &str,
    discovered: usize,
    timing: Timing,
    status: &str,
    error: Option<String>,
) -> Value {
    let answered = t.replies.iter().chain(&t.late);
    let failed: Map<String, Value> = answered
        .filter(|x| !x.ok())
        .map(|x| (x.sender.clone(), json!({"statuscode": x.statuscode, "statusmsg": x.statusmsg})))
        .collect();
    json!({
        "request_id": request_id,
        "agent": agent,
        "action": action,
        "status": status,
        "error": error,
        "discovered": discovered,
        "replies": t.replies,
        "ok": t.ok_nodes(),
        "failed": failed,
        "no_reply": t.no_reply,
        "unknown": t.unknown,
        "not_sent": t.not_sent,
        "late": t.late.iter().map(|x| x.sender.as_str()).collect::<Vec<_>>(),
        "malformed": t.malformed,
        "unexpected": t.unexpected,
        "stray": t.stray,
        "batches": t.batches,
        "timing": {"discovery_ms": timing.discovery.as_millis() as u64, "total_ms": timing.total.as_millis() as u64},
    })
}

fn write_text(w: &mut impl Write, t: &Tally, discovered: usize, elapsed: Duration) -> std::io::Result<()> {
    let clean = |s: &str| printable(s).into_owned();
    let mut rows = Vec::new();
    for (x, late) in t.replies.iter().map(|x| (x, false)).chain(t.late.iter().map(|x| (x, true))) {
        let msg = if x.ok() { table::summarize(&x.data) } else { x.statusmsg.clone() };
        let status = status_name(x.statuscode);
        rows.push(Row::new(&x.sender, if late { format!("{status} (late)") } else { status.to_string() }, &msg));
    }
    for (n, why) in &t.malformed {
        rows.push(Row::new(n, "Malformed Reply", why));
    }
    for n in &t.no_reply {
        rows.push(Row::new(n, "No Reply", ""));
    }
    for n in &t.unknown {
        rows.push(Row::new(n, "Unknown", "sent, but the answer was not received"));
    }
    write!(w, "{}", table::render(rows, None))?;
    let answered = t.replies.len() + t.late.len();
    let ok = t.replies.iter().chain(&t.late).filter(|x| x.ok()).count();
    let failed = answered - ok + t.malformed.len();
    writeln!(w)?;
    let mut groups: BTreeMap<String, usize> = BTreeMap::new();
    for x in t.replies.iter().chain(&t.late).filter(|x| !x.ok()) {
        *groups.entry(format!("{}: {}", status_name(x.statuscode), clean(&x.statusmsg))).or_default() += 1;
    }
    for why in t.malformed.values() {
        *groups.entry(format!("Malformed Reply: {}", clean(why))).or_default() += 1;
    }
    if !groups.is_empty() {
        writeln!(w, "Failures:")?;
        for (why, n) in &groups {
            writeln!(w, "  {n:>5} × {why}")?;
        }
    }
    let opt = |n: usize, what: &str| if n == 0 { String::new() } else { format!(", {n} {what}") };
    writeln!(
        w,
        "Finished processing {} / {discovered} hosts in {:.2}s: {ok} ok, {failed} failed, {} no reply{}{}",
        answered + t.malformed.len(),
        elapsed.as_secs_f64(),
        t.no_reply.len(),
        opt(t.unknown.len(), "unknown"),
        opt(t.not_sent.len(), "not sent"),
    )?;
    let list = |v: &mut dyn Iterator<Item = &String>| v.map(|n| clean(n)).collect::<Vec<_>>().join(", ");
    if !t.late.is_empty() {
        writeln!(w, "Answered after their batch's wait: {}", list(&mut t.late.iter().map(|x| &x.sender)))?;
    }
    if !t.no_reply.is_empty() {
        writeln!(w, "No response from: {}", list(&mut t.no_reply.iter()))?;
    }
    if !t.unknown.is_empty() {
        let l = list(&mut t.unknown.iter());
        writeln!(w, "Unknown (the request went out; whether they acted is not known): {l}")?;
    }
    if !t.not_sent.is_empty() {
        writeln!(w, "Not sent: {}", list(&mut t.not_sent.iter()))?;
    }
    if t.stray > 0 || !t.unexpected.is_empty() {
        writeln!(
            w,
            "Ignored on the reply subject: {} unreadable message(s), {} reply(ies) from nodes not asked",
            t.stray,
            t.unexpected.len()
        )?;
    }
    Ok(())
}
