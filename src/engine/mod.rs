//! The Rhai engine: safety limits, the runbook API, module imports, and the bridge from the
//! synchronous script thread into the async fleet client (`Handle::block_on`).

pub mod api;
pub mod args;
pub mod convert;
pub mod diag;
pub mod election_api;
pub mod lint;
pub mod metrics_api;
pub mod rollout;
pub mod thread;
pub mod watch;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rhai::module_resolvers::{FileModuleResolver, ModuleResolversCollection};
use rhai::{Dynamic, Engine, EvalAltResult, Position};

use crate::fleet::Fleet;
use crate::interrupt::Interrupt;
use crate::progress::Reporter;

/// Limits that keep a runbook from running away.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_operations: u64,
    pub max_call_levels: usize,
    pub max_string_size: usize,
    pub max_array_size: usize,
    pub max_map_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 50_000_000,
            max_call_levels: 64,
            max_string_size: 4 << 20,
            max_array_size: 1_000_000,
            max_map_size: 1_000_000,
        }
    }
}

/// How a run was asked to behave.
#[derive(Debug, Clone, Default)]
pub struct RunSettings {
    pub dry_run: bool,
    /// `--yes`: confirmations are given.
    pub yes: bool,
    /// `--arg k=v` values.
    pub args: BTreeMap<String, String>,
    pub limits: Limits,
    /// Directories `import` looks in after the runbook's own.
    pub lib_dirs: Vec<PathBuf>,
    /// Values `secret(NAME)` falls back to when the environment has none: `--sim` puts the
    /// simulated fleet's provisioning token under `FLEETBOOK_PROVISION_TOKEN`.
    pub secret_defaults: BTreeMap<String, String>,
    /// Defaults `arg(name, ...)` uses when `--arg` does not give one: `--sim` announces the
    /// simulated Provisioner's `metrics_url` this way.
    pub arg_defaults: BTreeMap<String, String>,
    /// The REPL: every mutating call asks first (shutdown even with --yes).
    pub confirm_mutations: bool,
}

/// Node counts over a whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub ok: usize,
    pub failed: usize,
    pub no_reply: usize,
    /// Sent, but whether they acted is not known (Ctrl-C, a broken connection).
    pub unknown: usize,
    pub rpc_calls: usize,
}

pub use crate::prompt::{ask_yes_no, is_yes, Answer, Prompter, TerminalPrompter};

/// Everything the runbook API reaches: the fleet, the display, the settings and the
/// run's state. Shared by every registered function.
pub struct Host {
    pub rt: tokio::runtime::Handle,
    pub fleet: Option<Fleet>,
    pub reporter: Reporter,
    pub interrupt: Interrupt,
    pub settings: RunSettings,
    pub prompter: Box<dyn Prompter>,
    /// Set when a guardrail stopped the run; the reason.
    pub stop: Mutex<Option<String>>,
    /// Set when the broker was lost; the reason.
    pub lost: Mutex<Option<String>>,
    pub totals: Mutex<Totals>,
    /// Identities of the latest discovery (the REPL completes them).
    pub last_nodes: Mutex<Vec<String>>,
}

impl Host {
    /// A host with a fresh run state (no stop, zero totals, no discovery yet).
    pub fn new(
        rt: tokio::runtime::Handle,
        fleet: Option<Fleet>,
        reporter: Reporter,
        interrupt: Interrupt,
        settings: RunSettings,
        prompter: Box<dyn Prompter>,
    ) -> Arc<Host> {
        Arc::new(Host {
            rt,
            fleet,
            reporter,
            interrupt,
            settings,
            prompter,
            stop: Mutex::new(None),
            lost: Mutex::new(None),
            totals: Mutex::new(Totals::default()),
            last_nodes: Mutex::new(Vec::new()),
        })
    }

    /// The fleet, or an error for runs that have none (lint-only).
    pub fn fleet(&self) -> Result<&Fleet, Box<EvalAltResult>> {
        self.fleet.as_ref().ok_or_else(|| runtime_error("invalid", "no fleet connected"))
    }

    /// Stops the run: an error no `try/catch` can swallow, with exit code 3.
    pub fn guardrail(&self, reason: impl Into<String>) -> Box<EvalAltResult> {
        let reason = reason.into();
        let mut stop = crate::lock(&self.stop);
        if stop.is_none() {
            *stop = Some(reason.clone());
        }
        EvalAltResult::ErrorTerminated(Dynamic::from(reason), Position::NONE).into()
    }

    /// Forgets a guardrail stop (the REPL goes on after one).
    pub fn clear_stop(&self) {
        *crate::lock(&self.stop) = None;
        *crate::lock(&self.lost) = None;
    }

    /// Ends the run because the broker is gone: like a guardrail, a script cannot catch it,
    /// and the run exits 4.
    pub fn broker_lost(&self, reason: impl Into<String>) -> Box<EvalAltResult> {
        let reason = reason.into();
        crate::lock(&self.lost).get_or_insert_with(|| reason.clone());
        EvalAltResult::ErrorTerminated(Dynamic::from(reason), Position::NONE).into()
    }

