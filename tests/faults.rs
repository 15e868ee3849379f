//! The fault suite: the real binary against a real nats-server that is killed, restarted on
//! the same port, or stopped and continued mid-run; Ctrl-C at each stage; long runs on the
//! embedded broker. Every case has a deadline: a hang fails the test instead of the suite.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{pty, record, sim, Run, World};
use fleetbook::sim::SimConfig;

/// A running `fleetbook` whose output is read line by line as it comes.
struct Live {
    child: tokio::process::Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    /// The tasks reading stdout and stderr; each ends at the end of its stream.
    readers: Vec<tokio::task::JoinHandle<()>>,
    args: Vec<String>,
}

impl Live {
    fn spawn(args: &[&str]) -> Live {
        Live::spawn_env(args, &[])
    }

    fn spawn_env(args: &[&str], env: &[(&str, &str)]) -> Live {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleetbook"));
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        cmd.env_remove("FLEETBOOK_SERVER").env_remove("FLEETBOOK_PROVISION_TOKEN");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("fleetbook starts");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(child.stdout.take().expect("stdout"), stdout.clone()),
            collect(child.stderr.take().expect("stderr"), stderr.clone()),
        ];
        Live { child, stdout, stderr, readers, args: args.iter().map(|s| s.to_string()).collect() }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits until stderr contains `text`.
    async fn on_stderr(&self, text: &str, limit: Duration) {
        let start = Instant::now();
        while !self.stderr().contains(text) {
            assert!(
                start.elapsed() < limit,
                "{:?}: no {text:?} on stderr within {limit:?}; stderr: {}",
                self.args,
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until stdout contains `text`.
    async fn on_stdout(&self, text: &str, limit: Duration) {
        let start = Instant::now();
        while !self.stdout().contains(text) {
            assert!(start.elapsed() < limit, "{:?}: no {text:?} on stdout within {limit:?}", self.args);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn interrupt(&self) {
        self.signal(libc::SIGINT);
    }

    /// Sends `sig` to the process (SIGSTOP and SIGCONT stop and continue it).
    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id().expect("running") as libc::pid_t, sig) };
    }

    /// Waits for the exit, at most `limit`; a process still running then is a hang.
    async fn finish(mut self, limit: Duration) -> Run {
        let status = match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(s) => s.expect("wait"),
            Err(_) => panic!("{:?} still running after {limit:?} (a hang); stderr: {}", self.args, self.stderr()),
        };
        // The readers have the last bytes once they reach the end of their streams, which the
        // exit closes (nothing else holds them: the embedded broker's output goes elsewhere).
        for reader in std::mem::take(&mut self.readers) {
            let read = tokio::time::timeout(Duration::from_secs(10), reader).await;
            assert!(matches!(read, Ok(Ok(()))), "{:?}: output still open after the exit: {read:?}", self.args);
        }
        Run { code: status.code().unwrap_or(-1), stdout: self.stdout(), stderr: self.stderr() }
    }
}

fn collect<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    r: R,
    into: Arc<Mutex<String>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            let mut s = into.lock().unwrap();
            s.push_str(&l);
            s.push('\n');
        }
    })
}

/// Starts `fleetbook --server <the world's broker> --insecure ARGS...`.
fn against(w: &World, rest: &[&str]) -> Live {
    let mut v = vec!["--server", w.url(), "--insecure"];
    v.extend_from_slice(rest);
    Live::spawn(&v)
}

/// Leaves a REPL on a pty with Ctrl-D. Call it once the prompt shows: the line editor prints
/// it after switching the terminal to raw mode, where the key reaches the editor (sent
/// before, the terminal's line discipline could drop it).
fn leave(p: &mut expectrl::session::OsSession) {
    use expectrl::Expect;
    p.send(expectrl::ControlCode::EndOfTransmission).unwrap();
    let _ = p.expect(expectrl::Eof);
}

fn write(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).expect("write the runbook");
}

fn jsonl(stdout: &str) -> Vec<Value> {
    stdout.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).expect("JSONL line")).collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

/// How many times each node received `action` (from the simulator's own accounting).
fn calls(w: &World, action: &str) -> std::collections::BTreeMap<String, usize> {
    w.sim
        .stats()
        .received
        .into_iter()
        .map(|(n, acts)| (n, acts.iter().filter(|a| a.ends_with(action)).count()))
        .collect()
}

fn slow(nodes: usize, slow: &[&str], delay: Duration) -> SimConfig {
    SimConfig { slow_nodes: slow.iter().map(|s| s.to_string()).collect(), slow_delay: delay, ..sim(nodes) }
}

/// Finding 1: the embedded broker lived only as long as an idle tokio thread (about 10 s).
/// Batches 3 s apart for longer than that must all be answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_outlives_idle_threads() {
    let r = Live::spawn(&[
        "--sim",
        "10",
        "--sim-provisioners",
        "0",
        "req",
        "rpcutil",
        "ping",
        "--batch",
        "2",
        "--batch-sleep",
        "4",
        "--json",
    ])
    .finish(Duration::from_secs(90))
    .await;
    r.assert_code(0);
    let j = r.json();
    assert_eq!(strings(&j["ok"]).len(), 10, "{j}");
    assert_eq!(j["batches"], 5);
}

