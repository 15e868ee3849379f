//! The simulated Choria Provisioner: candidates campaign in `CHORIA_LEADER_ELECTION` with the
//! asyncjobs election algorithm (choria-ops.md §1.3); the leader finds nodes in provisioning
//! mode (startup events and periodic discovery) and provisions them with `choria_provision`
//! through a pool of workers, and every candidate serves its Prometheus metrics (§3.2).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use rand::Rng;
use serde_json::{json, Map};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::SimError;
use crate::fleet::ddl::DdlRegistry;
use crate::fleet::discovery::DiscoveryOptions;
use crate::fleet::filter::Filter;
use crate::fleet::{ClientOptions, Fleet};
use registry::{election_labels, site_label, Registry};

pub mod registry;

/// How the simulated Provisioner behaves.
#[derive(Debug, Clone)]
pub struct ProvisionerConfig {
    /// Candidates campaigning for leadership (0: no Provisioner).
    pub candidates: usize,
    pub site: String,
    pub workers: usize,
    /// The election bucket's max age (the "TTL").
    pub ttl: Duration,
    /// Between discovery cycles.
    pub interval: Duration,
    /// Real seconds per simulated second for splays and back-offs.
    pub time_scale: f64,
    pub token: String,
}

/// One candidate's shared state.
pub struct Candidate {
    pub identity: String,
    pub registry: Registry,
    /// Leader and announced (go-choria's `IsLeader()`: after the cool-down).
    leading: AtomicBool,
    paused: AtomicBool,
    hosts: Mutex<BTreeSet<String>>,
    /// Nodes this candidate provisioned, and when. A provisioned node still answers in the
    /// `provisioning` collective until its restart splay has passed, and a discovery sent
    /// before it was provisioned can report it afterwards; without this it was provisioned
    /// again (2 nodes, `provisioned` 3). A fresh provision-mode `startup` clears the mark.
    done: Mutex<HashMap<String, Instant>>,
    queued: AtomicUsize,
    busy: AtomicUsize,
    /// Wakes the discovery loop at once (OnWon).
    discover_now: tokio::sync::Notify,
}

/// The running Provisioner; its tasks end when it is dropped.
pub struct Provisioner {
    pub candidates: Vec<Arc<Candidate>>,
    pub metrics_url: String,
    cancel: CancellationToken,
}

impl Drop for Provisioner {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn scaled(cfg: &ProvisionerConfig, secs: f64) -> Duration {
    Duration::from_secs_f64((secs * cfg.time_scale).max(0.01))
}

/// go-choria's `backoff.TwentySec`: 500 ms up to 20 s in 44 steps, each jittered to 0.5–1.5x.
fn backoff(tries: usize) -> f64 {
    let steps = [
        500, 750, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000, 5500, 6000, 6500, 7000, 7500, 8000, 8500, 9000,
        9500, 10000, 10500, 11000, 11500, 12000, 12500, 13000, 13500, 14000, 14500, 15000, 15500, 16000, 16500, 17000,
        17500, 18000, 18500, 19000, 19500, 20000,
    ];
    let base = steps[tries.min(steps.len() - 1)] as f64 / 1000.0;
    base * rand::thread_rng().gen_range(0.5..1.5)
}

impl Candidate {
    fn set_paused(&self, site: &str, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
        self.registry.set("choria_provisioner_paused", site_label(site), if paused { 1.0 } else { 0.0 });
    }

