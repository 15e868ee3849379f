//! The built-in commands, thin layers over the fleet API. Each turns its clap arguments into
//! its own validated options (`from_cli`, with the shared flags in `options`), then runs
//! them; nothing below this module sees a clap type.

pub(crate) mod check;
mod completions;
pub(crate) mod discover;
pub(crate) mod election;
pub(crate) mod events;
pub(crate) mod governor;
mod governor_run;
pub(crate) mod inventory;
pub(crate) mod inventory_all;
mod man;
pub(crate) mod metrics;
pub(crate) mod options;
pub(crate) mod repl;
pub(crate) mod req;
mod req_options;
mod req_output;
mod req_report;
mod resume;
pub(crate) mod run;
pub(crate) mod runs;
pub(crate) mod sim;
pub(crate) mod sources;

use crate::cli::{Cli, Command, ElectionCommand};
use crate::error::Error;
use crate::interrupt::Interrupt;

/// Runs a parsed command line; `interrupt` counts Ctrl-C presses. The connection settings
/// are resolved first, then the command's own flags are checked, then it runs.
pub async fn run(cli: Cli, interrupt: Interrupt) -> Result<(), Error> {
    let Cli { connect, sim: sim_args, command } = cli;
    let settings = || options::settings(&connect, &sim_args);
    match command {
        Command::Run(args) => {
            let settings = settings()?;
            let a = run::RunOptions::from_cli(args, &settings)?;
            run::run(settings, a, interrupt).await
        }
        Command::Events { component, kind, json, count, timeout } => {
            let settings = settings()?;
            let a = events::EventsOptions::from_cli(component, kind, json, count, timeout.as_deref())?;
            // Watching changes nothing: the first Ctrl-C ends it.
            // No batches here: the first Ctrl-C simply stops.
            interrupt.first_press_means(Some("stopping"));
            events::run(settings, a, &interrupt.soft()).await
        }
        Command::Metrics { url, json, timeout } => {
            let a = metrics::MetricsOptions::from_cli(url, json, &timeout, connect.sim.is_some())?;
            let settings = if a.needs_sim() { Some(settings()?) } else { None };
            metrics::run(a, settings).await
        }
        Command::Completions { shell } => completions::run(shell),
        Command::Man { dir } => man::run(dir.as_deref()),
        Command::Election(ElectionCommand::View { name, bucket }) => {
            let settings = settings()?;
            election::view(settings, election::ViewOptions::from_cli(name.as_deref(), bucket)?).await
        }
        Command::Election(ElectionCommand::Evict { name, bucket, force, expect_leader }) => {
            let settings = settings()?;
            let a = election::EvictOptions::from_cli(name, bucket, force, expect_leader)?;
            election::evict(settings, a, &interrupt).await
        }
        Command::Governor(c) => {
            let settings = settings()?;
            governor::run(settings, governor::GovernorOptions::from_cli(c)?, &interrupt).await
        }
        Command::Repl { yes, engine } => {
            let settings = settings()?;
            let a = repl::ReplOptions::from_cli(yes, &engine, &settings);
            repl::run(settings, a, interrupt).await
        }
        Command::Check { files, args, json, engine } => {
            check::run(check::CheckOptions::from_cli(files, &args, json, &engine, &connect.ddl_dirs)?).await
        }
        // Serving changes nothing: the first Ctrl-C stops it.
        Command::Sim { nodes, from_inventory, threads: _ } => {
            // No batches here: the first Ctrl-C simply stops.
            interrupt.first_press_means(Some("stopping"));
            // `fleetbook --sim-from FILE sim` means `sim --from-inventory FILE`.
            let from = from_inventory.as_deref().or(connect.sim_from.as_deref());
            let a = sim::ServeOptions::from_cli(nodes, from, &connect, &sim_args)?;
            sim::run(a, &interrupt.soft()).await
        }
        Command::Discover { mut filter, json } => {
            let settings = settings()?;
            filter.config_defaults = settings.client.discovery_defaults.clone();
            // No batches here: the first Ctrl-C simply stops.
            interrupt.first_press_means(Some("stopping"));
            discover::run(settings, discover::DiscoverOptions::from_cli(&filter, json)?, &interrupt.soft()).await
        }
        Command::Req(mut args) => {
            let settings = settings()?;
            args.filter.config_defaults = settings.client.discovery_defaults.clone();
            args.filter.broadcast_request = args.broadcast;
            // A bad token file is refused before `req` takes over: only what `req` refuses
            // itself is reported in its `--json` object.
            let token = options::provision_token(args.token_file.as_deref(), &args.inputs, &settings)?;
            req::run(settings, *args, token, &interrupt).await
        }
        Command::Runs { show, json, limit } => {
            let settings = settings()?;
            runs::run(settings, runs::RunsOptions::from_cli(show, json, limit)?).await
        }
        // clap keeps IDENTITY, --json and --no-facts away from --all.
        Command::Inventory { all: true, out: Some(out), batch, mut filter, .. } => {
            let settings = settings()?;
            filter.config_defaults = settings.client.discovery_defaults.clone();
            let a = inventory_all::InventoryAllOptions::from_cli(&filter, out, batch)?;
            // Asking changes nothing: the first Ctrl-C stops, and nothing is written.
            interrupt.first_press_means(Some("stopping"));
            inventory_all::run(settings, a, &interrupt.soft()).await
        }
        Command::Inventory { identity, json, no_facts, filter, .. } => {
            let settings = settings()?;
            let a = inventory::InventoryOptions::from_cli(identity, &filter, json, no_facts)?;
            // No batches here: the first Ctrl-C simply stops.
            interrupt.first_press_means(Some("stopping"));
            inventory::run(settings, a, &interrupt.soft()).await
        }
    }
}
