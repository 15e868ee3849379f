//! `fleetbook req AGENT ACTION`: one RPC to the matching nodes, optionally in batches.
//!
//! Ctrl-C follows the one contract of every command: the first press stops after the current
//! batch, the second cancels the wait now; either way what came back so far is printed, the
//! unanswered nodes as unknown and the unsent ones as not sent, and the exit code is 3. A
//! broker lost for longer than a wait ends the run the same way with exit 4.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::req_options::ReqOptions;
use super::req_output::ReqOutput;
use super::req_report::{print_plan, write_report, Timing};
use crate::cli::ReqArgs;
use crate::config::Settings;
use crate::env::FleetEnv;
use crate::error::Error;
use crate::fleet::discovery::DiscoveryOptions;
use crate::interrupt::Interrupt;
use crate::journal::replay::{ResumeFlags, RunRecord};
use crate::journal::{Journal, JournalOptions, RunId};
use crate::progress::{Reporter, RunEvent, RunStatus};
use crate::prompt::Answer;
use crate::rollout::policy::{dedup_keep_order, plan_batches};
use crate::rollout::tally::Counts;
use crate::rollout::{ConfirmPolicy, End, Hooks, Rollout, Tally, Thresholds};

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
    let opened = ReqOutput::open(a.output.output_file.as_deref());
    // Where the last word goes when the request never started: stdout if the file is not there.
    let out = opened.as_ref().map(Clone::clone).unwrap_or_default();
    let sim = settings.sim.is_some();
    let result = match opened.and_then(|o| ReqOptions::from_cli(&a, default_token, &settings.ddl, sim, o)) {
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
        out.line(&v.to_string())?;
    }
    // Every JSONL stream ends with run_end, also when the request never started.
    if a.jsonl && !printed.get() {
        if let Some((_, line)) = crate::progress::jsonl::line(&run_end(None, &result, Counts::default())) {
            out.line(&line)?;
        }
    }
    result
}

/// `req` asks on the terminal and has no gate.
struct ReqHooks<'a> {
    interrupt: &'a Interrupt,
}

impl Hooks for ReqHooks<'_> {
    type Error = Infallible;

    fn ask(&mut self, question: &str) -> Answer {
        crate::prompt::ask_yes_no(question, self.interrupt)
    }
}

async fn run_inner(
    settings: Settings,
    a: &ReqOptions,
    interrupt: &Interrupt,
    printed: &std::cell::Cell<bool>,
) -> Result<(), Error> {
    let env = FleetEnv::open(settings).await?;
    let fleet = &env.fleet;
    let reporter = a.reporter();
    if a.broadcast {
        return broadcast(fleet, a, &reporter, interrupt, printed).await;
    }
    // Recorded: journaled (unless --no-journal or --dry-run) or streamed as JSONL; either way
    // the run has a start and an end.
    let journal = a.journal.as_ref().filter(|_| !a.dry_run);
    if journal.is_none() && !a.jsonl {
        return direct(fleet, a, &reporter, interrupt, printed, None, None).await.0;
    }
    // Resuming: the run's journal first; the request must be the one it made.
    let record = match &a.resume {
        Some(o) => {
            let r = super::resume::load(fleet, o, "req").await?;
            super::resume::same_runbook(&r, &format!("{}#{}", a.agent, a.action))?;
            Some(r)
        }
        None => None,
    };
    let id = a.resume.as_ref().map_or_else(RunId::new, |r| r.id.clone());
    let attempt = match &record {
        Some(r) => super::resume::claim(fleet, r).await?,
        None => 1,
    };
    start(fleet, journal, a, &id, attempt, &reporter).await?;
    let resumed = record.as_ref().zip(a.resume.as_ref().map(|o| &o.flags));
    let (result, counts) = direct(fleet, a, &reporter, interrupt, printed, Some(&id), resumed).await;
    let end = run_end(Some(&id), &result, counts);
    if journal.is_some()
        && !a.sim
        && matches!(end, RunEvent::RunEnd { status: RunStatus::Stopped | RunStatus::BrokerLost, .. })
    {
        let line = format!(
            "to continue it: the same `fleetbook req {} {} ...` command line, plus --resume {id}",
            a.agent, a.action
        );
        reporter.say(&line);
    }
    let (f, rep) = (fleet.clone(), reporter.clone());
    let _ = tokio::task::spawn_blocking(move || crate::journal::end_run(&rep, Some(&f), end)).await;
    if a.jsonl {
        printed.set(true);
    }
    result
}

