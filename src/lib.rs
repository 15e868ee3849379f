//! fleetbook: fleet runbooks for Choria over NATS.
//!
//! The way in: `main` parses the command line into [`cli`] types and hands them to
//! [`commands::run`]; each command turns its flags into its own validated options (the
//! connection ones through [`config`]) and runs them against a [`fleet`], real or simulated.
//!
//! | module | what it holds |
//! |---|---|
//! | [`cli`] | clap types only; nothing outside [`commands`] reads them |
//! | [`commands`] | the dispatcher and the built-in commands: clap arguments → validated options → run |
//! | [`config`] | connection and simulator options (plain values) + Choria client config → [`config::Settings`] |
//! | [`choria_conf`] | the Choria client configuration file |
//! | [`env`](mod@env) | connects a command to a real or simulated fleet |
//! | [`engine`] | Rhai: the engine, the runbook API, rollouts, lint, diagnostics |
//! | [`repl`] | the REPL session: one scope, multi-line input, completion, history |
//! | [`rollout`] | the one rollout driver (`req`, `rpc_batch`) and its pure policy |
//! | [`progress`] | typed run events and their sinks: bars, plain lines, JSONL; the node table |
//! | [`prompt`] | yes/no questions on the terminal |
//! | [`journal`] | the run journal in JetStream: run ids, write-ahead batches, `runs` |
//! | [`fleet`] | Choria over NATS: protocol v1/v2, filters, DDLs, discovery, RPC |
//! | [`lifecycle`] | lifecycle events as servers publish them |
//! | [`metrics`] | Prometheus text format: parse and scrape |
//! | [`sim`] | the simulated fleet and the embedded `nats-server` |
//! | [`redact`] | secrets that print as `[secret]`, and text made safe for a terminal |
//! | [`interrupt`] | two-level Ctrl-C |
//! | `json` | hand-written JSON reading and escaping for the hot paths (serde is the reference) |
//! | [`memory`] | process memory settings (no transparent huge pages) |
//! | [`error`] | the top-level error and the exit codes |

pub mod blocking;
pub mod choria_conf;
pub mod cli;
pub mod commands;
pub mod config;
pub mod engine;
pub mod env;
pub mod error;
pub mod fleet;
pub mod interrupt;
pub mod journal;
pub(crate) mod json;
pub mod lifecycle;
pub mod memory;
pub mod metrics;
pub mod progress;
pub mod prompt;
pub mod redact;
pub mod repl;
pub mod rollout;
pub mod sim;

/// Locks a mutex, carrying on past a panic elsewhere: a poisoned lock must not take the
/// simulator, the display or the runbook host down with it.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