/// A soak of the long-running commands on embedded brokers, side by side, for over a
/// minute: `sim` keeps serving on the URL it printed, `events` keeps receiving, and a
/// batched `req` finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_sim_events_and_req_for_over_a_minute() {
    let started = Instant::now();
    let served = Live::spawn(&["sim", "--nodes", "5", "--sim-provisioners", "0"]);
    served.on_stdout("nats://", Duration::from_secs(30)).await;
    let url = served.stdout().trim().to_string();
    let watch = Live::spawn(&["--server", &url, "--insecure", "events", "--json"]);
    watch.on_stdout("Waiting for events", Duration::from_secs(30)).await;
    let req = Live::spawn(&[
        "--sim",
        "12",
        "--sim-provisioners",
        "0",
        "req",
        "rpcutil",
        "ping",
        "--batch",
        "1",
        "--batch-sleep",
        "5.5",
        "--json",
    ]);
    let r = req.finish(Duration::from_secs(150)).await;
    r.assert_code(0);
    assert_eq!(strings(&r.json()["ok"]).len(), 12);
    assert!(started.elapsed() > Duration::from_secs(60), "the soak lasted over a minute");
    // After a minute, the served broker still answers and events still flow: a restart
    // through the served fleet publishes lifecycle events the watcher prints.
    let r = crate::support::Fleetbook::new()
        .args(["--server", &url, "--insecure", "req", "choria_provision", "restart", "token=s3cret", "splay=1"])
        .run()
        .await;
    r.assert_code(0);
    watch.on_stdout("startup", Duration::from_secs(60)).await;
    served.interrupt();
    let s = served.finish(Duration::from_secs(20)).await;
    assert_eq!(s.code, 0, "one Ctrl-C stops `sim`: {s:?}");
    watch.interrupt();
    let e = watch.finish(Duration::from_secs(20)).await;
    assert_eq!(e.code, 0, "{e:?}");
}

/// Finding 3: the broker killed for good after the first batch: bounded time, exit 4, the
/// nodes not yet sent reported, nothing claimed as success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_during_req_batches_exits_4() {
    let mut w = World::start(sim(6)).await;
    let live = against(
        &w,
        &["req", "rpcutil", "ping", "--batch", "2", "--batch-sleep", "2", "--json", "--max-reconnects", "3"],
    );
    live.on_stderr("batch 1/3", Duration::from_secs(30)).await;
    // The first batch's replies are in once the second batch's sleep begins; kill during it.
    // A timed wait, kept on purpose: fleetbook prints nothing when a batch's replies are all
    // in, and the kill must land inside the 2 s sleep that follows.
    tokio::time::sleep(Duration::from_millis(700)).await;
    w.broker.kill();
    let started = Instant::now();
    let r = live.finish(Duration::from_secs(60)).await;
    assert!(started.elapsed() < Duration::from_secs(30), "ended within the wait: {:?}", started.elapsed());
    r.assert_code(4);
    let j = r.json();
    assert_eq!(j["status"], "broker_lost", "{j}");
    assert_eq!(strings(&j["ok"]).len(), 2, "batch 1 answered: {j}");
    assert_eq!(strings(&j["not_sent"]).len(), 4, "batches 2 and 3 never went out: {j}");
    assert!(strings(&j["no_reply"]).is_empty(), "nobody is called silent: {j}");
    assert!(r.stderr.contains("lost the connection to the broker"), "{}", r.stderr);
}

/// Finding 3: the same for a runbook, with JSONL ending in `run_end`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_during_a_runbook_exits_4_with_run_end() {
    let mut w = World::start(slow(4, &["n003.example.net", "n004.example.net"], Duration::from_secs(3))).await;
    let dir = tempfile::tempdir().unwrap();
    let book = dir.path().join("ping.rhai");
    write(
        &book,
        "rpc_batch(\"rpcutil\", \"ping\", #{}, #{ filter: #{}, batch: 2, sleep: \"1s\", timeout: \"8s\" });\n",
    );
    let live = against(&w, &["--max-reconnects", "2", "run", book.to_str().unwrap(), "--output", "json"]);
    // The second batch holds the slow nodes; kill the broker while it waits for them.
    live.on_stdout("\"batch\":2", Duration::from_secs(30)).await;
    w.broker.kill();
    let r = live.finish(Duration::from_secs(60)).await;
    r.assert_code(4);
    let events = jsonl(&r.stdout);
    let end = events.last().expect("events");
    assert_eq!(end["event"], "run_end", "{}", r.stdout);
    assert_eq!(end["status"], "broker_lost", "{end}");
    let unknown: Vec<&Value> =
        events.iter().filter(|e| e["event"] == "node_result" && e["status"] == "unknown").collect();
    assert_eq!(unknown.len(), 2, "the slow nodes in flight are unknown: {}", r.stdout);
    let ok = events.iter().filter(|e| e["event"] == "node_result" && e["status"] == "ok").count();
    assert_eq!(ok, 2, "{}", r.stdout);
}

/// Finding 3: a broker restarted on the same port between batches: the run goes on, every
/// node is called exactly once, nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restarted_on_the_same_port_between_batches() {
    let mut w = World::start(sim(6)).await;
    let live = against(&w, &["req", "rpcutil", "ping", "--batch", "2", "--batch-sleep", "6", "--json"]);
    live.on_stderr("batch 1/3", Duration::from_secs(30)).await;
    // Restart once batch 1 is answered, inside the 6 s sleep that follows. A timed wait, kept
    // on purpose: fleetbook prints nothing when a batch's replies are all in.
    tokio::time::sleep(Duration::from_millis(700)).await;
    w.broker.restart().expect("restart on the same port");
    let r = live.finish(Duration::from_secs(90)).await;
    assert!(r.stderr.contains("reconnected to the broker"), "the user is told: {}", r.stderr);
    r.assert_code(0);
    let j = r.json();
    assert_eq!(strings(&j["ok"]).len(), 6, "{j}");
    let pings = calls(&w, "ping");
    assert_eq!(pings.len(), 6, "{pings:?}");
    assert!(pings.values().all(|n| *n == 1), "no node was called twice: {pings:?}");
}

