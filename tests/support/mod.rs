//! Test support: a real nats-server per test, an in-process simulated fleet, and a small
//! builder that runs the real `fleetbook` binary with a timeout.
//!
//! Waiting, the rules the suite keeps (it must pass on a loaded 2-core machine, and fast):
//! - Never sleep to let something happen: wait for a sign that it did, with a deadline. The
//!   signs at hand: a line fleetbook prints (`events` prints its header once subscribed;
//!   "Ctrl-C again to abort" once the first Ctrl-C counted; a REPL prompt once the terminal
//!   is raw), the simulator's statistics ([`eventually`]), messages a recorder holds
//!   ([`take`]), and, before asserting that nothing reached the fleet, [`World::settle`].
//! - A sleep stays only where the time itself is under test, or where fleetbook gives no
//!   sign at all; it then says so in a comment.
//! - Discovery on loopback needs little time: commands read [`client_conf`] (0.5 s).
//!   A silent node costs the whole RPC wait: tests of silent nodes pass
//!   [`short_rpc_timeouts`].
//! - Waits that do not depend on each other run side by side (`tokio::join!`).

#![allow(dead_code)]

pub(crate) mod pki;
pub(crate) mod tokens;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use fleetbook::sim::broker::EmbeddedBroker;
use fleetbook::sim::{SimConfig, Simulator};

/// Where the shared Choria data files live (`../shared/choria` from the project root).
pub(crate) fn choria_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/choria").join(rel)
}

/// Reads a shared Choria JSON file.
pub(crate) fn choria_json(rel: &str) -> serde_json::Value {
    let path = choria_file(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The discovery timeout, in seconds, that the tests' Choria config gives fleetbook (its own
/// default is 2 s). Everything runs on loopback, where the simulator answers discovery within
/// milliseconds, even on a loaded 2-core machine; half a second is still a wide margin. It
/// also shortens every RPC wait, which is the discovery timeout plus the agent's DDL timeout.
pub(crate) const DISCOVERY_TIMEOUT: f64 = 0.5;

/// A Choria client config that sets only `discovery_timeout` to [`DISCOVERY_TIMEOUT`]: the
/// one knob that shortens the default discovery of `discover()`, `rpc_batch` and the REPL.
pub(crate) fn client_conf() -> &'static Path {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    CONF.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let path = dir.join("fleetbook-tests-client.conf");
        // Written aside and renamed: test processes running side by side (nextest) never
        // read a half-written file.
        let aside = dir.join(format!("fleetbook-tests-client.conf.{}", std::process::id()));
        std::fs::write(&aside, format!("discovery_timeout = {DISCOVERY_TIMEOUT}\n")).expect("write the test config");
        std::fs::rename(&aside, &path).expect("put the test config in place");
        path
    })
}

/// A `--ddl-dir` holding rpcutil's and choria_provision's DDLs with a 1 s timeout instead of
/// 2 s and 20 s. A silent node is known only once the whole wait (discovery timeout + DDL
/// timeout) is over: tests of silent nodes pass this so that each wait is 1.5 s. The nodes
/// that do answer, on loopback, answer within milliseconds.
pub(crate) fn short_rpc_timeouts() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (agent, text, built_in) in [
        ("rpcutil", include_str!("../../ddl/rpcutil.json"), 2),
        ("choria_provision", include_str!("../../ddl/choria_provision.json"), 20),
    ] {
        let mut ddl: serde_json::Value = serde_json::from_str(text).expect("the built-in DDL is JSON");
        assert_eq!(ddl["metadata"]["timeout"], built_in, "{agent}: the built-in DDL changed");
        ddl["metadata"]["timeout"] = 1.into();
        std::fs::write(dir.path().join(format!("{agent}.json")), ddl.to_string()).expect("write the DDL");
    }
    dir
}

/// Starts a real nats-server with JetStream on a free port; it dies with the value.
/// Fails (never skips) with install instructions when no nats-server is available.
pub(crate) fn broker() -> EmbeddedBroker {
    EmbeddedBroker::start().unwrap_or_else(|e| panic!("{e}"))
}

/// A broker plus a simulated fleet in this process, so tests can read its statistics.
pub(crate) struct World {
    pub sim: Simulator,
    pub broker: EmbeddedBroker,
    /// The broker's CA when it takes TLS only ([`World::start_tls`]).
    pub tls: Option<fleetbook::fleet::client::TlsFiles>,
    _pki: Option<tempfile::TempDir>,
}

