//! Throughput benchmark: discovery and `rpcutil ping` to 1,000 and 10,000 simulated nodes,
//! against a raw async-nats request/reply floor with the same message count and sizes,
//! measured in the same run; plus the client's peak RSS as a separate process.
//!
//! Run: `cargo bench --bench fleet` (needs nats-server; `scripts/install-nats-server`).

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
use fleetbook::sim::{SimConfig, Simulator};

const ROUNDS: usize = 5;

// Same allocator as the binary, so the in-process client measures what users run.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The floor: N requests of `req_size` bytes published to N subjects, answered by a dumb
/// responder with `reply_size` bytes, collected on one subscription. No Choria work at all.
async fn floor(url: &str, n: usize, req_size: usize, reply_size: usize) -> Duration {
    let responder =
        async_nats::ConnectOptions::new().subscription_capacity(1 << 18).connect(url).await.expect("connect");
    let client = async_nats::ConnectOptions::new().subscription_capacity(1 << 18).connect(url).await.expect("connect");
    let mut sub = responder.subscribe("floor.node.>").await.expect("sub");
    responder.flush().await.expect("flush");
    let reply_body = Bytes::from(vec![b'r'; reply_size]);
    let r2 = responder.clone();
    let task = tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            if let Some(reply) = m.reply {
                let _ = r2.publish(reply, reply_body.clone()).await;
            }
        }
    });
    let mut replies = client.subscribe("floor.reply").await.expect("sub");
    client.flush().await.expect("flush");
    let body = Bytes::from(vec![b'q'; req_size]);
    let start = Instant::now();
    for i in 0..n {
        client.publish_with_reply(format!("floor.node.n{i}"), "floor.reply", body.clone()).await.expect("publish");
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
    task.abort();
    assert_eq!(got, n, "floor got every reply");
    t
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

/// Peak RSS (KiB) of the real binary doing discovery + ping against the running fleet.
fn client_peak_rss_kib(url: &str, n: usize) -> i64 {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fleetbook"))
        .args([
            "--server",
            url,
            "--insecure",
            "req",
            "rpcutil",
            "ping",
            "--json",
            "--discovery-window",
            "--discovery-timeout",
            "10",
        ])
        .output()
        .expect("fleetbook runs");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json output");
    assert_eq!(v["ok"].as_array().map(Vec::len), Some(n), "every node answered the subprocess");
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    ru.ru_maxrss
}

/// Wall time of the real binary's batched `req` to every node, with or without the journal.
fn batched_req(url: &str, n: usize, journal: bool) -> Duration {
    let mut args = vec!["--server", url, "--insecure", "req", "rpcutil", "ping", "--json"];
    args.extend(["--batch", "1000", "--batch-sleep", "0.001", "--discovery-window", "--discovery-timeout", "10"]);
    if !journal {
        args.push("--no-journal");
    }
    let t = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fleetbook")).args(&args).output().expect("fleetbook runs");
    let elapsed = t.elapsed();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json output");
    assert_eq!(v["ok"].as_array().map(Vec::len), Some(n), "every node answered");
    elapsed
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let broker = EmbeddedBroker::start().unwrap_or_else(|e| panic!("{e}"));
    let url = broker.url().to_string();
    println!("fleetbook benchmark: median of {ROUNDS} rounds; broker, simulator and client share this 2-core machine");
    println!(
        "{:>7} {:>14} {:>14} {:>14} {:>12} {:>9} {:>12}",
        "nodes", "discovery", "rpc ping", "raw floor", "rpc nodes/s", "rpc/floor", "client RSS"
    );
    rt.block_on(async {
        for n in [1_000usize, 10_000] {
            let sim = Simulator::start(&url, SimConfig { nodes: n, ..SimConfig::default() }).await.expect("sim");
            let (req_size, reply_size) = wire_sizes(&url, &sim.identities()[0]).await;
            let fleet = client(&url).await;
            let cancel = CancellationToken::new();
            let (mut disc, mut rpc, mut raw) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                let opts = DiscoveryOptions { timeout: Some(Duration::from_secs(30)), window: true, rpc_agent: Some("rpcutil".into()), ..Default::default() };
                let t = Instant::now();
                let found = fleet.discover(&opts, &cancel).await.expect("discover");
                // The window adds 300 ms of quiet after the last reply; do not count it.
                disc.push(t.elapsed().saturating_sub(fleetbook::fleet::discovery::WINDOW));
                assert_eq!(found.nodes.len(), n, "discovered every node");
                let mut s = fleet.rpc_session("rpcutil", "ping", &Map::new(), None, Some(Duration::from_secs(60)), Filter::default()).await.expect("session");
                let t = Instant::now();
                let out = s.send_batch(&found.nodes, &cancel, &mut |_| {}).await.expect("ping");
                rpc.push(t.elapsed());
                assert_eq!(out.replies.len(), n, "every node answered");
                raw.push(floor(&url, n, req_size, reply_size).await);
            }
            let (d, r, f) = (median(disc), median(rpc), median(raw));
            let rss = client_peak_rss_kib(&url, n);
            println!(
                "{n:>7} {:>12.1}ms {:>12.1}ms {:>12.1}ms {:>12.0} {:>8.2}x {:>9.1} MB",
                d.as_secs_f64() * 1e3,
                r.as_secs_f64() * 1e3,
                f.as_secs_f64() * 1e3,
                n as f64 / r.as_secs_f64(),
                r.as_secs_f64() / f.as_secs_f64(),
                rss as f64 / 1024.0
            );
            println!("        (request {req_size} B, reply {reply_size} B on the wire; floor = raw async-nats, no Choria work)");
            if n == 10_000 {
                // The run journal's cost (durable-runs issue): the same batched req, alternating.
                let (mut with, mut without) = (Vec::new(), Vec::new());
                for _ in 0..ROUNDS {
                    without.push(batched_req(&url, n, false));
                    with.push(batched_req(&url, n, true));
                }
                let (a, b) = (median(without), median(with));
                println!(
                    "        journal: req --batch 1000 to {n} nodes {:.0} ms without, {:.0} ms with: {:.2}x (target <= 1.2x)",
                    a.as_secs_f64() * 1e3,
                    b.as_secs_f64() * 1e3,
                    b.as_secs_f64() / a.as_secs_f64()
                );
            }
            drop(sim);
        }
    });
}
