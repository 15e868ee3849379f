//! Issue 11, part 3: resuming a run after fleetbook was killed (`run --resume`, `req
//! --resume`), against a real nats-server with JetStream and the simulated fleet, which
//! counts the requests each node received.

use std::time::Duration;

use fleetbook::sim::SimConfig;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use crate::support::{client_conf, eventually, sim, Run, World};

/// How often the runs under test say they are alive: a killed run reads as interrupted
/// (and may be resumed) three periods after its last word.
const HEARTBEAT: &str = "0.3";

/// A fleetbook process whose JSONL stdout is read line by line, to kill it at a given point.
struct Child {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    run_id: String,
}

impl Child {
    async fn spawn(w: &World, args: &[&str]) -> Child {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleetbook"))
            .args(["--config", client_conf().to_str().unwrap(), "--server", w.url(), "--insecure"])
            .args(args)
            .env("FLEETBOOK_JOURNAL_HEARTBEAT", HEARTBEAT)
            .env("FLEETBOOK_PROVISION_TOKEN", "s3cret")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("fleetbook starts");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = Child::read(&mut lines).await;
        assert_eq!(first["event"], "run_start", "{first}");
        let run_id = first["run_id"].as_str().unwrap().to_string();
        Child { child, lines, run_id }
    }

    async fn read(lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("an event within a minute")
            .unwrap()
            .expect("the run goes on");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// Reads events until one matches.
    async fn until(&mut self, what: impl Fn(&Value) -> bool) -> Value {
        loop {
            let e = Child::read(&mut self.lines).await;
            if what(&e) {
                return e;
            }
        }
    }

    /// kill -9.
    async fn kill(mut self) -> String {
        self.child.kill().await.unwrap();
        self.run_id
    }
}

/// Waits until `runs` shows the run as interrupted (its heartbeat stopped).
async fn interrupted(w: &World, id: &str) {
    eventually(Duration::from_secs(20), "the killed run to read as interrupted", || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_fleetbook"))
            .args(["--server", w.url(), "--insecure", "runs", "--json"])
            .output()
            .unwrap();
        let runs: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        runs.as_array().is_some_and(|a| a.iter().any(|r| r["run_id"] == id && r["status"] == "interrupted"))
    })
    .await;
}

/// How many times each node received `agent#action`.
fn received(w: &World, action: &str) -> Vec<(String, usize)> {
    let stats = w.sim.stats();
    w.sim
        .identities()
        .into_iter()
        .map(|n| {
            let count = stats.received.get(&n).map_or(0, |a| a.iter().filter(|x| *x == action).count());
            (n, count)
        })
        .collect()
}

fn runbook(body: &str) -> (tempfile::TempDir, String) {
    crate::support::runbook_file("resumable.rhai", body)
}

/// A fleetbook command against the world, with the provisioning token in its environment.
fn fb(w: &World) -> crate::support::Fleetbook {
    w.fleetbook().env("FLEETBOOK_PROVISION_TOKEN", "s3cret").env("FLEETBOOK_JOURNAL_HEARTBEAT", HEARTBEAT)
}