/// A broker of its own and a simulated fleet of `nodes` in a `fleetbook sim` process (which a
/// test can stop and continue); returns once the fleet serves.
async fn fleet_process(nodes: usize) -> (fleetbook::sim::broker::EmbeddedBroker, Live) {
    let broker = crate::support::broker();
    let n = nodes.to_string();
    let fleet = Live::spawn(&["sim", "--nodes", &n, "--sim-provisioners", "0", "--server", broker.url()]);
    fleet.on_stderr(&format!("simulating {n}"), Duration::from_secs(30)).await;
    (broker, fleet)
}

/// Stops the fleet's process, restarts the broker on the same port and returns once `client`
/// says it reconnected: the fleet is still away (continue it with SIGCONT).
async fn restart_with_the_fleet_away(broker: &mut fleetbook::sim::broker::EmbeddedBroker, fleet: &Live, client: &Live) {
    fleet.signal(libc::SIGSTOP);
    broker.restart().expect("restart on the same port");
    client.on_stderr("reconnected to the broker", Duration::from_secs(30)).await;
}

/// Six simulated nodes in their own process, a `req rpcutil ping` in batches of 2 (1 s apart)
/// against them, and after batch 1 a broker restart with the fleet away (stopped).
async fn ping_in_batches_past_a_restart() -> (fleetbook::sim::broker::EmbeddedBroker, Live, Live) {
    let (mut broker, fleet) = fleet_process(6).await;
    let url = broker.url().to_string();
    let conf = crate::support::client_conf().to_str().expect("UTF-8").to_string();
    let args = ["--server", &url, "--insecure", "--config", &conf];
    let live =
        Live::spawn(&[&args[..], &["req", "rpcutil", "ping", "--batch", "2", "--batch-sleep", "1", "--json"]].concat());
    live.on_stderr("batch 1/3: 2 ok", Duration::from_secs(30)).await;
    restart_with_the_fleet_away(&mut broker, &fleet, &live).await;
    (broker, fleet, live)
}

/// A broker restarted between batches while the fleet is still away (the simulator, its own
/// process, stopped from before the restart until after the client reconnected): the next
/// batch waits until its nodes answer again instead of going out to servers that are not
/// back (its nodes would have been "no reply", and the run exit 1, for nodes that are fine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_after_a_reconnect_waits_for_its_nodes_to_be_back() {
    let (_broker, fleet, live) = ping_in_batches_past_a_restart().await;
    // A timed wait, on purpose: the fleet stays away for longer than the pause between
    // batches, which is what is under test.
    tokio::time::sleep(Duration::from_secs(2)).await;
    fleet.signal(libc::SIGCONT);
    let r = live.finish(Duration::from_secs(90)).await;
    assert!(r.stderr.contains("waiting up to 20s for batch 2/3's 2 node(s)"), "{}", r.stderr);
    assert!(r.stderr.contains("batch 2/3: all 2 node(s) are back"), "{}", r.stderr);
    r.assert_code(0);
    assert_eq!(strings(&r.json()["ok"]).len(), 6, "{}", r.stdout);
}

/// A second break while a batch waits for its nodes after the first (a cluster restarting
/// its brokers one after another): nodes that answered before it reconnect again, so the
/// batch waits once more, after the connection is back, instead of going out when the first
/// wait ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_break_during_the_wait_for_a_batchs_nodes_is_waited_out_too() {
    let (mut broker, fleet, live) = ping_in_batches_past_a_restart().await;
    let waiting = "waiting up to 20s for batch 2/3's 2 node(s)";
    live.on_stderr(waiting, Duration::from_secs(30)).await;
    broker.restart().expect("restart on the same port");
    let start = Instant::now();
    while live.stderr().matches("reconnected to the broker").count() < 2 {
        assert!(start.elapsed() < Duration::from_secs(30), "no second reconnect: {}", live.stderr());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fleet.signal(libc::SIGCONT);
    let r = live.finish(Duration::from_secs(90)).await;
    assert_eq!(r.stderr.matches(waiting).count(), 2, "waited again after the second break: {}", r.stderr);
    assert!(r.stderr.contains("batch 2/3: all 2 node(s) are back"), "{}", r.stderr);
    r.assert_code(0);
    assert_eq!(strings(&r.json()["ok"]).len(), 6, "{}", r.stdout);
}

/// The presence check a batch makes after a reconnect asks each missing node on its own
/// subject (the one the batch's requests use), never the whole collective, and asks again,
/// every second, only the nodes still missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_presence_check_asks_each_missing_node_on_its_own_subject() {
    let w = World::start(sim(4)).await;
    let nats = w.nats().await;
    let mut seen = record(&nats, "mcollective.>").await;
    let opts = fleetbook::fleet::ClientOptions { servers: vec![w.url().into()], ..Default::default() };
    let f = fleetbook::fleet::Fleet::connect(opts, fleetbook::fleet::ddl::DdlRegistry::builtin()).await.unwrap();
    let nodes: Vec<String> =
        ["n001.example.net", "n002.example.net", "gone.example.net"].iter().map(|n| n.to_string()).collect();
    let never = tokio_util::sync::CancellationToken::new();
    let missing = f.await_present(&nodes, "mcollective", Duration::from_millis(2500), &never).await;
    assert_eq!(missing, ["gone.example.net"]);
    let asked: Vec<String> = crate::support::drain(&mut seen)
        .into_iter()
        .map(|(s, _, _)| s)
        .filter(|s| !s.starts_with("mcollective.reply."))
        .collect();
    let times = |node: &str| asked.iter().filter(|s| *s == &format!("mcollective.node.{node}")).count();
    assert_eq!(times("n001.example.net"), 1, "{asked:?}");
    assert_eq!(times("n002.example.net"), 1, "{asked:?}");
    assert!(times("gone.example.net") >= 2, "asked again while missing: {asked:?}");
    assert_eq!(asked.len(), 2 + times("gone.example.net"), "nothing else was asked: {asked:?}");
}

