//! `fleetbook req AGENT ACTION`: one RPC to the matching nodes, optionally in batches.
//!
//! Ctrl-C follows the one contract of every command: the first press stops after the current
//! batch, the second cancels the wait now; either way what came back so far is printed, the
//! unanswered nodes as unknown and the unsent ones as not sent, and the exit code is 3. A
//! broker lost for longer than a wait ends the run the same way with exit 4.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::cli::ReqArgs;
use crate::config::Settings;
use crate::env::FleetEnv;
use crate::error::Error;
use crate::fleet::ddl::DdlRegistry;
use crate::fleet::discovery::DiscoveryOptions;
use crate::fleet::rpc::{dedup_keep_order, plan_batches, status_name, BatchOutcome, NodeReply};
use crate::interrupt::Interrupt;

/// What `req` was asked to do, validated.
pub(crate) struct ReqOptions {
    agent: String,
    action: String,
    /// The inputs, typed by the agent's DDL.
    inputs: Map<String, Value>,
    /// The filter and discovery flags; only nodes with the agent.
    discovery: DiscoveryOptions,
    /// Nodes per batch, at least 1; `None`: all at once.
    batch: Option<usize>,
    /// The pause between batches.
    batch_sleep: Duration,
    broadcast: bool,
    json: bool,
    /// Confirms the Big Red Button (shutdown) without a prompt.
    yes: bool,
    /// Discover and show the batches; send nothing.
    dry_run: bool,
}

impl ReqOptions {
    /// Checks the batch flags, types the inputs by the agent's DDL and checks the filter, in
    /// that order. `default_token` is the provisioning token when no `token=` input is given
    /// (file, environment, simulator).
    fn from_cli(a: &ReqArgs, default_token: Option<String>, ddl: &DdlRegistry) -> Result<ReqOptions, Error> {
        let batch_sleep = batch_sleep(a)?;
        let inputs = typed_inputs(a, default_token, ddl)?;
        let mut discovery = super::options::discovery(&a.filter)?;
        discovery.rpc_agent = Some(a.agent.clone());
        Ok(ReqOptions {
            agent: a.agent.clone(),
            action: a.action.clone(),
            inputs,
            discovery,
            batch: a.batch,
            batch_sleep,
            broadcast: a.broadcast,
            json: a.json,
            yes: a.yes,
            dry_run: a.dry_run,
        })
    }
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq)]
enum End {
    Done,
    /// Ctrl-C: the reason says at which point.
    Interrupted(String),
    BrokerLost(String),
}

/// The merged outcome of all batches.
#[derive(Debug, Default)]
struct Report {
    discovered: usize,
    replies: Vec<NodeReply>,
    malformed: BTreeMap<String, String>,
    no_reply: Vec<String>,
    unknown: Vec<String>,
    not_sent: Vec<String>,
    late: Vec<NodeReply>,
    unexpected: Vec<String>,
    stray: usize,
    batches: usize,
}

impl Report {
    fn absorb(&mut self, b: BatchOutcome) {
        self.absorb_late(b.late);
        self.replies.extend(b.replies);
        self.malformed.extend(b.malformed);
        self.no_reply.extend(b.no_reply);
        self.unknown.extend(b.unknown);
        self.unexpected.extend(b.unexpected);
        self.stray += b.stray;
        self.batches += 1;
    }

    /// Nodes reported silent that answered after all leave `no_reply`.
    fn absorb_late(&mut self, late: Vec<NodeReply>) {
        for r in late {
            self.no_reply.retain(|n| *n != r.sender);
            self.late.push(r);
        }
    }

    fn failures(&self) -> usize {
        let failed_late = self.late.iter().filter(|r| !r.ok()).count();
        self.replies.iter().filter(|r| !r.ok()).count()
            + self.malformed.len()
            + self.no_reply.len()
            + self.unknown.len()
            + failed_late
    }
}

/// Rejects batch settings that make no sense, before anything else happens.
fn batch_sleep(a: &ReqArgs) -> Result<Duration, Error> {
    if a.batch == Some(0) {
        return Err(Error::Usage { message: "--batch must be at least 1".into() });
    }
    match a.batch_sleep {
        Some(s) => crate::config::parse_seconds(s).map_err(|e| Error::Usage { message: format!("--batch-sleep: {e}") }),
        // go-choria sleeps 1 s between batches when no sleep is given.
        None => Ok(Duration::from_secs(1)),
    }
    .map(|d| if d.is_zero() { Duration::from_secs(1) } else { d })
}

