//! `rpc_batch`: a staged rollout of one agent action, with batches, thresholds, gates,
//! dry-run planning and the Big Red Button's confirmation.

use std::collections::BTreeMap;

use rhai::{Array, Dynamic, FnPtr, Map, NativeCallContext};
use serde_json::{json, Value};

use super::api::{check_keys, discovery_options, duration, fleet_error, run_discovery, string_list, Res};
use super::convert::{from_json, map_to_json, strings, Secrets};
use super::{runtime_error, Host};
use crate::fleet::filter::Filter;
use crate::fleet::rpc::{plan_batches, status_name, Arrival, BatchOutcome, NodeReply, RpcSession};
use crate::guard::{self, Amount, Thresholds, Verdict};

/// The doc comment of `rpc_batch` in the engine metadata.
pub const DOC: &str = "/// Calls `agent#action` with `inputs` on nodes in batches and returns\n/// #{ok, failed, no_reply, late, replies, batches, dry_run}.\n/// opts: nodes (identities) or filter (a discover() map); batch (a number, \"10%\" or a ramp\n/// like [1, 5, \"25%\"] whose last entry repeats); sleep between batches (default 1s);\n/// timeout per batch; max_failures and max_batch_failures (count or percent; silent nodes\n/// count); gate, a closure called with each batch result returning true, false or \"pause\".";

const KEYS: [&str; 9] =
    ["nodes", "filter", "batch", "sleep", "timeout", "max_failures", "max_batch_failures", "gate", "wait_for"];

/// Options of one rollout, validated.
struct Plan {
    nodes: Vec<String>,
    batches: Vec<Vec<String>>,
    sleep: std::time::Duration,
    timeout: Option<std::time::Duration>,
    thresholds: Thresholds,
    gate: Option<FnPtr>,
    collective: Option<String>,
    wait_for: Option<WaitFor>,
}

/// `wait_for`: after each batch, every node that answered OK must publish this event.
struct WaitFor {
    event: String,
    component: Option<String>,
    timeout: std::time::Duration,
}

fn wait_for(d: &Dynamic) -> Res<WaitFor> {
    let m = d.read_lock::<Map>().map(|m| m.clone()).ok_or_else(|| {
        runtime_error("invalid", "rpc_batch.wait_for: expected a map like #{event: \"startup\", timeout: \"60s\"}")
    })?;
    check_keys(&m, &["event", "component", "timeout"], "rpc_batch.wait_for")?;
    let event = m
        .get("event")
        .map(|e| e.to_string())
        .ok_or_else(|| runtime_error("invalid", "rpc_batch.wait_for: event is required"))?;
    if !crate::lifecycle::TYPES.contains(&event.as_str()) {
        return Err(runtime_error(
            "invalid",
            format!("rpc_batch.wait_for: unknown event '{event}'; valid: {}", crate::lifecycle::TYPES.join(", ")),
        ));
    }
    Ok(WaitFor {
        event,
        component: m.get("component").map(|c| c.to_string()),
        timeout: m
            .get("timeout")
            .map(|t| duration(t, "rpc_batch.wait_for.timeout"))
            .transpose()?
            .unwrap_or(std::time::Duration::from_secs(60)),
    })
}

/// What the rollout has done so far.
#[derive(Default)]
struct Progress {
    ok: Vec<String>,
    failed: BTreeMap<String, (Option<u8>, String)>,
    no_reply: Vec<String>,
    /// Nodes that answered after their batch's wait.
    late: Vec<String>,
    replies: Array,
    batches: usize,
}

fn amount(d: &Dynamic, what: &str) -> Res<Amount> {
    let text = if d.is_string() {
        d.to_string()
    } else {
        d.clone().try_cast::<rhai::INT>().map(|i| i.to_string()).unwrap_or_default()
    };
    if text.starts_with('-') {
        return Err(runtime_error("invalid", format!("{what}: {d} is negative")));
    }
    Amount::parse(&text).map_err(|e| runtime_error("invalid", format!("{what}: {e}")))
}

