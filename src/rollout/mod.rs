//! The one rollout driver: `req` and the runbooks' `rpc_batch` (and so the REPL) hand it a
//! validated [`Rollout`] and get an [`Outcome`]. It owns the batch loop and every rule of it:
//! the dry-run plan, the confirmation, the sleeps, the waits, late answers, the failure
//! budget, the gate, `wait_for` and Ctrl-C (the first press stops after the current batch,
//! the second cancels the wait). It reports through [`crate::progress`] as it goes.
//!
//! Data flow: command or runbook → [`drive`] → `fleet::RpcSession` → NATS; [`drive`] →
//! `RunEvent`s → sinks. Nothing here knows Rhai or clap: a runbook's gate comes in through
//! [`Hooks`].

mod confirm;
pub mod gather;
pub mod governor;
pub mod policy;
pub mod resume;
pub mod stop;
pub mod tally;
pub mod topology;

use std::time::Duration;

use serde_json::{Map, Value};

use crate::fleet::filter::Filter;
use crate::fleet::rpc::{BatchOutcome, NodeReply, RpcSession};
use crate::fleet::Fleet;
use crate::interrupt::Interrupt;
use crate::progress::{GateVerdict, Reporter, RunEvent};
use crate::prompt::Answer;

pub use confirm::confirm;
pub use governor::GovernorUse;
pub use policy::{Amount, Thresholds, Verdict};
pub use resume::Resumed;
pub use stop::{End, Stop};
pub use tally::{Failure, Tally};

/// `wait_for`: after each batch, every node that answered OK must publish this lifecycle event.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitFor {
    pub event: String,
    pub component: Option<String>,
    pub timeout: Duration,
}

impl WaitFor {
    /// Checks the event name against the lifecycle event types.
    pub fn new(event: String, component: Option<String>, timeout: Duration) -> Result<WaitFor, String> {
        if !crate::lifecycle::TYPES.contains(&event.as_str()) {
            return Err(format!("unknown event '{event}'; valid: {}", crate::lifecycle::TYPES.join(", ")));
        }
        Ok(WaitFor { event, component, timeout })
    }
}

/// Who must confirm what before anything is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConfirmPolicy {
    /// `--yes`: confirmations are given.
    pub yes: bool,
    /// The REPL: every mutating call asks, and the Big Red Button asks even with `--yes`.
    pub every_mutation: bool,
}

/// One rollout, validated: what to call, on which nodes in which batches, and the rules.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// Which rollout of the run this is, from 1 (a resumed run matches them by it).
    pub call: usize,
    /// Topology: each batch's `group_by` group (empty: no groups).
    pub groups: Vec<Option<String>>,
    /// Topology: each batch's nodes counted by the spread (or group) fact's value (empty: none).
    pub counts: Vec<std::collections::BTreeMap<String, usize>>,
    pub agent: String,
    pub action: String,
    /// The inputs as the DDL typed them; secrets in clear, for the wire only.
    pub inputs: Map<String, Value>,
    /// The inputs as shown (secrets masked).
    pub shown: Value,
    pub collective: Option<String>,
    /// The wait per batch; `None`: discovery timeout + the DDL's timeout.
    pub timeout: Option<Duration>,
    /// The filter the requests carry (the agent is added).
    pub filter: Filter,
    pub batches: Vec<Vec<String>>,
    /// The pause between batches.
    pub sleep: Duration,
    pub thresholds: Thresholds,
    pub wait_for: Option<WaitFor>,
    /// One lease per node on this Choria Governor before each batch goes out.
    pub governor: Option<GovernorUse>,
    /// Plan and report the batches; send nothing.
    pub plan_only: bool,
    pub confirm: ConfirmPolicy,
    /// Resuming: what an earlier attempt of the run did in this rollout.
    pub resume: Option<Resumed>,
}

impl Rollout {
    /// `agent#action`.
    pub fn label(&self) -> String {
        format!("{}#{}", self.agent, self.action)
    }

