//! `fleetbook run FILE`: compile, lint, connect, run the runbook on a script thread.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cli::{OutputFormat, RunArgs};
use crate::config::Settings;
use crate::engine::{self, diag, Host, RunSettings, TerminalPrompter};
use crate::env::FleetEnv;
use crate::error::Error;
use crate::interrupt::Interrupt;
use crate::journal::{Journal, JournalOptions, RunId};
use crate::progress::{Reporter, RunEvent, RunStatus, Sink};

/// What `run` was asked to do, validated.
pub(crate) struct RunOptions {
    /// The runbook.
    file: PathBuf,
    /// `--arg NAME=VALUE`, each name once.
    args: BTreeMap<String, String>,
    dry_run: bool,
    yes: bool,
    /// JSONL events on stdout instead of text on stderr.
    json: bool,
    engine: RunSettings,
    /// The run journal; `None` with `--no-journal`.
    journal: Option<JournalOptions>,
    /// `--resume ID`: continue that run.
    resume: Option<super::resume::ResumeOptions>,
    /// `--sim`: the journal dies with the process, so no resume hint.
    sim: bool,
}

impl RunOptions {
    /// Checks the `--arg`s; the engine settings are for a run against `settings`.
    pub(crate) fn from_cli(a: RunArgs, settings: &Settings) -> Result<RunOptions, Error> {
        let mut engine = super::options::engine_for(&a.engine, settings);
        engine.nodes = super::sources::run_nodes(a.nodes.as_deref())?;
        let resume = super::options::resume(&a.journal, a.dry_run, settings.sim.is_some())?;
        Ok(RunOptions {
            resume,
            sim: settings.sim.is_some(),
            args: parse_args(&a.args)?,
            file: a.file,
            dry_run: a.dry_run,
            yes: a.yes,
            json: a.output == OutputFormat::Json,
            engine,
            journal: super::options::journal(&a.journal)?,
        })
    }
}

/// Parses `name=value` runbook arguments; a name is letters, digits, `_`, `-` and `.`.
pub(crate) fn parse_args(args: &[String]) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    for a in args {
        let bad = |why: &str| Error::Usage {
            message: format!("--arg {a:?}: {why}; expected NAME=VALUE, e.g. --arg batch=5"),
        };
        let (k, v) = a.split_once('=').ok_or_else(|| bad("no '='"))?;
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
            return Err(bad("the name must be letters, digits, '_', '-' or '.'"));
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(Error::Usage { message: format!("--arg {k} is given twice; give each argument once") });
        }
    }
    Ok(out)
}

/// A runbook read, compiled and linted: the AST when it compiled, and every problem found.
pub(crate) struct Analysis {
    pub(crate) shown: String,
    pub(crate) source: String,
    pub(crate) ast: Option<rhai::AST>,
    /// Where and what: a syntax error, or the lint's findings.
    pub(crate) problems: Vec<(rhai::Position, String)>,
}

/// Reads, compiles and lints a runbook against the DDLs; a file that cannot be read is a
/// usage error.
pub(crate) fn analyse(
    engine: &rhai::Engine,
    file: &Path,
    ddl: &crate::fleet::ddl::DdlRegistry,
) -> Result<Analysis, Error> {
    let shown = file.display().to_string();
    let source = std::fs::read_to_string(file)
        .map_err(|e| Error::Usage { message: format!("cannot read runbook {shown}: {e}") })?;
    let script = engine::strip_shebang(&source);
    let (ast, problems) = match engine.compile(&script) {
        Err(e) => (None, vec![(e.position(), e.err_type().to_string())]),
        Ok(mut ast) => {
            ast.set_source(shown.clone());
            let findings = engine::lint::lint(&ast, ddl, Some(engine));
            (Some(ast), findings.into_iter().map(|f| (f.pos, f.message)).collect())
        }
    };
    Ok(Analysis { shown, source, ast, problems })
}

/// Reads and compiles a runbook, then lints it against the DDLs. Errors come rendered.
pub(crate) fn compile(
    engine: &rhai::Engine,
    file: &Path,
    ddl: &crate::fleet::ddl::DdlRegistry,
) -> Result<(rhai::AST, String), Error> {
    let a = analyse(engine, file, ddl)?;
    match (a.ast, a.problems.is_empty()) {
        (Some(ast), true) => Ok((ast, a.source)),
        _ => {
            let rendered: Vec<String> =
                a.problems.iter().map(|(pos, msg)| diag::render(&a.shown, &a.source, *pos, msg)).collect();
            Err(Error::Runbook { rendered: rendered.join("\n\n") })
        }
    }
}

