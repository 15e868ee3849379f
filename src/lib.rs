//! fleetbook: fleet runbooks for Choria over NATS.
//!
//! | module | what it holds |
//! |---|---|
//! | [`cli`] | clap types only |
//! | [`config`] | command line → validated [`config::Settings`] |
//! | [`error`] | the top-level error and the exit codes |
//! | [`fleet`] | Choria over NATS: protocol v1/v2, filters, DDLs, discovery, RPC |
//! | [`lifecycle`] | lifecycle events as servers publish them |
//! | [`sim`] | the simulated fleet and the embedded `nats-server` |
//! | [`env`] | connects a command to a real or simulated fleet |
//! | [`commands`] | the built-in commands |

pub mod cli;
pub mod commands;
pub mod config;
pub mod env;
pub mod error;
pub mod fleet;
pub mod lifecycle;
pub mod sim;

use tokio_util::sync::CancellationToken;

use cli::{Cli, Command};
use config::Settings;
use error::Error;

/// Runs a parsed command line. Ctrl-C cancels `cancel`.
pub async fn run(cli: Cli, cancel: CancellationToken) -> Result<(), Error> {
    match &cli.command {
        Command::Sim { nodes } => commands::sim::run(*nodes, &cli.connect.servers, &cli.sim, &cancel).await,
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