impl World {
    pub(crate) async fn start(cfg: SimConfig) -> World {
        let broker = broker();
        let sim = Simulator::start(broker.url(), cfg).await.expect("simulator starts");
        World { sim, broker, tls: None, _pki: None }
    }

    /// A world whose broker takes TLS only, with a certificate from a throwaway CA and no
    /// client certificates asked for: what a JWT client needs, as a Choria broker checks a
    /// JWT only over TLS. [`World::fleetbook_jwt`] connects to it.
    pub(crate) async fn start_tls(cfg: SimConfig) -> World {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (ca, cert, key) = pki::broker_tls(dir.path());
        let s = |p: &Path| p.to_str().expect("test paths are UTF-8").to_string();
        let broker = EmbeddedBroker::start_with(&["--tls", "--tlscert", &s(&cert), "--tlskey", &s(&key)])
            .unwrap_or_else(|e| panic!("{e}"));
        let tls = fleetbook::fleet::client::TlsFiles { ca: Some(ca), cert: None, key: None };
        let sim = Simulator::start(broker.url(), SimConfig { tls: Some(tls.clone()), ..cfg })
            .await
            .expect("simulator starts");
        World { sim, broker, tls: Some(tls), _pki: Some(dir) }
    }

    /// A fleetbook command signing with the JWT and seed at these paths, over TLS to this
    /// world's broker ([`World::start_tls`]), with the tests' short discovery timeout.
    pub(crate) fn fleetbook_jwt(&self, jwt: &Path, seed: &Path) -> Fleetbook {
        let ca = self.tls.as_ref().and_then(|t| t.ca.as_deref()).expect("a world started with start_tls");
        Fleetbook::new()
            .test_config()
            .args(["--server", self.url(), "--tls-ca"])
            .arg_path(ca)
            .arg("--jwt")
            .arg_path(jwt)
            .arg("--seed")
            .arg_path(seed)
    }

    pub(crate) fn url(&self) -> &str {
        self.broker.url()
    }

    /// A fleetbook command against this world's broker, with the tests' short discovery
    /// timeout ([`client_conf`]).
    pub(crate) fn fleetbook(&self) -> Fleetbook {
        Fleetbook::new().test_config().args(["--server", self.url(), "--insecure"])
    }

    /// Returns once the simulator has handled everything published before this call, for
    /// assertions that something did *not* reach the fleet. The simulator takes each of its
    /// subscriptions in order, so a message it cannot decode, sent on each of them, is counted
    /// as `malformed` only after whatever came before it there.
    pub(crate) async fn settle(&self) {
        let nats = self.nats().await;
        let before = self.sim.stats().malformed;
        let subjects = ["broadcast.agent.discovery", "node.settle.example.net"];
        let collectives = ["mcollective", "provisioning"];
        for c in collectives {
            for s in subjects {
                nats.publish(format!("{c}.{s}"), "not a request: the tests' settle marker".into())
                    .await
                    .expect("publish the settle marker");
            }
        }
        nats.flush().await.expect("flush");
        let want = before + (subjects.len() * collectives.len()) as u64;
        eventually(Duration::from_secs(20), "the simulator to take the settle markers", || {
            self.sim.stats().malformed >= want
        })
        .await;
    }

    /// A plain NATS client for observing traffic.
    pub(crate) async fn nats(&self) -> async_nats::Client {
        let mut co = async_nats::ConnectOptions::new();
        if let Some(tls) = &self.tls {
            co = tls.apply(co);
        }
        co.connect(self.url()).await.expect("test client connects")
    }
}

/// A runbook file `name` holding `body`, in a temporary directory that lives as long as the
/// returned guard; and its path as text.
pub(crate) fn runbook_file(name: &str, body: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join(name);
    std::fs::write(&path, body).expect("write the runbook");
    let p = path.to_str().expect("test paths are UTF-8").to_string();
    (dir, p)
}

/// A simulator config for tests: small, fast splays, no Provisioner (tests that need one
/// ask for it).
pub(crate) fn sim(nodes: usize) -> SimConfig {
    SimConfig { nodes, time_scale: 0.01, provisioners: 0, ..SimConfig::default() }
}