fn ramp(d: Option<&Dynamic>) -> Res<Vec<Amount>> {
    match d {
        None => Ok(Vec::new()),
        Some(d) => match d.read_lock::<Array>() {
            Some(a) if a.is_empty() => Err(runtime_error("invalid", "rpc_batch.batch: an empty ramp")),
            Some(a) => a.iter().map(|x| amount(x, "rpc_batch.batch")).collect(),
            None => Ok(vec![amount(d, "rpc_batch.batch")?]),
        },
    }
}

fn plan(host: &Host, agent: &str, opts: &Map) -> Res<Plan> {
    check_keys(opts, &KEYS, "rpc_batch")?;
    let ramp = ramp(opts.get("batch"))?;
    let thresholds = Thresholds {
        max_failures: opts.get("max_failures").map(|d| amount(d, "rpc_batch.max_failures")).transpose()?,
        max_batch_failures: opts
            .get("max_batch_failures")
            .map(|d| amount(d, "rpc_batch.max_batch_failures"))
            .transpose()?,
    };
    let gate = match opts.get("gate") {
        None => None,
        Some(g) => Some(g.clone().try_cast::<FnPtr>().ok_or_else(|| {
            runtime_error("invalid", "rpc_batch.gate: expected a closure like |batch| batch.failed.len() == 0")
        })?),
    };
    let (nodes, collective) = match (opts.get("nodes"), opts.get("filter")) {
        (Some(_), Some(_)) => return Err(runtime_error("invalid", "rpc_batch: give nodes or filter, not both")),
        (None, None) => {
            return Err(runtime_error(
                "invalid",
                "rpc_batch: give nodes (a list of identities) or filter (use filter: #{} for every node)",
            ))
        }
        (Some(n), None) => {
            // A node named twice is called once, in the place it was first named.
            (crate::fleet::rpc::dedup_keep_order(string_list(n, "rpc_batch.nodes")?), None)
        }
        (None, Some(f)) => {
            let m = f
                .read_lock::<Map>()
                .map(|m| m.clone())
                .ok_or_else(|| runtime_error("invalid", "rpc_batch.filter: expected a map"))?;
            let (mut d, min) = discovery_options(&m, "rpc_batch.filter")?;
            d.rpc_agent = Some(agent.to_string());
            let collective = d.collective.clone();
            (run_discovery(host, &d, min)?, collective)
        }
    };
    let batches = plan_batches(&nodes, &guard::plan_sizes(nodes.len(), &ramp));
    Ok(Plan {
        nodes,
        batches,
        sleep: opts
            .get("sleep")
            .map(|d| duration(d, "rpc_batch.sleep"))
            .transpose()?
            .unwrap_or(std::time::Duration::from_secs(1)),
        timeout: opts.get("timeout").map(|d| duration(d, "rpc_batch.timeout")).transpose()?,
        thresholds,
        gate,
        collective,
        wait_for: opts.get("wait_for").map(wait_for).transpose()?,
    })
}

