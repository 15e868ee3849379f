//! Choria Governors against a real nats-server with JetStream: the stream go-choria makes,
//! `governor add|list|view|evict|reset` with `choria governor`'s output, and leases taken,
//! waited for, expired, evicted and released.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use tokio_util::sync::CancellationToken;

use crate::support::{broker, record, take, Fleetbook, Run};
use fleetbook::fleet::ddl::DdlRegistry;
use fleetbook::fleet::governor::{self, GovernorError, Limits};
use fleetbook::fleet::{ClientOptions, Fleet};
use fleetbook::sim::broker::EmbeddedBroker;

async fn cli(b: &EmbeddedBroker, args: &[&str]) -> Run {
    Fleetbook::new().test_config().args(["--server", b.url(), "--insecure", "governor"]).args(args).run().await
}

async fn fleet(b: &EmbeddedBroker) -> Fleet {
    let opts = ClientOptions { servers: vec![b.url().to_string()], ..ClientOptions::default() };
    Fleet::connect(opts, DdlRegistry::builtin()).await.unwrap()
}

async fn config(b: &EmbeddedBroker, name: &str) -> stream::Info {
    let js = jetstream::new(async_nats::connect(b.url()).await.unwrap());
    js.get_stream(format!("GOVERNOR_{name}")).await.unwrap().info().await.unwrap().clone()
}