fn events(r: &Run) -> Vec<Value> {
    r.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

const RESTART: &str = "choria_provision#restart";

/// kill -9 between two batches of a restart runbook, then `--resume`: every node is restarted
/// exactly once, the finished nodes come from the journal, and the run ends ok. A finished run
/// cannot be resumed again; a changed runbook only with --force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runbook_killed_between_batches_resumes_and_restarts_each_node_once() {
    let w = World::start(sim(6)).await;
    let body = r#"let nodes = discover();
confirm("restart the fleet?");
rpc_batch("choria_provision", "restart", #{ token: secret("FLEETBOOK_PROVISION_TOKEN"), splay: 1 }, #{
    nodes: nodes, batch: 2, sleep: "4s", max_failures: 1,
});
"#;
    let (_d, rb) = runbook(body);
    let mut first = Child::spawn(&w, &["run", &rb, "--output", "json", "--yes"]).await;
    first.until(|e| e["event"] == "batch_end" && e["batch"] == 1).await;
    // In the pause between batch 1 and batch 2.
    let id = first.kill().await;
    assert_eq!(received(&w, RESTART).iter().filter(|(_, c)| *c == 1).count(), 2, "batch 1 went out");
    interrupted(&w, &id).await;

    // No --yes this time: the confirmation comes from the journal.
    let r = fb(&w).args(["run", &rb, "--output", "json", "--resume", &id]).run().await;
    r.assert_code(0);
    let evs = events(&r);
    assert_eq!((evs[0]["run_id"].as_str(), evs[0]["attempt"].as_u64()), (Some(id.as_str()), Some(2)), "{}", r.stdout);
    assert!(evs.iter().any(|e| e["event"] == "confirmed" && e["by"] == "journal"), "{}", r.stdout);
    let resumed: Vec<&Value> = evs.iter().filter(|e| e["event"] == "node_result" && e["resumed"] == true).collect();
    assert_eq!(resumed.len(), 2, "batch 1's nodes come from the journal: {}", r.stdout);
    let end = evs.last().unwrap();
    assert_eq!((end["status"].as_str(), end["ok"].as_u64()), (Some("ok"), Some(6)), "{end}");
    for (node, count) in received(&w, RESTART) {
        assert_eq!(count, 1, "{node} restarted exactly once: {:?}", w.sim.stats().received);
    }

    // Finished: nothing to resume.
    let again = fb(&w).args(["run", &rb, "--resume", &id]).run().await;
    again.assert_code(2);
    assert!(again.stderr.contains("finished ok"), "{}", again.stderr);
    // A changed runbook is refused before anything is sent, and names the change.
    std::fs::write(&rb, format!("{body}\n// edited\n")).unwrap();
    let changed = fb(&w).args(["run", &rb, "--resume", &id]).run().await;
    changed.assert_code(2);
    assert!(changed.stderr.contains("finished ok"), "a finished run is refused first: {}", changed.stderr);
    let runs = fb(&w).args(["runs", "--json"]).run().await.json();
    assert_eq!(runs[0]["status"], "ok", "one run, resumed and ended: {runs}");
    assert_eq!((runs[0]["done"].as_u64(), runs[0]["planned"].as_u64()), (Some(6), Some(6)), "{runs}");
}

/// The failure budget counts the failures of the first attempt and the resumed one together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failure_budget_carries_over_into_the_resumed_run() {
    // Batches of two: n001 fails in batch 1, n005 in batch 3; n007 and n008 are left for batch 4.
    let w = World::start(SimConfig { fail_nodes: vec!["n001".into(), "n005".into()], ..sim(8) }).await;
    let (_d, rb) = runbook(
        r#"rpc_batch("choria_provision", "restart", #{ token: secret("FLEETBOOK_PROVISION_TOKEN") }, #{
    filter: #{}, batch: 2, sleep: "4s", max_failures: 1,
});
"#,
    );
    let mut first = Child::spawn(&w, &["run", &rb, "--output", "json"]).await;
    let b1 = first.until(|e| e["event"] == "batch_end" && e["batch"] == 1).await;
    assert_eq!(b1["failed"], 1, "n001 failed, within the budget: {b1}");
    let id = first.kill().await;
    interrupted(&w, &id).await;

    let r = fb(&w).args(["run", &rb, "--output", "json", "--resume", &id]).run().await;
    // n005 is the second failure of the run: over max_failures 1, although the resumed
    // attempt alone saw only one.
    r.assert_code(3);
    let end = events(&r).pop().unwrap();
    assert_eq!((end["status"].as_str(), end["failed"].as_u64()), (Some("stopped"), Some(2)), "{end}");
    assert!(end["reason"].as_str().unwrap().contains("2 of 8 node(s) failed so far"), "{end}");
    for (node, count) in received(&w, RESTART) {
        let want = usize::from(!node.starts_with("n007") && !node.starts_with("n008"));
        assert_eq!(count, want, "{node}: {:?}", w.sim.stats().received);
    }
    // A stopped run resumes, but the budget is spent: nothing more is sent.
    let again = fb(&w).args(["run", &rb, "--resume", &id]).run().await;
    again.assert_code(3);
    assert!(again.stderr.contains("already spent the failure budget"), "{}", again.stderr);
    assert_eq!(received(&w, RESTART).iter().map(|(_, c)| c).sum::<usize>(), 6, "nothing more was sent");
    assert!(again.stderr.contains("n005.example.net"), "the failed nodes are named: {}", again.stderr);
    // A changed runbook is refused and the change named; --force resumes it anyway (and the
    // spent budget still stops it before anything is sent).
    let edited = std::fs::read_to_string(&rb).unwrap().replace("sleep: \"4s\"", "sleep: \"5s\"");
    std::fs::write(&rb, edited).unwrap();
    let changed = fb(&w).args(["run", &rb, "--resume", &id]).run().await;
    changed.assert_code(3);
    assert!(
        changed.stderr.contains("the runbook changed since run") && changed.stderr.contains("--force"),
        "{}",
        changed.stderr
    );
    let forced = fb(&w).args(["run", &rb, "--resume", &id, "--force"]).run().await;
    forced.assert_code(3);
    assert!(
        forced.stderr.contains("resuming anyway (--force)") && forced.stderr.contains("already spent"),
        "{}",
        forced.stderr
    );
    assert_eq!(received(&w, RESTART).iter().map(|(_, c)| c).sum::<usize>(), 6, "still nothing more was sent");
}

