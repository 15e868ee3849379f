//! Throughput benchmark (issue 15): discovery and `rpcutil ping` to 1,000 and 10,000
//! simulated nodes (50,000 with `FLEETBOOK_BENCH_50K=1`), each figure printed next to a
//! baseline measured in the same run:
//!
//! - the simulated fleet runs in its own process (`fleetbook sim --nodes N --server URL`), as
//!   does the raw floor's responder, so the client's process holds only the client;
//! - client CPU per node: user+sys of the real binary's `req rpcutil ping --json` (discovery
//!   and RPC together, read with `wait4`) divided by the nodes, against the floor client's CPU
//!   per exchange (raw async-nats, same message count and sizes);
//! - the RPC phase's wall time (first request published → last reply decoded) against the
//!   raw floor's;
//! - how long after the last discovery reply (seen by a separate observer connection) the
//!   windowed discovery ends;
//! - the client's peak RSS; and the run journal's cost on a batched `req`.
//!
//! `FLEETBOOK_BENCH_BEFORE_BIN=path/to/old/fleetbook` adds that binary's client CPU to the
//! same run, for a before/after of a change.
//!
//! Run: `cargo bench --bench fleet` (needs nats-server; `scripts/install-nats-server`).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use serde_json::Map;
use tokio_util::sync::CancellationToken;

use fleetbook::fleet::ddl::DdlRegistry;
use fleetbook::fleet::discovery::DiscoveryOptions;
use fleetbook::fleet::filter::Filter;
use fleetbook::fleet::{ClientOptions, Fleet};
use fleetbook::sim::broker::EmbeddedBroker;

// The tests' throwaway PKI and Choria tokens, for the signed rows.
#[allow(dead_code)]
#[path = "../tests/support/pki.rs"]
mod pki;
#[allow(dead_code)]
#[path = "../tests/support/tokens.rs"]
mod tokens;

const ROUNDS: usize = 5;
/// Rounds of the in-process phases (discovery, RPC, floor), which are cheap: on this shared
/// 2-core machine the median of 5 moved by ~0.1x between runs at 10,000 nodes.
const PHASE_ROUNDS: usize = 11;
/// Set to also run 50,000 nodes (about a minute more).
const BIG_ENV: &str = "FLEETBOOK_BENCH_50K";
/// Set to a comma-separated list of node counts to run only those.
const ONLY_ENV: &str = "FLEETBOOK_BENCH_ONLY";
/// Set to another `fleetbook` binary (e.g. a build of the previous commit) to measure its
/// client CPU in the same run, as the "before" of a change.
const BEFORE_ENV: &str = "FLEETBOOK_BENCH_BEFORE_BIN";
/// Set (to the broker URL) when this binary runs as the floor's responder process.
const RESPONDER_ENV: &str = "FLEETBOOK_BENCH_RESPONDER";
/// Reply size for the responder process.
const REPLY_SIZE_ENV: &str = "FLEETBOOK_BENCH_REPLY_SIZE";

// Same allocator as the binary, so the in-process client measures what users run.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// user+sys CPU of this process so far.
fn self_cpu() -> Duration {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    cpu_of(&ru)
}

fn cpu_of(ru: &libc::rusage) -> Duration {
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// A child process killed and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `fleetbook sim --nodes n --server url` (and `extra`) in its own process; returns once it
/// serves.
fn start_sim(url: &str, n: usize, extra: &[&str]) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleetbook"))
        .args(["sim", "--nodes", &n.to_string(), "--server", url])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fleetbook sim starts");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    while !line.starts_with("simulating") {
        line.clear();
        let n = err.read_line(&mut line).expect("sim says it serves");
        assert!(n > 0, "sim ended before serving");
    }
    // Keep draining its stderr so it never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    Proc(child)
}