fn limits(capacity: i64, expire: Duration) -> Limits {
    Limits { capacity, expire, replicas: 1 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_list_and_update_make_go_choria_s_stream() {
    let b = broker();
    cli(&b, &["list"]).await.assert_code(0);
    assert_eq!(cli(&b, &["list"]).await.stdout, "No Governors found\n");
    assert_eq!(cli(&b, &["list", "--json"]).await.stdout, "[]\n");

    let r = cli(&b, &["add", "PUPPET", "2", "1h"]).await;
    r.assert_code(0);
    assert_eq!(r.stdout, "Configuration:\n\n  Capacity: 2\n   Expires: 1h0m0s\n  Replicas: 1\n\n");
    let i = config(&b, "PUPPET").await;
    let c = &i.config;
    assert_eq!(c.subjects, vec!["mcollective.governor.PUPPET".to_string()]);
    assert_eq!((c.max_messages, c.max_age, c.num_replicas), (2, Duration::from_secs(3600), 1));
    assert_eq!(c.discard, stream::DiscardPolicy::New, "a full governor refuses, never drops a lease");
    assert_eq!((c.retention, c.storage), (stream::RetentionPolicy::Limits, stream::StorageType::File));
    assert_eq!(c.description.as_deref(), Some("Concurrency Governor PUPPET"));

    // The same again changes nothing and asks nothing.
    cli(&b, &["add", "PUPPET", "2", "60m"]).await.assert_code(0);
    // A change asks first: off a terminal without --force nothing changes.
    let r = cli(&b, &["add", "PUPPET", "3", "1h30m"]).await;
    r.assert_code(3);
    assert!(r.stdout.starts_with("Existing configuration:\n\n  Capacity: 2 desired: 3\n   Expires: 1h0m0s desired: 1h30m0s\n  Replicas: 1 desired: 1\n"), "{}", r.stdout);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    assert_eq!(config(&b, "PUPPET").await.config.max_messages, 2, "untouched");
    let r = cli(&b, &["add", "PUPPET", "3", "1h30m", "--force"]).await;
    r.assert_code(0);
    assert!(
        r.stdout.ends_with("Configuration:\n\n  Capacity: 3\n   Expires: 1h30m0s\n  Replicas: 1\n\n"),
        "{}",
        r.stdout
    );
    let c = config(&b, "PUPPET").await.config;
    assert_eq!((c.max_messages, c.max_age), (3, Duration::from_secs(5400)));

    cli(&b, &["add", "CRON", "1", "5m"]).await.assert_code(0);
    // Another collective's governor is not ours to list.
    Fleetbook::new()
        .test_config()
        .args(["--server", b.url(), "--insecure", "--collective", "other", "governor", "add", "ELSEWHERE", "1", "1m"])
        .run()
        .await
        .assert_code(0);
    assert_eq!(cli(&b, &["list"]).await.stdout, "Known Governors:\n\n\tCRON\n\tPUPPET\n");
    assert_eq!(cli(&b, &["ls", "-j"]).await.json(), serde_json::json!(["CRON", "PUPPET"]));

    // Bad arguments are usage errors, and nothing is created.
    for bad in [
        &["add", "X", "0", "1m"][..],
        &["add", "X", "1", "10"],
        &["add", "a.b", "1", "1m"],
        &["add", "X", "1", "1m", "9"],
    ] {
        cli(&b, bad).await.assert_code(2);
    }
    let r = cli(&b, &["view", "NOPE"]).await;
    r.assert_code(2);
    assert!(r.stderr.contains("unknown governor NOPE"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_evict_and_reset_see_go_choria_s_leases() {
    let b = broker();
    cli(&b, &["add", "G", "3", "10m"]).await.assert_code(0);
    assert!(cli(&b, &["view", "G"]).await.stdout.ends_with("  Active Leases: 0\n\n"));
    // A lease as go-choria takes it: a plain request on the subject, the holder as the body.
    let nats = async_nats::connect(b.url()).await.unwrap();
    for who in ["n1.example.net", "n2"] {
        let ack = nats.request("mcollective.governor.G", who.into()).await.unwrap();
        assert!(String::from_utf8_lossy(&ack.payload).contains("\"seq\""), "{ack:?}");
    }
    let r = cli(&b, &["view", "G"]).await;
    r.assert_code(0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    let head = "Configuration for Governor G\n\n       Capacity: 3\n        Expires: 10m0s\n       Replicas: 1\n  Active Leases: 2\n\n\n";
    assert!(r.stdout.starts_with(head), "{}", r.stdout);
    assert!(lines[8].starts_with("╭────┬────────────────┬──") && lines[8].ends_with('╮'), "{}", r.stdout);
    assert!(lines[9].starts_with("│ ID │ Process Name   │ Age "), "{}", r.stdout);
    let row = regex::Regex::new(r"^│ (\d+) +│ (\S+) +│ (\d+(\.\d+)?m?s) +│$").unwrap();
    let rows: Vec<(String, String)> = lines[11..13]
        .iter()
        .map(|l| {
            let c = row.captures(l).unwrap_or_else(|| panic!("not a lease row: {l}"));
            (c[1].to_string(), c[2].to_string())
        })
        .collect();
    assert_eq!(rows, [("1".into(), "n1.example.net".into()), ("2".into(), "n2".into())]);
    assert!(lines[13].starts_with('╰') && r.stdout.ends_with("╯\n\n"), "{}", r.stdout);

    // Evicting asks first; off a terminal without --force nothing changes.
    let r = cli(&b, &["evict", "G", "1"]).await;
    r.assert_code(3);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    assert_eq!(config(&b, "G").await.state.messages, 2, "untouched");
    let r = cli(&b, &["evict", "G", "1", "-f"]).await;
    r.assert_code(0);
    assert_eq!(r.stdout, "Evicted \"n1.example.net\" from slot 1\n");
    assert_eq!(config(&b, "G").await.state.messages, 1);
    let r = cli(&b, &["evict", "G", "1", "--force"]).await;
    r.assert_code(2);
    assert!(r.stderr.contains("governor G has no lease 1"), "{}", r.stderr);

    let r = cli(&b, &["reset", "G"]).await;
    r.assert_code(3);
    assert_eq!(config(&b, "G").await.state.messages, 1, "untouched");
    let r = cli(&b, &["reset", "G", "--force"]).await;
    r.assert_code(0);
    assert_eq!(r.stdout, "", "go-choria says nothing after a reset");
    assert_eq!(config(&b, "G").await.state.messages, 0);
    assert_eq!(cli(&b, &["reset", "G"]).await.stdout, "No lease entries to remove\n");
    assert_eq!(cli(&b, &["evict", "G", "2"]).await.stdout, "No lease entries to remove\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_one_makes_the_second_wait_for_the_first() {
    let b = broker();
    let f = fleet(&b).await;
    governor::load_or_create(&f, "ONE", limits(1, Duration::from_secs(60))).await.unwrap();
    let never = CancellationToken::new();
    let first = governor::acquire(&f, "ONE", "first", Duration::from_secs(10), &never).await.unwrap();
    assert_eq!(first.seq(), 1);

    // The second campaigns (its tries are visible on the subject) and waits.
    let nats = async_nats::connect(b.url()).await.unwrap();
    let mut tries = record(&nats, "mcollective.governor.ONE").await;
    let f2 = f.clone();
    let second = tokio::spawn(async move {
        let never = CancellationToken::new();
        governor::acquire(&f2, "ONE", "second", Duration::from_secs(30), &never).await
    });
    take(&mut tries, 3, Duration::from_secs(10), "campaigns of the second").await;
    assert!(!second.is_finished(), "the second got a slot while the first held the only one");

    // Past max_wait a third gives up with a clear error.
    let started = std::time::Instant::now();
    let e = governor::acquire(&f, "ONE", "third", Duration::from_millis(600), &never).await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(600), "{:?}", started.elapsed());
    assert!(matches!(e, GovernorError::WaitExpired { .. }), "{e:?}");
    assert!(e.to_string().contains("no free slot on governor ONE"), "{e}");

    // Ctrl-C ends a wait.
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let f3 = f.clone();
    let fourth =
        tokio::spawn(async move { governor::acquire(&f3, "ONE", "fourth", Duration::from_secs(30), &cancel).await });
    take(&mut tries, 2, Duration::from_secs(10), "more campaigns").await;
    stop.cancel();
    let e = tokio::time::timeout(Duration::from_secs(5), fourth).await.unwrap().unwrap().unwrap_err();
    assert!(matches!(e, GovernorError::Cancelled { .. }), "{e:?}");

    // Released, the slot goes to the one waiting.
    assert!(first.release().await.unwrap(), "the lease was there to release");
    let second = tokio::time::timeout(Duration::from_secs(10), second).await.unwrap().unwrap().unwrap();
    assert_eq!(second.who(), "second");
    let (info, leases) = governor::view(&f, "ONE").await.unwrap();
    assert_eq!(info.active, 1);
    assert_eq!((leases[0].seq, leases[0].who.as_str()), (second.seq(), "second"));

    // Dropping a lease releases it too.
    drop(second);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while governor::info(&f, "ONE").await.unwrap().active > 0 {
        assert!(std::time::Instant::now() < deadline, "the dropped lease was never released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreleased_lease_expires_by_max_age() {
    let b = broker();
    let f = fleet(&b).await;
    governor::load_or_create(&f, "SHORT", limits(1, Duration::from_secs(1))).await.unwrap();
    // A holder that died: its lease is never released.
    let nats = async_nats::connect(b.url()).await.unwrap();
    nats.request("mcollective.governor.SHORT", "crashed".into()).await.unwrap();
    let started = std::time::Instant::now();
    let never = CancellationToken::new();
    let lease = governor::acquire(&f, "SHORT", "next", Duration::from_secs(15), &never).await.unwrap();
    // The time is under test here: the slot frees only when the stream ages the lease out.
    assert!(started.elapsed() >= Duration::from_millis(500), "got a slot after {:?}", started.elapsed());
    assert_eq!(lease.seq(), 2);
    let (_, leases) = governor::view(&f, "SHORT").await.unwrap();
    assert_eq!(leases.iter().map(|l| l.who.as_str()).collect::<Vec<_>>(), ["next"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evict_frees_a_slot_for_the_one_waiting() {
    let b = broker();
    let f = fleet(&b).await;
    cli(&b, &["add", "EV", "1", "10m"]).await.assert_code(0);
    let never = CancellationToken::new();
    let held = governor::acquire(&f, "EV", "stuck", Duration::from_secs(5), &never).await.unwrap();
    let nats = async_nats::connect(b.url()).await.unwrap();
    let mut tries = record(&nats, "mcollective.governor.EV").await;
    let f2 = f.clone();
    let waiting = tokio::spawn(async move {
        let never = CancellationToken::new();
        governor::acquire(&f2, "EV", "waiting", Duration::from_secs(30), &never).await
    });
    take(&mut tries, 2, Duration::from_secs(10), "campaigns").await;
    assert!(!waiting.is_finished());
    let r = cli(&b, &["evict", "EV", &held.seq().to_string(), "--force"]).await;
    r.assert_code(0);
    assert_eq!(r.stdout, format!("Evicted \"stuck\" from slot {}\n", held.seq()));
    let lease = tokio::time::timeout(Duration::from_secs(10), waiting).await.unwrap().unwrap().unwrap();
    assert_eq!(lease.who(), "waiting");
    assert!(!held.release().await.unwrap(), "an evicted lease is gone already");
    assert!(lease.release().await.unwrap());
    assert_eq!(governor::info(&f, "EV").await.unwrap().active, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquiring_an_unknown_governor_fails_at_once() {
    let b = broker();
    let f = fleet(&b).await;
    let never = CancellationToken::new();
    let e = governor::acquire(&f, "NOPE", "me", Duration::from_secs(30), &never).await.unwrap_err();
    assert!(matches!(e, GovernorError::Unknown { .. }), "{e:?}");
}

/// A runbook file in a temp dir.
fn book(body: &str) -> (tempfile::TempDir, String) {
    crate::support::runbook_file("gov.rhai", body)
}

fn events(r: &Run) -> Vec<serde_json::Value> {
    r.stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Starts a runbook that holds a run-wide lease; returns once it says it holds it.
async fn holder(url: &str, rb: &str) -> tokio::process::Child {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleetbook"))
        .args(["--server", url, "--insecure", "run", rb])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let held = async {
        while let Ok(Some(l)) = lines.next_line().await {
            if l.contains("holding") {
                return;
            }
        }
        panic!("the holder ended before it held the lease");
    };
    tokio::time::timeout(Duration::from_secs(30), held).await.expect("the holder takes the lease");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

/// Issue 11 §5: `governor()` in runbooks. Two runs share a governor of capacity 1: the
/// second waits until the first ends; with a short max_wait it stops with exit 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_sharing_a_governor_of_capacity_one_take_turns() {
    let w = crate::support::World::start(crate::support::sim(2)).await;
    w.fleetbook().args(["governor", "add", "deploys", "1", "1h", "--force"]).run().await.assert_code(0);
    let (_a, hold) = book("governor(\"deploys\");\nprint(\"holding\");\nsleep(\"3s\");\n");
    let (_b, wait) = book("governor(\"deploys\", #{ max_wait: \"30s\" });\nprint(\"got it\");\n");
    let (_c, short) = book("governor(\"deploys\", #{ max_wait: \"1s\" });\nprint(\"got it\");\n");
    let nats = w.nats().await;
    let mut announced = record(&nats, "choria.lifecycle.event.governor.fleetbook").await;

    let mut first = holder(w.url(), &hold).await;
    let refused = w.fleetbook().args(["run", &short]).run().await;
    refused.assert_code(3);
    assert!(refused.stderr.contains("no free slot on governor deploys"), "{}", refused.stderr);
    let second = w.fleetbook().args(["run", &wait, "--output", "json"]).run().await;
    second.assert_code(0);
    let evs = events(&second);
    let got = evs.iter().find(|e| e["event"] == "governor").expect("a governor event");
    assert!(evs.iter().any(|e| e["event"] == "governor_wait" && e["governor"] == "deploys"), "{}", second.stdout);
    assert!(got["waited_ms"].as_u64().unwrap() >= 500, "it waited for the first run: {got}");
    assert_eq!(first.wait().await.unwrap().code(), Some(0));
    // Both runs gave their lease back.
    let view = w.fleetbook().args(["governor", "view", "deploys"]).run().await;
    assert!(!view.stdout.contains("fleetbook uid") && !view.stdout.contains("pid "), "{}", view.stdout);
    // Each lease was announced as go-choria's governor lifecycle events.
    let mut kinds: Vec<String> = take(&mut announced, 5, Duration::from_secs(10), "governor events")
        .await
        .iter()
        .map(|(_, body, _)| {
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            assert_eq!(v["data"]["governor"], "deploys", "{v}");
            v["data"]["event_type"].as_str().unwrap().to_string()
        })
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["enter", "enter", "exit", "exit", "timeouts"]);
}

/// Issue 11 §5: `rpc_batch(..., #{governor: NAME})` takes one lease per node of each batch,
/// so two rollouts sharing a governor of capacity 2 never have their batches of 2 in flight
/// at the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_node_leases_cap_nodes_in_flight_across_runs() {
    let all: Vec<String> = (1..=4).map(|i| format!("n00{i}.example.net")).collect();
    let cfg = fleetbook::sim::SimConfig {
        slow_nodes: all.clone(),
        slow_delay: Duration::from_millis(600),
        ..crate::support::sim(4)
    };
    let w = crate::support::World::start(cfg).await;
    w.fleetbook().args(["governor", "add", "inflight", "2", "1h", "--force"]).run().await.assert_code(0);
    let (_d, rb) = book(
        r#"rpc_batch("rpcutil", "ping", #{}, #{ nodes: ["n001.example.net", "n002.example.net", "n003.example.net", "n004.example.net"], batch: 2, sleep: 0, timeout: "5s", governor: "inflight", governor_wait: "60s" });"#,
    );
    let one = w.fleetbook().args(["run", &rb, "--output", "json"]).run();
    let two = w.fleetbook().args(["run", &rb, "--output", "json"]).run();
    let (one, two) = tokio::join!(one, two);
    one.assert_code(0);
    two.assert_code(0);
    let spans = |r: &Run| -> Vec<(String, String)> {
        let evs = events(r);
        let starts: Vec<String> =
            evs.iter().filter(|e| e["event"] == "batch_start").map(|e| e["time"].as_str().unwrap().into()).collect();
        let ends: Vec<String> =
            evs.iter().filter(|e| e["event"] == "batch_end").map(|e| e["time"].as_str().unwrap().into()).collect();
        assert_eq!(starts.len(), 2, "{}", r.stdout);
        starts.into_iter().zip(ends).collect()
    };
    for (s1, e1) in spans(&one) {
        for (s2, e2) in spans(&two) {
            assert!(e1 <= s2 || e2 <= s1, "batches overlapped: [{s1}, {e1}] and [{s2}, {e2}]");
        }
    }
    // A batch bigger than the governor can never have all its leases: it stops at once.
    let (_d2, big) = book(
        r#"rpc_batch("rpcutil", "ping", #{}, #{ nodes: ["n001.example.net", "n002.example.net", "n003.example.net"], batch: 3, sleep: 0, governor: "inflight" });"#,
    );
    let r = w.fleetbook().args(["run", &big]).run().await;
    r.assert_code(3);
    assert!(r.stderr.contains("needs 3 leases but governor inflight has room for 2"), "{}", r.stderr);
}

/// `governor run` holds a slot while its command runs, passes the command's exit status on,
/// gives the slot back and announces `enter` and `exit` (and `timeouts` when no slot comes) as
/// go-choria's lifecycle events; `evict` announces `eviction`; `delete` removes the governor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_holds_a_slot_for_its_command_and_announces_it() {
    let b = broker();
    cli(&b, &["add", "G", "1", "10m"]).await.assert_code(0);
    let nats = async_nats::connect(b.url()).await.unwrap();
    let mut seen = record(&nats, "choria.lifecycle.event.governor.>").await;
    let events = |msgs: Vec<(String, bytes::Bytes, std::time::Instant)>| -> Vec<(String, u64, String)> {
        msgs.iter()
            .map(|(subject, body, _)| {
                assert_eq!(subject, "choria.lifecycle.event.governor.CLI");
                let e = fleetbook::lifecycle::parse(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
                let v: serde_json::Value = serde_json::from_slice(body).unwrap();
                assert_eq!(v["type"], "io.choria.lifecycle.v1.governor", "a CloudEvent: {v}");
                assert_eq!(e.governor.as_deref(), Some("G"));
                let data = &v["data"];
                (data["event_type"].as_str().unwrap().to_string(), data["sequence"].as_u64().unwrap(), e.identity)
            })
            .collect()
    };
    // While the command runs the slot is taken: the command itself looks.
    let dir = tempfile::tempdir().unwrap();
    let seen_by_cmd = dir.path().join("active");
    let script = format!(
        "{} --server {} --insecure governor view G > {}; exit 7",
        env!("CARGO_BIN_EXE_fleetbook"),
        b.url(),
        seen_by_cmd.display()
    );
    let r = cli(&b, &["run", "G", "--interval", "1s", "sh", "-c", &script]).await;
    r.assert_code(7);
    let view = std::fs::read_to_string(&seen_by_cmd).unwrap();
    assert!(view.contains("Active Leases: 1"), "{view}");
    assert_eq!(config(&b, "G").await.state.messages, 0, "the slot went back");
    let got = events(take(&mut seen, 2, Duration::from_secs(10), "enter and exit").await);
    assert_eq!((got[0].0.as_str(), got[1].0.as_str()), ("enter", "exit"), "{got:?}");
    assert!(got[0].1 > 0 && got[0].1 == got[1].1, "both name the lease: {got:?}");

    // Full: the wait runs out, exit 3, `timeouts`.
    let f = fleet(&b).await;
    let held = governor::acquire(&f, "G", "someone", Duration::from_secs(5), &CancellationToken::new()).await.unwrap();
    let r = cli(&b, &["run", "G", "--max-wait", "1s", "--interval", "1s", "true"]).await;
    r.assert_code(3);
    assert!(r.stderr.contains("could not get an execution slot on governor G"), "{}", r.stderr);
    let got = events(take(&mut seen, 1, Duration::from_secs(10), "timeouts").await);
    assert_eq!((got[0].0.as_str(), got[0].1), ("timeouts", 0), "{got:?}");

    // Evicting the holder says so, as the evicted identity.
    cli(&b, &["evict", "G", &held.seq().to_string(), "--force"]).await.assert_code(0);
    let got = events(take(&mut seen, 1, Duration::from_secs(10), "eviction").await);
    assert_eq!(got[0], ("eviction".to_string(), held.seq(), "someone".to_string()), "{got:?}");

    let r = cli(&b, &["delete", "G"]).await;
    r.assert_code(3);
    cli(&b, &["delete", "G", "--force"]).await.assert_code(0);
    cli(&b, &["view", "G"]).await.assert_code(2);
}

/// Gives `held` back once `f` is connected again (within 30 s), and checks it went back.
async fn release_once_back(f: &Fleet, held: governor::Lease) {
    let released = tokio::time::timeout(Duration::from_secs(30), async {
        while !f.connected() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        held.release().await
    });
    assert!(matches!(released.await, Ok(Ok(true))), "the holder's lease went back");
}

/// Starts "the waiter" on `G`, whose one slot is held, and returns once its first try is seen
/// on the wire: where each restart test then breaks the broker.
async fn waiter_trying(
    b: &EmbeddedBroker,
    f: &Fleet,
    wait: Duration,
) -> tokio::task::JoinHandle<Result<governor::Lease, GovernorError>> {
    let watcher = async_nats::connect(b.url()).await.unwrap();
    let mut tries = record(&watcher, "mcollective.governor.G").await;
    let waiter = tokio::spawn({
        let f = f.clone();
        async move { governor::acquire(&f, "G", "the waiter", wait, &CancellationToken::new()).await }
    });
    take(&mut tries, 1, Duration::from_secs(10), "a try on the full governor").await;
    waiter
}

/// A broker killed with requests in it (stopped first, so what the client sent sits unread,
/// then killed and started again on the same port): those requests are never answered. A
/// read and a lease try are asked again once the client is back instead of failing with
/// their own timeout, and the lease is taken once (one message id in every try).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_lost_with_a_killed_broker_are_asked_again() {
    let mut b = broker();
    let f = fleet(&b).await;
    governor::load_or_create(&f, "G", limits(1, Duration::from_secs(300))).await.unwrap();
    let never = CancellationToken::new();
    let held = governor::acquire(&f, "G", "the holder", Duration::from_secs(5), &never).await.unwrap();

    // A read in the stopped broker.
    b.signal(libc::SIGSTOP);
    let read = tokio::spawn({
        let f = f.clone();
        async move { governor::info(&f, "G").await }
    });
    // Not observable from here: the time the client takes to write the request.
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.restart().expect("restart on the same port");
    let info = read.await.unwrap().expect("the read is asked again after the reconnect");
    assert_eq!(info.active, 1);

    // A lease try in the stopped broker: the governor is full, so the waiter tries every
    // 250 ms; right after a try the broker stops and the next one sits in it.
    let waiter = waiter_trying(&b, &f, Duration::from_secs(60)).await;
    b.signal(libc::SIGSTOP);
    // The fault: stopped long enough for the next try to be sent into it.
    tokio::time::sleep(Duration::from_millis(800)).await;
    b.restart().expect("restart on the same port");
    // The holder's lease is on disk; giving it back lets the waiter in.
    release_once_back(&f, held).await;
    let lease = waiter.await.unwrap().expect("the lost try is made again, not reported as a lost broker");
    let (gov, leases) = governor::view(&f, "G").await.unwrap();
    assert_eq!(gov.active, 1, "{leases:?}");
    assert_eq!((leases[0].seq, leases[0].who.as_str()), (lease.seq(), "the waiter"));
    assert!(lease.release().await.unwrap());
}

/// A broker away for longer than a lease try's timeout (5 s) while a waiter tries every
/// 250 ms on a full governor: the tries wait for the connection instead of queueing one that
/// times out while the client is still reconnecting, and the waiter gets the slot once the
/// broker is back and the holder gives it up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_wait_outlasts_a_broker_away_for_longer_than_a_try() {
    let mut b = broker();
    let f = fleet(&b).await;
    governor::load_or_create(&f, "G", limits(1, Duration::from_secs(300))).await.unwrap();
    let held =
        governor::acquire(&f, "G", "the holder", Duration::from_secs(5), &CancellationToken::new()).await.unwrap();
    let waiter = waiter_trying(&b, &f, Duration::from_secs(90)).await;
    b.kill();
    // The fault under test: the broker away for 7 s.
    tokio::time::sleep(Duration::from_secs(7)).await;
    b.restart().expect("start again on the same port");
    release_once_back(&f, held).await;
    let lease = waiter.await.unwrap().expect("the wait goes on across the outage");
    assert_eq!(lease.who(), "the waiter");
    assert!(lease.release().await.unwrap());
}
