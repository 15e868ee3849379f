//! The running simulated fleet: its nodes, counters and connection, and the tasks that serve
//! them.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::config::SimConfig;
use super::node::Node;
use super::provisioner::{Provisioner, ProvisionerConfig};
use super::server;
use super::stats::{SimStats, STATS_SUBJECT};
use super::tasks::{Spawner, TaskOwner};
use super::SimError;
use crate::lock;

/// What the simulator's tasks share.
pub(crate) struct Shared {
    /// How the fleet behaves.
    pub(crate) cfg: SimConfig,
    /// Every node, in identity order.
    pub(crate) nodes: Mutex<Vec<Node>>,
    /// Identity to position in `nodes`.
    pub(crate) index: Index,
    /// Splays and other draws after start-up, from the same seed as the fleet.
    pub(crate) rng: Mutex<SmallRng>,
    /// The counters so far (faults and states are filled in by [`Shared::snapshot`]).
    pub(crate) stats: Mutex<SimStats>,
    /// The one connection every node answers through.
    pub(crate) nats: async_nats::Client,
    /// Spawns delayed replies and transitions into the [`Simulator`]'s task group.
    pub(crate) spawner: Spawner,
}

/// Positions in `nodes` by identity, looked up once per direct request (issue 15): the table
/// holds only positions, compared against the node's own identity, so a lookup reads the node
/// (which the reply reads next anyway) instead of a key of its own elsewhere in memory; foldhash,
/// not SipHash. The nodes never change identity, nor their number.
pub(crate) struct Index {
    table: hashbrown::HashTable<usize>,
    hasher: foldhash::fast::RandomState,
    /// The position found last. A client sends a batch in its discovery's sorted order, which
    /// is the fleet's own, so the node after it is tried first: at 50,000 nodes the table's
    /// random probe missed the processor's caches on nearly every request.
    last: AtomicUsize,
}

impl Index {
    fn new(nodes: &[Node]) -> Index {
        let hasher = foldhash::fast::RandomState::default();
        let mut table = hashbrown::HashTable::with_capacity(nodes.len());
        for (i, n) in nodes.iter().enumerate() {
            let hash = hasher.hash_one(n.identity.as_str());
            table.insert_unique(hash, i, |&j| hasher.hash_one(nodes[j].identity.as_str()));
        }
        Index { table, hasher, last: AtomicUsize::new(usize::MAX) }
    }

    /// The position of the node named `identity`.
    pub(crate) fn find(&self, nodes: &[Node], identity: &str) -> Option<usize> {
        let next = self.last.load(Ordering::Relaxed).wrapping_add(1);
        if nodes.get(next).is_some_and(|n| n.identity == identity) {
            self.last.store(next, Ordering::Relaxed);
            return Some(next);
        }
        let hash = self.hasher.hash_one(identity);
        let found = self.table.find(hash, |&i| nodes[i].identity == identity).copied();
        if let Some(i) = found {
            self.last.store(i, Ordering::Relaxed);
        }
        found
    }
}

impl Shared {
    /// A copy of the statistics with the nodes' faults and states.
    pub(crate) fn snapshot(&self) -> SimStats {
        let stats = lock(&self.stats).clone();
        stats.with_nodes(&lock(&self.nodes))
    }
}

/// A running simulated fleet; its tasks stop when it is dropped.
pub struct Simulator {
    shared: Arc<Shared>,
    /// The server loops, delayed replies and transitions: they end with the simulator.
    _tasks: TaskOwner,
    /// The simulated Provisioner, when enabled.
    pub provisioner: Option<Provisioner>,
}

