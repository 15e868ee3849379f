//! The fleet a command runs against: a real broker, or an embedded broker plus simulator.

use crate::config::Settings;
use crate::error::Error;
use crate::fleet::Fleet;
use crate::sim::broker::EmbeddedBroker;
use crate::sim::Simulator;

/// A connected fleet, and what was started for it. Dropping it stops the simulator and kills
/// the embedded broker (fields drop in order: connection watch, client, simulator, broker).
pub struct FleetEnv {
    /// Tells the user about disconnects and reconnects; dropped first, so stopping our own
    /// embedded broker is not reported as a lost connection.
    _watch: AbortOnDrop,
    pub fleet: Fleet,
    pub sim: Option<Simulator>,
    pub broker: Option<EmbeddedBroker>,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reports every change of the broker connection on stderr: a broker that goes away is never
/// waited on silently.
fn watch_link(fleet: &Fleet) -> AbortOnDrop {
    use crate::fleet::client::LinkEvent;
    let mut events = fleet.link().subscribe();
    let attempts = fleet.options().max_reconnects;
    AbortOnDrop(tokio::spawn(async move {
        while let Ok(e) = events.recv().await {
            match e {
                LinkEvent::Lost => {
                    eprintln!("fleetbook: lost the connection to the broker; reconnecting (up to {attempts} attempts)")
                }
                LinkEvent::Restored { after } => eprintln!(
                    "fleetbook: reconnected to the broker after {:.1}s; replies sent while it was away are lost",
                    after.as_secs_f64()
                ),
                LinkEvent::Closed { reason } => eprintln!("fleetbook: the broker connection is closed: {reason}"),
            }
        }
    }))
}

impl FleetEnv {
    /// Connects, starting the embedded broker and simulated fleet first when asked.
    pub async fn open(settings: Settings) -> Result<FleetEnv, Error> {
        let mut client = settings.client;
        let (broker, sim) = match settings.sim {
            None => (None, None),
            Some(cfg) => {
                let broker = EmbeddedBroker::start_async().await?;
                let sim = Simulator::start(broker.url(), cfg).await?;
                client.servers = vec![broker.url().to_string()];
                (Some(broker), Some(sim))
            }
        };
        let fleet = Fleet::connect(client, settings.ddl).await?;
        let _watch = watch_link(&fleet);
        Ok(FleetEnv { _watch, fleet, sim, broker })
    }
}