/// Runs `rpc_batch`.
pub fn rpc_batch(
    host: &Host,
    ctx: &NativeCallContext,
    agent: &str,
    action: &str,
    inputs: &Map,
    opts: &Map,
) -> Res<Map> {
    let fleet = host.fleet()?.clone();
    // Validate before anything else touches the fleet; errors never carry clear secrets.
    super::api::refuse_masked_text(&Dynamic::from_map(inputs.clone()), &format!("rpc_batch {agent}#{action} inputs"))?;
    let wire = fleet
        .ddl()
        .validate(agent, action, &map_to_json(inputs, Secrets::Reveal))
        .map_err(|e| runtime_error(e.kind().as_str(), e.to_string()))?;
    let shown = Value::Object(map_to_json(inputs, Secrets::Mask));
    let plan = plan(host, agent, opts)?;
    let label = format!("{agent}#{action}");
    let mut p = Progress::default();
    host.reporter.emit("rollout_start", json!({"agent": agent, "action": action, "inputs": shown, "nodes": plan.nodes.len(), "batches": plan.batches.len(), "dry_run": host.settings.dry_run}));
    if plan.nodes.is_empty() {
        host.reporter.say(&format!("{label}: no nodes to call"));
        return Ok(result(&p, false));
    }
    if host.settings.dry_run && !guard::is_read_only(agent, action) {
        return Ok(dry_run(host, &label, &plan, &shown));
    }
    if guard::needs_confirmation(agent, action) {
        let q = format!("{label} will SHUT DOWN {} node(s); they stay down. Continue?", plan.nodes.len());
        // In the REPL the Big Red Button always asks, --yes or not.
        super::api::confirm_with(host, &q, host.settings.yes && !host.settings.confirm_mutations)?;
    } else if host.settings.confirm_mutations && !guard::is_read_only(agent, action) {
        super::api::confirm(host, &format!("Call {label} on {} node(s)?", plan.nodes.len()))?;
    }
    let mut session = host
        .rt
        .block_on(fleet.rpc_session(agent, action, &wire, plan.collective.as_deref(), plan.timeout, Filter::default()))
        .map_err(|e| fleet_error(host, e))?;
    host.reporter.rollout_start(&label, plan.nodes.len());
    let outcome = run_batches(host, ctx, &plan, &mut session, &mut p);
    host.reporter.rollout_end();
    outcome.map(|()| result(&p, false))
}

fn run_batches(
    host: &Host,
    ctx: &NativeCallContext,
    plan: &Plan,
    session: &mut RpcSession,
    p: &mut Progress,
) -> Res<()> {
    let total = plan.batches.len();
    for (i, nodes) in plan.batches.iter().enumerate() {
        if i > 0 {
            stop_if_interrupted(host, p, i, total)?;
            host.rt.block_on(async {
                let soft = host.interrupt.soft();
                tokio::select! {
                    _ = soft.cancelled() => {}
                    _ = tokio::time::sleep(plan.sleep) => {}
                }
            });
            // Replies that came in during the sleep: nodes that answered after their wait.
            take_late(host, p, session.drain_late().late);
            stop_if_interrupted(host, p, i, total)?;
        }
        host.reporter.batch_start(i + 1, total, nodes.len());
        host.reporter.emit("batch_start", json!({"batch": i + 1, "batches": total, "nodes": nodes}));
        // Subscribe before sending, so no event of this batch is missed.
        let mut events = match &plan.wait_for {
            Some(_) => Some(host.rt.block_on(session.fleet().lifecycle_events()).map_err(|e| fleet_error(host, e))?),
            None => None,
        };
        // Each reply is counted as it arrives: bars move, node_result goes out at once.
        let hard = host.interrupt.hard();
        let out = host
            .rt
            .block_on(session.send_batch(nodes, &hard, &mut |a| on_arrival(host, a)))
            .map_err(|e| fleet_error(host, e))?;
        take_late(host, p, out.late.clone());
        let mut batch_failed = absorb(host, p, &out);
        if let Some(why) = &out.broker_lost {
            host.reporter.batch_end();
            let unknown = out.unknown.join(", ");
            return Err(host.broker_lost(format!("{why}; batch {}/{total} nodes unknown: {unknown}", i + 1)));
        }
        if out.interrupted {
            host.reporter.batch_end();
            let msg = format!(
                "interrupted (Ctrl-C) during batch {}/{total}: {} ok and {} failed so far; unknown (sent, no answer yet): {}; later batches were not sent",
                i + 1,
                p.ok.len(),
                p.failed.len() - out.unknown.len(),
                out.unknown.join(", ")
            );
            host.reporter.emit("rollout_stopped", json!({"reason": msg, "unknown": out.unknown}));
            return Err(host.guardrail(msg));
        }
        if let (Some(w), Some(ev)) = (&plan.wait_for, events.as_mut()) {
            batch_failed += await_events(host, w, ev, &out.ok_nodes(), p)?;
        }
        p.batches += 1;
        host.reporter.batch_end();
        let silent_n = out.no_reply.len() + out.unknown.len();
        let ok_n = nodes.len().saturating_sub(batch_failed);
        host.reporter.emit("batch_end", json!({"batch": i + 1, "batches": total, "ok": ok_n, "failed": batch_failed - silent_n, "no_reply": out.no_reply.len(), "unknown": out.unknown.len()}));
        host.reporter.say(&format!(
            "{} batch {}/{total}: {ok_n} ok, {} failed, {} no reply{}",
            session.agent,
            i + 1,
            batch_failed - silent_n,
            out.no_reply.len(),
            if out.unknown.is_empty() { String::new() } else { format!(", {} unknown", out.unknown.len()) }
        ));
        if out.stray > 0 || !out.unexpected.is_empty() {
            host.reporter.say(&format!(
                "ignored on the reply subject: {} unreadable message(s), {} reply(ies) from nodes not asked",
                out.stray,
                out.unexpected.len()
            ));
        }
        let run_failed = p.failed.len() + p.no_reply.len();
        if let Verdict::Stop(reason) = plan.thresholds.judge(plan.nodes.len(), nodes.len(), batch_failed, run_failed) {
            return Err(stop(host, p, format!("stopped after batch {}/{total}: {reason}", i + 1)));
        }
        if let Some(gate) = &plan.gate {
            if !run_gate(host, ctx, gate, i + 1, total, &out, p)? {
                return Err(stop(host, p, format!("stopped by the gate after batch {}/{total}", i + 1)));
            }
        }
    }
    take_late(host, p, session.drain_late().late);
    Ok(())
}

