//! One Provisioner candidate: whether it leads, the nodes it has queued and provisioned, and
//! the gauges that say so.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::registry::{site_label, Registry};
use super::ProvisionerConfig;

/// One candidate's shared state.
pub struct Candidate {
    /// Its identity, `provisionerN.example.net`.
    pub identity: String,
    /// Its metrics.
    pub registry: Registry,
    /// Leader and announced (go-choria's `IsLeader()`: after the cool-down).
    pub(super) leading: AtomicBool,
    /// Paused candidates neither discover nor provision (every one but the leader).
    pub(super) paused: AtomicBool,
    /// Nodes queued or being provisioned, so none is queued twice.
    pub(super) hosts: Mutex<BTreeSet<String>>,
    /// Nodes this candidate provisioned, and when. A provisioned node still answers in the
    /// `provisioning` collective until its restart splay has passed, and a discovery sent
    /// before it was provisioned can report it afterwards; without this it was provisioned
    /// again (2 nodes, `provisioned` 3). A fresh provision-mode `startup` clears the mark.
    pub(super) done: Mutex<HashMap<String, Instant>>,
    /// Nodes on the work queue.
    pub(super) queued: AtomicUsize,
    /// Workers provisioning a node now.
    pub(super) busy: AtomicUsize,
    /// Wakes the discovery loop at once (OnWon).
    pub(super) discover_now: tokio::sync::Notify,
}

impl Candidate {
    /// A paused candidate that does not lead, with the series go-choria creates at start.
    pub(super) fn new(identity: String, site: &str) -> Candidate {
        let c = Candidate {
            registry: Registry::new(site, &identity),
            identity,
            leading: AtomicBool::new(false),
            paused: AtomicBool::new(true),
            hosts: Mutex::new(BTreeSet::new()),
            done: Mutex::new(HashMap::new()),
            queued: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
            discover_now: tokio::sync::Notify::new(),
        };
        c.set_paused(site, true);
        c
    }

    /// Pauses or resumes, and says so in `choria_provisioner_paused`.
    pub(super) fn set_paused(&self, site: &str, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
        self.registry.set("choria_provisioner_paused", site_label(site), if paused { 1.0 } else { 0.0 });
    }

    /// True while paused.
    pub(super) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Brings the waiting, queued and busy gauges up to date.
    pub(super) fn gauges(&self, site: &str) {
        let hosts = self.hosts.lock().map(|h| h.len()).unwrap_or(0);
        self.registry.set("choria_provisioner_waiting_nodes", site_label(site), hosts as f64);
        self.registry.set(
            "choria_provisioner_work_queue_entries",
            site_label(site),
            self.queued.load(Ordering::SeqCst) as f64,
        );
        self.registry.set("choria_provisioner_busy_workers", site_label(site), self.busy.load(Ordering::SeqCst) as f64);
    }

    /// True while this candidate leads and has announced it.
    pub fn is_leader(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    /// Starts a discovery cycle now, as winning the election does (paused candidates skip it).
    pub fn discover_now(&self) {
        self.discover_now.notify_one();
    }

    /// True when this candidate provisioned `node` less than `grace` ago.
    fn recently_provisioned(&self, node: &str, grace: Duration) -> bool {
        let Ok(mut done) = self.done.lock() else { return false };
        done.retain(|_, at| at.elapsed() < grace);
        done.contains_key(node)
    }

    /// Queues a node unless it is already queued, or was provisioned moments ago and is only
    /// seen again by discovery before its restart.
    pub(super) fn enqueue(&self, cfg: &ProvisionerConfig, node: String, tx: &mpsc::UnboundedSender<String>) -> bool {
        if self.recently_provisioned(&node, reprovision_grace(cfg)) {
            return false;
        }
        let fresh = self.hosts.lock().map(|mut h| h.insert(node.clone())).unwrap_or(false);
        if fresh {
            self.queued.fetch_add(1, Ordering::SeqCst);
            let _ = tx.send(node);
            self.gauges(&cfg.site);
        }
        fresh
    }
}

/// How long a provisioned node is not provisioned again on discovery alone: its restart
/// takes `splay` (1) + 2 simulated seconds; past this it is presumed stuck and retried.
fn reprovision_grace(cfg: &ProvisionerConfig) -> Duration {
    cfg.scaled(30.0)
}
