//! `fleetbook discover`: list matching nodes.

use std::io::Write;

use tokio_util::sync::CancellationToken;

use crate::cli::FilterArgs;
use crate::config::Settings;
use crate::env::FleetEnv;
use crate::error::Error;

/// Runs discovery and prints one identity per line, or a JSON array.
pub async fn run(settings: Settings, filter: &FilterArgs, json: bool, cancel: &CancellationToken) -> Result<(), Error> {
    let mut opts = super::options::discovery(filter)?;
    // `choria discover` looks for nodes running rpcutil.
    opts.rpc_agent = Some("rpcutil".into());
    let env = FleetEnv::open(settings).await?;
    let found = env.fleet.discover_until(&opts, cancel).await?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&found.nodes).unwrap_or_default())?;
    } else {
        // Identities come from the network: control characters are shown escaped.
        for n in &found.nodes {
            writeln!(out, "{}", crate::redact::printable(n))?;
        }
        eprintln!("\nDiscovered {} node(s)", found.nodes.len());
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