fn stop_if_interrupted(host: &Host, p: &Progress, done: usize, total: usize) -> Res<()> {
    if !host.interrupt.requested() {
        return Ok(());
    }
    let reason = format!("interrupted (Ctrl-C) after batch {done}/{total}; later batches were not sent");
    host.reporter.emit("rollout_stopped", json!({"reason": reason, "ok": p.ok.len(), "failed": p.failed.len()}));
    Err(host.guardrail(reason))
}

/// Shows one reply the moment it arrives.
fn on_arrival(host: &Host, a: Arrival<'_>) {
    match a {
        Arrival::Reply(r) => {
            emit_reply(host, r, if r.ok() { "ok" } else { "failed" });
            let ok = usize::from(r.ok());
            host.reporter.nodes_done(ok, 1 - ok);
        }
        Arrival::Malformed { node, reason } => {
            host.reporter.emit("node_result", json!({"node": node, "status": "malformed", "statusmsg": reason}));
            host.reporter.nodes_done(0, 1);
        }
    }
}

fn emit_reply(host: &Host, r: &NodeReply, status: &str) {
    host.reporter.emit(
        "node_result",
        json!({"node": r.sender, "status": status, "statuscode": r.statuscode, "statusmsg": r.statusmsg, "data": r.data}),
    );
}

/// Nodes an earlier batch reported silent answered after all: they acted, so they are
/// reported as answered late (never retried, never "no reply").
fn take_late(host: &Host, p: &mut Progress, late: Vec<NodeReply>) {
    for r in late {
        if !p.no_reply.contains(&r.sender) {
            continue;
        }
        p.no_reply.retain(|n| *n != r.sender);
        host.reporter.say(&format!(
            "{} answered late: {}",
            crate::redact::printable(&r.sender),
            crate::redact::printable(&r.statusmsg)
        ));
        emit_reply(host, &r, if r.ok() { "late_ok" } else { "late_failed" });
        host.answered_late(r.ok());
        if r.ok() {
            p.ok.push(r.sender.clone());
        } else {
            p.failed.insert(r.sender.clone(), (Some(r.statuscode), r.statusmsg.clone()));
        }
        p.late.push(r.sender.clone());
        p.replies.push(from_json(&serde_json::to_value(&r).unwrap_or(Value::Null)));
    }
}

