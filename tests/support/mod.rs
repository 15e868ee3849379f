//! Test support: a real nats-server per test, an in-process simulated fleet, and a small
//! builder that runs the real `fleetbook` binary with a timeout.

#![allow(dead_code)]

use std::path::PathBuf;
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

/// Starts a real nats-server with JetStream on a free port; it dies with the value.
/// Fails (never skips) with install instructions when no nats-server is available.
pub(crate) fn broker() -> EmbeddedBroker {
    EmbeddedBroker::start().unwrap_or_else(|e| panic!("{e}"))
}

/// A broker plus a simulated fleet in this process, so tests can read its statistics.
pub(crate) struct World {
    pub sim: Simulator,
    pub broker: EmbeddedBroker,
}

impl World {
    pub(crate) async fn start(cfg: SimConfig) -> World {
        let broker = broker();
        let sim = Simulator::start(broker.url(), cfg).await.expect("simulator starts");
        World { sim, broker }
    }

    pub(crate) fn url(&self) -> &str {
        self.broker.url()
    }

    /// A fleetbook command against this world's broker.
    pub(crate) fn fleetbook(&self) -> Fleetbook {
        Fleetbook::new().args(["--server", self.url(), "--insecure"])
    }

    /// A plain NATS client for observing traffic.
    pub(crate) async fn nats(&self) -> async_nats::Client {
        async_nats::connect(self.url()).await.expect("test client connects")
    }
}

/// A simulator config for tests: small, fast splays, no Provisioner (tests that need one
/// ask for it).
pub(crate) fn sim(nodes: usize) -> SimConfig {
    SimConfig { nodes, time_scale: 0.01, provisioners: 0, ..SimConfig::default() }
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