    /// Why the broker was lost, if it was.
    pub fn lost(&self) -> Option<String> {
        crate::lock(&self.lost).clone()
    }

    /// The guardrail reason, if one stopped the run.
    pub fn stopped(&self) -> Option<String> {
        crate::lock(&self.stop).clone()
    }

    /// Adds a batch's counts to the run totals.
    pub fn count(&self, ok: usize, failed: usize, no_reply: usize, unknown: usize) {
        let mut t = crate::lock(&self.totals);
        t.ok += ok;
        t.failed += failed;
        t.no_reply += no_reply;
        t.unknown += unknown;
    }

    /// Moves one node counted silent to ok or failed: its reply came after its batch's wait.
    pub fn answered_late(&self, ok: bool) {
        let mut t = crate::lock(&self.totals);
        t.no_reply = t.no_reply.saturating_sub(1);
        if ok {
            t.ok += 1;
        } else {
            t.failed += 1;
        }
    }

    /// Moves `n` nodes counted OK to failed (an awaited event never came).
    pub fn recount(&self, n: usize) {
        let mut t = crate::lock(&self.totals);
        t.ok = t.ok.saturating_sub(n);
        t.failed += n;
    }

    /// The totals so far.
    pub fn totals(&self) -> Totals {
        *crate::lock(&self.totals)
    }
}

/// A `#!` first line is for the shell and Rhai reserves the symbol: the line is blanked,
/// kept as a line so positions stay right.
pub fn strip_shebang(source: &str) -> String {
    match source.strip_prefix("#!") {
        Some(rest) => rest.find('\n').map(|i| rest[i..].to_string()).unwrap_or_default(),
        None => source.to_string(),
    }
}

/// A catchable runtime error carrying `#{kind, message}`, so scripts can branch on `kind`.
pub fn runtime_error(kind: &str, message: impl Into<String>) -> Box<EvalAltResult> {
    let mut m = rhai::Map::new();
    m.insert("kind".into(), Dynamic::from(kind.to_string()));
    m.insert("message".into(), Dynamic::from(message.into()));
    EvalAltResult::ErrorRuntime(Dynamic::from_map(m), Position::NONE).into()
}

/// Builds an engine with the safety settings and the API bound to `host`.
/// `runbook_dir` is where `import` looks first.
pub fn build(host: Arc<Host>, runbook_dir: Option<PathBuf>) -> Engine {
    let mut engine = Engine::new();
    let l = host.settings.limits;
    engine
        .set_strict_variables(true)
        .set_max_operations(l.max_operations)
        .set_max_call_levels(l.max_call_levels)
        .set_max_string_size(l.max_string_size)
        .set_max_array_size(l.max_array_size)
        .set_max_map_size(l.max_map_size)
        .set_max_expr_depths(128, 64)
        .set_max_modules(64);
    engine.disable_symbol("eval");
    let mut resolvers = ModuleResolversCollection::new();
    for dir in runbook_dir.iter().chain(host.settings.lib_dirs.iter()) {
        resolvers.push(FileModuleResolver::new_with_path(dir));
    }
    engine.set_module_resolver(resolvers);
    let r = host.reporter.clone();
    engine.on_print(move |s| r.say(s));
    let r = host.reporter.clone();
    engine.on_debug(move |s, src, pos| {
        r.say(&format!("[debug] {}{pos:?}: {s}", src.map(|s| format!("{s}:")).unwrap_or_default()))
    });
    let h = host.clone();
    engine.on_progress(move |_| {
        if h.interrupt.requested() {
            // Between script operations: the first Ctrl-C stops here.
            let _ = h.guardrail("interrupted (Ctrl-C)");
            Some(Dynamic::from("interrupted (Ctrl-C)"))
        } else {
            None
        }
    });
    metrics_api::register(&mut engine, host.clone());
    election_api::register(&mut engine, host.clone());
    api::register(&mut engine, host);
    engine
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_function_has_parameter_names_and_a_doc_comment() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let reporter = Reporter::new(false, false);
        let host = Host::new(
            rt.handle().clone(),
            None,
            reporter,
            Interrupt::new(),
            RunSettings::default(),
            Box::new(TerminalPrompter { interrupt: Interrupt::new() }),
        );
        let engine = build(host, None);
        let meta: serde_json::Value = serde_json::from_str(&engine.gen_fn_metadata_to_json(false).unwrap()).unwrap();
        let fns = meta["functions"].as_array().unwrap();
        for name in ["discover", "rpc_batch", "confirm", "abort", "dry_run", "arg", "secret"] {
            let found: Vec<&serde_json::Value> = fns.iter().filter(|f| f["name"] == name).collect();
            assert!(!found.is_empty(), "{name} is registered");
            for f in found {
                let comments = f["docComments"].as_array().map(Vec::len).unwrap_or(0);
                assert!(comments > 0, "{name} has a doc comment: {f}");
                if let Some(params) = f["params"].as_array() {
                    for p in params {
                        assert!(p["name"].is_string(), "{name} names its parameters: {f}");
                    }
                }
            }
        }
    }
}