/// Waits for `w.event` from each node that answered OK; those that stay quiet become failures.
fn await_events(
    host: &Host,
    w: &WaitFor,
    ev: &mut crate::fleet::events::Events,
    ok: &[String],
    p: &mut Progress,
) -> Res<usize> {
    if ok.is_empty() {
        return Ok(0);
    }
    host.reporter.say(&format!(
        "waiting up to {:.0}s for {} event(s) from {} node(s)",
        w.timeout.as_secs_f64(),
        w.event,
        ok.len()
    ));
    let deadline = tokio::time::Instant::now() + w.timeout;
    let missing = host
        .rt
        .block_on(ev.wait_for(&w.event, w.component.as_deref(), ok, deadline, &host.interrupt.hard()))
        .map_err(|e| fleet_error(host, e))?;
    for n in &missing {
        let why = format!("no {} event within {:.0}s", w.event, w.timeout.as_secs_f64());
        host.reporter.emit("node_result", json!({"node": n, "status": "no_event", "statusmsg": why}));
        p.ok.retain(|x| x != n);
        p.failed.insert(n.clone(), (None, why));
    }
    host.recount(missing.len());
    Ok(missing.len())
}

/// Adds a batch to the rollout and returns its failure count (silent and unknown nodes
/// count). Replies were already shown as they arrived; silent and unknown nodes are shown now.
fn absorb(host: &Host, p: &mut Progress, out: &BatchOutcome) -> usize {
    let mut failed = 0;
    for r in &out.replies {
        if r.ok() {
            p.ok.push(r.sender.clone());
        } else {
            failed += 1;
            p.failed.insert(r.sender.clone(), (Some(r.statuscode), r.statusmsg.clone()));
        }
        p.replies.push(from_json(&serde_json::to_value(r).unwrap_or(Value::Null)));
    }
    for (n, why) in &out.malformed {
        p.failed.insert(n.clone(), (None, format!("malformed reply: {why}")));
        failed += 1;
    }
    for n in &out.no_reply {
        host.reporter.emit("node_result", json!({"node": n, "status": "no_reply"}));
        p.no_reply.push(n.clone());
        failed += 1;
    }
    for n in &out.unknown {
        let why = "the request went out, but the answer was not received (Ctrl-C or a broken connection)";
        host.reporter.emit("node_result", json!({"node": n, "status": "unknown", "statusmsg": why}));
        p.failed.insert(n.clone(), (None, "unknown: no answer received".into()));
        failed += 1;
    }
    let silent = out.no_reply.len() + out.unknown.len();
    host.reporter.nodes_done(0, silent);
    let unknown = out.unknown.len();
    host.count(out.ok_nodes().len(), failed - out.no_reply.len() - unknown, out.no_reply.len(), unknown);
    failed
}

/// Calls the gate with the batch result; true goes on.
fn run_gate(
    host: &Host,
    ctx: &NativeCallContext,
    gate: &FnPtr,
    batch: usize,
    total: usize,
    out: &BatchOutcome,
    p: &Progress,
) -> Res<bool> {
    let mut m = batch_map(out);
    m.insert("batch".into(), Dynamic::from(batch as rhai::INT));
    m.insert("batches".into(), Dynamic::from(total as rhai::INT));
    m.insert("run".into(), Dynamic::from_map(result(p, false)));
    let decision: Dynamic = gate.call_within_context(ctx, (Dynamic::from_map(m),))?;
    let verdict = if let Some(b) = decision.clone().try_cast::<bool>() {
        if b {
            "continue"
        } else {
            "stop"
        }
    } else if decision.is_string() && decision.to_string() == "pause" {
        "pause"
    } else {
        return Err(runtime_error(
            "invalid",
            format!("rpc_batch.gate must return true, false or \"pause\", not {decision}"),
        ));
    };
    host.reporter.emit("gate", json!({"batch": batch, "decision": verdict}));
    match verdict {
        "continue" => Ok(true),
        "stop" => Ok(false),
        _ => {
            host.reporter.say(&format!("gate paused the rollout after batch {batch}/{total}"));
            // A pause needs a human; without a terminal the run stops.
            let q = format!("Gate paused after batch {batch}/{total}. Continue the rollout?");
            match host.reporter.suspend(|| host.prompter.ask(&format!("{q} [y/N]"))) {
                _ if host.interrupt.requested() => {
                    Err(host.guardrail(format!("interrupted (Ctrl-C) at the gate's pause after batch {batch}/{total}")))
                }
                Some(a) if super::is_yes(&a) => Ok(true),
                Some(_) => Ok(false),
                None => Err(host
                    .guardrail(format!("the gate paused after batch {batch}/{total} and there is no terminal to ask"))),
            }
        }
    }
}