/// Types the inputs by the agent's DDL, adding `default_token` when the action takes a token
/// and none is given: unknown agents, actions and bad inputs are refused before connecting or
/// sending anything.
fn typed_inputs(a: &ReqArgs, default_token: Option<String>, ddl: &DdlRegistry) -> Result<Map<String, Value>, Error> {
    let mut pairs = a.inputs.to_vec();
    if let Some(t) = &default_token {
        let takes_token = ddl.agent(&a.agent)?.action(&a.action)?.input.contains_key("token");
        if takes_token && !pairs.iter().any(|p| p.starts_with("token=")) {
            pairs.push(format!("token={t}"));
        }
    }
    ddl.parse_cli(&a.agent, &a.action, &pairs).map_err(|e| match e {
        crate::fleet::FleetError::BadInput { ref input, ref reason, .. }
            if input == "token" && reason.contains("required") =>
        {
            Error::Usage {
                message: format!("{e}; give token=..., --token-file FILE or ${}", super::options::PROVISION_TOKEN_ENV),
            }
        }
        e => e.into(),
    })
}

/// Runs the request and prints the result. With `--json` there is always one JSON object on
/// stdout, also when the request never went out (bad flags or inputs, unreachable broker,
/// not confirmed, no nodes): `status` and `error` say why.
pub(crate) async fn run(
    settings: Settings,
    a: ReqArgs,
    default_token: Option<String>,
    interrupt: &Interrupt,
) -> Result<(), Error> {
    let printed = std::cell::Cell::new(false);
    let result = match ReqOptions::from_cli(&a, default_token, &settings.ddl) {
        Ok(options) => run_inner(settings, &options, interrupt, &printed).await,
        Err(e) => Err(e),
    };
    if let (Err(e), true, false) = (&result, a.json, printed.get()) {
        let status = match e.exit_code() {
            crate::error::exit::GUARDRAIL => "stopped",
            crate::error::exit::UNREACHABLE => "unreachable",
            _ => "error",
        };
        let v = json!({"agent": a.agent, "action": a.action, "status": status, "error": e.to_string(), "exit_code": e.exit_code()});
        writeln!(std::io::stdout().lock(), "{v}")?;
    }
    result
}