/// One broadcast request: no batches, no journal.
async fn broadcast(
    fleet: &crate::fleet::Fleet,
    a: &ReqOptions,
    reporter: &Reporter,
    interrupt: &Interrupt,
    printed: &std::cell::Cell<bool>,
) -> Result<(), Error> {
    let dopts = &a.discovery;
    if a.dry_run {
        eprintln!("dry-run: would broadcast {}#{} to every matching node; nothing sent", a.agent, a.action);
        return Ok(());
    }
    let started = Instant::now();
    let policy = ConfirmPolicy { yes: a.yes, every_mutation: false };
    crate::rollout::confirm(policy, &a.agent, &a.action, None, reporter, &mut ReqHooks { interrupt })
        .map_err(|s| Error::Guardrail { reason: s.to_string() })?;
    let (collective, filter) = (dopts.collective.as_deref(), dopts.filter.clone());
    let mut session = fleet.rpc_session(&a.agent, &a.action, &a.inputs, collective, None, filter).await?;
    let mut out = session.broadcast(&interrupt.hard(), &mut |_| {}).await?;
    let mut tally = Tally::default();
    tally.absorb(&mut out, reporter);
    tally.batches = 1;
    let end = match (&out.broker_lost, out.interrupted) {
        (Some(why), _) => End::BrokerLost(why.clone()),
        (None, true) => End::Stopped(crate::rollout::Stop::InterruptedDuring {
            batch: 1,
            batches: 1,
            ok: tally.ok_count(),
            failed: tally.failures().len(),
            unknown: Vec::new(),
        }),
        (None, false) => End::Done,
    };
    let discovered = tally.replies.len() + tally.malformed.len();
    printed.set(true);
    let timing = Timing { discovery: Duration::ZERO, total: started.elapsed() };
    finish(a, &tally, discovered, (Some(&session.request_id), None), timing, end)
}

/// Discovers, then hands the batches to the driver; returns how it ended and the counts.
async fn direct(
    fleet: &crate::fleet::Fleet,
    a: &ReqOptions,
    reporter: &Reporter,
    interrupt: &Interrupt,
    printed: &std::cell::Cell<bool>,
    run_id: Option<&RunId>,
    resumed: Option<(&RunRecord, &ResumeFlags)>,
) -> (Result<(), Error>, Counts) {
    let started = Instant::now();
    let dopts = &a.discovery;
    let found = match resumed.and_then(|(r, _)| r.discovered.first()) {
        // Resuming: the nodes the run found, not whoever answers now.
        Some(nodes) => nodes.clone(),
        None => match discover(fleet, dopts, reporter, interrupt).await {
            Ok(nodes) => nodes,
            Err(e) => return (Err(e), Counts::default()),
        },
    };
    reporter.discovered(&found);
    let discovery = started.elapsed();
    let nodes = dedup_keep_order(found);
    if nodes.is_empty() {
        return (Err(Error::NoNodes), Counts::default());
    }
    let total = nodes.len();
    // Topology: the facts and leaders the plan needs come first (read-only, also dry-run).
    let ramp: Vec<crate::rollout::Amount> = a.batch.map(crate::rollout::Amount::Count).into_iter().collect();
    // Nodes from an inventory file: the plan takes their facts from it too.
    let inventory = match &dopts.source {
        crate::fleet::discovery::Source::Inventory(inv) => Some(&**inv),
        _ => None,
    };
    let plan = match a.topology.is_set() {
        true => {
            let hard = interrupt.hard();
            match crate::rollout::gather::plan(fleet, &nodes, &ramp, &a.topology, inventory, &hard, reporter).await {
                Ok(p) => p,
                Err(e) => return (Err(e.into()), Counts::default()),
            }
        }
        false => crate::rollout::topology::Plan {
            batches: match a.batch {
                Some(n) => plan_batches(&nodes, &[n]),
                // Moved, not cloned (10,000 names): nothing reads `nodes` after the plan.
                None => vec![nodes],
            },
            ..Default::default()
        },
    };
    let mut rollout = Rollout {
        call: 1,
        groups: plan.groups,
        counts: plan.counts,
        agent: a.agent.clone(),
        action: a.action.clone(),
        inputs: a.inputs.clone(),
        shown: Value::Object(crate::redact::mask_inputs(&a.inputs)),
        collective: dopts.collective.clone(),
        timeout: None,
        filter: dopts.filter.clone(),
        batches: plan.batches,
        sleep: a.batch_sleep,
        thresholds: Thresholds { max_group_failures: a.topology.max_group_failures, ..Default::default() },
        wait_for: None,
        governor: None,
        plan_only: a.dry_run,
        confirm: ConfirmPolicy { yes: a.yes, every_mutation: false },
        resume: None,
    };
    if let Some((was, flags)) = resumed.and_then(|(r, f)| r.calls.first().map(|c| (c, f))) {
        if let Err(reason) = crate::journal::replay::same_call(1, was, &a.agent, &a.action, &rollout.shown) {
            return (Err(Error::Guardrail { reason }), Counts::default());
        }
        let (retry_failed, resend_unknown) = (flags.retry_failed, flags.resend_unknown);
        rollout.resume = Some(crate::rollout::Resumed { call: was.clone(), retry_failed, resend_unknown });
    }
    // The driver blocks on the runtime between its hooks: it runs on a blocking thread. The
    // rollout moves there and back (its batches name every node: not copied).
    let (rt, f, rep, int) = (tokio::runtime::Handle::current(), fleet.clone(), reporter.clone(), interrupt.clone());
    let o = tokio::task::spawn_blocking(move || {
        let o = crate::rollout::drive(&rt, &f, &rollout, &rep, &int, &mut ReqHooks { interrupt: &int });
        (o, rollout)
    })
    .await;
    let (o, rollout) = match o {
        Ok(o) => o,
        Err(e) => {
            return (Err(Error::Internal { message: format!("the rollout thread failed: {e}") }), Counts::default())
        }
    };
    let counts = o.tally.counts();
    if o.planned {
        if a.jsonl {
            return (Ok(()), counts);
        }
        printed.set(true);
        return (a.output.with(|w| print_plan(w, &a.agent, &a.action, a.json, &rollout.batches)), counts);
    }
    match &o.end {
        End::Stopped(s) if s.nothing_sent() => return (Err(Error::Guardrail { reason: s.to_string() }), counts),
        // Refused before anything went out: the error says why.
        End::Failed(_) => {}
        _ => printed.set(true),
    }
    let timing = Timing { discovery, total: started.elapsed() };
    let ids = (o.request_id.as_deref(), run_id.map(RunId::as_str));
    (finish(a, &o.tally, total, ids, timing, o.end), counts)
}

