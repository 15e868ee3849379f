//! `fleetbook discover`: list matching nodes.

use std::io::Write;

use tokio_util::sync::CancellationToken;

use crate::cli::FilterArgs;
use crate::config::Settings;
use crate::env::FleetEnv;
use crate::error::Error;
use crate::fleet::discovery::{discover_local, DiscoveryOptions};

/// What `discover` was asked for, validated.
pub(crate) struct DiscoverOptions {
    discovery: DiscoveryOptions,
    /// Print a JSON array.
    json: bool,
}

impl DiscoverOptions {
    /// Checks the filter flags.
    pub(crate) fn from_cli(filter: &FilterArgs, json: bool) -> Result<DiscoverOptions, Error> {
        let mut discovery = super::options::discovery(filter)?;
        // `choria discover` looks for nodes running rpcutil.
        discovery.rpc_agent = Some("rpcutil".into());
        Ok(DiscoverOptions { discovery, json })
    }
}

/// Runs discovery and prints one identity per line, or a JSON array.
pub(crate) async fn run(settings: Settings, a: DiscoverOptions, cancel: &CancellationToken) -> Result<(), Error> {
    let DiscoverOptions { discovery, json } = a;
    // A node list or an inventory file needs no broker.
    let found = match discover_local(&discovery, &settings.client) {
        Some(found) => found?,
        None => FleetEnv::open(settings).await?.fleet.discover_until(&discovery, cancel).await?,
    };
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&found.nodes).unwrap_or_default())?;
    } else {
        // Identities come from the network: control characters are shown escaped.
        for n in &found.nodes {
            writeln!(out, "{}", crate::redact::printable(n))?;
        }
        match found.before_limit {
            Some(all) => eprintln!("\nDiscovered {all} node(s), limited to {}", found.nodes.len()),
            None => eprintln!("\nDiscovered {} node(s)", found.nodes.len()),
        }
    }
    if found.malformed > 0 {
        eprintln!("warning: {} discovery repl(ies) named no sender and were ignored", found.malformed);
    }
    if found.interrupted {
        return Err(Error::Guardrail {
            reason: format!(
                "interrupted (Ctrl-C): the list holds the {} node(s) that answered so far",
                found.nodes.len()
            ),
        });
    }
    Ok(())
}