async fn run_inner(
    settings: Settings,
    a: &ReqOptions,
    interrupt: &Interrupt,
    printed: &std::cell::Cell<bool>,
) -> Result<(), Error> {
    let sleep = a.batch_sleep;
    let (inputs, dopts) = (&a.inputs, &a.discovery);
    let env = FleetEnv::open(settings).await?;
    let fleet = &env.fleet;
    let started = Instant::now();
    let mut report = Report::default();
    let collective = dopts.collective.as_deref();
    let hard = interrupt.hard();
    let label = format!("{}#{}", a.agent, a.action);
    if a.broadcast {
        if a.dry_run {
            eprintln!("dry-run: would broadcast {label} to every matching node; nothing sent");
            return Ok(());
        }
        confirm(a, &label, None, interrupt)?;
        let mut session =
            fleet.rpc_session(&a.agent, &a.action, inputs, collective, None, dopts.filter.clone()).await?;
        let out = session.broadcast(&hard, &mut |_| {}).await?;
        let end = end_of(&out);
        report.absorb(out);
        report.discovered = report.replies.len() + report.malformed.len();
        printed.set(true);
        return finish(a, &report, &session.request_id, Duration::ZERO, started.elapsed(), end);
    }
    let found = match fleet.discover(dopts, &hard).await {
        Err(crate::fleet::FleetError::Cancelled) => return Err(Error::Interrupted),
        r => r?,
    };
    let discovery_time = started.elapsed();
    let nodes = dedup_keep_order(found.nodes);
    if nodes.is_empty() {
        return Err(Error::NoNodes);
    }
    report.discovered = nodes.len();
    let batches = match a.batch {
        Some(n) => plan_batches(&nodes, &[n]),
        None => vec![nodes.clone()],
    };
    if a.dry_run {
        printed.set(true);
        return print_plan(a, &label, &batches);
    }
    confirm(a, &label, Some(nodes.len()), interrupt)?;
    let mut session = fleet.rpc_session(&a.agent, &a.action, inputs, collective, None, dopts.filter.clone()).await?;
    let total = batches.len();
    let mut end = End::Done;
    for (i, nodes) in batches.iter().enumerate() {
        if i > 0 {
            let soft = interrupt.soft();
            tokio::select! {
                _ = soft.cancelled() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
            report.absorb_late(session.drain_late().late);
        }
        if interrupt.requested() {
            end = End::Interrupted(format!("interrupted (Ctrl-C) after batch {i}/{total}"));
            report.not_sent.extend(batches[i..].iter().flatten().cloned());
            break;
        }
        if total > 1 {
            eprintln!("{} batch {}/{total}: {} node(s)", chrono::Local::now().format("%H:%M:%S"), i + 1, nodes.len());
        }
        let out = match session.send_batch(nodes, &hard, &mut |_| {}).await {
            Ok(out) => out,
            // Nothing of this batch went out.
            Err(e) => {
                report.not_sent.extend(batches[i..].iter().flatten().cloned());
                end = match e {
                    crate::fleet::FleetError::Cancelled => {
                        End::Interrupted(format!("interrupted (Ctrl-C) before batch {}/{total}", i + 1))
                    }
                    e => End::BrokerLost(e.to_string()),
                };
                break;
            }
        };
        let batch_end = end_of(&out);
        report.absorb(out);
        if batch_end != End::Done {
            report.not_sent.extend(batches[i + 1..].iter().flatten().cloned());
            end = match batch_end {
                End::Interrupted(_) => End::Interrupted(format!("interrupted (Ctrl-C) during batch {}/{total}", i + 1)),
                other => other,
            };
            break;
        }
    }
    // Replies that came in while the last batch was being reported still count.
    report.absorb_late(session.drain_late().late);
    printed.set(true);
    finish(a, &report, &session.request_id, discovery_time, started.elapsed(), end)
}

fn end_of(out: &BatchOutcome) -> End {
    match (&out.broker_lost, out.interrupted) {
        (Some(why), _) => End::BrokerLost(why.clone()),
        (None, true) => End::Interrupted("interrupted (Ctrl-C)".into()),
        (None, false) => End::Done,
    }
}

/// The Big Red Button needs a terminal confirmation or `--yes`; off a terminal without
/// `--yes` nothing is sent and the exit code is 3.
fn confirm(a: &ReqOptions, label: &str, nodes: Option<usize>, interrupt: &Interrupt) -> Result<(), Error> {
    if !crate::guard::needs_confirmation(&a.agent, &a.action) {
        return Ok(());
    }
    let count = nodes.map(|n| format!("{n} node(s)")).unwrap_or_else(|| "every matching node".into());
    let q = format!("{label} will SHUT DOWN {count}; they stay down. Continue?");
    if a.yes {
        eprintln!("confirmed by --yes: {q}");
        return Ok(());
    }
    match crate::engine::ask_yes_no(&q, interrupt) {
        crate::engine::Answer::Yes => Ok(()),
        crate::engine::Answer::No => Err(Error::Guardrail { reason: format!("not confirmed: {q}") }),
        crate::engine::Answer::Interrupted => Err(Error::Interrupted),
        crate::engine::Answer::NoTerminal => Err(Error::Guardrail {
            reason: format!("cannot ask for confirmation (no terminal); pass --yes to confirm: {q}; nothing was sent"),
        }),
    }
}

fn print_plan(a: &ReqOptions, label: &str, batches: &[Vec<String>]) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    let total = batches.len();
    let nodes: usize = batches.iter().map(Vec::len).sum();
    if a.json {
        let v = json!({"dry_run": true, "agent": a.agent, "action": a.action, "discovered": nodes, "batches": batches});
        writeln!(out, "{v}")?;
    } else {
        writeln!(out, "dry-run: would call {label} on {nodes} node(s) in {total} batch(es); nothing sent")?;
        for (i, b) in batches.iter().enumerate() {
            writeln!(out, "batch {}/{total}: {}", i + 1, b.join(", "))?;
        }
    }
    Ok(())
}

fn finish(
    a: &ReqOptions,
    report: &Report,
    request_id: &str,
    discovery: Duration,
    elapsed: Duration,
    end: End,
) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    if a.json {
        let v = json_report(report, a, request_id, discovery, elapsed, &end);
        writeln!(out, "{v}")?;
    } else {
        write_text(&mut out, report, elapsed, &end)?;
    }
    match end {
        End::Interrupted(reason) => Err(Error::Guardrail { reason: format!("{reason}; later batches were not sent") }),
        End::BrokerLost(reason) => Err(Error::BrokerLost { reason }),
        End::Done => match report.failures() {
            0 => Ok(()),
            failed => Err(Error::NodesFailed { failed, total: report.discovered.max(failed) }),
        },
    }
}

fn json_report(r: &Report, a: &ReqOptions, request_id: &str, discovery: Duration, total: Duration, end: &End) -> Value {
    let mut ok: Vec<&str> = r.replies.iter().chain(&r.late).filter(|x| x.ok()).map(|x| x.sender.as_str()).collect();
    ok.sort();
    let failed: Map<String, Value> = r
        .replies
        .iter()
        .chain(&r.late)
        .filter(|x| !x.ok())
        .map(|x| (x.sender.clone(), json!({"statuscode": x.statuscode, "statusmsg": x.statusmsg})))
        .collect();
    let (status, error) = match end {
        End::Done if r.failures() == 0 => ("ok", None),
        End::Done => ("failed", None),
        End::Interrupted(why) => ("stopped", Some(why.clone())),
        End::BrokerLost(why) => ("broker_lost", Some(why.clone())),
    };
    json!({
        "request_id": request_id,
        "agent": a.agent,
        "action": a.action,
        "status": status,
        "error": error,
        "discovered": r.discovered,
        "replies": r.replies,
        "ok": ok,
        "failed": failed,
        "no_reply": r.no_reply,
        "unknown": r.unknown,
        "not_sent": r.not_sent,
        "late": r.late.iter().map(|x| x.sender.as_str()).collect::<Vec<_>>(),
        "malformed": r.malformed,
        "unexpected": r.unexpected,
        "stray": r.stray,
        "batches": r.batches,
        "timing": {"discovery_ms": discovery.as_millis() as u64, "total_ms": total.as_millis() as u64},
    })
}

