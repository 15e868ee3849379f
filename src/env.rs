//! The fleet a command runs against: a real broker, or an embedded broker plus simulator.

use crate::config::Settings;
use crate::error::Error;
use crate::fleet::Fleet;
use crate::sim::broker::EmbeddedBroker;
use crate::sim::Simulator;

/// A connected fleet, and what was started for it. Dropping it stops the simulator and kills
/// the embedded broker (fields drop in order: client, simulator, broker).
pub struct FleetEnv {
    pub fleet: Fleet,
    pub sim: Option<Simulator>,
    pub broker: Option<EmbeddedBroker>,
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
        Ok(FleetEnv { fleet, sim, broker })
    }
}