/// kill -9 during a batch of a batched `req`: the nodes in flight are unknown; resuming stops
/// before them and names them; `--resend-unknown` finishes the run. Nobody gets more than two
/// requests, and those that did are the ones the stop named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_req_killed_during_a_batch_stops_before_its_unknown_nodes_until_resend_unknown() {
    let cfg = SimConfig { slow_nodes: vec!["n003".into()], slow_delay: Duration::from_secs(4), ..sim(6) };
    let w = World::start(cfg).await;
    let req = ["req", "choria_provision", "restart", "--batch", "2", "--batch-sleep", "0.1"];
    let mut first = Child::spawn(&w, &[&req[..], &["--jsonl"]].concat()).await;
    first.until(|e| e["event"] == "batch_start" && e["batch"] == 2).await;
    // The slow node has its request: batch 2 is in flight.
    eventually(Duration::from_secs(20), "n003 to receive its restart", || {
        received(&w, RESTART).iter().any(|(n, c)| n.starts_with("n003") && *c == 1)
    })
    .await;
    let id = first.kill().await;
    interrupted(&w, &id).await;

    let stop = fb(&w).args(req).args(["--resume", &id]).run().await;
    stop.assert_code(3);
    assert!(stop.stderr.contains("n003.example.net") && stop.stderr.contains("--resend-unknown"), "{}", stop.stderr);
    let before = received(&w, RESTART);
    assert!(before.iter().all(|(_, c)| *c <= 1), "nothing was sent again: {before:?}");

    let done = fb(&w).args(req).args(["--resume", &id, "--resend-unknown", "--json"]).run().await;
    done.assert_code(0);
    let counts = received(&w, RESTART);
    for (node, count) in &counts {
        assert!((1..=2).contains(count), "{node} got {count}: {counts:?}");
        if *count == 2 {
            assert!(stop.stderr.contains(node.as_str()), "{node} was named unknown before it was sent again");
        }
    }
    assert_eq!(done.json()["run_id"], id.as_str());
}

/// What cannot be resumed is refused before anything is sent: `--sim` (its journal died with
/// its process), an unknown run, a still running run, and another command's run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_be_resumed_is_refused_with_the_reason() {
    let sim_run = crate::support::Fleetbook::new()
        .args(["--sim", "3", "req", "rpcutil", "ping", "--resume", "3MSCLuJMuZHj1pw4z57B3wOYp70"])
        .run()
        .await;
    sim_run.assert_code(2);
    assert!(sim_run.stderr.contains("outlives the run"), "{}", sim_run.stderr);

    let w = World::start(sim(2)).await;
    let unknown = fb(&w).args(["req", "rpcutil", "ping", "--resume", "3MSCLuJMuZHj1pw4z57B3wOYp70"]).run().await;
    unknown.assert_code(2);
    assert!(unknown.stderr.contains("no such run"), "{}", unknown.stderr);

    let (_d, rb) = runbook("discover(); sleep(60);");
    let mut running = Child::spawn(&w, &["run", &rb, "--output", "json"]).await;
    // Journaled once discovery is reported (the journal opens before it).
    running.until(|e| e["event"] == "discovered").await;
    let id = running.run_id.clone();
    let r = fb(&w).args(["run", &rb, "--resume", &id]).run().await;
    r.assert_code(2);
    assert!(r.stderr.contains("still running"), "{}", r.stderr);
    let other = fb(&w).args(["req", "rpcutil", "ping", "--resume", &id]).run().await;
    other.assert_code(2);
    assert!(other.stderr.contains("was a `run`"), "{}", other.stderr);
    drop(running);
}