/// The same while a batch waits for its governor leases: the wait can take minutes, and the
/// connection may break and come back during it. Once the leases come, the batch still waits
/// for its nodes (here: the simulator, stopped from before the restart until after the client
/// reconnected and the lease it waited for was given back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_lease_wait_saw_a_reconnect_waits_for_its_nodes_to_be_back() {
    use fleetbook::fleet::governor::{self, Limits};
    let (mut broker, fleet) = fleet_process(3).await;
    let url = broker.url().to_string();
    // A governor with room for the batch, one slot of it held here: the batch waits.
    let opts = fleetbook::fleet::ClientOptions { servers: vec![url.clone()], ..Default::default() };
    let f = fleetbook::fleet::Fleet::connect(opts, fleetbook::fleet::ddl::DdlRegistry::builtin()).await.unwrap();
    let limits = Limits { capacity: 3, expire: Duration::from_secs(300), replicas: 1 };
    governor::load_or_create(&f, "G", limits).await.unwrap();
    let never = tokio_util::sync::CancellationToken::new();
    let held = governor::acquire(&f, "G", "the test", Duration::from_secs(10), &never).await.unwrap();
    let (_d, rb) = crate::support::runbook_file(
        "leased.rhai",
        r#"rpc_batch("rpcutil", "ping", #{}, #{ filter: #{}, batch: 3, sleep: 0, governor: "G", governor_wait: "90s" });"#,
    );
    let conf = crate::support::client_conf().to_str().expect("UTF-8").to_string();
    let live = Live::spawn(&["--server", &url, "--insecure", "--config", &conf, "run", &rb]);
    live.on_stderr("waiting for 3 lease(s) on governor G", Duration::from_secs(30)).await;
    restart_with_the_fleet_away(&mut broker, &fleet, &live).await;
    // The test's own client reconnects too; then the slot goes back and the batch has its
    // leases while the fleet is still away.
    let released = tokio::time::timeout(Duration::from_secs(30), async {
        while !f.connected() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        held.release().await
    });
    assert!(matches!(released.await, Ok(Ok(true))), "the test's lease was given back");
    // A timed wait, on purpose: the fleet stays away after the leases came.
    tokio::time::sleep(Duration::from_secs(2)).await;
    fleet.signal(libc::SIGCONT);
    let r = live.finish(Duration::from_secs(90)).await;
    assert!(
        r.stderr.contains(
            "broke while the batch waited for its governor leases: waiting up to 20s for batch 1/1's 3 node(s)"
        ),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("batch 1/1: all 3 node(s) are back"), "{}", r.stderr);
    r.assert_code(0);
}

/// Stops the broker (`kill -STOP`) for `pause` as soon as the recorder sees a request go
/// through it, then continues it.
async fn pause_after_next_request(
    w: &World,
    requests: &mut tokio::sync::mpsc::UnboundedReceiver<(String, bytes::Bytes, Instant)>,
    pause: Duration,
) {
    let first = tokio::time::timeout(Duration::from_secs(30), requests.recv()).await;
    assert!(matches!(first, Ok(Some(_))), "no request went through the broker");
    w.broker.signal(libc::SIGSTOP);
    // The pause is the fault under test.
    tokio::time::sleep(pause).await;
    w.broker.signal(libc::SIGCONT);
}

/// Findings 3 and 17: a broker stopped during a batch's wait and continued before it ends
/// loses nothing; one stopped past the wait delivers late replies, reported as late, never
/// as silent, and no node is called twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_broker_short_pause_loses_nothing_and_long_pause_reports_late() {
    let w = World::start(slow(4, &["n001.example.net", "n002.example.net"], Duration::from_millis(800))).await;
    let nats = w.nats().await;
    let mut requests = record(&nats, "mcollective.node.>").await;
    // rpcutil's DDL timeout is 2 s; with the 2 s discovery timeout a batch waits 4 s.
    let live = against(&w, &["req", "rpcutil", "ping", "--batch", "2", "--batch-sleep", "6", "--json"]);
    // Batch 1 (the slow nodes) is through the broker once the recorder sees it: pause it for
    // 6 s, past the 4 s wait; the replies are held and arrive during the batch sleep.
    pause_after_next_request(&w, &mut requests, Duration::from_secs(6)).await;
    let r = live.finish(Duration::from_secs(60)).await;
    r.assert_code(0);
    let j = r.json();
    let mut late = strings(&j["late"]);
    late.sort();
    assert_eq!(late, vec!["n001.example.net", "n002.example.net"], "{j}");
    assert!(strings(&j["no_reply"]).is_empty(), "late nodes are not silent: {j}");
    assert_eq!(strings(&j["ok"]).len(), 4, "{j}");
    assert!(calls(&w, "ping").values().all(|n| *n == 1), "no node called twice");

    // A short pause inside the wait: everything arrives in time.
    crate::support::drain(&mut requests);
    let live = against(&w, &["req", "rpcutil", "ping", "-I", "n001.example.net", "-I", "n002.example.net", "--json"]);
    pause_after_next_request(&w, &mut requests, Duration::from_millis(1500)).await;
    let r = live.finish(Duration::from_secs(30)).await;
    r.assert_code(0);
    assert_eq!(strings(&r.json()["ok"]).len(), 2, "{}", r.stdout);
}