/// A request as fleetbook would send it, with the given credentials and send time: to
/// `rpcutil` in `mcollective`, TTL 60, replies to `mcollective.reply.x`.
pub(crate) fn request(
    version: fleetbook::fleet::protocol::Version,
    caller: &str,
    security: fleetbook::fleet::protocol::Security,
    payload: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> bytes::Bytes {
    use fleetbook::fleet::protocol::{self, Payload, RequestSpec};
    let filter = fleetbook::fleet::filter::Filter::default();
    let rid = version.new_request_id();
    let spec = RequestSpec {
        request_id: &rid,
        sender: "t",
        caller,
        collective: "mcollective",
        agent: "rpcutil",
        ttl: 60,
        filter: &filter,
        reply_to: "mcollective.reply.x",
        payload: Payload::Rpc(payload),
        security,
    };
    protocol::encode_request(version, &spec, now)
}

/// The result of running the binary.
#[derive(Debug)]
pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    #[track_caller]
    pub(crate) fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code; run: {self:#?}");
        self
    }
}

/// Builder for one run of the real binary.
pub(crate) struct Fleetbook {
    args: Vec<String>,
    env: Vec<(String, String)>,
    timeout: Duration,
}

impl Fleetbook {
    pub(crate) fn new() -> Self {
        Fleetbook { args: Vec::new(), env: Vec::new(), timeout: Duration::from_secs(90) }
    }

    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.args.extend(args.into_iter().map(|s| s.as_ref().to_string()));
        self
    }

    pub(crate) fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    /// Reads the tests' Choria config ([`client_conf`]): the short discovery timeout.
    pub(crate) fn test_config(self) -> Self {
        self.args(["--config"]).arg_path(client_conf())
    }

    pub(crate) fn arg_path(mut self, p: &std::path::Path) -> Self {
        self.args.push(p.to_str().expect("test paths are UTF-8").to_string());
        self
    }

    pub(crate) fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub(crate) async fn run(self) -> Run {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleetbook"));
        cmd.args(&self.args).stdin(std::process::Stdio::null()).kill_on_drop(true);
        cmd.env_remove("FLEETBOOK_SERVER");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = tokio::time::timeout(self.timeout, cmd.output())
            .await
            .unwrap_or_else(|_| panic!("fleetbook {:?} did not finish in {:?}", self.args, self.timeout))
            .expect("fleetbook runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Collects every message on `subject` until `stop` resolves; returns (subject, payload, time).
pub(crate) async fn record(
    nats: &async_nats::Client,
    subject: &str,
) -> tokio::sync::mpsc::UnboundedReceiver<(String, bytes::Bytes, std::time::Instant)> {
    use futures::StreamExt;
    let mut sub = nats.subscribe(subject.to_string()).await.expect("subscribe");
    nats.flush().await.expect("flush");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            if tx.send((m.subject.to_string(), m.payload, std::time::Instant::now())).is_err() {
                break;
            }
        }
    });
    rx
}

/// Drains what a recorder has collected so far.
pub(crate) fn drain<T>(rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>) -> Vec<T> {
    let mut v = Vec::new();
    while let Ok(x) = rx.try_recv() {
        v.push(x);
    }
    v
}

/// Waits until a recorder holds `n` messages, or panics after `limit`; returns them and any
/// more already in.
pub(crate) async fn take<T>(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>,
    n: usize,
    limit: Duration,
    what: &str,
) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut v = Vec::new();
    while v.len() < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(x)) => v.push(x),
            Ok(None) => panic!("the recorder stopped after {} of {n} {what}", v.len()),
            Err(_) => panic!("timed out after {limit:?} with {} of {n} {what}", v.len()),
        }
    }
    v.extend(drain(rx));
    v
}

/// Waits until `f` holds, polling, or panics after `limit`.
pub(crate) async fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The real binary in a pseudo-terminal, with its own REPL history file and `limit` for
/// each expectation.
pub(crate) fn pty(args: &[&str], history: &std::path::Path, limit: Duration) -> expectrl::session::OsSession {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_fleetbook"));
    cmd.args(args).env("FLEETBOOK_HISTORY", history).env("TERM", "xterm");
    let mut p = expectrl::Session::spawn(cmd).expect("spawn in a pty");
    p.set_expect_timeout(Some(limit));
    p
}