    /// How many nodes the plan holds.
    pub fn nodes(&self) -> usize {
        self.batches.iter().map(Vec::len).sum()
    }

    /// `batch_start` for batch `i` (from 0) sending `nodes`, with its topology counts.
    fn batch_start(&self, i: usize, nodes: &[String], dry_run: bool) -> RunEvent {
        RunEvent::BatchStart {
            call: self.call,
            batch: i + 1,
            batches: self.batches.len(),
            nodes: nodes.to_vec(),
            groups: self.counts.get(i).filter(|c| !c.is_empty()).cloned(),
            dry_run,
        }
    }
}

/// What a runbook's gate sees after a batch.
pub struct GateInput<'a> {
    pub batch: usize,
    pub batches: usize,
    /// The nodes the batch addressed, in order.
    pub nodes: &'a [String],
    /// The batch's replies in time, in arrival order (moved from `out` to the tally).
    pub replies: &'a [NodeReply],
    /// The rest of the batch's outcome: its replies are in `replies`.
    pub out: &'a BatchOutcome,
    pub tally: &'a Tally,
}

/// What the caller plugs in: how to ask a person, and the gate.
pub trait Hooks {
    /// The error a hook can end the rollout with.
    type Error;
    /// Asks a yes/no question (the bars are out of the way).
    fn ask(&mut self, question: &str) -> Answer;
    /// The gate after a batch; `None` when there is none.
    fn gate(&mut self, _input: GateInput<'_>) -> Option<Result<GateVerdict, Self::Error>> {
        None
    }
}

/// What a rollout did and how it ended.
#[derive(Debug)]
pub struct Outcome<E> {
    pub tally: Tally,
    pub end: End<E>,
    /// The request id, once a session was opened.
    pub request_id: Option<String>,
    /// Set when only a plan was made (dry-run).
    pub planned: bool,
}

/// Runs a rollout to its end. Never fails on its own: how it ended is in the outcome.
///
/// Synchronous on purpose: each wait runs on `rt` with `block_on`, and the hooks run between
/// the waits, so a runbook's gate may itself call the fleet (which blocks on `rt` too). Call
/// it from a plain thread (the script thread, or `spawn_blocking`), never from a task.
pub fn drive<H: Hooks>(
    rt: &tokio::runtime::Handle,
    fleet: &Fleet,
    r: &Rollout,
    reporter: &Reporter,
    interrupt: &Interrupt,
    hooks: &mut H,
) -> Outcome<H::Error> {
    let total = r.batches.len();
    reporter.emit(RunEvent::RolloutStart {
        call: r.call,
        agent: r.agent.clone(),
        action: r.action.clone(),
        inputs: r.shown.clone(),
        nodes: r.nodes(),
        batches: total,
        dry_run: r.plan_only,
    });
    let mut o = Outcome { tally: Tally::default(), end: End::Done, request_id: None, planned: false };
    if r.nodes() == 0 {
        reporter.say(&format!("{}: no nodes to call", r.label()));
        return o;
    }
    if r.plan_only {
        for (i, b) in r.batches.iter().enumerate() {
            reporter.emit(r.batch_start(i, b, true));
        }
        o.planned = true;
        return o;
    }
    // Resuming: what earlier attempts finished is filed now; the rest is sent.
    let plan = resume::split(r, &mut o.tally, reporter);
    let not_sent = |o: &mut Outcome<H::Error>, from: usize| {
        o.tally.not_sent.extend(plan.send[from..].iter().flatten().cloned());
        plan.file_blocked(from, &mut o.tally, reporter);
    };
    if plan.finished() {
        reporter.say(&format!("{}: every node was done by an earlier attempt of this run", r.label()));
        return o;
    }
    if let Some(stop) = before_sending(r, &plan, &o.tally) {
        not_sent(&mut o, 0);
        report_stop(&o.tally, &stop, reporter);
        o.end = End::Stopped(stop);
        return o;
    }
    let sending = plan.send.iter().map(Vec::len).sum();
    if let Err(stop) = confirm(r.confirm, &r.agent, &r.action, Some(sending), reporter, hooks) {
        not_sent(&mut o, 0);
        report_stop(&o.tally, &stop, reporter);
        o.end = End::Stopped(stop);
        return o;
    }
    let session = rt.block_on(fleet.rpc_session(
        &r.agent,
        &r.action,
        &r.inputs,
        r.collective.as_deref(),
        r.timeout,
        r.filter.clone(),
    ));
    let mut session = match session {
        Ok(s) => s,
        Err(e) => {
            not_sent(&mut o, 0);
            o.end = End::from_fleet(e, 0, total);
            return o;
        }
    };
    o.request_id = Some(session.request_id.clone());
    let (end, next) = batches(rt, r, &plan, &mut session, &mut o.tally, reporter, interrupt, hooks);
    not_sent(&mut o, next);
    // Replies that came in while the last batch was judged still count.
    o.tally.take_late(session.drain_late().late, reporter);
    if let End::Stopped(stop) = &end {
        report_stop(&o.tally, stop, reporter);
    }
    o.end = end;
    reporter.emit(RunEvent::RolloutEnd);
    o
}