fn host(
    rt: tokio::runtime::Handle,
    fleet: Option<crate::fleet::Fleet>,
    reporter: Reporter,
    interrupt: Interrupt,
    settings: RunSettings,
) -> Arc<Host> {
    let prompter = Box::new(TerminalPrompter { interrupt: interrupt.clone() });
    Host::new(rt, fleet, reporter, interrupt, settings, prompter)
}

/// Runs a runbook and maps its outcome to an exit code through `Error`. With `--output json`
/// every run ends with one `run_end` event, whatever happened (a runbook that does not
/// compile, a broker that cannot be reached or is lost, a guardrail, Ctrl-C).
pub(crate) async fn run(settings: Settings, a: RunOptions, interrupt: Interrupt) -> Result<(), Error> {
    let reporter = Reporter::for_terminal(a.json);
    let run_id = a.resume.as_ref().map_or_else(RunId::new, |r| r.id.clone());
    let hint = (a.journal.is_some() && !a.sim).then(|| format!("run {}", a.file.display()));
    let resuming = a.resume.is_some();
    match &a.resume {
        Some(_) => reporter.say(&format!("resuming run {run_id}")),
        None => reporter.say(&format!("run {run_id}")),
    }
    let mut out = Outputs::default();
    let result = run_inner(settings, a, interrupt, &reporter, &run_id, &mut out).await;
    let Outputs { totals, env, started } = out;
    let (status, reason, exit_code) = run_status(&result);
    let end = RunEvent::RunEnd {
        run_id: run_id.to_string(),
        status,
        exit_code,
        reason,
        ok: totals.ok,
        failed: totals.failed,
        no_reply: totals.no_reply,
        unknown: totals.unknown,
    };
    match (resuming, started) {
        // Refused before its attempt began: the run itself is as it was.
        (true, false) => reporter.say(&format!("run {run_id} not resumed")),
        _ => reporter.say(&format!("run {run_id} ended: {}", status.as_str())),
    }
    if let (Some(cmd), RunStatus::Stopped | RunStatus::BrokerLost) = (&hint, status) {
        reporter.say(&super::resume::hint(cmd, run_id.as_str()));
    }
    // Waits for the journal's acknowledgement (bounded); a plain thread may block.
    let r = reporter.clone();
    let _ = tokio::task::spawn_blocking(move || {
        crate::journal::end_run(&r, env.as_ref().map(|e: &FleetEnv| &e.fleet), end);
        drop(env);
    })
    .await;
    result
}

/// What a run leaves behind for its end: the counts, the connection (it outlives the run so
/// that `run_end` reaches the journal) and whether the run (or its resumed attempt) began.
#[derive(Default)]
struct Outputs {
    totals: crate::engine::Totals,
    env: Option<FleetEnv>,
    started: bool,
}