/// Finding 15: the first Ctrl-C stops `req --batch` after the current batch, and the
/// result so far is printed; the second cancels the wait, the unanswered nodes unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_req_batches_and_prints_what_happened() {
    let w = World::start(slow(6, &["n005.example.net"], Duration::from_secs(30))).await;
    let req = ["req", "rpcutil", "ping", "--batch", "2", "--batch-sleep", "1", "--json"];
    let live = against(&w, &req);
    live.on_stderr("batch 1/3", Duration::from_secs(30)).await;
    live.interrupt();
    let r = live.finish(Duration::from_secs(30)).await;
    r.assert_code(3);
    let j = r.json();
    assert_eq!(j["status"], "stopped", "{j}");
    assert_eq!(strings(&j["ok"]).len(), 2, "{j}");
    assert_eq!(strings(&j["not_sent"]).len(), 4, "{j}");
    assert_eq!(calls(&w, "ping").len(), 2, "later batches were not sent");

    // Twice, while batch 3 waits for a node that takes 30 s.
    let live = against(&w, &req);
    live.on_stderr("batch 3/3", Duration::from_secs(30)).await;
    // A timed wait, kept on purpose: the fast node of batch 3 must have answered, and
    // fleetbook prints nothing when a reply comes in.
    tokio::time::sleep(Duration::from_millis(300)).await;
    live.interrupt();
    live.on_stderr("Ctrl-C again to abort", Duration::from_secs(30)).await;
    live.interrupt();
    let r = live.finish(Duration::from_secs(15)).await;
    r.assert_code(3);
    let j = r.json();
    assert_eq!(strings(&j["unknown"]), vec!["n005.example.net"], "{j}");
    assert_eq!(strings(&j["ok"]).len(), 5, "what came back is kept: {j}");
}

/// Findings 6 and 7: in a runbook, `sleep(15)` obeys Ctrl-C; node results are counted as
/// they arrive, so a double Ctrl-C mid-batch still reports the answers already in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbook_sleep_and_mid_batch_ctrl_c() {
    let w = World::start(slow(3, &["n003.example.net"], Duration::from_secs(30))).await;
    let dir = tempfile::tempdir().unwrap();
    let book = dir.path().join("sleepy.rhai");
    write(&book, "print(\"sleeping\");\nsleep(15);\n");
    let live = against(&w, &["run", book.to_str().unwrap()]);
    live.on_stderr("sleeping", Duration::from_secs(30)).await;
    let t = Instant::now();
    live.interrupt();
    let r = live.finish(Duration::from_secs(10)).await;
    r.assert_code(3);
    assert!(t.elapsed() < Duration::from_secs(5), "sleep(15) ended at Ctrl-C");

    write(&book, "rpc_batch(\"rpcutil\", \"ping\", #{}, #{ filter: #{}, timeout: \"60s\" });\n");
    let live = against(&w, &["run", book.to_str().unwrap(), "--output", "json"]);
    // Two replies come at once; the third node takes 30 s.
    let start = Instant::now();
    while live.stdout().matches("node_result").count() < 2 {
        assert!(start.elapsed() < Duration::from_secs(30), "replies are emitted as they arrive: {}", live.stdout());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    live.interrupt();
    live.on_stderr("Ctrl-C again to abort", Duration::from_secs(30)).await;
    live.interrupt();
    let r = live.finish(Duration::from_secs(15)).await;
    r.assert_code(3);
    let events = jsonl(&r.stdout);
    let status = |s: &str| events.iter().filter(|e| e["event"] == "node_result" && e["status"] == s).count();
    assert_eq!((status("ok"), status("unknown")), (2, 1), "{}", r.stdout);
    let end = events.last().unwrap();
    assert_eq!(end["event"], "run_end");
    assert_eq!(end["ok"], 2, "{end}");
    assert_eq!((end["failed"].as_u64(), end["unknown"].as_u64()), (Some(0), Some(1)), "unknown is not failed: {end}");
}

/// Finding 16: with the broker gone for good, discovery and event waits end at their
/// deadline with exit 4 instead of waiting forever in a flush.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_on_a_dead_broker_end_at_their_deadline() {
    let mut w = World::start(sim(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let book = dir.path().join("dead.rhai");
    write(&book, "print(\"ready\");\nsleep(\"1500ms\");\nlet n = discover(#{ timeout: \"2s\" });\nprint(n.len());\n");
    let live = against(&w, &["--max-reconnects", "100", "run", book.to_str().unwrap(), "--output", "json"]);
    live.on_stderr("ready", Duration::from_secs(30)).await;
    w.broker.kill();
    let r = live.finish(Duration::from_secs(20)).await;
    r.assert_code(4);
    assert_eq!(jsonl(&r.stdout).last().unwrap()["event"], "run_end", "{}", r.stdout);

    w.broker.restart().unwrap();
    write(&book, "print(\"ready\");\nlet e = watch_events(#{ timeout: \"8s\" });\n");
    let live = against(&w, &["--max-reconnects", "100", "run", book.to_str().unwrap()]);
    live.on_stderr("ready", Duration::from_secs(30)).await;
    w.broker.kill();
    let r = live.finish(Duration::from_secs(20)).await;
    r.assert_code(4);
}

/// Finding 3 for `events`: a lost broker is announced, and a broker that does not come
/// back ends the watch with exit 4 after the bounded reconnection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_say_the_broker_is_gone() {
    let mut w = World::start(sim(2)).await;
    let live = against(&w, &["--max-reconnects", "3", "events"]);
    live.on_stdout("Waiting for events", Duration::from_secs(30)).await;
    w.broker.kill();
    live.on_stderr("lost the connection to the broker", Duration::from_secs(20)).await;
    let r = live.finish(Duration::from_secs(60)).await;
    r.assert_code(4);
    assert!(r.stderr.contains("lost the broker"), "{}", r.stderr);
}

/// Ctrl-C in `events` (no batches) says it stops, not "at the next safe point".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_in_events_says_it_stops() {
    let w = World::start(sim(1)).await;
    let live = against(&w, &["events"]);
    live.on_stdout("Waiting for events", Duration::from_secs(30)).await;
    live.interrupt();
    let r = live.finish(Duration::from_secs(30)).await;
    assert!(r.stderr.contains("interrupted: stopping\n"), "{}", r.stderr);
    assert!(!r.stderr.contains("safe point"), "{}", r.stderr);
}