    fn gauges(&self, site: &str) {
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
}

impl Provisioner {
    /// Creates the election bucket like the broker does and starts the candidates.
    pub async fn start(url: &str, cfg: ProvisionerConfig) -> Result<Provisioner, SimError> {
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
        let cancel = CancellationToken::new();
        let candidates: Vec<Arc<Candidate>> = (1..=cfg.candidates)
            .map(|i| {
                let identity = format!("provisioner{i}.example.net");
                let c = Candidate {
                    registry: Registry::new(&cfg.site, &identity),
                    identity,
                    leading: AtomicBool::new(false),
                    paused: AtomicBool::new(true),
                    hosts: Mutex::new(BTreeSet::new()),
                    done: Mutex::new(HashMap::new()),
                    queued: AtomicUsize::new(0),
                    busy: AtomicUsize::new(0),
                    discover_now: tokio::sync::Notify::new(),
                };
                c.set_paused(&cfg.site, true);
                Arc::new(c)
            })
            .collect();
        let metrics_url = serve_metrics(candidates.clone(), cancel.clone()).await?;
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
            tokio::spawn(campaign(client.clone(), c.clone(), cfg.clone(), cancel.clone()));
            tokio::spawn(discovery_loop(c.clone(), cfg.clone(), fleet.clone(), tx.clone(), cancel.clone()));
            tokio::spawn(event_loop(client, c.clone(), cfg.clone(), tx, cancel.clone()));
            let rx = Arc::new(tokio::sync::Mutex::new(rx));
            for _ in 0..cfg.workers.max(1) {
                tokio::spawn(worker(c.clone(), cfg.clone(), fleet.clone(), rx.clone(), cancel.clone()));
            }
        }
        Ok(Provisioner { candidates, metrics_url, cancel })
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

/// How long a provisioned node is not provisioned again on discovery alone: its restart
/// takes `splay` (1) + 2 simulated seconds; past this it is presumed stuck and retried.
fn reprovision_grace(cfg: &ProvisionerConfig) -> Duration {
    scaled(cfg, 30.0)
}

/// Queues a node unless it is already queued, or was provisioned moments ago and is only
/// seen again by discovery before its restart.
fn enqueue(c: &Candidate, cfg: &ProvisionerConfig, node: String, tx: &mpsc::UnboundedSender<String>) -> bool {
    let site = cfg.site.as_str();
    if c.recently_provisioned(&node, reprovision_grace(cfg)) {
        return false;
    }
    let fresh = c.hosts.lock().map(|mut h| h.insert(node.clone())).unwrap_or(false);
    if fresh {
        c.queued.fetch_add(1, Ordering::SeqCst);
        let _ = tx.send(node);
        c.gauges(site);
    }
    fresh
}

/// The asyncjobs election: create as candidate, compare-and-swap as leader, announce the win
/// one refresh later (the cool-down), and stand down when a CAS fails.
async fn campaign(nats: async_nats::Client, c: Arc<Candidate>, cfg: ProvisionerConfig, cancel: CancellationToken) {
    let Ok(store) = jetstream::new(nats).get_key_value(crate::fleet::election::BUCKET).await else { return };
    let key = "provisioner";
    let (mut leader, mut last, mut tries, mut notify_next) = (false, 0u64, 0usize, false);
    let splay = scaled(&cfg, rand::thread_rng().gen_range(0.0..5.0));
    tokio::select! { _ = cancel.cancelled() => return, _ = tokio::time::sleep(splay) => {} }
    loop {
        let state = if leader { "leader" } else { "candidate" };
        c.registry.add(
            "choria_election_campaigns",
            [election_labels(&c.identity), vec![("state", state.to_string())]].concat(),
            1.0,
        );
        if !leader {
            match store.create(key, c.identity.clone().into()).await {
                Ok(rev) => {
                    (leader, last, tries, notify_next) = (true, rev, 0, true);
                    c.registry.set("choria_election_leader", election_labels(&c.identity), 1.0);
                }
                Err(_) => tries += 1,
            }
        } else {
            match store.update(key, c.identity.clone().into(), last).await {
                Ok(rev) => {
                    last = rev;
                    if notify_next {
                        notify_next = false;
                        tokio::time::sleep(scaled(&cfg, 0.2)).await;
                        c.leading.store(true, Ordering::SeqCst);
                        c.set_paused(&cfg.site, false);
                        // OnWon: resume and trigger a discovery; never block the campaign,
                        // or a deposed leader would not notice in time.
                        c.discover_now.notify_one();
                    }
                }
                Err(_) => {
                    leader = false;
                    let announced = c.leading.swap(false, Ordering::SeqCst);
                    c.registry.set("choria_election_leader", election_labels(&c.identity), 0.0);
                    if announced {
                        // OnLost: pause and forget every host.
                        c.set_paused(&cfg.site, true);
                        if let Ok(mut h) = c.hosts.lock() {
                            h.clear();
                        }
                        c.gauges(&cfg.site);
                    }
                }
            }
        }
        let wait = scaled(&cfg, backoff(tries));
        tokio::select! { _ = cancel.cancelled() => return, _ = tokio::time::sleep(wait) => {} }
    }
}

async fn discover_once(c: &Candidate, cfg: &ProvisionerConfig, fleet: &Fleet, tx: &mpsc::UnboundedSender<String>) {
    if c.paused.load(Ordering::SeqCst) {
        return;
    }
    let opts = DiscoveryOptions {
        filter: Filter::default(),
        collective: Some("provisioning".into()),
        timeout: Some(Duration::from_secs(2)),
        window: true,
        rpc_agent: Some("choria_provision".into()),
    };
    c.registry.add("choria_provisioner_discover_cycles", site_label(&cfg.site), 1.0);
    match fleet.discover(&opts, &CancellationToken::new()).await {
        Ok(found) => {
            for n in found.nodes {
                if enqueue(c, cfg, n, tx) {
                    c.registry.add("choria_provisioner_discovered", site_label(&cfg.site), 1.0);
                }
            }
        }
        Err(_) => c.registry.add("choria_provisioner_discovery_errors", site_label(&cfg.site), 1.0),
    }
}

async fn discovery_loop(
    c: Arc<Candidate>,
    cfg: ProvisionerConfig,
    fleet: Fleet,
    tx: mpsc::UnboundedSender<String>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(cfg.interval) => {}
            _ = c.discover_now.notified() => {}
        }
        discover_once(&c, &cfg, &fleet, &tx).await;
    }
}

/// Startup events of provision-mode servers queue them at once.
async fn event_loop(
    nats: async_nats::Client,
    c: Arc<Candidate>,
    cfg: ProvisionerConfig,
    tx: mpsc::UnboundedSender<String>,
    cancel: CancellationToken,
) {
    let Ok(mut sub) = nats.subscribe(crate::lifecycle::subject("startup", "provision_mode_server")).await else {
        return;
    };
    loop {
        let m = tokio::select! { _ = cancel.cancelled() => return, m = sub.next() => m };
        let Some(m) = m else { return };
        if c.paused.load(Ordering::SeqCst) {
            continue;
        }
        if let Ok(e) = crate::lifecycle::parse(&m.payload) {
            // A provision-mode startup is a new life in provisioning mode (a reprovision):
            // whatever was done before no longer counts.
            if let Ok(mut done) = c.done.lock() {
                done.remove(&e.identity);
            }
            if enqueue(&c, &cfg, e.identity, &tx) {
                c.registry.add("choria_provisioner_event_discovered", site_label(&cfg.site), 1.0);
            }
        }
    }
}

async fn worker(
    c: Arc<Candidate>,
    cfg: ProvisionerConfig,
    fleet: Fleet,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>>,
    cancel: CancellationToken,
) {
    loop {
        let node = tokio::select! { _ = cancel.cancelled() => return, n = async { rx.lock().await.recv().await } => n };
        let Some(node) = node else { return };
        c.queued.fetch_sub(1, Ordering::SeqCst);
        if c.paused.load(Ordering::SeqCst) {
            continue;
        }
        c.busy.fetch_add(1, Ordering::SeqCst);
        c.gauges(&cfg.site);
        let ok = provision(&c, &cfg, &fleet, &node).await;
        if !ok {
            c.registry.add("choria_provisioner_provision_errors", site_label(&cfg.site), 1.0);
        } else {
            c.registry.add("choria_provisioner_provisioned", site_label(&cfg.site), 1.0);
            if let Ok(mut done) = c.done.lock() {
                done.insert(node.clone(), Instant::now());
            }
        }
        if let Ok(mut h) = c.hosts.lock() {
            h.remove(&node);
        }
        c.busy.fetch_sub(1, Ordering::SeqCst);
        c.gauges(&cfg.site);
    }
}

/// One RPC to one node, timed and counted as the Provisioner does.
async fn call(
    c: &Candidate,
    cfg: &ProvisionerConfig,
    fleet: &Fleet,
    node: &str,
    agent: &str,
    action: &str,
    data: Map<String, serde_json::Value>,
) -> bool {
    let rpc = format!("{agent}#{action}");
    let labels = vec![("site", cfg.site.clone()), ("rpc", rpc)];
    let started = Instant::now();
    let outcome = async {
        let mut s = fleet.rpc_session(agent, action, &data, None, None, Filter::default()).await.ok()?;
        let out = s.send_batch(&[node.to_string()], &CancellationToken::new(), &mut |_| {}).await.ok()?;
        out.replies.first().filter(|r| r.ok()).map(|_| ())
    }
    .await;
    c.registry.observe("choria_provisioner_rpc_time", labels.clone(), started.elapsed().as_secs_f64());
    if outcome.is_none() {
        c.registry.add("choria_provisioner_rpc_errors", labels, 1.0);
    }
    outcome.is_some()
}

/// inventory, configure, restart (the provisioner's sequence without the PKI and helper steps).
async fn provision(c: &Candidate, cfg: &ProvisionerConfig, fleet: &Fleet, node: &str) -> bool {
    let token = || json!(cfg.token);
    if !call(c, cfg, fleet, node, "rpcutil", "inventory", Map::new()).await {
        return false;
    }
    let config = json!({"plugin.choria.server.provision": "false", "identity": node, "plugin.choria.middleware_hosts": "nats://broker.example.net:4222"}).to_string();
    let mut data = Map::new();
    data.insert("token".into(), token());
    data.insert("config".into(), json!(config));
    if !call(c, cfg, fleet, node, "choria_provision", "configure", data).await {
        return false;
    }
    let mut data = Map::new();
    data.insert("token".into(), token());
    data.insert("splay".into(), json!(1));
    call(c, cfg, fleet, node, "choria_provision", "restart", data).await
}

/// Serves `/metrics` (the candidate that leads now, else the first) and `/<identity>/metrics`.
async fn serve_metrics(candidates: Vec<Arc<Candidate>>, cancel: CancellationToken) -> Result<String, SimError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener =
        tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| SimError(format!("metrics listener: {e}")))?;
    let addr = listener.local_addr().map_err(|e| SimError(e.to_string()))?;
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! { _ = cancel.cancelled() => return, a = listener.accept() => a };
            let Ok((mut s, _)) = accepted else { continue };
            let candidates = candidates.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let path = req.split_whitespace().nth(1).unwrap_or("/");
                let target = match path.strip_suffix("/metrics").map(|p| p.trim_start_matches('/')) {
                    Some("") => candidates.iter().find(|c| c.is_leader()).or(candidates.first()),
                    Some(id) => candidates.iter().find(|c| c.identity == id),
                    None => None,
                };
                let resp = match target {
                    Some(c) => {
                        let body = c.registry.render();
                        format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                    }
                    None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
                };
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    Ok(format!("http://{addr}/metrics"))
}
