//! The simulated fleet: many Choria servers behind one NATS connection, with faults, splays
//! scaled in time, lifecycle events and request accounting; plus the embedded broker.

pub mod agents;
pub mod broker;
pub mod compound;
pub mod node;
pub mod prov_metrics;
pub mod provisioner;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::lock;
use std::time::Duration;

use futures::StreamExt;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::fleet::protocol;
use crate::lifecycle;
use agents::{Answer, Effect};
use node::{Fault, Mode, Node, State};

/// Subject on which a simulator answers with its [`SimStats`] as JSON.
pub const STATS_SUBJECT: &str = "fleetbook.sim.stats";

/// How the simulated fleet behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub nodes: usize,
    pub seed: u64,
    /// The provisioning token (`cht`); empty accepts any token.
    pub token: String,
    /// Real seconds per simulated second of splay (0.01 makes a 10 s splay take 100 ms).
    pub time_scale: f64,
    pub fail_rate: f64,
    pub silent_rate: f64,
    pub slow_rate: f64,
    /// How long a slow node takes to answer (real time).
    pub slow_delay: Duration,
    /// Identities forced into a fault, on top of the rates.
    pub fail_nodes: Vec<String>,
    pub silent_nodes: Vec<String>,
    pub slow_nodes: Vec<String>,
    /// Nodes that go down on restart or reprovision and never come back.
    pub stuck_nodes: Vec<String>,
    /// Nodes in provisioning mode return to service after this long (real time).
    pub auto_provision: Option<Duration>,
    /// The normal collective.
    pub collective: String,
    pub domain: String,
    pub version: String,
    /// Reported as `upgradable` by inventory.
    pub upgradable: bool,
    /// Provisioner candidates campaigning for leadership (0: no simulated Provisioner).
    pub provisioners: usize,
    /// The `site` label of the Provisioner's metrics.
    pub site: String,
    /// Secure mode: the CA (PEM) whose certificates may sign requests. Servers then check
    /// signatures, certificate chain and names like a real `file`-provider server, and stay
    /// silent to requests that fail.
    pub secure_ca: Option<String>,
    /// Secure mode for protocol v2: the trusted issuer's hex ed25519 public key.
    pub secure_issuer: Option<String>,
    /// TLS to the broker (CA, client certificate and key), when it requires it.
    pub tls: Option<crate::fleet::client::TlsFiles>,
    /// Say on stderr when the broker connection breaks and comes back (`fleetbook sim`, where
    /// the broker is someone else's; not for the embedded broker we stop ourselves).
    pub announce_link: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 50,
            seed: 1,
            token: "s3cret".into(),
            time_scale: 1.0,
            fail_rate: 0.0,
            silent_rate: 0.0,
            slow_rate: 0.0,
            slow_delay: Duration::from_secs(1),
            fail_nodes: Vec::new(),
            silent_nodes: Vec::new(),
            slow_nodes: Vec::new(),
            stuck_nodes: Vec::new(),
            auto_provision: None,
            collective: "mcollective".into(),
            domain: "example.net".into(),
            version: "0.29.4".into(),
            upgradable: true,
            provisioners: 3,
            site: "simulated".into(),
            secure_ca: None,
            secure_issuer: None,
            tls: None,
            announce_link: false,
        }
    }
}

impl SimConfig {
    fn scaled(&self, secs: f64) -> Duration {
        // A request's splay is the client's to choose: saturate rather than panic.
        Duration::try_from_secs_f64((secs * self.time_scale).max(0.0)).unwrap_or(Duration::MAX)
    }
}

/// What the simulator has seen, for tests and `fleetbook.sim.stats`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SimStats {
    /// Requests handled by some node, by `agent#action` (`discovery` for discovery).
    pub requests: BTreeMap<String, u64>,
    /// Per node, the RPC actions it received in order (discovery excluded).
    pub received: BTreeMap<String, Vec<String>>,
    /// Messages that did not decode.
    pub malformed: u64,
    /// Requests dropped for an expired TTL.
    pub ttl_expired: u64,
    /// Requests refused in secure mode, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Lifecycle events published, by type.
    pub events: BTreeMap<String, u64>,
    /// Nodes with an injected fault, by identity.
    pub faults: BTreeMap<String, String>,
    /// Nodes by state: up, restarting, gone, provisioning.
    pub states: BTreeMap<String, u64>,
    /// Set in a NATS answer that left out per-node detail (`received`, then `faults`) to fit
    /// the broker's maximum message size.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