/// Finding 18: garbage on the reply subject is counted apart, never as failed nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_reply_subject_is_not_a_node_result() {
    // Every node answers after 1.5 s, so the garbage arrives while the batch still waits.
    let all: Vec<String> = (1..=5).map(|i| format!("n00{i}.example.net")).collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let w = World::start(slow(5, &all, Duration::from_millis(1500))).await;
    let nats = w.nats().await;
    let mut requests = record(&nats, "mcollective.node.>").await;
    let live = against(&w, &["req", "rpcutil", "ping", "--json", "--discovery-timeout", "1"]);
    let (_, payload, _) = tokio::time::timeout(Duration::from_secs(30), requests.recv()).await.unwrap().unwrap();
    let transport: Value = serde_json::from_slice(&payload).unwrap();
    let reply_to = transport["headers"]["reply-to"].as_str().unwrap().to_string();
    for i in 0..40 {
        let junk = if i % 2 == 0 { "garbage".to_string() } else { format!("{{\"headers\":{{\"sender\":\"x{i}\"}}}}") };
        nats.publish(reply_to.clone(), junk.into()).await.unwrap();
    }
    nats.flush().await.unwrap();
    let r = live.finish(Duration::from_secs(30)).await;
    r.assert_code(0);
    let j = r.json();
    assert_eq!(strings(&j["ok"]).len(), 5, "{j}");
    assert!(j["failed"].as_object().unwrap().is_empty(), "{j}");
    assert!(j["malformed"].as_object().unwrap().is_empty(), "{j}");
    assert!(j["stray"].as_u64().unwrap() > 0, "{j}");
}

/// Findings 4 and 11: `req ... shutdown` needs --yes off a terminal and sends nothing
/// without it; --dry-run sends nothing; the token comes from a file or the environment; the
/// text names the failure reason with a count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn req_guards_shutdown_and_explains_failures() {
    let w = World::start(sim(3)).await;
    let r = w.fleetbook().args(["req", "choria_provision", "restart", "token=wrong", "-I", "/n00[23]/"]).run().await;
    r.assert_code(1);
    assert!(r.stdout.contains("2 × Request Aborted: Incorrect provision token supplied"), "{}", r.stdout);
    let sent = |w: &World| w.sim.stats().received.values().map(Vec::len).sum::<usize>();
    let before = sent(&w);
    let r = w.fleetbook().args(["req", "choria_provision", "shutdown", "token=s3cret"]).run().await;
    r.assert_code(3);
    assert!(r.stderr.contains("--yes"), "{}", r.stderr);
    let r =
        w.fleetbook().args(["req", "choria_provision", "shutdown", "token=s3cret", "--dry-run", "--json"]).run().await;
    r.assert_code(0);
    assert_eq!(r.json()["dry_run"], true);
    assert_eq!(sent(&w), before, "nothing was sent");

    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let startups = |w: &World| w.sim.stats().events.get("startup").copied().unwrap_or(0);
    let started = startups(&w);
    let r = w
        .fleetbook()
        .args(["req", "choria_provision", "restart", "splay=1", "--token-file", token.to_str().unwrap(), "--json"])
        .run()
        .await;
    r.assert_code(0);
    assert_eq!(strings(&r.json()["ok"]).len(), 3);
    // The restarted nodes are back (a node still restarting would not answer the shutdown).
    crate::support::eventually(Duration::from_secs(30), "the restarted nodes to start again", || {
        startups(&w) >= started + 3 && w.sim.stats().states.get("up") == Some(&3)
    })
    .await;
    let r = w
        .fleetbook()
        .env("FLEETBOOK_PROVISION_TOKEN", "s3cret")
        .args(["req", "choria_provision", "shutdown", "--yes", "-I", "n001.example.net", "--json"])
        .run()
        .await;
    r.assert_code(0);
    assert_eq!(calls(&w, "shutdown").values().sum::<usize>(), 1);
}

/// Finding 10: a node named twice is called once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_nodes_are_called_once() {
    let w = World::start(sim(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let book = dir.path().join("dup.rhai");
    write(&book, "let r = rpc_batch(\"rpcutil\", \"ping\", #{}, #{ nodes: [\"n001.example.net\", \"n002.example.net\", \"n001.example.net\"] });\nprint(`${r.ok.len()} ok ${r.no_reply.len()} silent`);\n");
    let r = w.fleetbook().args(["run", book.to_str().unwrap()]).run().await;
    r.assert_code(0);
    assert!(r.stderr.contains("2 ok 0 silent"), "{}", r.stderr);
    assert_eq!(calls(&w, "ping")["n001.example.net"], 1);
}

/// Finding 12: every JSONL run ends with `run_end`, also when the runbook does not compile
/// or the broker cannot be reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_jsonl_run_ends_with_run_end() {
    // Nothing listens on port 9 of this machine.
    let dead = |args: &[&str]| {
        crate::support::Fleetbook::new().args(["--server", "nats://127.0.0.1:9", "--insecure"]).args(args)
    };
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.rhai");
    write(&bad, "let x = ;\n");
    let r = dead(&["run", bad.to_str().unwrap(), "--output", "json"]).run().await;
    assert_eq!(r.code, 1, "{r:?}");
    let end = jsonl(&r.stdout).pop().expect("a run_end event");
    assert_eq!((end["event"].as_str(), end["status"].as_str()), (Some("run_end"), Some("error")), "{end}");
    let good = dir.path().join("good.rhai");
    write(&good, "discover();\n");
    let r = dead(&["run", good.to_str().unwrap(), "--output", "json"]).run().await;
    assert_eq!(r.code, 4, "{r:?}");
    let end = jsonl(&r.stdout).pop().expect("a run_end event");
    assert_eq!(end["event"], "run_end", "{end}");
    assert_eq!((end["exit_code"].as_u64(), end["status"].as_str()), (Some(4), Some("unreachable")), "{end}");
    // `req --json` writes one object even when nothing went out.
    let r = dead(&["req", "rpcutil", "ping", "--json"]).run().await;
    assert_eq!(r.code, 4, "{r:?}");
    assert_eq!(r.json()["status"], "unreachable");
}