/// This benchmark binary again, as the floor's responder: answers every `floor.node.>`
/// request with `reply_size` bytes until its stdin closes.
fn start_responder(url: &str, reply_size: usize) -> Proc {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .env(RESPONDER_ENV, url)
        .env(REPLY_SIZE_ENV, reply_size.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("responder starts");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("responder ready");
    assert_eq!(line.trim(), "ready");
    Proc(child)
}

fn responder_main(url: String) {
    let reply_size: usize = std::env::var(REPLY_SIZE_ENV).ok().and_then(|s| s.parse().ok()).unwrap_or(640);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let nats = async_nats::ConnectOptions::new()
            .subscription_capacity(1 << 18)
            .client_capacity(1 << 16)
            .connect(&url)
            .await
            .expect("connect");
        let mut sub = nats.subscribe("floor.node.>").await.expect("sub");
        nats.flush().await.expect("flush");
        println!("ready");
        let _ = std::io::stdout().flush();
        let body = Bytes::from(vec![b'r'; reply_size]);
        let serve = async {
            while let Some(m) = sub.next().await {
                if let Some(reply) = m.reply {
                    let _ = nats.publish(reply, body.clone()).await;
                }
            }
        };
        // The parent closes our stdin (or dies): stop.
        let stdin_closed = tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new()));
        tokio::select! { _ = serve => {}, _ = stdin_closed => {} }
    });
}

/// The floor: N requests of `req_size` bytes published to N subjects, answered by the
/// responder process with its replies, collected on one subscription. Returns the wall time
/// and this process's CPU for it (the floor client's side of each exchange).
async fn floor(client: &async_nats::Client, n: usize, req_size: usize) -> (Duration, Duration) {
    let inbox = format!("floor.reply.{}", uuid::Uuid::new_v4().simple());
    let mut replies = client.subscribe(inbox.clone()).await.expect("sub");
    client.flush().await.expect("flush");
    let body = Bytes::from(vec![b'q'; req_size]);
    let cpu = self_cpu();
    let start = Instant::now();
    for i in 0..n {
        client.publish_with_reply(format!("floor.node.n{i}"), inbox.clone(), body.clone()).await.expect("publish");
    }
    client.flush().await.expect("flush");
    let mut got = 0;
    while got < n {
        match tokio::time::timeout(Duration::from_secs(30), replies.next()).await {
            Ok(Some(_)) => got += 1,
            _ => break,
        }
    }
    let t = start.elapsed();
    let cpu = self_cpu() - cpu;
    assert_eq!(got, n, "floor got every reply");
    (t, cpu)
}

/// Sizes of one ping request and one ping reply as fleetbook and the simulator send them.
async fn wire_sizes(url: &str, node: &str) -> (usize, usize) {
    let nats = async_nats::connect(url).await.expect("connect");
    let mut reqs = nats.subscribe("mcollective.node.>").await.expect("sub");
    let mut reps = nats.subscribe("mcollective.reply.>").await.expect("sub");
    nats.flush().await.expect("flush");
    let fleet = client(url).await;
    let cancel = CancellationToken::new();
    let mut s =
        fleet.rpc_session("rpcutil", "ping", &Map::new(), None, None, Filter::default()).await.expect("session");
    s.send_batch(&[node.to_string()], &cancel, &mut |_| {}).await.expect("ping");
    let req = tokio::time::timeout(Duration::from_secs(5), reqs.next()).await.expect("req seen").expect("req");
    let rep = tokio::time::timeout(Duration::from_secs(5), reps.next()).await.expect("reply seen").expect("reply");
    (req.payload.len(), rep.payload.len())
}

async fn client(url: &str) -> Fleet {
    let opts = ClientOptions { servers: vec![url.to_string()], ..ClientOptions::default() };
    Fleet::connect(opts, DdlRegistry::builtin()).await.expect("client connects")
}