struct Shared {
    cfg: SimConfig,
    nodes: Mutex<Vec<Node>>,
    index: HashMap<String, usize>,
    rng: Mutex<SmallRng>,
    stats: Mutex<SimStats>,
    nats: async_nats::Client,
}

/// A running simulated fleet; its tasks stop when it is dropped.
pub struct Simulator {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The simulated Provisioner, when enabled.
    pub provisioner: Option<provisioner::Provisioner>,
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
#[error("simulator: {0}")]
pub struct SimError(String);

impl Simulator {
    /// Connects to `url` and starts answering as `cfg.nodes` servers.
    pub async fn start(url: &str, cfg: SimConfig) -> Result<Simulator, SimError> {
        let mut co = async_nats::ConnectOptions::new()
            .name("fleetbook-sim")
            .subscription_capacity(1 << 18)
            .client_capacity(1 << 17);
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
        let nats = co.connect(url).await.map_err(|e| SimError(format!("cannot connect to {url}: {e}")))?;
        let mut rng = SmallRng::seed_from_u64(cfg.seed);
        let width = cfg.nodes.to_string().len().max(3);
        let mut nodes: Vec<Node> =
            (1..=cfg.nodes).map(|i| Node::generate(i, width, &cfg.domain, &cfg.version, &mut rng)).collect();
        for n in nodes.iter_mut() {
            n.fault = pick_fault(&cfg, &n.identity, &mut rng);
        }
        let index = nodes.iter().enumerate().map(|(i, n)| (n.identity.clone(), i)).collect();
        let shared = Arc::new(Shared {
            cfg: cfg.clone(),
            nodes: Mutex::new(nodes),
            index,
            rng: Mutex::new(rng),
            stats: Mutex::new(SimStats::default()),
            nats: nats.clone(),
        });
        let mut subs = Vec::new();
        for c in [cfg.collective.as_str(), "provisioning"] {
            for pattern in [format!("{c}.broadcast.agent.>"), format!("{c}.node.>")] {
                subs.push(nats.subscribe(pattern).await.map_err(|e| SimError(format!("subscribe: {e}")))?);
            }
        }
        let stats_sub = nats.subscribe(STATS_SUBJECT).await.map_err(|e| SimError(format!("subscribe: {e}")))?;
        nats.flush().await.map_err(|e| SimError(format!("flush: {e}")))?;
        let mut tasks = Vec::new();
        let s = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut all = futures::stream::select_all(subs);
            let mut cache: Option<Prepared> = None;
            while let Some(m) = all.next().await {
                handle(&s, &m.subject, &m.payload, &mut cache).await;
            }
        }));
        let s = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut sub = stats_sub;
            while let Some(m) = sub.next().await {
                if let Some(reply) = m.reply {
                    let body = stats_answer(&s, &m.payload);
                    let _ = s.nats.publish(reply, body.into()).await;
                }
            }
        }));
        let provisioner = match cfg.provisioners {
            0 => None,
            n => Some(
                provisioner::Provisioner::start(
                    url,
                    provisioner::ProvisionerConfig {
                        candidates: n,
                        site: cfg.site.clone(),
                        workers: 4,
                        // The broker's default bucket TTL is 1m; scaled like every other wait,
                        // but never under the 2 s the election algorithm needs.
                        ttl: Duration::from_secs_f64((60.0 * cfg.time_scale).max(2.0)),
                        interval: Duration::from_secs_f64((10.0 * cfg.time_scale).max(0.5)),
                        time_scale: cfg.time_scale,
                        token: cfg.token.clone(),
                    },
                )
                .await?,
            ),
        };
        Ok(Simulator { shared, tasks, provisioner })
    }

    /// Identities of all simulated nodes, sorted.
    pub fn identities(&self) -> Vec<String> {
        let mut v: Vec<String> = lock(&self.shared.nodes).iter().map(|n| n.identity.clone()).collect();
        v.sort();
        v
    }

    /// A copy of the statistics so far.
    pub fn stats(&self) -> SimStats {
        snapshot(&self.shared)
    }

    /// A copy of one node.
    pub fn node(&self, identity: &str) -> Option<Node> {
        let i = *self.shared.index.get(identity)?;
        lock(&self.shared.nodes).get(i).cloned()
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

impl Drop for Simulator {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn pick_fault(cfg: &SimConfig, id: &str, rng: &mut SmallRng) -> Fault {
    let listed = |l: &[String]| l.iter().any(|x| x == id || x == id.split('.').next().unwrap_or(id));
    let r: f64 = rng.gen();
    let code = if rng.gen_bool(0.5) { 1 } else { 5 };
    if listed(&cfg.silent_nodes) {
        Fault::Silent
    } else if listed(&cfg.fail_nodes) {
        Fault::Failing(code)
    } else if listed(&cfg.slow_nodes) {
        Fault::Slow
    } else if listed(&cfg.stuck_nodes) {
        Fault::Stuck
    } else if r < cfg.silent_rate {
        Fault::Silent
    } else if r < cfg.silent_rate + cfg.fail_rate {
        Fault::Failing(code)
    } else if r < cfg.silent_rate + cfg.fail_rate + cfg.slow_rate {
        Fault::Slow
    } else {
        Fault::None
    }
}

fn snapshot(s: &Shared) -> SimStats {
    let mut st = lock(&s.stats).clone();
    let nodes = lock(&s.nodes);
    for n in nodes.iter() {
        if n.fault != Fault::None {
            st.faults.insert(n.identity.clone(), n.fault.name().to_string());
        }
        let state = match (n.state, n.mode) {
            (State::Gone, _) => "gone",
            (State::Restarting, _) => "restarting",
            (State::Up, Mode::Provisioning) => "provisioning",
            (State::Up, Mode::Normal) => "up",
        };
        *st.states.entry(state.to_string()).or_default() += 1;
    }
    st
}

/// The JSON answer to a stats request. A body `{"identities": [...]}` limits the per-node
/// maps to those nodes. The answer always fits the broker's maximum payload: at tens of
/// thousands of nodes the per-node maps alone exceed it (the publish failed and the
/// requester timed out), so they are dropped, `received` first, and `truncated` is set.
fn stats_answer(s: &Shared, request: &[u8]) -> Vec<u8> {
    let mut st = snapshot(s);
    let wanted: Option<std::collections::BTreeSet<String>> = serde_json::from_slice::<Value>(request)
        .ok()
        .and_then(|v| serde_json::from_value(v.get("identities")?.clone()).ok());
    if let Some(ids) = wanted {
        st.received.retain(|k, _| ids.contains(k));
        st.faults.retain(|k, _| ids.contains(k));
    }
    let max = s.nats.server_info().max_payload.max(1024);
    let mut body = serde_json::to_vec(&st).unwrap_or_default();
    if body.len() > max {
        st.truncated = true;
        st.received.clear();
        body = serde_json::to_vec(&st).unwrap_or_default();
    }
    if body.len() > max {
        st.faults.clear();
        body = serde_json::to_vec(&st).unwrap_or_default();
    }
    body
}

/// One reply to send, possibly later.
struct Outgoing {
    reply_to: String,
    payload: bytes::Bytes,
    delay: Option<Duration>,
}

/// A decoded request with its body parsed and filter compiled. A direct request to a batch
/// publishes the same transport bytes to every node; real servers decode it in parallel,
/// one each, so decoding it once here keeps one process a fair stand-in for many.
struct Prepared {
    payload: bytes::Bytes,
    req: protocol::DecodedRequest,
    body: Option<(String, Map<String, Value>)>,
    key: String,
    matcher: node::Matcher,
    /// Secure mode's verdict on the request's credentials.
    verdict: Result<(), crate::fleet::security::Rejection>,
}

fn prepare(payload: &bytes::Bytes, cfg: &SimConfig) -> Option<Prepared> {
    let req = protocol::decode_request(payload).ok()?;
    // A secure server takes only its own protocol, as real x509 (v1) and choria (v2)
    // providers do.
    // The schema is checked always, secure or not (SecureRequest.IsValidJSON is not gated).
    let schema = schema_violation(&req);
    let verdict = match (&cfg.secure_ca, &cfg.secure_issuer, req.version) {
        _ if schema.is_some() => Err(schema.unwrap_or("schema")),
        (None, None, _) => Ok(()),
        (Some(ca), _, protocol::Version::V1) => {
            crate::fleet::security::verify_v1(ca, &req.caller, &req.signed, &req.signature, &req.credential)
        }
        (_, Some(issuer), protocol::Version::V2) => {
            crate::fleet::security::verify_v2(issuer, &req.caller, &req.signed, &req.signature, &req.credential)
        }
        _ => Err("protocol version not accepted by this security provider"),
    };
    let body = if req.agent == "discovery" { None } else { parse_rpc_body(&req.payload) };
    let key = match &body {
        _ if req.agent == "discovery" => "discovery".to_string(),
        Some((action, _)) => format!("{}#{action}", req.agent),
        None => format!("{}#<invalid>", req.agent),
    };
    let matcher = node::Matcher::new(&req.filter);
    Some(Prepared { payload: payload.clone(), req, body, key, matcher, verdict })
}

/// The request-schema rules a server enforces (protocol-schema v1/v2 request.json).
fn schema_violation(req: &protocol::DecodedRequest) -> Option<crate::fleet::security::Rejection> {
    let v1 = req.version == protocol::Version::V1;
    if v1 && req.request_id.len() != 32 {
        return Some("schema: requestid is not 32 characters");
    }
    if req.request_id.is_empty()
        || req.caller.is_empty()
        || req.collective.is_empty()
        || req.agent.is_empty()
        || req.payload.is_empty()
    {
        return Some("schema: a required field is empty");
    }
    if (v1 && req.ttl < 30) || req.ttl < 1 {
        return Some("schema: ttl below the minimum");
    }
    None
}

async fn handle(s: &Arc<Shared>, subject: &str, payload: &bytes::Bytes, cache: &mut Option<Prepared>) {
    if cache.as_ref().is_none_or(|c| c.payload != *payload) {
        *cache = prepare(payload, &s.cfg);
    }
    let Some(p) = cache.as_ref() else {
        lock(&s.stats).malformed += 1;
        return;
    };
    let (req, body, key) = (&p.req, &p.body, &p.key);
    // Servers drop requests outside now ± ttl (message.ValidateTTL).
    if (chrono::Utc::now().timestamp() - req.time_secs).unsigned_abs() > req.ttl {
        lock(&s.stats).ttl_expired += 1;
        return;
    }
    let direct = subject.strip_prefix(&format!("{}.node.", req.collective)).map(str::to_string);
    let is_discovery = req.agent == "discovery";
    let mut out = Vec::new();
    let mut effects = Vec::new();
    {
        let cfg = &s.cfg;
        let mut nodes = lock(&s.nodes);
        let mut rng = lock(&s.rng);
        let mut stats = lock(&s.stats);
        let targets: Vec<usize> = match &direct {
            Some(id) => s.index.get(id).copied().into_iter().collect(),
            None => (0..nodes.len()).collect(),
        };
        for i in targets {
            let node = &mut nodes[i];
            let served = node.state == State::Up
                && node.collective(&cfg.collective) == req.collective
                && (is_discovery || node.agents.iter().any(|a| a == &req.agent))
                && p.matcher.matches(node);
            if !served {
                continue;
            }
            // A secure server drops what it cannot verify, silently; provisioning-mode
            // servers skip verification (DisableSecurityProviderVerify).
            // The schema binds provisioning-mode servers too.
            if let Err(reason) = p.verdict {
                if node.mode == Mode::Normal || reason.starts_with("schema") {
                    *stats.rejected.entry(reason.to_string()).or_default() += 1;
                    continue;
                }
            }
            *stats.requests.entry(key.clone()).or_default() += 1;
            let answer = if is_discovery {
                // The discovery agent answers `pong` to anything containing `ping`.
                if !req.payload.windows(4).any(|w| w == b"ping") {
                    continue;
                }
                out.push(Outgoing {
                    reply_to: req.reply_to.clone(),
                    payload: protocol::encode_reply(req, &node.identity, b"pong", chrono::Utc::now()),
                    delay: None,
                });
                continue;
            } else {
                stats.received.entry(node.identity.clone()).or_default().push(key.clone());
                match body {
                    Some((action, data)) => agents::dispatch(node, cfg, &mut rng, &req.agent, action, data),
                    None if node.fault == Fault::Silent => None,
                    None => Some(Answer {
                        statuscode: 4,
                        statusmsg: "Could not process request: invalid JSON body".into(),
                        data: serde_json::json!({}),
                        effect: None,
                    }),
                }
            };
            let Some(answer) = answer else { continue };
            if let Some(e) = answer.effect {
                node.epoch += 1;
                effects.push((i, node.epoch, e));
            }
            let action = body.as_ref().map(|b| b.0.as_str()).unwrap_or("");
            let delay = (node.fault == Fault::Slow).then_some(cfg.slow_delay);
            out.push(Outgoing {
                reply_to: req.reply_to.clone(),
                payload: protocol::encode_reply(req, &node.identity, &answer.body(action), chrono::Utc::now()),
                delay,
            });
        }
    }
    for o in out {
        match o.delay {
            None => {
                let _ = s.nats.publish(o.reply_to, o.payload).await;
            }
            Some(d) => {
                let nats = s.nats.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    let _ = nats.publish(o.reply_to, o.payload).await;
                });
            }
        }
    }
    for (i, epoch, effect) in effects {
        schedule(s.clone(), i, epoch, effect);
    }
}