/// Findings 2 and 6 on a terminal: Ctrl-C in the REPL reaches fleetbook only (the embedded
/// broker lives on), and Ctrl-C at a confirmation prompt ends it at once, without Enter.
#[test]
fn ctrl_c_on_a_terminal_spares_the_broker_and_ends_prompts() {
    use expectrl::{ControlCode, Expect};
    let dir = tempfile::tempdir().unwrap();
    let mut p =
        pty(&["--sim", "3", "--sim-provisioners", "0", "repl"], &dir.path().join("history"), Duration::from_secs(30));
    p.expect("fleetbook> ").expect("prompt");
    // The line prints a marker (not in its own echo) as it starts: the sleep has begun.
    p.send_line("print(\"sleep\" + \"ing\"); sleep(30)").unwrap();
    p.expect("sleeping").expect("the line runs");
    p.send(ControlCode::EndOfText).unwrap();
    p.expect("interrupted").expect("sleep(30) obeys Ctrl-C in the REPL");
    p.expect("fleetbook> ").unwrap();
    p.send_line("discover().len() * 100").unwrap();
    p.expect("300").expect("the broker survived the Ctrl-C");
    p.expect("fleetbook> ").unwrap();
    leave(&mut p);

    let args = ["--sim", "3", "--sim-provisioners", "0", "req", "choria_provision", "shutdown"];
    let mut p = pty(&args, &dir.path().join("history"), Duration::from_secs(30));
    p.expect("[y/N]").expect("the Big Red Button asks on a terminal");
    let t = Instant::now();
    p.send(ControlCode::EndOfText).unwrap();
    // The message fits the place: a prompt has no batch to finish.
    p.expect("interrupted: the question is left unanswered").expect("the prompt's own Ctrl-C line");
    p.expect(expectrl::Eof).expect("Ctrl-C at the prompt ends the command");
    assert!(t.elapsed() < Duration::from_secs(5));
    let status = p.get_process().wait().unwrap();
    assert_eq!(status, expectrl::process::unix::WaitStatus::Exited(p.get_process().pid(), 3));
}

/// The REPL on a terminal for over a minute on the embedded broker, then against a broker
/// that is killed and comes back: the session says the broker is gone, never hangs, and
/// works again once it is back.
#[test]
fn repl_soak_and_a_lost_broker() {
    use expectrl::Expect;
    let dir = tempfile::tempdir().unwrap();
    let mut p =
        pty(&["--sim", "3", "--sim-provisioners", "0", "repl"], &dir.path().join("history"), Duration::from_secs(120));
    p.expect("fleetbook> ").expect("prompt");
    // Idle runtime threads exit after 10 s; the broker must not go with them.
    p.send_line("sleep(\"62s\"); discover().len() * 100").unwrap();
    p.expect("300").expect("the embedded broker is alive after a minute");
    p.expect("fleetbook> ").unwrap();
    leave(&mut p);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut w = rt.block_on(World::start(sim(3)));
    let mut p = pty(&["--server", w.url(), "--insecure", "repl"], &dir.path().join("history"), Duration::from_secs(30));
    p.expect("fleetbook> ").expect("prompt");
    w.broker.kill();
    p.expect("lost the connection to the broker").expect("the loss is announced");
    p.send_line("discover().len()").unwrap();
    p.expect("the broker is gone").expect("a clear error, not a hang");
    p.expect("fleetbook> ").unwrap();
    w.broker.restart().unwrap();
    p.expect("reconnected to the broker").expect("the return is announced");
    // The simulator (in this process) has its own connection to bring back: it answers its
    // statistics once it has.
    rt.block_on(async {
        let nats = w.nats().await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let asked = nats.request(fleetbook::sim::STATS_SUBJECT, "".into());
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), asked).await {
                break;
            }
            assert!(Instant::now() < deadline, "the simulator did not reconnect");
            // Without a subscriber the broker says so at once: poll, do not spin.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    p.send_line("discover().len() * 100").unwrap();
    p.expect("300").expect("the session works again");
    p.expect("fleetbook> ").unwrap();
    leave(&mut p);
}