/// Records when the last message on any reply subject arrived, on its own connection: the
/// moment the last discovery reply was there to be read.
struct ReplyObserver {
    base: Instant,
    last_nanos: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl ReplyObserver {
    async fn start(url: &str) -> ReplyObserver {
        let nats =
            async_nats::ConnectOptions::new().subscription_capacity(1 << 18).connect(url).await.expect("connect");
        let mut sub = nats.subscribe("mcollective.reply.>").await.expect("sub");
        nats.flush().await.expect("flush");
        let base = Instant::now();
        let last_nanos = Arc::new(AtomicU64::new(0));
        let last = last_nanos.clone();
        let task = tokio::spawn(async move {
            let _keep = nats;
            while sub.next().await.is_some() {
                last.store(base.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
        });
        ReplyObserver { base, last_nanos, task }
    }

    fn last(&self) -> Instant {
        self.base + Duration::from_nanos(self.last_nanos.load(Ordering::Relaxed))
    }
}

impl Drop for ReplyObserver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What one run of the real binary cost.
struct ProcCost {
    wall: Duration,
    cpu: Duration,
    peak_rss_kib: i64,
}

/// Runs the real binary with `args` against the fleet and checks every node answered.
fn run_binary(url: &str, n: usize, args: &[&str]) -> ProcCost {
    run_program(env!("CARGO_BIN_EXE_fleetbook"), url, n, args)
}

/// Runs `program` (a fleetbook binary) with `args` and checks every node answered.
// The child is reaped with `wait4` (for its own rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run_program(program: &str, url: &str, n: usize, args: &[&str]) -> ProcCost {
    let mut full = vec!["--server", url];
    full.extend_from_slice(args);
    let errf = tempfile::tempfile().expect("temp file");
    let t = Instant::now();
    let mut cmd = Command::new(program);
    if program != env!("CARGO_BIN_EXE_fleetbook") {
        // A "before" binary runs as it ran before: this process turned transparent huge
        // pages off, and children inherit that.
        // SAFETY: prctl between fork and exec touches no memory of ours.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::prctl(libc::PR_SET_THP_DISABLE, 0, 0, 0, 0);
                Ok(())
            });
        }
    }
    let mut child = cmd
        .args(&full)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(errf.try_clone().expect("dup"))
        .spawn()
        .expect("fleetbook runs");
    // Peak RSS from the child's own `VmHWM`, polled while it runs: `ru_maxrss` after a fork
    // and exec starts from this (large) process's RSS, and reported ours at 50,000 nodes.
    let status_path = format!("/proc/{}/status", child.id());
    let hwm = std::thread::spawn(move || {
        let mut peak = 0i64;
        while let Some(kib) = std::fs::read_to_string(&status_path).ok().and_then(|s| vm_hwm_kib(&s)) {
            peak = peak.max(kib);
            std::thread::sleep(Duration::from_millis(2));
        }
        peak
    });
    let mut out = Vec::new();
    child.stdout.take().expect("stdout").read_to_end(&mut out).expect("stdout");
    // wait4 gives this child's own rusage (RUSAGE_CHILDREN would mix in the simulators).
    let mut status = 0;
    // SAFETY: wait4 only writes into the values we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut ru) };
    let wall = t.elapsed();
    assert_eq!(pid, child.id() as libc::pid_t, "wait4");
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_else(|e| {
        let mut err = String::new();
        let mut f = errf;
        let _ = std::io::Seek::rewind(&mut f);
        let _ = f.read_to_string(&mut err);
        panic!("fleetbook {full:?}: no JSON ({e}); stderr: {err}")
    });
    assert_eq!(v["ok"].as_array().map(Vec::len), Some(n), "every node answered fleetbook {full:?}");
    ProcCost { wall, cpu: cpu_of(&ru), peak_rss_kib: hwm.join().unwrap_or(0) }
}

/// `VmHWM` (peak RSS, KiB) from a `/proc/PID/status` text; `None` once the process is gone.
fn vm_hwm_kib(status: &str) -> Option<i64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `req rpcutil ping --json` as an operator runs it: discovery (sliding window) and RPC.
const PING: [&str; 8] =
    ["req", "rpcutil", "ping", "--json", "--discovery-window", "--discovery-timeout", "20", "--no-journal"];