/// Stops the run, naming every failed node and why.
fn stop(host: &Host, p: &Progress, reason: String) -> Box<rhai::EvalAltResult> {
    let mut lines: Vec<String> = p
        .failed
        .iter()
        .map(|(n, (code, msg))| match code {
            Some(c) => format!("{n}: {} ({msg})", status_name(*c)),
            None => format!("{n}: {msg}"),
        })
        .collect();
    lines.extend(p.no_reply.iter().map(|n| format!("{n}: no reply")));
    for l in &lines {
        host.reporter.say(&format!("failed {l}"));
    }
    host.reporter.emit("rollout_stopped", json!({"reason": reason, "failed": lines}));
    host.guardrail(format!("{reason}; later batches were not sent; failed nodes: {}", lines.join(", ")))
}

fn dry_run(host: &Host, label: &str, plan: &Plan, shown: &Value) -> Map {
    host.reporter.say(&format!(
        "dry-run: would call {label} {shown} on {} node(s) in {} batch(es)",
        plan.nodes.len(),
        plan.batches.len()
    ));
    let total = plan.batches.len();
    for (i, b) in plan.batches.iter().enumerate() {
        host.reporter.say(&format!("dry-run: batch {}/{total}: {}", i + 1, b.join(", ")));
        host.reporter.emit("batch_start", json!({"batch": i + 1, "batches": total, "nodes": b, "dry_run": true}));
    }
    let mut m = result(&Progress::default(), true);
    m.insert("planned".into(), Dynamic::from_array(plan.batches.iter().map(|b| strings(b)).collect()));
    m.insert("batches".into(), Dynamic::from(total as rhai::INT));
    m
}

fn batch_map(out: &BatchOutcome) -> Map {
    let mut m = Map::new();
    m.insert("nodes".into(), strings(&out.nodes));
    m.insert("ok".into(), strings(&out.ok_nodes()));
    let mut failed = Map::new();
    for (n, (code, msg)) in out.failed() {
        failed.insert(n.into(), status(Some(code), &msg));
    }
    for (n, why) in &out.malformed {
        failed.insert(n.into(), status(None, &format!("malformed reply: {why}")));
    }
    m.insert("failed".into(), Dynamic::from_map(failed));
    m.insert("no_reply".into(), strings(&out.no_reply));
    m.insert(
        "replies".into(),
        Dynamic::from_array(
            out.replies.iter().map(|r| from_json(&serde_json::to_value(r).unwrap_or(Value::Null))).collect(),
        ),
    );
    m
}

fn status(code: Option<u8>, msg: &str) -> Dynamic {
    let mut m = Map::new();
    m.insert("statuscode".into(), code.map(|c| Dynamic::from(c as rhai::INT)).unwrap_or(Dynamic::UNIT));
    m.insert("statusmsg".into(), Dynamic::from(msg.to_string()));
    Dynamic::from_map(m)
}

/// The rollout's result map. A rollout a guardrail or Ctrl-C stops never returns one: the
/// stop ends the run, so there is no `aborted` flag to check.
fn result(p: &Progress, dry_run: bool) -> Map {
    let mut m = Map::new();
    let mut ok = p.ok.clone();
    ok.sort();
    m.insert("ok".into(), strings(&ok));
    let failed: Map = p.failed.iter().map(|(n, (c, msg))| (n.into(), status(*c, msg))).collect();
    m.insert("failed".into(), Dynamic::from_map(failed));
    m.insert("no_reply".into(), strings(&p.no_reply));
    m.insert("late".into(), strings(&p.late));
    m.insert("replies".into(), Dynamic::from_array(p.replies.clone()));
    m.insert("batches".into(), Dynamic::from(p.batches as rhai::INT));
    m.insert("dry_run".into(), Dynamic::from(dry_run));
    m
}
