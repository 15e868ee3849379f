//! Issue 11, part 1: the run journal in JetStream (write-ahead batches, no secrets, fail
//! closed) and `fleetbook runs` / `runs show`, against a real nats-server and the simulator.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull::OrderedConfig, stream};
use fleetbook::sim::SimConfig;
use futures::StreamExt;
use serde_json::Value;

use crate::support::{eventually, sim, Run, World};

const TOKEN: &str = "J0urnalT0ken";

fn lines(r: &Run) -> Vec<Value> {
    r.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

/// Every message of the journal stream, in order: (subject, payload).
async fn messages(nats: async_nats::Client) -> Vec<(String, String)> {
    let js = jetstream::new(nats);
    let mut s = js.get_stream(fleetbook::journal::STREAM).await.expect("the journal stream exists");
    let total = s.info().await.unwrap().state.messages;
    let c = s.create_consumer(OrderedConfig::default()).await.unwrap();
    let mut msgs = c.messages().await.unwrap();
    let mut out = Vec::new();
    while (out.len() as u64) < total {
        let m = tokio::time::timeout(Duration::from_secs(10), msgs.next()).await.expect("journal read").unwrap();
        let m = m.unwrap();
        out.push((m.subject.to_string(), String::from_utf8_lossy(&m.payload).into_owned()));
    }
    out
}

/// Every event of the journal stream, in order: (subject, its JSON line). Events of one kind
/// written together share a message, a line each.
async fn journal(w: &World) -> Vec<(String, String)> {
    let kept = messages(w.nats().await).await;
    kept.iter().flat_map(|(s, p)| p.split('\n').map(|line| (s.clone(), line.to_string()))).collect()
}

fn runbook(body: &str) -> (tempfile::TempDir, String) {
    crate::support::runbook_file("journaled.rhai", body)
}

/// The journal holds the run's events, in the order the run made them, under its run id;
/// each batch is recorded before any of its results; no secret is in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_records_each_batch_before_its_results_and_no_secret() {
    // Real time for the restarts' splays: n001 goes down 2 s or more after it answered, so the
    // second restart never meets it down from the first (at the usual 0.01 scale it went down
    // for 10 ms some 20 ms later, and the request then got no reply: CI saw it once).
    let w = World::start(SimConfig { token: TOKEN.into(), time_scale: 1.0, ..sim(5) }).await;
    let (_d, rb) = runbook(&format!(
        r#"let t = arg("token");
rpc_batch("choria_provision", "restart", #{{ token: t, splay: 1 }}, #{{ filter: #{{}}, batch: 2, sleep: 0 }});
rpc_batch("choria_provision", "restart", #{{ token: "{TOKEN}" }}, #{{ nodes: ["n001.example.net"], sleep: 0 }});
"#
    ));
    let r = w.fleetbook().args(["run", &rb, "--output", "json", "--arg", &format!("token={TOKEN}")]).run().await;
    r.assert_code(0);
    let shown = lines(&r);
    let run_id = shown[0]["run_id"].as_str().expect("run_start names the run").to_string();
    assert_eq!(shown.last().unwrap()["run_id"], run_id.as_str(), "run_end names it too");
    assert!(r.stderr.contains(&run_id), "the run id is shown: {}", r.stderr);

    let kept = journal(&w).await;
    let all: String = kept.iter().map(|(s, p)| format!("{s} {p}\n")).collect();
    assert!(!all.contains(TOKEN), "no secret in the journal: {all}");
    assert!(kept.iter().all(|(s, _)| s.starts_with(&format!("fleetbook.runs.{run_id}."))), "{all}");
    // The same events as the JSONL output, in the same order (heartbeats aside).
    let kinds: Vec<String> = kept
        .iter()
        .map(|(s, _)| s.rsplit('.').next().unwrap().to_string())
        .filter(|k| k != "heartbeat" && k != "claim")
        .collect();
    let shown_kinds: Vec<String> = shown.iter().map(|e| e["event"].as_str().unwrap().to_string()).collect();
    assert_eq!(kinds, shown_kinds, "{all}");
    // Write-ahead: every node result comes after its batch's start.
    let mut batch_nodes: Vec<String> = Vec::new();
    for (s, p) in &kept {
        let v: Value = serde_json::from_str(p).unwrap();
        if s.ends_with(".batch_start") {
            batch_nodes = v["nodes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()).collect();
        }
        if s.ends_with(".node_result") {
            assert!(batch_nodes.contains(&v["node"].as_str().unwrap().to_string()), "{p} after its batch: {all}");
        }
    }
    let end: Value =
        serde_json::from_str(&kept.iter().rev().find(|(s, _)| s.ends_with(".run_end")).unwrap().1).unwrap();
    assert_eq!((end["status"].as_str(), end["ok"].as_u64()), (Some("ok"), Some(6)), "{end}");
}

/// Node results that wait for the journal's writer together share messages, a JSON line
/// each, none over the size limit; `runs` counts and `runs show` reads every one, in order
/// (issue 15: a message per node result was most of the journal's cost).
#[test]
fn node_results_written_together_share_messages_and_read_back_in_order() {
    results_share_messages(None, fleetbook::journal::GROUP_BYTES, 2000 / 50);
}

/// The same in a journal stream made beforehand with a small message size limit: the groups
/// stay under it (the broker would refuse a bigger message, and the run would stop).
#[test]
fn grouped_results_stay_under_the_streams_message_size_limit() {
    results_share_messages(Some(4096), 4096, 2000 / 5);
}

/// Writes 2,000 node results to a new run's journal (in a stream made beforehand with
/// `max_message_size`, if given) and checks them: at most `cap` bytes and fewer than
/// `fewer_than` messages. The events are queued on this test's only runtime thread before the
/// writer can run, so it finds them all waiting.
fn results_share_messages(max_message_size: Option<i32>, cap: usize, fewer_than: usize) {
    use fleetbook::journal::{Journal, JournalOptions, RunId};
    use fleetbook::progress::{NodeStatus, RunEvent, RunStatus, Sink};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let broker = crate::support::broker();
        if let Some(max) = max_message_size {
            let js = jetstream::new(async_nats::connect(broker.url()).await.unwrap());
            js.create_stream(stream::Config {
                name: fleetbook::journal::STREAM.into(),
                subjects: vec!["fleetbook.runs.>".into()],
                max_message_size: max,
                allow_rollup: true,
                ..Default::default()
            })
            .await
            .unwrap();
        }
        let opts = fleetbook::fleet::ClientOptions { servers: vec![broker.url().into()], ..Default::default() };
        let fleet =
            fleetbook::fleet::Fleet::connect(opts, fleetbook::fleet::ddl::DdlRegistry::builtin()).await.unwrap();
        let id = RunId::new();
        let journal = Journal::open(&fleet, id.clone(), 1, &JournalOptions::default()).await.unwrap();
        const N: usize = 2000;
        let start = RunEvent::RunStart {
            run_id: id.to_string(),
            command: "req".into(),
            runbook: String::new(),
            sha256: None,
            dry_run: false,
            args: Default::default(),
            user: "tester".into(),
            host: "here".into(),
            attempt: 1,
        };
        journal.event(&start);
        for i in 0..N {
            journal.event(&RunEvent::NodeResult {
                node: format!("n{i:04}.example.net"),
                status: if i % 7 == 0 { NodeStatus::Failed } else { NodeStatus::Ok },
                statuscode: Some(0),
                statusmsg: Some("OK".into()),
                data: Some(serde_json::json!({"pong": i, "text": "line\nbreak"}).into()),
                resumed: false,
            });
        }
        let end = RunEvent::RunEnd {
            run_id: id.to_string(),
            status: RunStatus::Failed,
            exit_code: 1,
            reason: None,
            ok: N - N.div_ceil(7),
            failed: N.div_ceil(7),
            no_reply: 0,
            unknown: 0,
        };
        let journal = std::sync::Arc::new(journal);
        let j = journal.clone();
        tokio::task::spawn_blocking(move || j.event_durable(&end)).await.unwrap().expect("the journal took the run");

        let nats = async_nats::connect(broker.url()).await.unwrap();
        let kept = messages(nats).await;
        let results: Vec<&String> = kept.iter().filter(|(s, _)| s.ends_with(".node_result")).map(|(_, p)| p).collect();
        let lines: Vec<Value> =
            results.iter().flat_map(|p| p.split('\n')).map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), N, "every result is in the journal");
        assert!(results.len() > 1 && results.len() < fewer_than, "{} messages for {N} results", results.len());
        assert!(results.iter().all(|p| p.len() <= cap), "each message within the limit");
        for (i, l) in lines.iter().enumerate() {
            assert_eq!(l["node"], format!("n{i:04}.example.net"), "in order: {l}");
            assert_eq!(l["data"]["text"], "line\nbreak", "a newline inside a value stays escaped: {l}");
        }

        let fb = |args: &[&str]| {
            crate::support::Fleetbook::new().args(["--server", broker.url(), "--insecure"]).args(args.to_vec())
        };
        let runs = fb(&["runs", "--json"]).run().await.json();
        assert_eq!(
            (runs[0]["done"].as_u64(), runs[0]["failed"].as_u64()),
            (Some(N as u64), Some(N.div_ceil(7) as u64)),
            "{runs}"
        );
        let shown = fb(&["runs", "show", id.as_str(), "--json"]).run().await;
        shown.assert_code(0);
        let nodes: Vec<String> = shown
            .stdout
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|e| e["event"] == "node_result")
            .map(|e| e["node"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(nodes, (0..N).map(|i| format!("n{i:04}.example.net")).collect::<Vec<_>>());
    });
}