fn parse_rpc_body(payload: &[u8]) -> Option<(String, Map<String, Value>)> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    let action = v.get("action")?.as_str()?.to_string();
    let data = match v.get("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return None,
    };
    Some((action, data))
}

/// Applies `f` to node `i` if nothing else changed it since `epoch`; returns what to publish.
fn transition(s: &Shared, i: usize, epoch: u64, f: impl FnOnce(&mut Node)) -> Option<Node> {
    let mut nodes = lock(&s.nodes);
    let node = nodes.get_mut(i)?;
    if node.epoch != epoch || node.state == State::Gone {
        return None;
    }
    f(node);
    Some(node.clone())
}

async fn publish_event(s: &Shared, kind: &str, node: &Node) {
    let inner =
        lifecycle::choria_event(kind, &node.identity, node.component(), Some(&node.version), chrono::Utc::now());
    let event = lifecycle::cloud_event(inner);
    let body = serde_json::to_vec(&event).unwrap_or_default();
    *lock(&s.stats).events.entry(kind.to_string()).or_default() += 1;
    let _ = s.nats.publish(lifecycle::subject(kind, node.component()), body.into()).await;
}

/// The state a going-down node takes: a stuck node is gone for good.
fn stuck_or(n: &Node, state: State) -> State {
    if n.fault == Fault::Stuck {
        State::Gone
    } else {
        state
    }
}

