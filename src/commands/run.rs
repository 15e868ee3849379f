//! `fleetbook run FILE`: compile, lint, connect, run the runbook on a script thread.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;

use crate::config::Settings;
use crate::engine::{self, diag, Host, RunSettings, TerminalPrompter};
use crate::env::FleetEnv;
use crate::error::Error;
use crate::interrupt::Interrupt;
use crate::progress::Reporter;
use crate::redact::Redactor;

/// What `run` was asked to do.
pub struct RunArgs {
    pub file: PathBuf,
    pub args: BTreeMap<String, String>,
    pub dry_run: bool,
    pub yes: bool,
    pub json: bool,
    pub settings: RunSettings,
}

/// Reads and compiles a runbook, then lints it against the DDLs. Errors come rendered.
pub fn compile(
    engine: &rhai::Engine,
    file: &Path,
    ddl: &crate::fleet::ddl::DdlRegistry,
) -> Result<(rhai::AST, String), Error> {
    let shown = file.display().to_string();
    let source = std::fs::read_to_string(file)
        .map_err(|e| Error::Usage { message: format!("cannot read runbook {shown}: {e}") })?;
    let script = engine::strip_shebang(&source);
    let mut ast = engine.compile(&script).map_err(|e| Error::Runbook {
        rendered: diag::render(&shown, &source, e.position(), &e.err_type().to_string()),
    })?;
    ast.set_source(shown.clone());
    let findings = engine::lint::lint(&ast, ddl);
    if !findings.is_empty() {
        let rendered: Vec<String> = findings.iter().map(|f| diag::render(&shown, &source, f.pos, &f.message)).collect();
        return Err(Error::Runbook { rendered: rendered.join("\n\n") });
    }
    Ok((ast, source))
}

fn host(
    rt: tokio::runtime::Handle,
    fleet: Option<crate::fleet::Fleet>,
    reporter: Reporter,
    interrupt: Interrupt,
    settings: RunSettings,
) -> Arc<Host> {
    Host::new(rt, fleet, reporter, interrupt, settings, Box::new(TerminalPrompter))
}

/// Runs a runbook and maps its outcome to an exit code through `Error`.
pub async fn run(settings: Settings, a: RunArgs, interrupt: Interrupt) -> Result<(), Error> {
    let redact = Redactor::default();
    let reporter = Reporter::for_terminal(a.json, redact.clone());
    let mut rs = a.settings;
    rs.dry_run = a.dry_run;
    rs.yes = a.yes;
    rs.args = a.args;
    let dir = a.file.parent().map(|d| if d.as_os_str().is_empty() { PathBuf::from(".") } else { d.to_path_buf() });
    let rt = tokio::runtime::Handle::current();
    // Compile and lint before touching any fleet.
    let checker = engine::build(host(rt.clone(), None, reporter.clone(), interrupt.clone(), rs.clone()), dir.clone());
    let (ast, source) = compile(&checker, &a.file, &settings.ddl)?;
    let shown = a.file.display().to_string();
    reporter.emit("run_start", json!({"runbook": shown, "dry_run": rs.dry_run, "args": rs.args}));
    let env = FleetEnv::open(settings).await?;
    if let Some(url) = env.sim.as_ref().and_then(|s| s.metrics_url()) {
        rs.arg_defaults.insert("metrics_url".into(), url);
    }
    let h = host(rt, Some(env.fleet.clone()), reporter.clone(), interrupt, rs);
    let h2 = h.clone();
    // The error is rendered (and dropped) on the script thread: a thrown value may nest deeply.
    let outcome = engine::thread::on_script_thread(move || {
        let engine = engine::build(h2, dir);
        engine.run_ast(&ast).map_err(|e| diag::runtime_parts(&e))
    })
    .await
    .map_err(|e| Error::Runbook { rendered: format!("error: the runbook thread failed: {e}") })?;
    let totals = h.totals();
    let result = match (outcome, h.stopped()) {
        (_, Some(reason)) => Err(Error::Guardrail { reason: redact.scrub(&reason) }),
        (Err((msg, pos)), None) => {
            Err(Error::Runbook { rendered: redact.scrub(&diag::render(&shown, &source, pos, &msg)) })
        }
        (Ok(()), None) if totals.failed + totals.no_reply > 0 => Err(Error::NodesFailed {
            failed: totals.failed + totals.no_reply,
            total: totals.ok + totals.failed + totals.no_reply,
        }),
        (Ok(()), None) => Ok(()),
    };
    let (status, code, reason) = match &result {
        Ok(()) => ("ok", 0, None),
        Err(e @ Error::Guardrail { reason }) => ("stopped", e.exit_code(), Some(reason.clone())),
        Err(e @ Error::NodesFailed { .. }) => ("failed", e.exit_code(), None),
        Err(e) => ("error", e.exit_code(), Some(redact.scrub(&e.to_string()))),
    };
    reporter.emit(
        "run_end",
        json!({"status": status, "exit_code": code, "reason": reason, "ok": totals.ok, "failed": totals.failed, "no_reply": totals.no_reply}),
    );
    drop(env);
    result
}