/// SIGTERM (a cancelled CI job, `timeout`) aborts like a double Ctrl-C: the run ends with
/// `run_end`, the nodes in flight unknown, and the embedded broker's store is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_a_run_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let book = dir.path().join("slow.rhai");
    write(&book, "rpc_batch(\"rpcutil\", \"ping\", #{}, #{ filter: #{}, timeout: \"60s\" });\n");
    let tmp = tempfile::tempdir().unwrap();
    let tmpdir = tmp.path().to_str().unwrap().to_string();
    let live = Live::spawn_env(
        &[
            "--sim",
            "3",
            "--sim-provisioners",
            "0",
            "--sim-slow",
            "n003.example.net",
            "--sim-slow-delay",
            "60s",
            "run",
            book.to_str().unwrap(),
            "--output",
            "json",
        ],
        &[("TMPDIR", &tmpdir)],
    );
    let start = Instant::now();
    while live.stdout().matches("node_result").count() < 2 {
        assert!(start.elapsed() < Duration::from_secs(30), "{}", live.stdout());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = live.child.id().unwrap() as libc::pid_t;
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let r = live.finish(Duration::from_secs(15)).await;
    r.assert_code(3);
    let events = jsonl(&r.stdout);
    let end = events.last().unwrap();
    assert_eq!((end["event"].as_str(), end["unknown"].as_u64()), (Some("run_end"), Some(1)), "{end}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "the broker's store is cleaned up: {left:?}");
}

/// Names given twice are refused, never resolved silently: `--arg`, RPC inputs, and the
/// token from the command line and a file. An absurd simulator size is a usage error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_names_and_absurd_sizes_are_usage_errors() {
    let w = World::start(sim(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    write(&token, "s3cret\n");
    let tries: [&[&str]; 3] = [
        &["run", "runbooks/rolling-restart.rhai", "--arg", "class=apache", "--arg", "class=redis", "--dry-run"],
        &["req", "choria_provision", "restart", "token=s3cret", "splay=1", "splay=2"],
        &["req", "choria_provision", "restart", "token=s3cret", "--token-file", token.to_str().unwrap()],
    ];
    for args in tries {
        let r = w.fleetbook().args(args).run().await;
        r.assert_code(2);
        assert!(r.stderr.contains("twice"), "{}", r.stderr);
    }
    assert!(w.sim.stats().received.values().all(Vec::is_empty), "nothing was sent");
    let r = crate::support::Fleetbook::new().args(["--sim", "99999999999999", "discover"]).run().await;
    r.assert_code(2);
}

/// A secret joined with text prints as `[secret]`; sent to the fleet it would replace the
/// value, so such text in an input or a filter is refused before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_turned_into_text_never_reaches_the_fleet() {
    let w = World::start(sim(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let book = dir.path().join("join.rhai");
    let cases = [
        "let t = secret(\"QA_TOKEN\"); let h = \"Bearer \" + t; rpc_batch(\"choria_provision\", \"restart\", #{ token: h }, #{ filter: #{} });",
        "let t = secret(\"QA_TOKEN\"); rpc_batch(\"choria_provision\", \"restart\", #{ token: `${t}x`, splay: 1 }, #{ filter: #{} });",
        "let t = secret(\"QA_TOKEN\"); discover(#{ fact: [`x=${t}`] });",
    ];
    for case in cases {
        write(&book, case);
        let r = w.fleetbook().env("QA_TOKEN", "hunter2").args(["run", book.to_str().unwrap()]).run().await;
        r.assert_code(1);
        assert!(r.stderr.contains("secret"), "{case}: {}", r.stderr);
        assert!(!r.stderr.contains("hunter2") && !r.stdout.contains("hunter2"), "{r:?}");
    }
    assert!(w.sim.stats().received.values().all(Vec::is_empty), "nothing was sent");
    assert_eq!(w.sim.stats().requests.get("discovery"), None, "no discovery either");
}

/// A windowed discovery whose process is starved of CPU while replies come in still counts
/// every reply the broker delivered in time. Here the starving is done on purpose: a task on
/// the discovery's own thread blocks it for 800 ms right after the first reply, while 40 more
/// arrive 100 ms later. Before, the window's timer then fired with those replies unread (or
/// read but queued) and discovery ended with one node; valgrind showed the same at 10,000
/// nodes (256 found). Each round can go either way without the ping that ends discovery, so
/// three rounds are run.
#[tokio::test(flavor = "current_thread")]
async fn a_starved_windowed_discovery_still_counts_the_replies_that_came_in_time() {
    use fleetbook::fleet::discovery::DiscoveryOptions;
    use fleetbook::fleet::protocol;
    let broker = crate::support::broker();
    let url = broker.url().to_string();
    // The nodes answer from a thread of their own, which the blocking below does not stop:
    // the first at once, then a signal to block, then the rest 100 ms later.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let nodes_url = url.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            use futures::StreamExt;
            let nats = async_nats::connect(nodes_url.as_str()).await.expect("the nodes connect");
            let mut requests = nats.subscribe("mcollective.broadcast.agent.discovery").await.expect("subscribe");
            nats.flush().await.expect("flush");
            ready_tx.send(()).expect("the test waits");
            while let Some(m) = requests.next().await {
                let req = protocol::decode_request(&m.payload).expect("a discovery request");
                let reply = |id: &str| protocol::encode_reply(&req, id, b"pong", chrono::Utc::now());
                nats.publish(req.reply_to.clone(), reply("a.example.net")).await.expect("publish");
                nats.publish("test.block", "".into()).await.expect("publish");
                nats.flush().await.expect("flush");
                tokio::time::sleep(Duration::from_millis(100)).await;
                for n in 0..40 {
                    nats.publish(req.reply_to.clone(), reply(&format!("b{n:02}.example.net"))).await.expect("publish");
                }
                nats.flush().await.expect("flush");
            }
        });
    });
    ready_rx.recv_timeout(Duration::from_secs(20)).expect("the nodes subscribed");
    let opts = fleetbook::fleet::ClientOptions { servers: vec![url], ..Default::default() };
    let f = fleetbook::fleet::Fleet::connect(opts, fleetbook::fleet::ddl::DdlRegistry::builtin()).await.unwrap();
    let mut block = f.nats().subscribe("test.block").await.expect("subscribe");
    f.nats().flush().await.expect("flush");
    let blocker = tokio::spawn(async move {
        use futures::StreamExt;
        while block.next().await.is_some() {
            // Starves this thread, as a loaded machine would.
            std::thread::sleep(Duration::from_millis(800));
        }
    });
    let never = tokio_util::sync::CancellationToken::new();
    for round in 0..3 {
        let d = DiscoveryOptions { window: true, timeout: Some(Duration::from_secs(10)), ..Default::default() };
        let (f2, never2) = (f.clone(), never.clone());
        let found = tokio::spawn(async move { f2.discover(&d, &never2).await }).await.expect("the task");
        let found = found.expect("discovery");
        assert_eq!(found.nodes.len(), 41, "round {round}: {:?}", found.nodes);
    }
    blocker.abort();
}