impl Simulator {
    /// Connects to `url` and starts answering as `cfg.nodes` servers (the twin's, when
    /// `cfg.twin` is given).
    pub async fn start(url: &str, cfg: SimConfig) -> Result<Simulator, SimError> {
        let nats = connect(url, &cfg).await?;
        let mut rng = SmallRng::seed_from_u64(cfg.seed);
        let mut nodes: Vec<Node> = match &cfg.twin {
            Some(twin) => twin.nodes.iter().map(|n| n.node(&cfg.version)).collect(),
            None => {
                let width = cfg.nodes.to_string().len().max(3);
                (1..=cfg.nodes).map(|i| Node::generate(i, width, &cfg.domain, &cfg.version, &mut rng)).collect()
            }
        };
        for n in nodes.iter_mut() {
            n.fault = cfg.fault_for(&n.identity, &mut rng);
        }
        let tasks = TaskOwner::new();
        let index = Index::new(&nodes);
        let shared = Arc::new(Shared {
            cfg: cfg.clone(),
            nodes: Mutex::new(nodes),
            index,
            rng: Mutex::new(rng),
            stats: Mutex::new(SimStats::default()),
            nats: nats.clone(),
            spawner: tasks.spawner(),
        });
        let mut subs = Vec::new();
        // A twin's nodes serve their own collectives; every node can go into provisioning.
        let mut collectives = vec![cfg.collective.clone(), "provisioning".to_string()];
        collectives.extend(cfg.twin.iter().flat_map(|t| t.collectives()));
        collectives.sort();
        collectives.dedup();
        for c in &collectives {
            for pattern in [format!("{c}.broadcast.agent.>"), format!("{c}.node.>")] {
                subs.push(nats.subscribe(pattern).await.map_err(|e| SimError(format!("subscribe: {e}")))?);
            }
        }
        let stats_sub = nats.subscribe(STATS_SUBJECT).await.map_err(|e| SimError(format!("subscribe: {e}")))?;
        nats.flush().await.map_err(|e| SimError(format!("flush: {e}")))?;
        shared.spawner.spawn(server::serve_requests(shared.clone(), subs));
        shared.spawner.spawn(server::serve_stats(shared.clone(), stats_sub));
        let provisioner = match cfg.provisioners {
            0 => None,
            n => Some(
                Provisioner::start(
                    url,
                    ProvisionerConfig {
                        // Without an election every instance would provision the same nodes.
                        candidates: if cfg.leader_election { n } else { 1 },
                        leader_election: cfg.leader_election,
                        site: cfg.site.clone(),
                        workers: 4,
                        // The broker's default bucket TTL is 1m; scaled like every other wait,
                        // but never under the 2 s the election algorithm needs.
                        ttl: Duration::from_secs_f64((60.0 * cfg.time_scale).max(2.0)),
                        interval: Duration::from_secs_f64((10.0 * cfg.time_scale).max(0.5)),
                        time_scale: cfg.time_scale,
                        token: cfg.token.clone(),
                        seed: cfg.seed,
                    },
                )
                .await?,
            ),
        };
        Ok(Simulator { shared, _tasks: tasks, provisioner })
    }

    /// Identities of all simulated nodes, sorted.
    pub fn identities(&self) -> Vec<String> {
        let mut v: Vec<String> = lock(&self.shared.nodes).iter().map(|n| n.identity.clone()).collect();
        v.sort();
        v
    }

    /// A copy of the statistics so far.
    pub fn stats(&self) -> SimStats {
        self.shared.snapshot()
    }

    /// A copy of one node.
    pub fn node(&self, identity: &str) -> Option<Node> {
        let nodes = lock(&self.shared.nodes);
        nodes.get(self.shared.index.find(&nodes, identity)?).cloned()
    }

    /// The URL of the Provisioner's metrics (the current leader's), when it runs.
    pub fn metrics_url(&self) -> Option<String> {
        self.provisioner.as_ref().map(|p| p.metrics_url.clone())
    }

    /// Flushes pending replies and events.
    pub async fn flush(&self) {
        let _ = self.shared.nats.flush().await;
    }
}

/// The simulator's own connection, sized for a fleet's worth of traffic.
async fn connect(url: &str, cfg: &SimConfig) -> Result<async_nats::Client, SimError> {
    let mut co =
        async_nats::ConnectOptions::new().name("fleetbook-sim").subscription_capacity(1 << 18).client_capacity(1 << 17);
    if let Some(tls) = &cfg.tls {
        co = tls.apply(co);
    }
    if cfg.announce_link {
        co = co.event_callback(|e| async move {
            match e {
                async_nats::Event::Disconnected => {
                    eprintln!("fleetbook sim: lost the connection to the broker; reconnecting")
                }
                async_nats::Event::Connected => eprintln!("fleetbook sim: connected to the broker"),
                _ => {}
            }
        });
    }
    co.connect(url).await.map_err(|e| SimError(format!("cannot connect to {url}: {e}")))
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// In the fleet's order, backwards, at random, and for names it does not hold: the index
    /// finds exactly the node of that name, whatever it tried first.
    #[test]
    fn the_index_finds_each_node_in_any_order() {
        let mut rng = SmallRng::seed_from_u64(42);
        let nodes: Vec<Node> = (1..=500).map(|i| Node::generate(i, 3, "example.net", "0.29.4", &mut rng)).collect();
        let index = Index::new(&nodes);
        let check = |i: usize| assert_eq!(index.find(&nodes, &nodes[i].identity), Some(i), "{}", nodes[i].identity);
        (0..nodes.len()).for_each(check);
        (0..nodes.len()).rev().for_each(check);
        for _ in 0..2_000 {
            check(rng.gen_range(0..nodes.len()));
            if rng.gen_bool(0.1) {
                assert_eq!(index.find(&nodes, "n999.example.net"), None);
            }
        }
        // After the last node, and after a miss, the next lookup still starts right.
        check(nodes.len() - 1);
        assert_eq!(index.find(&nodes, "n001.example.ne"), None);
        check(0);
        check(1);
    }
}
