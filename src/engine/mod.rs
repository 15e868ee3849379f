//! The Rhai engine: safety limits, the runbook API, module imports, and the bridge from the
//! synchronous script thread into the async fleet client (`Handle::block_on`).
//!
//! - `host`: what every API function reaches ([`Host`], [`RunSettings`], [`Limits`], [`Totals`]).
//! - `api/`: the runbook functions, one file per topic, each registering its own.
//! - `options`: the one reader of the option maps those functions take.
//! - [`lint`]: `check`'s static checks, against the same option keys; [`args`]: the `--arg`
//!   names a runbook reads; [`diag`]: errors shown at their place in the source;
//!   [`convert`]: Rhai values to and from JSON; [`thread`]: the thread scripts run on.

mod api;
pub mod args;
pub mod convert;
pub mod diag;
mod explain;
mod host;
pub mod lint;
mod options;
pub mod thread;

use std::path::PathBuf;
use std::sync::Arc;

use rhai::module_resolvers::{FileModuleResolver, ModuleResolversCollection};
use rhai::{Dynamic, Engine};

pub use crate::prompt::{ask_yes_no, is_yes, Answer, Prompter, TerminalPrompter};
pub use host::{runtime_error, Host, Limits, RunSettings, Totals};

/// A `#!` first line is for the shell and Rhai reserves the symbol: the line is blanked,
/// kept as a line so positions stay right.
pub fn strip_shebang(source: &str) -> String {
    match source.strip_prefix("#!") {
        Some(rest) => rest.find('\n').map(|i| rest[i..].to_string()).unwrap_or_default(),
        None => source.to_string(),
    }
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
    api::metrics::register(&mut engine, &host);
    api::election::register(&mut engine, &host);
    api::discover::register(&mut engine, &host);
    api::rollout::register(&mut engine, &host);
    api::watch::register(&mut engine, &host);
    api::control::register(&mut engine, &host);
    api::governor::register(&mut engine, &host);
    api::inventory::register(&mut engine, &host);
    engine
}

/// fleetbook's own runbook functions: the test below holds each to parameter names and a doc
/// comment, and `check` judges their literal arguments against their forms.
pub(crate) const API: [&str; 20] = [
    "discover",
    "nodes_from",
    "rpc_batch",
    "watch_events",
    "event_watch",
    "confirm",
    "abort",
    "sleep",
    "dry_run",
    "arg",
    "secret",
    "metrics",
    "metric_value",
    "metric_sum",
    "metric_select",
    "election_leader",
    "election_info",
    "evict",
    "inventory",
    "governor",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interrupt::Interrupt;
    use crate::progress::Reporter;

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
        for name in API {
            assert!(fns.iter().any(|f| f["name"] == name), "{name} is registered");
        }
        // `to_string` and `to_debug` are Rhai's display hooks for `Secret`, not runbook API.
        for f in fns.iter().filter(|f| f["name"] != "to_string" && f["name"] != "to_debug") {
            let name = &f["name"];
            let comments = f["docComments"].as_array().map(Vec::len).unwrap_or(0);
            assert!(comments > 0, "{name} has a doc comment: {f}");
            for p in f["params"].as_array().into_iter().flatten() {
                assert!(p["name"].is_string(), "{name} names its parameters: {f}");
            }
        }
    }
}
