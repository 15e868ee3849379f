//! `fleetbook req AGENT ACTION`: one RPC to the matching nodes, optionally in batches.
//!
//! Ctrl-C follows the one contract of every command: the first press stops after the current
//! batch, the second cancels the wait now; either way what came back so far is printed, the
//! unanswered nodes as unknown and the unsent ones as not sent, and the exit code is 3. A
//! broker lost for longer than a wait ends the run the same way with exit 4.

use std::convert::Infallible;
use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::req_report::{print_plan, write_report, Timing};
use crate::cli::ReqArgs;
use crate::config::Settings;
use crate::env::FleetEnv;
use crate::error::Error;
use crate::fleet::ddl::DdlRegistry;
use crate::fleet::discovery::DiscoveryOptions;
use crate::interrupt::Interrupt;
use crate::journal::{Journal, JournalOptions, RunId};
use crate::progress::{Reporter, RunEvent, RunStatus, Sink};
use crate::prompt::Answer;
use crate::rollout::policy::{dedup_keep_order, plan_batches};
use crate::rollout::{ConfirmPolicy, End, Hooks, Outcome, Rollout, Tally, Thresholds};

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
    /// The run journal; `None` with `--no-journal`.
    journal: Option<JournalOptions>,
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
            journal: super::options::journal(&a.journal)?,
        })
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
    let (sleep, inputs, dopts) = (a.batch_sleep, a.inputs.clone(), &a.discovery);
    let env = FleetEnv::open(settings).await?;
    let fleet = &env.fleet;
    let reporter = Reporter::for_terminal(false);
    let mut hooks = ReqHooks { interrupt };
    let policy = ConfirmPolicy { yes: a.yes, every_mutation: false };
    let started = Instant::now();
    let collective = dopts.collective.clone();
    let hard = interrupt.hard();
    if a.broadcast {
        if a.dry_run {
            eprintln!("dry-run: would broadcast {}#{} to every matching node; nothing sent", a.agent, a.action);
            return Ok(());
        }
        crate::rollout::confirm(policy, &a.agent, &a.action, None, &reporter, &mut hooks)
            .map_err(|s| Error::Guardrail { reason: s.to_string() })?;
        let mut session =
            fleet.rpc_session(&a.agent, &a.action, &inputs, collective.as_deref(), None, dopts.filter.clone()).await?;
        let out = session.broadcast(&hard, &mut |_| {}).await?;
        let mut tally = Tally::default();
        tally.absorb(&out, &reporter);
        tally.batches = 1;
        let end = match (&out.broker_lost, out.interrupted) {
            (Some(why), _) => End::BrokerLost(why.clone()),
            (None, true) => End::Stopped(crate::rollout::Stop::InterruptedDuring {
                batch: 1,
                batches: 1,
                ok: tally.ok_nodes().len(),
                failed: tally.failures().len(),
                unknown: Vec::new(),
            }),
            (None, false) => End::Done,
        };
        let discovered = tally.replies.len() + tally.malformed.len();
        printed.set(true);
        let timing = Timing { discovery: Duration::ZERO, total: started.elapsed() };
        return finish(a, &tally, discovered, (Some(&session.request_id), None), timing, end);
    }
    reporter.emit(RunEvent::Discovering { what: dopts.filter.describe() });
    let found = match fleet.discover(dopts, &hard).await {
        Ok(f) => f,
        Err(e) => {
            reporter.emit(RunEvent::DiscoveryFailed);
            return Err(match e {
                crate::fleet::FleetError::Cancelled => Error::Interrupted,
                e => e.into(),
            });
        }
    };
    reporter.emit(RunEvent::Discovered { count: found.nodes.len(), nodes: found.nodes.clone() });
    let discovery = started.elapsed();
    let nodes = dedup_keep_order(found.nodes);
    if nodes.is_empty() {
        return Err(Error::NoNodes);
    }
    let rollout = Rollout {
        agent: a.agent.clone(),
        action: a.action.clone(),
        inputs,
        shown: serde_json::Value::Null,
        collective,
        timeout: None,
        filter: dopts.filter.clone(),
        batches: match a.batch {
            Some(n) => plan_batches(&nodes, &[n]),
            None => vec![nodes.clone()],
        },
        sleep,
        thresholds: Thresholds::default(),
        wait_for: None,
        plan_only: a.dry_run,
        confirm: policy,
    };
    let run_id = match a.journal.as_ref().filter(|_| !a.dry_run) {
        Some(o) => Some(journal(fleet, o, a, &nodes, &reporter).await?),
        None => None,
    };
    // The driver blocks on the runtime between its hooks: it runs on a blocking thread.
    let (rt, f, r, rep, int) =
        (tokio::runtime::Handle::current(), fleet.clone(), rollout.clone(), reporter.clone(), interrupt.clone());
    let id = run_id.clone();
    let o = tokio::task::spawn_blocking(move || {
        let mut hooks = ReqHooks { interrupt: &int };
        let o = crate::rollout::drive(&rt, &f, &r, &rep, &int, &mut hooks);
        if let Some(id) = id {
            crate::journal::end_run(&rep, Some(&f), run_end(&id, &o));
        }
        o
    })
    .await
    .map_err(|e| Error::Internal { message: format!("the rollout thread failed: {e}") })?;
    if o.planned {
        printed.set(true);
        return print_plan(&a.agent, &a.action, a.json, &rollout.batches);
    }
    match &o.end {
        End::Stopped(s) if s.nothing_sent() => return Err(Error::Guardrail { reason: s.to_string() }),
        // Refused before anything went out: the error says why.
        End::Failed(_) => {}
        _ => printed.set(true),
    }
    let timing = Timing { discovery, total: started.elapsed() };
    let ids = (o.request_id.as_deref(), run_id.as_ref().map(RunId::as_str));
    finish(a, &o.tally, nodes.len(), ids, timing, o.end)
}

