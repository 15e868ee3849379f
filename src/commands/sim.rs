//! `fleetbook sim`: serve a simulated fleet on a broker until interrupted.

use tokio_util::sync::CancellationToken;

use crate::cli::{ConnectArgs, SimArgs};
use std::path::Path;

use crate::config::{sim_config, twin_config};
use crate::error::Error;
use crate::sim::broker::EmbeddedBroker;
use crate::sim::{SimConfig, Simulator, STATS_SUBJECT};

/// What `sim` was asked to serve, validated.
pub(crate) struct ServeOptions {
    cfg: SimConfig,
    /// The broker to serve on; `None`: an embedded one.
    server: Option<String>,
}

impl ServeOptions {
    /// Checks `--nodes` (or reads `--from-inventory`) and the `--sim-*` flags. The fleet
    /// serves the `--collective` given (else `mcollective`, or for a twin the collective most
    /// of its nodes serve) on the first `--server`.
    pub(crate) fn from_cli(
        nodes: usize,
        from_inventory: Option<&Path>,
        connect: &ConnectArgs,
        args: &SimArgs,
    ) -> Result<ServeOptions, Error> {
        let sim = super::options::sim_options(args);
        let mut cfg = match from_inventory {
            Some(path) => {
                let collective = connect.collective.as_deref().unwrap_or("mcollective");
                twin_config(path, &sim, collective, connect.collective.is_some())?
            }
            None if nodes == 0 => return Err(Error::Usage { message: "--nodes must be at least 1".into() }),
            None => sim_config(nodes, &sim, connect.collective.as_deref())?,
        };
        cfg.announce_link = true;
        Ok(ServeOptions { cfg, server: connect.servers.first().cloned() })
    }
}

/// Runs the simulator against the given broker, or an embedded broker when none is given.
pub(crate) async fn run(a: ServeOptions, cancel: &CancellationToken) -> Result<(), Error> {
    let ServeOptions { cfg, server } = a;
    let nodes = cfg.nodes;
    let collective = cfg.collective.clone();
    let twin = cfg.twin.as_ref().map(|t| format!(" (a twin of {})", t.origin)).unwrap_or_default();
    let (broker, url) = match server {
        Some(s) => (None, s),
        None => {
            let b = EmbeddedBroker::start_async().await?;
            let url = b.url().to_string();
            (Some(b), url)
        }
    };
    let sim = Simulator::start(&url, cfg).await?;
    eprintln!(
        "simulating {nodes} Choria servers{twin} in collective {collective} on {url} (stats: nats req {STATS_SUBJECT} ''); Ctrl-C stops"
    );
    if let Some(m) = sim.metrics_url() {
        eprintln!("simulated Provisioner metrics: {m}");
    }
    if broker.is_some() {
        // Machine-readable for scripts that start us and then connect.
        println!("{url}");
    }
    cancel.cancelled().await;
    sim.flush().await;
    eprintln!("stopped");
    Ok(())
}
