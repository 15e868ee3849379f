//! fleetbook: fleet runbooks for Choria over NATS.
//!
//! | module | what it holds |
//! |---|---|
//! | [`cli`] | clap types only |
//! | [`config`] | command line → validated [`config::Settings`] |
//! | [`error`] | the top-level error and the exit codes |
//! | [`engine`] | Rhai: the engine, the runbook API, rollouts, lint, diagnostics |
//! | [`guard`] | rollout policy: batch plans and thresholds (pure) |
//! | [`progress`] | bars, plain lines and JSONL events |
//! | [`redact`] | secrets that print as `[secret]`, and text made safe for a terminal |
//! | [`interrupt`] | two-level Ctrl-C |
//! | [`fleet`] | Choria over NATS: protocol v1/v2, filters, DDLs, discovery, RPC |
//! | [`lifecycle`] | lifecycle events as servers publish them |
//! | [`sim`] | the simulated fleet and the embedded `nats-server` |
//! | [`env`] | connects a command to a real or simulated fleet |
//! | [`commands`] | the built-in commands |

pub mod choria_conf;
pub mod cli;
pub mod commands;
pub mod config;
pub mod engine;
pub mod env;
pub mod error;
pub mod fleet;
pub mod guard;
pub mod interrupt;
pub mod lifecycle;
pub mod metrics;
pub mod progress;
pub mod redact;
pub mod repl;
pub mod sim;

/// Locks a mutex, carrying on past a panic elsewhere: a poisoned lock must not take the
/// simulator, the display or the runbook host down with it.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

use cli::{Cli, Command, EngineArgs};
use error::Error;

/// The environment variable the shipped runbooks read the provisioning token from.
pub const PROVISION_TOKEN_ENV: &str = "FLEETBOOK_PROVISION_TOKEN";

/// Engine settings from the command line and `FLEETBOOK_LIB`.
fn run_settings(e: &EngineArgs) -> engine::RunSettings {
    let mut s = engine::RunSettings::default();
    if let Some(n) = e.max_operations {
        s.limits.max_operations = n;
    }
    s.lib_dirs = e.lib.clone();
    if let Some(env) = std::env::var_os("FLEETBOOK_LIB") {
        s.lib_dirs.extend(std::env::split_paths(&env));
    }
    s
}

/// Parses `name=value` runbook arguments; a name is letters, digits, `_`, `-` and `.`.
fn parse_args(args: &[String]) -> Result<std::collections::BTreeMap<String, String>, Error> {
    let mut out = std::collections::BTreeMap::new();
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

/// Reads a provisioning token from a file: the first line, trimmed. The error names the
/// file, never its content.
fn read_token_file(path: &std::path::Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage { message: format!("--token-file {}: {e}", path.display()) })?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        return Err(Error::Usage { message: format!("--token-file {}: the file is empty", path.display()) });
    }
    Ok(token)
}

/// Runs a parsed command line; `interrupt` counts Ctrl-C presses.
pub async fn run(cli: Cli, interrupt: interrupt::Interrupt) -> Result<(), Error> {
    match &cli.command {
        Command::Run { file, args, dry_run, yes, output, engine } => {
            let settings = commands::options::settings(&cli.connect, &cli.sim)?;
            let mut rs = run_settings(engine);
            if let Some(sim) = &settings.sim {
                rs.secret_defaults.insert(PROVISION_TOKEN_ENV.into(), sim.token.clone());
            }
            let a = commands::run::RunArgs {
                file: file.clone(),
                args: parse_args(args)?,
                dry_run: *dry_run,
                yes: *yes,
                json: *output == cli::OutputFormat::Json,
                settings: rs,
            };
            commands::run::run(settings, a, interrupt).await
        }
        Command::Events { component, kind, json, count, timeout } => {
            let settings = commands::options::settings(&cli.connect, &cli.sim)?;
            let timeout = timeout
                .as_deref()
                .map(config::parse_duration)
                .transpose()
                .map_err(|e| Error::Usage { message: format!("--timeout: {e}") })?;
            let filter = fleet::events::EventFilter {
                types: kind.iter().cloned().collect(),
                component: component.clone(),
                identities: Vec::new(),
            };
            let a = commands::events::EventsArgs { filter, json: *json, count: *count, timeout };
            // Watching changes nothing: the first Ctrl-C ends it.
            commands::events::run(settings, a, &interrupt.soft()).await
        }
        Command::Metrics { url, json, timeout } => {
            let t = config::parse_duration(timeout).map_err(|e| Error::Usage { message: format!("--timeout: {e}") })?;
            commands::metrics::run(url, *json, t).await
        }
        Command::Election(cli::ElectionCommand::View { name, bucket }) => {
            let settings = commands::options::settings(&cli.connect, &cli.sim)?;
            commands::election::view(settings, name.as_deref(), bucket).await
        }
        Command::Election(cli::ElectionCommand::Evict { name, bucket, force, expect_leader }) => {
            let settings = commands::options::settings(&cli.connect, &cli.sim)?;
            commands::election::evict(settings, name, bucket, *force, expect_leader.as_deref(), &interrupt).await
        }
        Command::Repl { yes, engine } => {
            let settings = commands::options::settings(&cli.connect, &cli.sim)?;
            let mut rs = run_settings(engine);
            rs.yes = *yes;
            if let Some(sim) = &settings.sim {
                rs.secret_defaults.insert(PROVISION_TOKEN_ENV.into(), sim.token.clone());
            }
            commands::repl::run(settings, rs, interrupt).await
        }
        Command::Check { files, engine } => {
            let mut ddl = fleet::ddl::DdlRegistry::builtin();
            for dir in &cli.connect.ddl_dirs {
                ddl.load_dir(dir)?;
            }
            commands::check::run(files, &ddl, run_settings(engine)).await
        }
        // Serving changes nothing: the first Ctrl-C stops it.
        Command::Sim { nodes } => commands::sim::run(*nodes, &cli.connect, &cli.sim, &interrupt.soft()).await,
        Command::Discover { filter, json } => {
            let settings = commands::options::settings(&cli.connect, &cli.sim)?;
            commands::discover::run(settings, filter, *json, &interrupt.soft()).await
        }
        Command::Req {
            agent,
            action,
            inputs,
            filter,
            batch,
            batch_sleep,
            broadcast,
            json,
            yes,
            dry_run,
            token_file,
        } => {
            let settings = commands::options::settings(&cli.connect, &cli.sim)?;
            if token_file.is_some() && inputs.iter().any(|i| i.starts_with("token=")) {
                return Err(Error::Usage {
                    message: "the token is given twice (token= and --token-file); give it once".into(),
                });
            }
            let default_token = match token_file {
                Some(path) => Some(read_token_file(path)?),
                None => std::env::var(PROVISION_TOKEN_ENV)
                    .ok()
                    .filter(|t| !t.is_empty())
                    .or_else(|| settings.sim.as_ref().map(|s| s.token.clone())),
            };
            let args = commands::req::ReqArgs {
                agent,
                action,
                inputs,
                filter,
                batch: *batch,
                batch_sleep: *batch_sleep,
                broadcast: *broadcast,
                json: *json,
                yes: *yes,
                dry_run: *dry_run,
                default_token,
            };
            commands::req::run(settings, args, &interrupt).await
        }
        Command::Inventory { identity, target, json } => {
            let settings = commands::options::settings(&cli.connect, &cli.sim)?;
            commands::inventory::run(settings, identity, target.as_deref(), *json, &interrupt.soft()).await
        }
    }
}