/// Runs the part of an action that happens after the splay.
fn schedule(s: Arc<Shared>, i: usize, epoch: u64, effect: Effect) {
    tokio::spawn(async move {
        let cfg = &s.cfg;
        let down = cfg.scaled(1.0);
        match effect {
            // `configure` succeeded, so the event is due even when the Provisioner's restart
            // (a new epoch) got to the node before this task ran; it used to be lost then.
            Effect::Provisioned => {
                let node = lock(&s.nodes).get(i).filter(|n| n.state != State::Gone).cloned();
                if let Some(n) = node {
                    publish_event(&s, "provisioned", &n).await;
                }
            }
            Effect::Restart(secs) => {
                tokio::time::sleep(cfg.scaled(secs as f64)).await;
                let Some(n) = transition(&s, i, epoch, |n| n.state = stuck_or(n, State::Restarting)) else {
                    return;
                };
                publish_event(&s, "shutdown", &n).await;
                tokio::time::sleep(down).await;
                // A configured provisioning-mode node comes back as a normal server.
                let back = transition(&s, i, epoch, |n| {
                    n.state = State::Up;
                    if n.mode == Mode::Provisioning && n.configured {
                        n.mode = Mode::Normal;
                    }
                });
                if let Some(n) = back {
                    publish_event(&s, "startup", &n).await;
                }
            }
            Effect::Reprovision(secs) => {
                tokio::time::sleep(cfg.scaled(secs as f64)).await;
                let Some(n) = transition(&s, i, epoch, |n| n.state = stuck_or(n, State::Restarting)) else {
                    return;
                };
                publish_event(&s, "shutdown", &n).await;
                tokio::time::sleep(down).await;
                let back = transition(&s, i, epoch, |n| {
                    n.state = State::Up;
                    n.mode = Mode::Provisioning;
                    n.configured = false;
                });
                let Some(n) = back else { return };
                publish_event(&s, "startup", &n).await;
                if let Some(after) = cfg.auto_provision {
                    tokio::time::sleep(after).await;
                    auto_provision(&s, i, epoch).await;
                }
            }
            Effect::Shutdown(secs) => {
                tokio::time::sleep(cfg.scaled(secs as f64)).await;
                if let Some(n) = transition(&s, i, epoch, |n| n.state = State::Gone) {
                    publish_event(&s, "shutdown", &n).await;
                }
            }
        }
    });
}

/// Stands in for a Provisioner: provisioned, shutdown, then startup as a normal server.
async fn auto_provision(s: &Shared, i: usize, epoch: u64) {
    let Some(n) = transition(s, i, epoch, |n| n.configured = true) else {
        return;
    };
    if n.mode != Mode::Provisioning {
        return;
    }
    publish_event(s, "provisioned", &n).await;
    let Some(n) = transition(s, i, epoch, |n| n.state = State::Restarting) else {
        return;
    };
    publish_event(s, "shutdown", &n).await;
    tokio::time::sleep(s.cfg.scaled(1.0)).await;
    if let Some(n) = transition(s, i, epoch, |n| {
        n.state = State::Up;
        n.mode = Mode::Normal;
    }) {
        publish_event(s, "startup", &n).await;
    }
}
