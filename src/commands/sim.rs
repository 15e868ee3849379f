//! `fleetbook sim`: serve a simulated fleet on a broker until interrupted.

use tokio_util::sync::CancellationToken;

use crate::cli::{ConnectArgs, SimArgs};
use crate::config::sim_config;
use crate::error::Error;
use crate::sim::broker::EmbeddedBroker;
use crate::sim::{Simulator, STATS_SUBJECT};

/// Runs the simulator against the first `--server`, or an embedded broker when none is given,
/// in the `--collective` given (else `mcollective`).
pub async fn run(nodes: usize, connect: &ConnectArgs, args: &SimArgs, cancel: &CancellationToken) -> Result<(), Error> {
    if nodes == 0 {
        return Err(Error::Usage { message: "--nodes must be at least 1".into() });
    }
    let mut cfg = sim_config(nodes, &super::options::sim_options(args), connect.collective.as_deref())?;
    cfg.announce_link = true;
    let collective = cfg.collective.clone();
    let (broker, url) = match connect.servers.first() {
        Some(s) => (None, s.clone()),
        None => {
            let b = EmbeddedBroker::start_async().await?;
            let url = b.url().to_string();
            (Some(b), url)
        }
    };
    let sim = Simulator::start(&url, cfg).await?;
    eprintln!(
        "simulating {nodes} Choria servers in collective {collective} on {url} (stats: nats req {STATS_SUBJECT} ''); Ctrl-C stops"
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
