//! The simulated Choria Provisioner: candidates campaign in `CHORIA_LEADER_ELECTION` with the
//! asyncjobs election algorithm (choria-ops.md §1.3); the leader finds nodes in provisioning
//! mode (startup events and periodic discovery) and provisions them with `choria_provision`
//! through a pool of workers, and every candidate serves its Prometheus metrics (§3.2).
//!
//! | module | what it holds |
//! |---|---|
//! | `candidate` | [`Candidate`]: one candidate's state, gauges and work queue |
//! | `election` | the campaign for leadership |
//! | `discovery` | how the leader finds nodes: discovery cycles and startup events |
//! | `worker` | provisioning one node: inventory, configure, restart |
//! | `http` | the metrics endpoint |
//! | [`registry`] | the Prometheus registry |

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;

use super::tasks::TaskOwner;
use super::SimError;
use crate::fleet::ddl::DdlRegistry;
use crate::fleet::{ClientOptions, Fleet};

mod candidate;
mod discovery;
mod election;
mod http;
pub mod registry;
mod worker;

pub use candidate::Candidate;

/// How the simulated Provisioner behaves.
#[derive(Debug, Clone)]
pub(crate) struct ProvisionerConfig {
    /// Candidates campaigning for leadership (0: no Provisioner).
    pub(crate) candidates: usize,
    /// Campaign in the `provisioner` election (the Provisioner's `leader_election`); off,
    /// every instance is active from the start and nobody writes the election key.
    pub(crate) leader_election: bool,
    /// The `site` label of every metric.
    pub(crate) site: String,
    /// Workers per candidate provisioning nodes in parallel.
    pub(crate) workers: usize,
    /// The election bucket's max age (the "TTL").
    pub(crate) ttl: Duration,
    /// Between discovery cycles.
    pub(crate) interval: Duration,
    /// Real seconds per simulated second for splays and back-offs.
    pub(crate) time_scale: f64,
    /// The provisioning token sent with `configure` and `restart`.
    pub(crate) token: String,
    /// The simulator's seed: the campaigns' splays and back-off jitter are drawn from it, so a
    /// seeded run repeats.
    pub(crate) seed: u64,
}

impl ProvisionerConfig {
    /// `secs` of simulated time in real time (never under 10 ms, so loops cannot spin).
    fn scaled(&self, secs: f64) -> Duration {
        Duration::from_secs_f64((secs * self.time_scale).max(0.01))
    }
}

/// The running Provisioner; its tasks end when it is dropped.
pub struct Provisioner {
    /// Every candidate, leader or not.
    pub candidates: Vec<Arc<Candidate>>,
    /// Where the metrics are served (`/metrics`: the leader's).
    pub metrics_url: String,
    /// Campaigns, discovery, event and worker loops, and the metrics server.
    _tasks: TaskOwner,
}

impl Provisioner {
    /// Creates the election bucket like the broker does and starts the candidates.
    pub(crate) async fn start(url: &str, cfg: ProvisionerConfig) -> Result<Provisioner, SimError> {
        let nats = async_nats::connect(url).await.map_err(|e| SimError(format!("provisioner: {e}")))?;
        let js = jetstream::new(nats.clone());
        let bucket = kv::Config {
            bucket: crate::fleet::election::BUCKET.into(),
            description: "Choria Leader Election Bucket".into(),
            history: 1,
            max_age: cfg.ttl,
            max_value_size: 1024,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        };
        js.create_key_value(bucket).await.map_err(|e| SimError(format!("cannot create the election bucket: {e}")))?;
        let tasks = TaskOwner::new();
        let spawner = tasks.spawner();
        let candidates: Vec<Arc<Candidate>> = (1..=cfg.candidates)
            .map(|i| Arc::new(Candidate::new(format!("provisioner{i}.example.net"), &cfg.site)))
            .collect();
        let metrics_url = http::serve_metrics(candidates.clone(), &spawner).await?;
        // One stream per candidate, drawn from the simulator's seed in candidate order.
        let mut seeds = SmallRng::seed_from_u64(cfg.seed);
        for c in &candidates {
            let client = async_nats::connect(url).await.map_err(|e| SimError(format!("provisioner: {e}")))?;
            let opts = ClientOptions {
                servers: vec![url.to_string()],
                identity: c.identity.clone(),
                caller_id: "choria=provisioner.mcollective".into(),
                collective: "provisioning".into(),
                ..ClientOptions::default()
            };
            let fleet = Fleet::connect(opts, DdlRegistry::builtin())
                .await
                .map_err(|e| SimError(format!("provisioner: {e}")))?;
            publish_own_startup(&client, &c.identity).await;
            let (tx, rx) = mpsc::unbounded_channel();
            let rng = SmallRng::seed_from_u64(seeds.gen());
            if cfg.leader_election {
                spawner.spawn(election::campaign(client.clone(), c.clone(), cfg.clone(), rng));
            } else {
                c.set_paused(&cfg.site, false);
            }
            spawner.spawn(discovery::discovery_loop(c.clone(), cfg.clone(), fleet.clone(), tx.clone()));
            spawner.spawn(discovery::event_loop(client, c.clone(), cfg.clone(), tx));
            let rx = Arc::new(tokio::sync::Mutex::new(rx));
            for _ in 0..cfg.workers.max(1) {
                spawner.spawn(worker::worker(c.clone(), cfg.clone(), fleet.clone(), rx.clone()));
            }
        }
        Ok(Provisioner { candidates, metrics_url, _tasks: tasks })
    }

    /// The candidate that currently leads (announced), if any.
    pub fn leader(&self) -> Option<&Arc<Candidate>> {
        self.candidates.iter().find(|c| c.is_leader())
    }
}

/// The Provisioner's own startup event: plain Choria format, component `provisioner`.
async fn publish_own_startup(nats: &async_nats::Client, identity: &str) {
    let e = crate::lifecycle::choria_event("startup", identity, "provisioner", Some("0.16.0"), chrono::Utc::now());
    let _ = nats.publish(crate::lifecycle::subject("startup", "provisioner"), e.to_string().into()).await;
}