/// In-process figures of one fleet size, medians of PHASE_ROUNDS.
struct Phases {
    discovery: Duration,
    tail: Duration,
    rpc: Duration,
    rpc_cpu: Duration,
    floor: Duration,
    floor_cpu: Duration,
}

async fn phases(url: &str, n: usize, req_size: usize, responder: &async_nats::Client) -> Phases {
    let fleet = client(url).await;
    let cancel = CancellationToken::new();
    let (mut disc, mut tail, mut rpc, mut rpc_cpu, mut raw, mut raw_cpu) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..PHASE_ROUNDS {
        let opts = DiscoveryOptions {
            timeout: Some(Duration::from_secs(30)),
            window: true,
            rpc_agent: Some("rpcutil".into()),
            ..Default::default()
        };
        // Its own connection, only during discovery, so it costs the RPC phase nothing.
        let observer = ReplyObserver::start(url).await;
        let t = Instant::now();
        let found = fleet.discover(&opts, &cancel).await.expect("discover");
        let end = Instant::now();
        // The window adds 300 ms of quiet after the last reply; the tail counts it.
        disc.push((end - t).saturating_sub(fleetbook::fleet::discovery::WINDOW));
        tail.push(end.saturating_duration_since(observer.last()));
        drop(observer);
        assert_eq!(found.nodes.len(), n, "discovered every node");
        let mut s = fleet
            .rpc_session("rpcutil", "ping", &Map::new(), None, Some(Duration::from_secs(60)), Filter::default())
            .await
            .expect("session");
        let cpu = self_cpu();
        let t = Instant::now();
        let out = s.send_batch(&found.nodes, &cancel, &mut |_| {}).await.expect("ping");
        rpc.push(t.elapsed());
        rpc_cpu.push(self_cpu() - cpu);
        assert_eq!(out.replies.len(), n, "every node answered");
        let (t, c) = floor(responder, n, req_size).await;
        raw.push(t);
        raw_cpu.push(c);
    }
    Phases {
        discovery: median(disc),
        tail: median(tail),
        rpc: median(rpc),
        rpc_cpu: median(rpc_cpu),
        floor: median(raw),
        floor_cpu: median(raw_cpu),
    }
}