/// A resumed rollout that must stop before it sends anything: its first batch to act holds
/// unknown nodes, or the earlier attempts' failures already spend the budget.
fn before_sending(r: &Rollout, plan: &resume::Split, tally: &Tally) -> Option<Stop> {
    if let Some(b) = plan.blocked_first() {
        let nodes = plan.blocked[b].clone();
        return Some(Stop::Unknown { batch: b + 1, batches: r.batches.len(), label: r.label(), nodes });
    }
    let failed = tally.failure_count();
    if failed == 0 {
        return None;
    }
    match r.thresholds.judge(r.nodes(), 0, 0, failed) {
        Verdict::Stop(why) => Some(Stop::BudgetSpent { why, failed: tally.failed_lines() }),
        Verdict::Continue => None,
    }
}

/// `rollout_stopped`: why, and where every node stands.
fn report_stop(t: &Tally, stop: &Stop, reporter: &Reporter) {
    reporter.emit(RunEvent::RolloutStopped {
        reason: stop.to_string(),
        ok: t.ok_count(),
        failed: t.failed_lines(),
        unknown: t.unknown.clone(),
        not_sent: t.not_sent.len(),
    });
}

/// The batch loop; returns the end and the index of the first batch not sent.
#[allow(clippy::too_many_arguments)]
fn batches<H: Hooks>(
    rt: &tokio::runtime::Handle,
    r: &Rollout,
    plan: &resume::Split,
    session: &mut RpcSession,
    tally: &mut Tally,
    reporter: &Reporter,
    interrupt: &Interrupt,
    hooks: &mut H,
) -> (End<H::Error>, usize) {
    let total = r.batches.len();
    let hard = interrupt.hard();
    let mut sent_any = false;
    // The connection's breaks counted when the last batch went out.
    let mut breaks_at_send = session.fleet().link().disconnects();
    for (i, nodes) in plan.send.iter().enumerate() {
        if !plan.blocked[i].is_empty() {
            let stop = Stop::Unknown { batch: i + 1, batches: total, label: r.label(), nodes: plan.blocked[i].clone() };
            return (End::Stopped(stop), i);
        }
        // Done by an earlier attempt of the run (resuming).
        if nodes.is_empty() {
            continue;
        }
        if i > 0 && !interrupt.requested() {
            let soft = interrupt.soft();
            // Resuming, the first batch sent waits only what is left of the pause after the
            // batch an earlier attempt finished.
            let pause = match (&r.resume, sent_any) {
                (Some(res), false) => res.sleep_left(r.sleep),
                _ => r.sleep,
            };
            rt.block_on(async {
                tokio::select! {
                    _ = soft.cancelled() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
            });
            // Replies that came in during the sleep: nodes that answered after their wait.
            tally.take_late(session.drain_late().late, reporter);
        }
        // The connection broke since the last batch went out (or, before the first, since
        // the rollout started): the batch waits for its nodes to be back.
        let mut seen = breaks_at_send;
        let since = if sent_any { "since the last batch" } else { "since the rollout started" };
        if let Err(end) = settle(rt, session, nodes, (i + 1, total), since, reporter, interrupt, &mut seen) {
            return (end, i);
        }
        if interrupt.requested() {
            return (End::Stopped(Stop::Interrupted { after: i, batches: total }), i);
        }
        // Leases first (they may wait), held until this batch is over.
        let held = match &r.governor {
            Some(g) => match governor::take(rt, session.fleet(), g, nodes, i + 1, total, reporter, interrupt) {
                Ok(h) => Some(h),
                Err(end) => return (end, i),
            },
            None => None,
        };
        // A lease can take minutes to come: a break during that wait is waited out too.
        let since = "while the batch waited for its governor leases";
        if let Err(end) = settle(rt, session, nodes, (i + 1, total), since, reporter, interrupt, &mut seen) {
            return (end, i);
        }
        // Write-ahead: the journal holds the batch before any of it goes out (fail closed).
        let start = r.batch_start(i, nodes, false);
        if let Err(e) = reporter.emit_durable(start) {
            return match e.lost {
                true => {
                    let why = format!("the broker is gone: {}; batch {}/{total} was not sent", e.why, i + 1);
                    (End::BrokerLost(why), i)
                }
                false => (End::Stopped(Stop::Journal { batch: i + 1, batches: total, why: e.why }), i),
            };
        }
        // Subscribe before sending, so no event of this batch is missed.
        let mut events = match &r.wait_for {
            Some(_) => match rt.block_on(session.fleet().lifecycle_events()) {
                Ok(ev) => Some(ev),
                Err(e) => return (End::from_fleet(e, i, total), i),
            },
            None => None,
        };
        sent_any = true;
        // Not a fresh count: a break after the last wait (during the write-ahead) is waited
        // out before the next batch.
        breaks_at_send = seen;
        // Asked once per batch, not per reply: the sinks are set before a batch is sent.
        let reads = reporter.reads();
        let mut out =
            match rt.block_on(session.send_batch(nodes, &hard, &mut |a| tally::on_arrival(reporter, reads, a))) {
                Ok(out) => out,
                // Nothing of this batch went out.
                Err(e) => return (End::from_fleet(e, i, total), i),
            };
        // The batch's replies move to the end of the tally's: the event wait and the gate
        // read them there.
        let first = tally.replies.len();
        let mut failed = tally.absorb(&mut out, reporter);
        let ok_nodes = if events.is_some() { crate::fleet::rpc::ok_nodes(&tally.replies[first..]) } else { Vec::new() };
        let during = |tally: &Tally| Stop::InterruptedDuring {
            batch: i + 1,
            batches: total,
            ok: tally.ok_count(),
            failed: tally.failures().len() - out.unknown.len(),
            unknown: out.unknown.clone(),
        };
        if let Some(why) = &out.broker_lost {
            let why = format!("{why}; batch {}/{total} nodes unknown: {}", i + 1, out.unknown.join(", "));
            return (End::BrokerLost(why), i + 1);
        }
        if out.interrupted {
            return (End::Stopped(during(tally)), i + 1);
        }
        if let (Some(w), Some(ev)) = (&r.wait_for, events.as_mut()) {
            match rt.block_on(await_events(w, ev, &ok_nodes, tally, reporter, &hard)) {
                Ok(missing) => failed += missing,
                Err(crate::fleet::FleetError::Cancelled) => return (End::Stopped(during(tally)), i + 1),
                Err(e) => return (End::from_fleet(e, i + 1, total), i + 1),
            }
        }
        tally.batches += 1;
        // The batch is over: its leases go back before the gate or the next batch.
        drop(held);
        let silent = out.no_reply.len() + out.unknown.len();
        // Kept before the run goes on: once the journal has a batch's end it has every result
        // of it, so a resume after a crash here knows them all. A write that fails leaves a
        // gap, and the next batch is not sent (fail closed at its write-ahead).
        let _ = reporter.emit_durable(RunEvent::BatchEnd {
            batch: i + 1,
            batches: total,
            ok: nodes.len().saturating_sub(failed),
            failed: failed - silent,
            no_reply: out.no_reply.len(),
            unknown: out.unknown.len(),
        });
        if out.stray > 0 || !out.unexpected.is_empty() {
            reporter.say(&format!(
                "ignored on the reply subject: {} unreadable message(s), {} reply(ies) from nodes not asked",
                out.stray,
                out.unexpected.len()
            ));
        }
        let run_failed = tally.failure_count();
        let verdict = match r.thresholds.judge(r.nodes(), nodes.len(), failed, run_failed) {
            Verdict::Continue => group_verdict(r, i, tally),
            stop => stop,
        };
        if let Verdict::Stop(why) = verdict {
            let stop = Stop::Threshold { batch: i + 1, batches: total, why, failed: tally.failed_lines() };
            return (End::Stopped(stop), i + 1);
        }
        let input =
            GateInput { batch: i + 1, batches: total, nodes, replies: &tally.replies[first..], out: &out, tally };
        if let Some(verdict) = hooks.gate(input) {
            match gate(verdict, i + 1, total, tally, reporter, hooks) {
                Ok(None) => {}
                Ok(Some(stop)) => return (End::Stopped(stop), i + 1),
                Err(e) => return (End::Hook(e), i + 1),
            }
        }
    }
    (End::Done, total)
}

/// Topology: the failure budget of batch `i`'s `group_by` group, over that group's nodes.
fn group_verdict(r: &Rollout, i: usize, tally: &Tally) -> Verdict {
    let (Some(max), Some(Some(group))) = (r.thresholds.max_group_failures, r.groups.get(i)) else {
        return Verdict::Continue;
    };
    let members: std::collections::HashSet<&String> =
        r.batches.iter().zip(&r.groups).filter(|(_, g)| g.as_ref() == Some(group)).flat_map(|(b, _)| b).collect();
    // The nodes failure_count counts, in this group: failures (unknown included), the silent.
    let failed = tally.failures().keys().chain(&tally.no_reply).filter(|n| members.contains(n)).count();
    let allowed = max.allowed(members.len());
    if failed > allowed {
        return Verdict::Stop(format!(
            "{failed} of {} node(s) in group {group} failed, more than max_group_failures {max} allows ({allowed})",
            members.len()
        ));
    }
    Verdict::Continue
}

/// Acts on the gate's verdict: `None` goes on.
fn gate<H: Hooks>(
    verdict: Result<GateVerdict, H::Error>,
    batch: usize,
    batches: usize,
    tally: &Tally,
    reporter: &Reporter,
    hooks: &mut H,
) -> Result<Option<Stop>, H::Error> {
    let verdict = verdict?;
    reporter.emit(RunEvent::Gate { batch, decision: verdict });
    let stop = Stop::Gate { batch, batches, failed: tally.failed_lines() };
    Ok(match verdict {
        GateVerdict::Continue => None,
        GateVerdict::Stop => Some(stop),
        GateVerdict::Pause => {
            // A pause needs a person; without a terminal the run stops.
            let q = format!("Gate paused after batch {batch}/{batches}. Continue the rollout?");
            match reporter.suspend(|| hooks.ask(&q)) {
                Answer::Yes => None,
                Answer::No => Some(stop),
                Answer::Interrupted => Some(Stop::GatePauseInterrupted { batch, batches }),
                Answer::NoTerminal => Some(Stop::GatePauseNoTerminal { batch, batches }),
            }
        }
    })
}

/// Waits for `w.event` from each node that answered OK; returns how many stayed quiet.
async fn await_events(
    w: &WaitFor,
    ev: &mut crate::fleet::events::Events,
    ok: &[String],
    tally: &mut Tally,
    reporter: &Reporter,
    hard: &tokio_util::sync::CancellationToken,
) -> Result<usize, crate::fleet::FleetError> {
    if ok.is_empty() {
        return Ok(0);
    }
    let secs = w.timeout.as_secs_f64();
    reporter.say(&format!("waiting up to {secs:.0}s for {} event(s) from {} node(s)", w.event, ok.len()));
    let deadline = tokio::time::Instant::now() + w.timeout;
    let missing = ev.wait_for(&w.event, w.component.as_deref(), ok, deadline, hard).await?;
    let why = format!("no {} event within {secs:.0}s", w.event);
    Ok(tally.missed_event(missing, &why, reporter))
}

/// How long a batch waits for its nodes to be back after the broker connection broke.
pub const FLEET_BACK_WAIT: Duration = Duration::from_secs(20);

/// After a break of the broker connection, before batch `at` (its number, of how many) goes
/// out: waits for the connection (as long as a batch waits; a broker that is not back by
/// then ends the run as lost), then for the batch's nodes ([`await_fleet_back`]); again if
/// the connection broke during that wait (a cluster restarted one broker after another), so
/// a batch goes out after a wait that saw no new break. `seen`: the breaks already waited
/// out, updated. The error is how the run ends: the broker lost, or Ctrl-C before the batch.
#[allow(clippy::too_many_arguments)]
fn settle<E>(
    rt: &tokio::runtime::Handle,
    session: &RpcSession,
    nodes: &[String],
    at: (usize, usize),
    since: &str,
    reporter: &Reporter,
    interrupt: &Interrupt,
    seen: &mut u64,
) -> Result<(), End<E>> {
    let (batch, batches) = at;
    while session.fleet().link().disconnects() != *seen {
        *seen = session.fleet().link().disconnects();
        let back_by = tokio::time::Instant::now() + session.timeout();
        rt.block_on(session.fleet().await_connected(back_by, &interrupt.soft(), "sending a batch"))
            .map_err(|e| End::from_fleet(e, batch - 1, batches))?;
        await_fleet_back(rt, session, nodes, at, since, reporter, interrupt);
        if interrupt.requested() {
            return Err(End::Stopped(Stop::Interrupted { after: batch - 1, batches }));
        }
    }
    Ok(())
}

/// The connection to the broker broke (and came back) `since` something: the servers
/// reconnect at their own pace, and a request sent before one is back is lost on it (it would
/// count as no reply, against the failure budget, for a node that is fine). So the batch
/// waits, up to [`FLEET_BACK_WAIT`], until each of its nodes answers a discovery ping; then
/// it is sent, also to the nodes that did not answer (their results say what happened).
/// Ctrl-C ends the wait (the run stops before the batch, as in the pause).
fn await_fleet_back(
    rt: &tokio::runtime::Handle,
    session: &RpcSession,
    nodes: &[String],
    (batch, batches): (usize, usize),
    since: &str,
    reporter: &Reporter,
    interrupt: &Interrupt,
) {
    if interrupt.requested() {
        return;
    }
    let n = nodes.len();
    reporter.say(&format!(
        "the broker connection broke {since}: waiting up to {}s for batch {batch}/{batches}'s {n} node(s) to be back before sending it",
        FLEET_BACK_WAIT.as_secs()
    ));
    let start = std::time::Instant::now();
    let soft = interrupt.soft();
    let missing = rt.block_on(session.fleet().await_present(nodes, &session.collective, FLEET_BACK_WAIT, &soft));
    if interrupt.requested() {
        return;
    }
    let took = start.elapsed().as_secs_f64();
    if missing.is_empty() {
        reporter.say(&format!("batch {batch}/{batches}: all {n} node(s) are back ({took:.1}s)"));
    } else if !session.fleet().connected() {
        // Sending the batch reports the broker.
        reporter.say(&format!("batch {batch}/{batches}: the broker connection is down again ({took:.1}s)"));
    } else {
        reporter.say(&format!(
            "batch {batch}/{batches}: {} of {n} node(s) did not answer within {}s; sending anyway: {}",
            missing.len(),
            FLEET_BACK_WAIT.as_secs(),
            stop::some_of(&missing)
        ));
    }
}