/// `runs` lists ok, failed, stopped and interrupted runs; `runs show` gives one run's
/// timeline with the nodes that did not succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_lists_each_outcome_and_show_names_the_failed_nodes() {
    let w = World::start(SimConfig { fail_nodes: vec!["n002".into()], ..sim(4) }).await;
    let ok = w.fleetbook().args(["req", "rpcutil", "ping", "--json"]).run().await;
    ok.assert_code(0);
    let failed = w.fleetbook().args(["req", "choria_provision", "restart", "token=s3cret", "--json"]).run().await;
    failed.assert_code(1);
    let (_d, rb) = runbook(
        r#"rpc_batch("choria_provision", "restart", #{ token: "s3cret" }, #{ filter: #{}, batch: 1, sleep: 0, max_failures: 0 });"#,
    );
    w.fleetbook().args(["run", &rb]).run().await.assert_code(3);
    // A run killed outright: its heartbeat stops, so it reads as interrupted.
    let (_d2, slow) = runbook(r#"discover(); sleep(60);"#);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleetbook"))
        .args(["--server", w.url(), "--insecure", "run", &slow])
        .env("FLEETBOOK_JOURNAL_HEARTBEAT", "0.3")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let list = || async { w.fleetbook().args(["runs", "--json"]).run().await.json() };
    let mut seen = Value::Null;
    for _ in 0..100 {
        seen = list().await;
        if seen.as_array().is_some_and(|a| a.len() == 4 && a[3]["status"] == "running") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(seen[3]["status"], "running", "{seen}");
    child.kill().await.unwrap();
    eventually(Duration::from_secs(20), "the killed run reads as interrupted", || {
        std::process::Command::new(env!("CARGO_BIN_EXE_fleetbook"))
            .args(["--server", w.url(), "--insecure", "runs", "--json"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("\"interrupted\""))
            .unwrap_or(false)
    })
    .await;
    let runs = list().await;
    let status: Vec<&str> = runs.as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(status, ["ok", "failed", "stopped", "interrupted"], "{runs}");
    assert_eq!((runs[1]["done"].as_u64(), runs[1]["failed"].as_u64()), (Some(4), Some(1)), "{runs}");
    let id = failed.json()["run_id"].as_str().unwrap().to_string();
    assert_eq!(runs[1]["run_id"], id.as_str());

    let show = w.fleetbook().args(["runs", "show", &id]).run().await;
    show.assert_code(0);
    assert!(show.stdout.contains("choria_provision#restart on 4 node(s)"), "{}", show.stdout);
    assert!(show.stdout.contains("n002.example.net: failed"), "{}", show.stdout);
    let text = w.fleetbook().args(["runs"]).run().await;
    assert!(text.stdout.contains(&id) && text.stdout.contains("interrupted"), "{}", text.stdout);
    w.fleetbook().args(["runs", "show", "not-a-run"]).run().await.assert_code(2);
}

/// Fail closed: when the journal cannot record a batch, the batch is not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_the_journal_cannot_record_is_not_sent() {
    let w = World::start(sim(3)).await;
    // A journal stream that takes two messages and refuses the rest.
    let js = jetstream::new(w.nats().await);
    js.create_stream(stream::Config {
        name: fleetbook::journal::STREAM.into(),
        subjects: vec!["fleetbook.runs.>".into()],
        max_messages: 2,
        discard: stream::DiscardPolicy::New,
        allow_rollup: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let (_d, rb) =
        runbook(r#"rpc_batch("choria_provision", "restart", #{ token: "s3cret" }, #{ filter: #{}, sleep: 0 });"#);
    let r = w.fleetbook().args(["run", &rb]).run().await;
    r.assert_code(3);
    assert!(r.stderr.contains("run journal could not record") && r.stderr.contains("--no-journal"), "{}", r.stderr);
    let called = w.sim.stats().received.values().flatten().filter(|a| a.starts_with("choria_provision")).count();
    assert_eq!(called, 0, "nothing was sent");
    let r = w.fleetbook().args(["run", &rb, "--no-journal"]).run().await;
    r.assert_code(0);
}

/// `req --jsonl` streams the run's events as they happen, in `run --output json`'s shapes,
/// and every stream ends with `run_end`, also when the broker cannot be reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn req_jsonl_streams_events_and_always_ends_with_run_end() {
    let w = World::start(SimConfig { fail_nodes: vec!["n003".into()], ..sim(3) }).await;
    let restart =
        ["req", "choria_provision", "restart", "token=s3cret", "--batch", "2", "--batch-sleep", "0.1", "--jsonl"];
    let r = w.fleetbook().args(restart).run().await;
    r.assert_code(1);
    let evs = lines(&r);
    let kinds: Vec<&str> = evs.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"run_start"), "{}", r.stdout);
    assert_eq!(kinds.last(), Some(&"run_end"), "{}", r.stdout);
    let results: Vec<&Value> = evs.iter().filter(|e| e["event"] == "node_result").collect();
    assert_eq!(results.len(), 3, "one line per node: {}", r.stdout);
    assert!(results.iter().any(|e| e["node"] == "n003.example.net" && e["status"] == "failed"), "{}", r.stdout);
    let end = evs.last().unwrap();
    assert_eq!(
        (end["status"].as_str(), end["ok"].as_u64(), end["failed"].as_u64()),
        (Some("failed"), Some(2), Some(1))
    );
    assert_eq!(end["run_id"], evs[0]["run_id"]);
    // The journal holds the same run.
    let kept = journal(&w).await;
    let id = evs[0]["run_id"].as_str().unwrap();
    assert!(kept.iter().any(|(s, _)| s == &format!("fleetbook.runs.{id}.run_end")), "{kept:?}");

    let r = crate::support::Fleetbook::new()
        .args(["--server", "nats://127.0.0.1:1", "--insecure", "req", "rpcutil", "ping", "--jsonl"])
        .run()
        .await;
    r.assert_code(4);
    let evs = lines(&r);
    assert_eq!(evs.len(), 1, "{}", r.stdout);
    assert_eq!((evs[0]["event"].as_str(), evs[0]["status"].as_str()), (Some("run_end"), Some("unreachable")));
}