fn per_node_us(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

fn main() {
    // As the binary does, so the in-process client measures what users run.
    fleetbook::memory::no_transparent_huge_pages();
    if let Ok(url) = std::env::var(RESPONDER_ENV) {
        return responder_main(url);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let broker = EmbeddedBroker::start().unwrap_or_else(|e| panic!("{e}"));
    let url = broker.url().to_string();
    let mut sizes = vec![1_000usize, 10_000];
    if std::env::var_os(BIG_ENV).is_some() {
        sizes.push(50_000);
    }
    // Only some of them, to look at one size again without the others (e.g. `50000`).
    if let Ok(only) = std::env::var(ONLY_ENV) {
        let only: Vec<usize> =
            only.split(',').map(|n| n.trim().parse().expect("FLEETBOOK_BENCH_ONLY: node counts")).collect();
        sizes = only;
    }
    println!("fleetbook benchmark (issue 15): median of {PHASE_ROUNDS} rounds in process (rpc phase, discovery), of {ROUNDS}");
    println!("for the binary; one 2-core machine runs the broker,");
    println!("the simulator (its own process), the floor's responder (its own process) and the client.");
    if std::env::var_os(BIG_ENV).is_none() {
        println!("(50,000 nodes: set {BIG_ENV}=1)");
    }
    for n in sizes {
        let sim = start_sim(&url, n, &[]);
        let (req_size, reply_size, p, responder) = rt.block_on(async {
            let probe = client(&url).await;
            // The simulator is up once every node answers discovery.
            let opts = DiscoveryOptions { timeout: Some(Duration::from_secs(60)), window: true, ..Default::default() };
            let found = probe.discover(&opts, &CancellationToken::new()).await.expect("discover");
            assert_eq!(found.nodes.len(), n, "the simulator serves every node");
            let (req_size, reply_size) = wire_sizes(&url, &found.nodes[0]).await;
            let responder = start_responder(&url, reply_size);
            let nats = async_nats::ConnectOptions::new()
                .subscription_capacity(1 << 18)
                .client_capacity(1 << 16)
                .connect(&url)
                .await
                .expect("connect");
            let p = phases(&url, n, req_size, &nats).await;
            (req_size, reply_size, p, responder)
        });
        drop(responder);
        println!();
        println!("== {n} nodes (request {req_size} B, reply {reply_size} B on the wire)");
        println!(
            "  rpc phase wall    {:>8.1} ms   raw floor {:>8.1} ms   ratio {:.2}x (target <= 1.5x)   {:.0} nodes/s",
            ms(p.rpc),
            ms(p.floor),
            p.rpc.as_secs_f64() / p.floor.as_secs_f64(),
            n as f64 / p.rpc.as_secs_f64()
        );
        println!(
            "  rpc phase CPU     {:>8.2} us/node  raw floor client {:>5.2} us/exchange  ratio {:.2}x (in-process client)",
            per_node_us(p.rpc_cpu, n),
            per_node_us(p.floor_cpu, n),
            p.rpc_cpu.as_secs_f64() / p.floor_cpu.as_secs_f64()
        );
        println!(
            "  discovery         {:>8.1} ms to the last reply; ended {:.1} ms after the last reply arrived (target <= 350 ms, window {} ms)",
            ms(p.discovery),
            ms(p.tail),
            fleetbook::fleet::discovery::WINDOW.as_millis()
        );
        // The real binary, as an operator runs it: discovery + RPC, insecure v1 and v2 (signed
        // requests over TLS at 10,000 nodes, below).
        let before = std::env::var(BEFORE_ENV).ok();
        let mut variants: Vec<(String, &str, Vec<&str>)> = vec![
            ("insecure v1".into(), env!("CARGO_BIN_EXE_fleetbook"), vec!["--insecure"]),
            ("insecure v2".into(), env!("CARGO_BIN_EXE_fleetbook"), vec!["--insecure", "--protocol", "v2"]),
        ];
        if let Some(b) = &before {
            variants.insert(0, ("BEFORE insecure v1".into(), b.as_str(), vec!["--insecure"]));
        }
        // Rounds interleave the variants: the machine's speed drifts over a run (by 20% over
        // minutes on this shared VM), and five runs of one variant after another compared
        // that drift as much as the variants.
        let mut all: Vec<Vec<_>> = variants.iter().map(|_| Vec::new()).collect();
        for _ in 0..ROUNDS {
            for ((_, program, extra), runs) in variants.iter().zip(&mut all) {
                let mut args = extra.clone();
                args.extend_from_slice(&PING);
                runs.push(run_program(program, &url, n, &args));
            }
        }
        for ((label, _, _), runs) in variants.iter().zip(&all) {
            let cpu = median(runs.iter().map(|r| r.cpu).collect());
            let wall = median(runs.iter().map(|r| r.wall).collect());
            let rss = runs.iter().map(|r| r.peak_rss_kib).max().unwrap_or(0);
            println!(
                "  binary {label}: CPU {:>6.2} us/node (target <= 8; floor client {:.2} us/exchange, {:.2}x)  wall {:.0} ms  peak RSS {:.1} MB (target <= 150)",
                per_node_us(cpu, n),
                per_node_us(p.floor_cpu, n),
                cpu.as_secs_f64() / p.floor_cpu.as_secs_f64(),
                ms(wall),
                rss as f64 / 1024.0
            );
        }
        if n == 10_000 {
            // The run journal's cost (durable-runs issue): the same batched req, alternating.
            let batched = ["req", "rpcutil", "ping", "--json", "--batch", "1000", "--batch-sleep", "0.001"];
            let tail = ["--discovery-window", "--discovery-timeout", "10"];
            let (mut with, mut without) = (Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                let mut args = vec!["--insecure"];
                args.extend_from_slice(&batched);
                args.extend_from_slice(&tail);
                with.push(run_binary(&url, n, &args).wall);
                args.push("--no-journal");
                without.push(run_binary(&url, n, &args).wall);
            }
            let (a, b) = (median(without), median(with));
            println!(
                "  journal: req --batch 1000 to {n} nodes {:.0} ms without, {:.0} ms with: {:.2}x (target <= 1.2x)",
                ms(a),
                ms(b),
                b.as_secs_f64() / a.as_secs_f64()
            );
        }
        drop(sim);
        if n == 10_000 {
            signed(n, p.floor_cpu);
        }
    }
}

/// The real binary's CPU per node over TLS, insecure and signed (v1 with an RSA certificate,
/// v2 with an ed25519 seed and client JWT), against a simulated fleet that checks every
/// signature: a broker with TLS that also takes plain connections (the simulator's), a
/// throwaway CA for the broker's and the client's certificates, and an issuer for the JWT.
fn signed(n: usize, floor_cpu: Duration) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let d = dir.path();
    let path = |p: &std::path::Path| p.to_str().expect("UTF-8 temporary paths").to_string();
    let ca = pki::ca("fleetbook bench CA");
    let ca_path = d.join("ca.pem");
    std::fs::write(&ca_path, &ca.pem).expect("write the CA");
    let (bcert, bkey) = pki::leaf(d, &ca, "broker", &["localhost", "127.0.0.1"], false);
    let (ccert, ckey) = pki::leaf(d, &ca, "bench.mcollective", &[], false);
    let conf = d.join("broker.conf");
    let text =
        format!("tls {{\n  cert_file: {:?}\n  key_file: {:?}\n}}\nallow_non_tls: true\n", path(&bcert), path(&bkey));
    std::fs::write(&conf, text).expect("write the broker configuration");
    let broker = EmbeddedBroker::start_with(&["-c", &path(&conf)]).unwrap_or_else(|e| panic!("{e}"));
    let url = broker.url().to_string();
    let issuer = pki::ed_key();
    let client = pki::ed_key();
    let claims =
        tokens::client_claims(&issuer.verifying_key(), &client.verifying_key(), "up=bench", serde_json::json!({}));
    let (jwt, seed) = pki::write_creds(d, "bench", &pki::sign_jwt(&issuer, &claims), &client);
    let issuer_hex = hex::encode(issuer.verifying_key().as_bytes());
    let (ca_s, ccert_s, ckey_s, jwt_s, seed_s) = (path(&ca_path), path(&ccert), path(&ckey), path(&jwt), path(&seed));
    let rows: [(&str, Vec<&str>, Vec<&str>); 3] = [
        ("TLS, insecure v1", vec![], vec!["--tls-ca", &ca_s, "--insecure"]),
        (
            "TLS, signed v1 (RSA certificate)",
            vec!["--sim-ca", &ca_s],
            vec!["--tls-ca", &ca_s, "--tls-cert", &ccert_s, "--tls-key", &ckey_s],
        ),
        (
            "TLS, signed v2 (ed25519, JWT)",
            vec!["--sim-issuer", &issuer_hex],
            vec!["--tls-ca", &ca_s, "--jwt", &jwt_s, "--seed", &seed_s],
        ),
    ];
    for (label, sim_args, client_args) in rows {
        let sim = start_sim(&url, n, &sim_args);
        let mut runs = Vec::new();
        for _ in 0..ROUNDS {
            let mut args = client_args.clone();
            args.extend_from_slice(&PING);
            runs.push(run_binary(&url, n, &args));
        }
        drop(sim);
        let cpu = median(runs.iter().map(|r| r.cpu).collect());
        println!(
            "  binary {label}: CPU {:>6.2} us/node (floor client {:.2} us/exchange on a plain connection, {:.2}x)  wall {:.0} ms",
            per_node_us(cpu, n),
            per_node_us(floor_cpu, n),
            cpu.as_secs_f64() / floor_cpu.as_secs_f64(),
            ms(median(runs.iter().map(|r| r.wall).collect()))
        );
    }
}