async fn run_inner(
    settings: Settings,
    a: RunOptions,
    interrupt: Interrupt,
    reporter: &Reporter,
    run_id: &RunId,
    out: &mut Outputs,
) -> Result<(), Error> {
    let env_out = &mut out.env;
    let mut rs = a.engine;
    rs.dry_run = a.dry_run;
    rs.yes = a.yes;
    rs.args = a.args;
    let dir = a.file.parent().map(|d| if d.as_os_str().is_empty() { PathBuf::from(".") } else { d.to_path_buf() });
    let rt = tokio::runtime::Handle::current();
    // Compile and lint before touching any fleet.
    let checker = engine::build(host(rt.clone(), None, reporter.clone(), interrupt.clone(), rs.clone()), dir.clone());
    let (ast, source) = compile(&checker, &a.file, &settings.ddl)?;
    let shown = a.file.display().to_string();
    let sha256 = crate::journal::sha256_hex(source.as_bytes());
    // Resuming: the run's journal is read first (its --arg values, its runbook's digest).
    let mut resumed = None;
    if let Some(o) = &a.resume {
        let env = env_out.insert(FleetEnv::open(settings.clone()).await?);
        let record = super::resume::load(&env.fleet, o, "run").await?;
        rs.args = super::resume::merge_args(&record, std::mem::take(&mut rs.args), o.flags.force)?;
        match record.check_runbook(&shown, &sha256, o.flags.force) {
            Ok(Some(warning)) => reporter.say(&warning),
            Ok(None) => {}
            Err(reason) => return Err(Error::Guardrail { reason }),
        }
        resumed = Some(crate::journal::replay::Replay::new(record, o.flags.clone()));
    }
    let dirs: Vec<PathBuf> = dir.iter().chain(rs.lib_dirs.iter()).cloned().collect();
    check_args(&engine::args::collect(&checker, &ast, &shown, &dirs), &rs.args, &shown, reporter)?;
    let (user, host_name) = crate::journal::who();
    // Resuming: the next attempt is claimed last, once everything else checked out.
    let attempt = match (&resumed, env_out.as_ref()) {
        (Some(r), Some(env)) => super::resume::claim(&env.fleet, &r.record).await?,
        _ => 1,
    };
    let start = RunEvent::RunStart {
        run_id: run_id.to_string(),
        command: "run".into(),
        runbook: shown.clone(),
        sha256: Some(sha256),
        dry_run: rs.dry_run,
        args: crate::redact::mask_args(&rs.args),
        user,
        host: host_name,
        attempt,
    };
    reporter.emit(start.clone());
    out.started = true;
    let env_out = &mut out.env;
    if env_out.is_none() {
        *env_out = Some(FleetEnv::open(settings).await?);
    }
    let Some(env) = env_out.as_mut() else { return Err(Error::Internal { message: "no fleet".into() }) };
    if let Some(o) = &a.journal {
        let journal =
            Journal::open(&env.fleet, run_id.clone(), attempt, o).await.map_err(crate::journal::open_error)?;
        journal.event(&start);
        reporter.add(Arc::new(journal));
    }
    if let Some(url) = env.sim.as_ref().and_then(|s| s.metrics_url()) {
        rs.arg_defaults.insert("metrics_url".into(), url);
    }
    let h = host(rt, Some(env.fleet.clone()), reporter.clone(), interrupt, rs);
    if let Some(replay) = resumed {
        h.resume(replay);
    }
    let h2 = h.clone();
    let script_source = source.clone();
    // The error is rendered (and dropped) on the script thread: a thrown value may nest deeply.
    let outcome = engine::thread::on_script_thread(move || {
        let engine = engine::build(h2, dir);
        engine.run_ast(&ast).map_err(|e| diag::explained(&e, &engine, Some(&ast), &script_source))
    })
    .await
    .map_err(|e| Error::Runbook { rendered: format!("error: the runbook thread failed: {e}") })?;
    // Run-wide governor leases go back now; one not given back ages out.
    let leases = std::mem::take(&mut *crate::lock(&h.leases));
    for l in leases {
        let (name, seq) = (l.governor().to_string(), l.seq());
        let _ = l.release().await;
        use crate::fleet::governor::{announce_runbook, GovernorEvent};
        announce_runbook(&env.fleet, &name, seq, GovernorEvent::Exit).await;
    }
    let totals = h.totals();
    out.totals = totals;
    match (outcome, h.lost(), h.stopped()) {
        (_, Some(reason), _) => Err(Error::BrokerLost { reason }),
        (_, None, Some(reason)) => Err(Error::Guardrail { reason }),
        (Err((msg, pos)), None, None) => Err(Error::Runbook { rendered: diag::render(&shown, &source, pos, &msg) }),
        (Ok(()), None, None) if totals.failed + totals.no_reply + totals.unknown > 0 => Err(Error::NodesFailed {
            failed: totals.failed + totals.no_reply + totals.unknown,
            total: totals.ok + totals.failed + totals.no_reply + totals.unknown,
        }),
        (Ok(()), None, None) => Ok(()),
    }
}

/// How a run's outcome reads in `run_end`: the status, the reason, the exit code.
pub(crate) fn run_status(result: &Result<(), Error>) -> (RunStatus, Option<String>, i32) {
    let (status, reason) = match result {
        Ok(()) => (RunStatus::Ok, None),
        Err(Error::Guardrail { reason }) => (RunStatus::Stopped, Some(reason.clone())),
        Err(Error::NodesFailed { .. }) => (RunStatus::Failed, None),
        Err(Error::BrokerLost { reason }) => (RunStatus::BrokerLost, Some(reason.clone())),
        Err(e) if e.exit_code() == crate::error::exit::UNREACHABLE => (RunStatus::Unreachable, Some(e.to_string())),
        Err(e) => (RunStatus::Error, Some(e.to_string())),
    };
    (status, reason, result.as_ref().err().map_or(0, Error::exit_code))
}

/// Refuses `--arg` names the runbook never reads (a misspelling would silently fall back to a
/// default, e.g. no class filter: every node). When the names cannot be known statically, says
/// so and goes on.
pub(crate) fn check_args(
    used: &engine::args::ArgUse,
    given: &BTreeMap<String, String>,
    runbook: &str,
    reporter: &Reporter,
) -> Result<(), Error> {
    if given.is_empty() {
        return Ok(());
    }
    if let Some(why) = &used.unknown {
        reporter.say(&format!("warning: --arg names are not checked: {why}"));
        return Ok(());
    }
    let unread = used.unread(given.keys());
    if unread.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = unread.iter().map(|n| format!("--arg {n}")).collect();
    let reads = if used.names.is_empty() {
        "it reads no arguments".to_string()
    } else {
        format!("it reads: {}", used.names.iter().cloned().collect::<Vec<_>>().join(", "))
    };
    Err(Error::Usage { message: format!("{} not read by {runbook}; {reads}", names.join(", ")) })
}