/// Discovers the nodes, with the spinner.
async fn discover(
    fleet: &crate::fleet::Fleet,
    dopts: &DiscoveryOptions,
    reporter: &Reporter,
    interrupt: &Interrupt,
) -> Result<Vec<String>, Error> {
    reporter.emit(RunEvent::Discovering { what: dopts.describe() });
    match fleet.discover(dopts, &interrupt.hard()).await {
        Ok(f) => Ok(f.nodes),
        Err(e) => {
            reporter.emit(RunEvent::DiscoveryFailed);
            Err(match e {
                crate::fleet::FleetError::Cancelled => Error::Interrupted,
                e => e.into(),
            })
        }
    }
}

/// Starts a recorded request: opens its journal (when it has one) and reports `run_start`.
async fn start(
    fleet: &crate::fleet::Fleet,
    journal: Option<&JournalOptions>,
    a: &ReqOptions,
    id: &RunId,
    attempt: u32,
    reporter: &Reporter,
) -> Result<(), Error> {
    if let Some(o) = journal {
        let j = Journal::open(fleet, id.clone(), attempt, o).await.map_err(crate::journal::open_error)?;
        reporter.add(std::sync::Arc::new(j));
    }
    let (user, host) = crate::journal::who();
    reporter.emit(RunEvent::RunStart {
        run_id: id.to_string(),
        command: "req".into(),
        runbook: format!("{}#{}", a.agent, a.action),
        sha256: None,
        dry_run: a.dry_run,
        args: crate::redact::mask_inputs(&a.inputs),
        user,
        host,
        attempt,
    });
    match attempt {
        1 => reporter.say(&format!("run {id}")),
        n => reporter.say(&format!("resuming run {id} (attempt {n})")),
    }
    Ok(())
}

/// The last word on a request, for the journal and JSONL.
fn run_end(id: Option<&RunId>, result: &Result<(), Error>, c: Counts) -> RunEvent {
    let (status, reason, exit_code) = super::run::run_status(result);
    RunEvent::RunEnd {
        run_id: id.map(|i| i.to_string()).unwrap_or_default(),
        status,
        exit_code,
        reason,
        ok: c.ok,
        failed: c.failed,
        no_reply: c.no_reply,
        unknown: c.unknown,
    }
}

/// Prints the result and turns the end into the command's outcome.
fn finish(
    a: &ReqOptions,
    t: &Tally,
    discovered: usize,
    (request_id, run_id): (Option<&str>, Option<&str>),
    timing: Timing,
    end: End<Infallible>,
) -> Result<(), Error> {
    let result = match end {
        End::Done => match t.failure_count() {
            0 => Ok(()),
            failed => Err(Error::NodesFailed { failed, total: discovered.max(failed) }),
        },
        End::Stopped(s) => Err(Error::Guardrail { reason: s.to_string() }),
        End::BrokerLost(reason) => Err(Error::BrokerLost { reason }),
        End::Failed(e) => return Err(e.into()),
        End::Hook(never) => match never {},
    };
    // With --jsonl the events were the output.
    if !a.jsonl {
        let ids = (request_id, run_id);
        a.output.with(|w| write_report(w, &a.agent, &a.action, a.style, t, discovered, ids, timing, &result))?;
    }
    result
}
