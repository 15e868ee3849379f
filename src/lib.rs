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
//! | [`redact`] | secrets and the scrubber |
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
use config::Settings;
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

/// Parses `name=value` runbook arguments.
fn parse_args(args: &[String]) -> Result<std::collections::BTreeMap<String, String>, Error> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(Error::Usage { message: format!("--arg {a}: expected NAME=VALUE") }),
        })
        .collect()
}

/// Runs a parsed command line; `interrupt` counts Ctrl-C presses.
pub async fn run(cli: Cli, interrupt: interrupt::Interrupt) -> Result<(), Error> {
    let cancel = interrupt.hard();
    match &cli.command {
        Command::Run { file, args, dry_run, yes, output, engine } => {
            let settings = Settings::resolve(&cli.connect, &cli.sim)?;
            let mut rs = run_settings(engine);
            if let Some(sim) = &settings.sim {
                rs.secret_defaults.insert(PROVISION_TOKEN_ENV.into(), sim.token.clone());
            }
            let a = commands::run::RunArgs {
                file: file.clone(),
                args: parse_args(args)?,
                dry_run: *dry_run,
                yes: *yes,
                json: output == "json",
                settings: rs,
            };
            commands::run::run(settings, a, interrupt).await
        }
        Command::Events { component, kind, json, count, timeout } => {
            let settings = Settings::resolve(&cli.connect, &cli.sim)?;
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
            let settings = Settings::resolve(&cli.connect, &cli.sim)?;
            commands::election::view(settings, name.as_deref(), bucket).await
        }
        Command::Election(cli::ElectionCommand::Evict { name, bucket, force, expect_leader }) => {
            let settings = Settings::resolve(&cli.connect, &cli.sim)?;
            commands::election::evict(settings, name, bucket, *force, expect_leader.as_deref()).await
        }
        Command::Repl { yes, engine } => {
            let settings = Settings::resolve(&cli.connect, &cli.sim)?;
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
        Command::Sim { nodes } => commands::sim::run(*nodes, &cli.connect, &cli.sim, &cancel).await,
        Command::Discover { filter, json } => {
            let settings = Settings::resolve(&cli.connect, &cli.sim)?;
            commands::discover::run(settings, filter, *json, &cancel).await
        }
        Command::Req { agent, action, inputs, filter, batch, batch_sleep, broadcast, json } => {
            let settings = Settings::resolve(&cli.connect, &cli.sim)?;
            let args = commands::req::ReqArgs {
                agent,
                action,
                inputs,
                filter,
                batch: *batch,
                batch_sleep: *batch_sleep,
                broadcast: *broadcast,
                json: *json,
            };
            commands::req::run(settings, args, &cancel).await
        }
        Command::Inventory { identity, target, json } => {
            let settings = Settings::resolve(&cli.connect, &cli.sim)?;
            commands::inventory::run(settings, identity, target.as_deref(), *json, &cancel).await
        }
    }
}