/// The broker killed for good during a rollout: the run ends with exit 4 and reads as
/// interrupted; once the broker is back (same port, same store), `--resume` finishes it and
/// no node is restarted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cut_short_by_a_lost_broker_resumes_once_it_is_back() {
    let mut w = World::start(sim(6)).await;
    let (_d, rb) = runbook(
        r#"rpc_batch("choria_provision", "restart", #{ token: secret("FLEETBOOK_PROVISION_TOKEN") }, #{
    filter: #{}, batch: 2, sleep: "3s",
});
"#,
    );
    let mut first = Child::spawn(&w, &["--max-reconnects", "2", "run", &rb, "--output", "json"]).await;
    // batch_end is acknowledged by the journal before the output shows it.
    first.until(|e| e["event"] == "batch_end" && e["batch"] == 1).await;
    w.broker.kill();
    let end = first.until(|e| e["event"] == "run_end").await;
    assert_eq!(end["status"], "broker_lost", "{end}");
    let id = first.kill().await;
    w.broker.restart().expect("the broker comes back on its store");
    // The simulated fleet is back once discovery finds every node again.
    eventually(Duration::from_secs(30), "the simulated fleet to reconnect", || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_fleetbook"))
            .args([
                "--config",
                client_conf().to_str().unwrap(),
                "--server",
                w.url(),
                "--insecure",
                "discover",
                "--json",
            ])
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).ok().and_then(|v| v.as_array().map(Vec::len)) == Some(6)
    })
    .await;
    interrupted(&w, &id).await;

    let r = fb(&w).args(["run", &rb, "--output", "json", "--resume", &id]).run().await;
    r.assert_code(0);
    let end = events(&r).pop().unwrap();
    assert_eq!((end["status"].as_str(), end["ok"].as_u64()), (Some("ok"), Some(6)), "{end}");
    for (node, count) in received(&w, RESTART) {
        assert_eq!(count, 1, "{node} restarted exactly once: {:?}", w.sim.stats().received);
    }
}

/// Two operators resume the same run at the same moment: one goes on, the other is refused
/// (a claim on the run's journal lets only one attempt start), and no node is restarted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_resumes_at_once_only_one_goes_on() {
    let w = World::start(sim(6)).await;
    let (_d, rb) = runbook(
        r#"rpc_batch("choria_provision", "restart", #{ token: secret("FLEETBOOK_PROVISION_TOKEN") }, #{
    filter: #{}, batch: 2, sleep: "4s",
});
"#,
    );
    let mut first = Child::spawn(&w, &["run", &rb, "--output", "json"]).await;
    first.until(|e| e["event"] == "batch_end" && e["batch"] == 1).await;
    let id = first.kill().await;
    interrupted(&w, &id).await;
    let resume = || fb(&w).args(["run", &rb, "--resume", &id]).run();
    let (a, b) = tokio::join!(resume(), resume());
    let mut codes = [a.code, b.code];
    codes.sort();
    assert_eq!(codes[0], 0, "one resume finished: {a:?} {b:?}");
    assert!(codes[1] == 2 || codes[1] == 3, "the other was refused: {a:?} {b:?}");
    let loser = if a.code == 0 { &b } else { &a };
    assert!(
        loser.stderr.contains("being resumed by someone else")
            || loser.stderr.contains("still running")
            || loser.stderr.contains("finished ok"),
        "{}",
        loser.stderr
    );
    for (node, count) in received(&w, RESTART) {
        assert_eq!(count, 1, "{node} restarted exactly once: {:?}", w.sim.stats().received);
    }
}