/// A short per-node table and a summary, like `choria req`, then the failures grouped by
/// their message so a wrong token reads as one line, not a thousand.
fn write_text(w: &mut impl Write, r: &Report, elapsed: Duration, end: &End) -> std::io::Result<()> {
    let clean = |s: &str| crate::redact::printable(s).into_owned();
    let mut rows: Vec<(String, String, String)> = Vec::new();
    for x in &r.replies {
        let msg = if x.ok() { summarize(&x.data) } else { x.statusmsg.clone() };
        rows.push((clean(&x.sender), status_name(x.statuscode).to_string(), clean(&msg)));
    }
    for x in &r.late {
        let msg = if x.ok() { summarize(&x.data) } else { x.statusmsg.clone() };
        rows.push((clean(&x.sender), format!("{} (late)", status_name(x.statuscode)), clean(&msg)));
    }
    for (n, why) in &r.malformed {
        rows.push((clean(n), "Malformed Reply".into(), clean(why)));
    }
    for n in &r.no_reply {
        rows.push((clean(n), "No Reply".into(), String::new()));
    }
    for n in &r.unknown {
        rows.push((clean(n), "Unknown".into(), "sent, but the answer was not received".into()));
    }
    rows.sort();
    let wn = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(4).max(4);
    let ws = rows.iter().map(|r| r.1.len()).max().unwrap_or(6).max(6);
    writeln!(w, "{:wn$}  {:ws$}  MESSAGE", "NODE", "STATUS")?;
    for (n, s, m) in &rows {
        writeln!(w, "{n:wn$}  {s:ws$}  {m}")?;
    }
    let answered: Vec<&NodeReply> = r.replies.iter().chain(&r.late).collect();
    let ok = answered.iter().filter(|x| x.ok()).count();
    let failed = answered.len() - ok + r.malformed.len();
    writeln!(w)?;
    let mut groups: BTreeMap<String, usize> = BTreeMap::new();
    for x in answered.iter().filter(|x| !x.ok()) {
        *groups.entry(format!("{}: {}", status_name(x.statuscode), clean(&x.statusmsg))).or_default() += 1;
    }
    for why in r.malformed.values() {
        *groups.entry(format!("Malformed Reply: {}", clean(why))).or_default() += 1;
    }
    if !groups.is_empty() {
        writeln!(w, "Failures:")?;
        for (why, n) in &groups {
            writeln!(w, "  {n:>5} × {why}")?;
        }
    }
    writeln!(
        w,
        "Finished processing {} / {} hosts in {:.2}s: {ok} ok, {failed} failed, {} no reply{}{}",
        answered.len() + r.malformed.len(),
        r.discovered,
        elapsed.as_secs_f64(),
        r.no_reply.len(),
        if r.unknown.is_empty() { String::new() } else { format!(", {} unknown", r.unknown.len()) },
        if r.not_sent.is_empty() { String::new() } else { format!(", {} not sent", r.not_sent.len()) },
    )?;
    if !r.late.is_empty() {
        let late: Vec<String> = r.late.iter().map(|x| clean(&x.sender)).collect();
        writeln!(w, "Answered after their batch's wait: {}", late.join(", "))?;
    }
    if !r.no_reply.is_empty() {
        writeln!(w, "No response from: {}", r.no_reply.iter().map(|n| clean(n)).collect::<Vec<_>>().join(", "))?;
    }
    if !r.unknown.is_empty() {
        let list = r.unknown.iter().map(|n| clean(n)).collect::<Vec<_>>().join(", ");
        writeln!(w, "Unknown (the request went out; whether they acted is not known): {list}")?;
    }
    if !r.not_sent.is_empty() {
        writeln!(w, "Not sent: {}", r.not_sent.iter().map(|n| clean(n)).collect::<Vec<_>>().join(", "))?;
    }
    if r.stray > 0 || !r.unexpected.is_empty() {
        writeln!(
            w,
            "Ignored on the reply subject: {} unreadable message(s), {} reply(ies) from nodes not asked",
            r.stray,
            r.unexpected.len()
        )?;
    }
    match end {
        End::Done => {}
        End::Interrupted(why) => writeln!(w, "Stopped: {why}")?,
        End::BrokerLost(why) => writeln!(w, "Stopped: {why}")?,
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