/// Opens the journal of this request, records its start and adds it to the sinks.
async fn journal(
    fleet: &crate::fleet::Fleet,
    o: &JournalOptions,
    a: &ReqOptions,
    nodes: &[String],
    reporter: &Reporter,
) -> Result<RunId, Error> {
    let id = RunId::new();
    let j = Journal::open(fleet, id.clone(), o).await.map_err(crate::journal::open_error)?;
    let (user, host) = crate::journal::who();
    j.event(&RunEvent::RunStart {
        run_id: id.to_string(),
        command: "req".into(),
        runbook: format!("{}#{}", a.agent, a.action),
        sha256: None,
        dry_run: false,
        args: crate::redact::mask_inputs(&a.inputs),
        user,
        host,
    });
    j.event(&RunEvent::Discovered { count: nodes.len(), nodes: nodes.to_vec() });
    reporter.add(std::sync::Arc::new(j));
    reporter.say(&format!("run {id}"));
    Ok(id)
}

/// The journal's last word on a request.
fn run_end(id: &RunId, o: &Outcome<Infallible>) -> RunEvent {
    let t = &o.tally;
    let (status, exit_code, reason) = match &o.end {
        End::Done if t.failure_count() == 0 => (RunStatus::Ok, 0, None),
        End::Done => (RunStatus::Failed, crate::error::exit::FAILED, None),
        End::Stopped(s) => (RunStatus::Stopped, crate::error::exit::GUARDRAIL, Some(s.to_string())),
        End::BrokerLost(why) => (RunStatus::BrokerLost, crate::error::exit::UNREACHABLE, Some(why.clone())),
        End::Failed(e) => (RunStatus::Error, crate::error::fleet_exit_code(e), Some(e.to_string())),
        End::Hook(never) => match *never {},
    };
    let failures = t.failures();
    RunEvent::RunEnd {
        run_id: id.to_string(),
        status,
        exit_code,
        reason,
        ok: t.ok_nodes().len(),
        failed: failures.len() - t.unknown.len(),
        no_reply: t.no_reply.len(),
        unknown: t.unknown.len(),
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
    let mut out = std::io::stdout().lock();
    let ids = (request_id, run_id);
    write_report(&mut out, &a.agent, &a.action, a.json, t, discovered, ids, timing, &result)?;
    result
}
