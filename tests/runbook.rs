//! `fleetbook run` and `check` against a real nats-server and the in-process simulator.

use std::path::PathBuf;

use serde_json::Value;

use crate::support::{client_conf, eventually, short_rpc_timeouts, sim, Fleetbook, Run, World};
use fleetbook::sim::SimConfig;

/// Writes a runbook into a fresh temp dir; returns (dir guard, path).
fn runbook(name: &str, body: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, body).unwrap();
    (dir, path)
}

fn repo(rel: &str) -> String {
    format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"))
}

fn events(r: &Run) -> Vec<Value> {
    r.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSONL ({e}): {l}"))).collect()
}

/// Nodes that received any choria_provision action.
fn provisioned(w: &World) -> Vec<String> {
    w.sim
        .stats()
        .received
        .into_iter()
        .filter(|(_, acts)| acts.iter().any(|a| a.starts_with("choria_provision#")))
        .map(|(n, _)| n)
        .collect()
}

const RESTART: &str = r#"
let nodes = discover();
rpc_batch("choria_provision", "restart", #{ token: "s3cret", splay: 1 }, #{
    nodes: nodes, batch: 2, sleep: "0s", max_failures: arg("max", 0),
});
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_failures_stops_after_the_offending_batch() {
    let w = World::start(SimConfig { fail_nodes: vec!["n003".into()], ..sim(8) }).await;
    let (_d, rb) = runbook("restart.rhai", RESTART);
    let r = w.fleetbook().args(["run", rb.to_str().unwrap(), "--output", "json"]).run().await;
    r.assert_code(3);
    // Batches are n001-2, n003-4, n005-6, n007-8: the second fails, so the last two never run.
    assert_eq!(provisioned(&w), vec!["n001.example.net", "n002.example.net", "n003.example.net", "n004.example.net"]);
    assert!(r.stderr.contains("failed n003.example.net: "), "{}", r.stderr);
    assert!(r.stderr.contains("max_failures 0"), "{}", r.stderr);
    let ev = events(&r);
    let last = ev.last().unwrap();
    assert_eq!(last["event"], "run_end");
    assert_eq!(last["status"], "stopped");
    assert_eq!(last["exit_code"], 3);
    assert_eq!(ev.iter().filter(|e| e["event"] == "batch_start").count(), 2);
    assert!(ev
        .iter()
        .any(|e| e["event"] == "node_result" && e["node"] == "n003.example.net" && e["status"] == "failed"));

    // With a budget of 1 the same fleet completes, but the failed node still fails the run.
    let r = w.fleetbook().args(["run", rb.to_str().unwrap(), "--arg", "max=1"]).run().await;
    r.assert_code(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_nodes_count_against_the_budget() {
    let w = World::start(SimConfig { silent_nodes: vec!["n001".into()], ..sim(4) }).await;
    let (_d, rb) = runbook("restart.rhai", RESTART);
    let ddl = short_rpc_timeouts();
    let r = w
        .fleetbook()
        .args(["--ddl-dir", ddl.path().to_str().unwrap()])
        .args(["--protocol", "v1", "run", rb.to_str().unwrap(), "--max-operations", "100000"])
        .run()
        .await;
    r.assert_code(3);
    assert!(r.stderr.contains("n001.example.net: no reply"), "{}", r.stderr);
    assert_eq!(provisioned(&w), vec!["n001.example.net", "n002.example.net"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_gate_stops_and_pause_without_terminal_stops() {
    let w = World::start(sim(6)).await;
    let (_d, rb) = runbook(
        "gate.rhai",
        r#"
        let decision = arg("decision", "stop");
        let seen = [];
        rpc_batch("choria_provision", "restart", #{ token: "s3cret" }, #{
            filter: #{}, batch: [1, 2], sleep: 0,
            gate: |b| {
                print(`gate ${b.batch}: ${b.nodes.len()} node(s), ${b.ok.len()} ok`);
                if b.batch < 2 { true } else if decision == "pause" { "pause" } else { false }
            },
        });
        print("not reached");
        "#,
    );
    // Each decision on its own fleet, side by side.
    let w2 = World::start(sim(6)).await;
    let (r, paused) = tokio::join!(
        w.fleetbook().args(["run", rb.to_str().unwrap(), "--output", "json"]).run(),
        w2.fleetbook().args(["run", rb.to_str().unwrap(), "--arg", "decision=pause"]).run(),
    );
    r.assert_code(3);
    assert!(!r.stderr.contains("not reached"));
    // The gate sees each batch's nodes.
    for line in ["gate 1: 1 node(s), 1 ok", "gate 2: 2 node(s), 2 ok"] {
        assert!(r.stderr.contains(line) || r.stdout.contains(line), "{line}: {}", r.stderr);
    }
    assert_eq!(provisioned(&w).len(), 3, "batches of 1 and 2 ran, the rest did not");
    let gates: Vec<Value> = events(&r).into_iter().filter(|e| e["event"] == "gate").collect();
    assert_eq!(gates.len(), 2);
    assert_eq!(gates[1]["decision"], "stop");

    paused.assert_code(3);
    assert!(paused.stderr.contains("no terminal"), "{}", paused.stderr);
    assert_eq!(provisioned(&w2).len(), 3);
}

/// A gate sees its own batch: the nodes addressed, which answered ok and which failed (the
/// replies had moved to the run's tally before the gate ran, and a gate saw none of them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_sees_its_batchs_ok_and_failed_nodes() {
    let w = World::start(SimConfig { fail_nodes: vec!["n002.example.net".into()], ..sim(4) }).await;
    let (_d, rb) = runbook(
        "seen.rhai",
        r#"
        rpc_batch("choria_provision", "restart", #{ token: "s3cret" }, #{
            filter: #{}, batch: 2, sleep: 0,
            gate: |b| {
                print(`gate ${b.batch}: nodes=${b.nodes} ok=${b.ok} failed=${b.failed.keys()} replies=${b.replies.len()}`);
                true
            },
        });
        "#,
    );
    let r = w.fleetbook().args(["run", rb.to_str().unwrap()]).run().await;
    let out = format!("{}{}", r.stdout, r.stderr);
    for line in [
        r#"gate 1: nodes=["n001.example.net", "n002.example.net"] ok=["n001.example.net"] failed=["n002.example.net"] replies=2"#,
        r#"gate 2: nodes=["n003.example.net", "n004.example.net"] ok=["n003.example.net", "n004.example.net"] failed=[] replies=2"#,
    ] {
        assert!(out.contains(line), "{line}\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_sends_no_mutating_request() {
    let w = World::start(sim(5)).await;
    let (_d, rb) = runbook(
        "dry.rhai",
        r#"
        let pongs = rpc_batch("rpcutil", "ping", #{}, #{ filter: #{} });
        if pongs.ok.len() != 5 { throw "read-only actions must run"; }
        let r = rpc_batch("choria_provision", "restart", #{ token: "s3cret" }, #{ filter: #{}, batch: 2 });
        if !r.dry_run || r.planned.len() != 3 { throw `bad plan ${r}`; }
        print(`dry=${dry_run()}`);
        "#,
    );
    let r = w.fleetbook().args(["run", rb.to_str().unwrap(), "--dry-run"]).run().await;
    r.assert_code(0);
    assert!(r.stderr.contains("dry-run: batch 3/3: n005.example.net"), "{}", r.stderr);
    assert!(r.stderr.contains("dry=true"));
    assert!(provisioned(&w).is_empty(), "no choria_provision request reached a node");
    assert_eq!(w.sim.stats().requests.get("rpcutil#ping"), Some(&5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_without_yes_or_terminal_sends_nothing() {
    let w = World::start(sim(4)).await;
    let rb = repo("runbooks/emergency-shutdown.rhai");
    let r = w
        .fleetbook()
        .args(["run", &rb, "--arg", "class=profile::base"])
        .env("FLEETBOOK_PROVISION_TOKEN", "s3cret")
        .run()
        .await;
    r.assert_code(3);
    assert!(r.stderr.contains("pass --yes"), "{}", r.stderr);
    assert!(provisioned(&w).is_empty());
    // With --yes it runs.
    let r = w
        .fleetbook()
        .args(["run", &rb, "--arg", "fact=hostname=n002", "--yes"])
        .env("FLEETBOOK_PROVISION_TOKEN", "s3cret")
        .run()
        .await;
    r.assert_code(0);
    assert_eq!(provisioned(&w), vec!["n002.example.net"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_show_file_line_column_and_source() {
    let (_d, rb) = runbook("bad.rhai", "let a = 1;\nlet b = (a + ;\n");
    let r = Fleetbook::new().args(["check", rb.to_str().unwrap()]).run().await;
    r.assert_code(1);
    assert!(r.stderr.contains("bad.rhai:2:"), "{}", r.stderr);
    assert!(r.stderr.contains("2 | let b = (a + ;"), "{}", r.stderr);
    assert!(r.stderr.contains('^'), "{}", r.stderr);

    // Strict variables: a typo is a compile error.
    let (_d2, typo) = runbook("typo.rhai", "let nodes = [];\nprint(nodez);\n");
    let r = Fleetbook::new().args(["check", typo.to_str().unwrap()]).run().await;
    r.assert_code(1);
    assert!(r.stderr.contains("nodez") && r.stderr.contains("typo.rhai:2:7"), "{}", r.stderr);

    // A runtime error, reported where it happened.
    let w = World::start(sim(2)).await;
    let (_d3, rt) = runbook("rt.rhai", "let x = 1;\nlet n = discover();\nlet y = n[10];\n");
    let r = w.fleetbook().args(["run", rt.to_str().unwrap()]).run().await;
    r.assert_code(1);
    assert!(r.stderr.contains("rt.rhai:3:"), "{}", r.stderr);
    assert!(r.stderr.contains("3 | let y = n[10];"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_loops_hit_the_operation_limit() {
    let w = World::start(sim(1)).await;
    let (_d, rb) = runbook("loop.rhai", "let i = 0;\nloop { i += 1; }\n");
    let r = w.fleetbook().args(["run", rb.to_str().unwrap(), "--max-operations", "100000"]).run().await;
    r.assert_code(1);
    assert!(r.stderr.to_lowercase().contains("too many operations"), "{}", r.stderr);
    assert!(r.stderr.contains("loop.rhai:2:"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guardrails_cannot_be_caught_but_fleet_errors_can() {
    let w = World::start(sim(3)).await;
    let (_d, rb) = runbook(
        "catch.rhai",
        r#"
        try { discover(#{ min: 10, timeout: "300ms" }); } catch (e) { print(`caught ${e.kind}`); }
        try { abort("stop here"); } catch (e) { print("caught the abort"); }
        print("after");
    "#,
    );
    let r = w.fleetbook().args(["run", rb.to_str().unwrap()]).run().await;
    r.assert_code(3);
    assert!(r.stderr.contains("caught no_responders"), "{}", r.stderr);
    assert!(!r.stderr.contains("caught the abort") && !r.stderr.contains("after"), "{}", r.stderr);
    assert!(r.stderr.contains("abort: stop here"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_any_output() {
    const TOKEN: &str = "hunter2-very-secret-token";
    let w = World::start(SimConfig { token: TOKEN.into(), fail_nodes: vec!["n002".into()], ..sim(3) }).await;
    let (_d, rb) = runbook(
        "secret.rhai",
        r#"
        let t = secret("MY_TOKEN");
        print(t); debug(t); print(`interpolated ${t}`); print("concat " + t);
        let r = rpc_batch("choria_provision", "restart", #{ token: t }, #{ filter: #{}, batch: 1, sleep: 0, max_failures: 5 });
        print(r);
        print(`ok ${r.ok.len()}`);
        // Not a literal, so `check` cannot see it: it fails at run time, after the rollout.
        let bad = "x";
        rpc_batch("choria_provision", "restart", #{ token: t, splay: bad }, #{ nodes: ["n001.example.net"] });
    "#,
    );
    let r = w.fleetbook().args(["run", rb.to_str().unwrap(), "--output", "json"]).env("MY_TOKEN", TOKEN).run().await;
    // The last call has a bad input: a runbook error after the rollout.
    r.assert_code(1);
    assert!(r.stderr.contains("ok 2"), "the token reached the nodes in clear: {}", r.stderr);
    assert!(r.stderr.contains("[secret]"), "{}", r.stderr);
    for (name, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
        assert!(!text.contains(TOKEN), "{name} leaks the secret:\n{text}");
    }
    events(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_come_from_the_runbook_directory() {
    let w = World::start(sim(2)).await;
    let (d, rb) = runbook("main.rhai", "import \"helpers\" as h;\nprint(`found ${h::count()}`);\n");
    std::fs::write(d.path().join("helpers.rhai"), "fn count() { discover().len() }\n").unwrap();
    let r = w.fleetbook().args(["run", rb.to_str().unwrap()]).run().await;
    r.assert_code(0);
    assert!(r.stderr.contains("found 2"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_lints_agents_actions_and_inputs() {
    let (_d, rb) = runbook(
        "lint.rhai",
        r#"
let a = rpc_batch("choria_provision", "reboot", #{ token: "x" }, #{ nodes: [] });
let b = rpc_batch("choria_provision", "restart", #{ tokn: "x" }, #{ nodes: [], batchsize: 2 });
let c = rpc_batch("nosuch", "ping", #{}, #{ nodes: [] });
"#,
    );
    let r = Fleetbook::new().args(["check", rb.to_str().unwrap()]).run().await;
    r.assert_code(1);
    assert!(r.stderr.contains("lint.rhai:2:") && r.stderr.contains("unknown action 'reboot'"), "{}", r.stderr);
    assert!(
        r.stderr.contains("'tokn' is not an input of choria_provision#restart; valid inputs: splay, token"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("unknown option 'batchsize'"), "{}", r.stderr);
    assert!(r.stderr.contains("lint.rhai:4:") && r.stderr.contains("unknown agent 'nosuch'"), "{}", r.stderr);
}

/// The shipped runbooks and the arguments each runs with against the simulator; one test
/// each below, so they run in parallel.
const SHIPPED: &[(&str, &[&str])] = &[
    ("rolling-restart.rhai", &["--arg", "sleep=0.1s"]),
    ("reprovision.rhai", &["--arg", "fact=site=fra1", "--arg", "sleep=0.1s"]),
    ("emergency-shutdown.rhai", &["--arg", "fact=country=mt", "--yes"]),
    ("watch-provisioning.rhai", &["--arg", "count=3", "--arg", "timeout=30s"]),
    ("leader-failover.rhai", &["--arg", "timeout=30"]),
    ("metric-gated-restart.rhai", &["--arg", "sleep=0.1s"]),
    ("rack-safe-restart.rhai", &["--arg", "sleep=0.1s"]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_runbook_checks_and_has_a_run_test() {
    let files: Vec<String> = std::fs::read_dir(repo("runbooks"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".rhai"))
        .collect();
    assert!(files.len() >= 6, "{files:?}");
    let r = Fleetbook::new().args(["check"]).args(files.iter()).run().await;
    r.assert_code(0);
    for f in &files {
        assert!(SHIPPED.iter().any(|(name, _)| f.ends_with(&format!("/{name}"))), "{f} has no run test");
    }
}

/// Runs one shipped runbook against a simulated fleet of 30.
async fn run_shipped(name: &str) {
    let (_, extra) = SHIPPED.iter().find(|(n, _)| *n == name).expect("listed in SHIPPED");
    let path = repo(&format!("runbooks/{name}"));
    let r = Fleetbook::new()
        .test_config()
        .args(["--sim", "30", "--sim-time-scale", "0.01"])
        .args(["run", &path, "--output", "json"])
        .args(extra.iter())
        .run()
        .await;
    r.assert_code(0);
    let ev = events(&r);
    assert_eq!(ev.last().unwrap()["event"], "run_end", "{name}");
    assert!(ev.last().unwrap()["ok"].as_u64().unwrap() > 0, "{name} did something: {}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_rolling_restart_runs() {
    run_shipped("rolling-restart.rhai").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_rack_safe_restart_runs() {
    run_shipped("rack-safe-restart.rhai").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_reprovision_runs() {
    run_shipped("reprovision.rhai").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_emergency_shutdown_runs() {
    run_shipped("emergency-shutdown.rhai").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_watch_provisioning_runs() {
    run_shipped("watch-provisioning.rhai").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_leader_failover_runs() {
    run_shipped("leader-failover.rhai").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_metric_gated_restart_runs() {
    run_shipped("metric-gated-restart.rhai").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_snippet_in_the_api_doc_compiles() {
    let doc = std::fs::read_to_string(repo("docs/runbook-api.md")).unwrap();
    let mut snippets = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line.trim()) {
            (None, "```rhai") => current = Some(String::new()),
            (Some(s), "```") => {
                snippets.push(std::mem::take(s));
                current = None;
            }
            (Some(s), _) => {
                s.push_str(line);
                s.push('\n');
            }
            _ => {}
        }
    }
    assert!(snippets.len() >= 8, "found {} snippets", snippets.len());
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<String> = snippets
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let p = dir.path().join(format!("snippet{i}.rhai"));
            std::fs::write(&p, s).unwrap();
            p.display().to_string()
        })
        .collect();
    let r = Fleetbook::new().args(["check"]).args(files.iter()).run().await;
    r.assert_code(0);
    assert_eq!(r.stdout.lines().filter(|l| l.starts_with("ok ")).count(), snippets.len());
}

/// A running `fleetbook` whose stderr is read line by line.
struct Live {
    child: tokio::process::Child,
    seen: Vec<String>,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
}

impl Live {
    /// Starts `fleetbook ARGS` with piped stderr and returns it once a stderr line contains
    /// `marker`.
    async fn start_until(args: &[&str], marker: &str) -> Live {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleetbook"))
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let mut live = Live { child, seen: Vec::new(), lines };
        live.until(marker).await;
        live
    }

    /// Reads stderr until a line contains `marker`.
    async fn until(&mut self, marker: &str) {
        let wait = async {
            while let Some(l) = self.lines.next_line().await.unwrap() {
                let hit = l.contains(marker);
                self.seen.push(l);
                if hit {
                    return;
                }
            }
            panic!("fleetbook ended before printing {marker:?}: {:?}", self.seen);
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), wait).await.expect("marker in time");
    }

    fn sigint(&self) {
        // SAFETY: kill(2) with a pid we own.
        unsafe { libc::kill(self.child.id().unwrap() as i32, libc::SIGINT) };
    }

    /// Waits for the exit; returns the exit code and all of stderr.
    async fn finish(mut self) -> (i32, String) {
        let rest = async {
            while let Ok(Some(l)) = self.lines.next_line().await {
                self.seen.push(l);
            }
            self.child.wait().await.unwrap().code().unwrap_or(-1)
        };
        let code =
            tokio::time::timeout(std::time::Duration::from_secs(30), rest).await.expect("fleetbook stops in time");
        (code, self.seen.join("\n"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_ctrl_c_finishes_the_batch_then_stops() {
    let w = World::start(sim(6)).await;
    let (_d, rb) = runbook(
        "slow.rhai",
        r#"rpc_batch("choria_provision", "restart", #{ token: "s3cret" }, #{ filter: #{}, batch: 2, sleep: "20s" });"#,
    );
    let conf = client_conf().to_str().unwrap();
    let args = ["--config", conf, "--server", w.url(), "--insecure", "run", rb.to_str().unwrap()];
    let live = Live::start_until(&args, "batch 1/3").await;
    live.sigint();
    let (code, err) = live.finish().await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("interrupted (Ctrl-C) after batch 1/3"), "{err}");
    assert_eq!(provisioned(&w).len(), 2, "only the first batch was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_ctrl_c_aborts_a_wait() {
    let w = World::start(SimConfig { silent_nodes: vec!["n001".into()], ..sim(2) }).await;
    let (_d, rb) = runbook(
        "wait.rhai",
        r#"print("calling"); rpc_batch("rpcutil", "ping", #{}, #{ nodes: ["n001.example.net"], timeout: "60s" });"#,
    );
    let args = ["--server", w.url(), "--insecure", "run", rb.to_str().unwrap()];
    let mut live = Live::start_until(&args, "calling").await;
    let started = std::time::Instant::now();
    // The silent node has the request: the call is in its wait.
    eventually(std::time::Duration::from_secs(20), "the request at the node", || {
        w.sim.stats().requests.get("rpcutil#ping") == Some(&1)
    })
    .await;
    live.sigint();
    live.until("Ctrl-C again to abort").await;
    live.sigint();
    let (code, err) = live.finish().await;
    assert_eq!(code, 3, "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "did not wait out the 60 s timeout");
    assert!(err.contains("interrupted"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_is_disabled_and_lib_dirs_are_searched() {
    let (_d, rb) = runbook("ev.rhai", "let x = eval(\"1 + 1\");\n");
    let r = Fleetbook::new().args(["check", rb.to_str().unwrap()]).run().await;
    r.assert_code(1);
    assert!(r.stderr.contains("ev.rhai:1:"), "{}", r.stderr);

    let lib = tempfile::tempdir().unwrap();
    std::fs::write(lib.path().join("shared.rhai"), "fn answer() { 42 }\n").unwrap();
    let (_d2, main) = runbook(
        "uses.rhai",
        "import \"shared\" as s;\nif s::answer() != 42 { throw \"wrong\"; }\nprint(\"lib ok\");\n",
    );
    let w = World::start(sim(1)).await;
    let r = w.fleetbook().args(["run", main.to_str().unwrap(), "--lib", lib.path().to_str().unwrap()]).run().await;
    r.assert_code(0);
    assert!(r.stderr.contains("lib ok"), "{}", r.stderr);
    let r = w.fleetbook().args(["run", main.to_str().unwrap()]).run().await;
    r.assert_code(1);
    assert!(r.stderr.contains("shared"), "a missing module is named: {}", r.stderr);
}

/// Issue 16: `--dry-run` needs no provisioning token (the calls that need it are only
/// planned, and the plan says so); the real run still does. Planned calls read "would".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_needs_no_token_and_says_would() {
    let w = crate::support::World::start(crate::support::sim(4)).await;
    let book = concat!(env!("CARGO_MANIFEST_DIR"), "/runbooks/rolling-restart.rhai");
    let plan = w.fleetbook().args(["run", book, "--dry-run"]).run().await;
    plan.assert_code(0);
    assert!(plan.stderr.contains("secret FLEETBOOK_PROVISION_TOKEN is not set; fine for a plan"), "{}", plan.stderr);
    assert!(plan.stderr.contains("dry-run: would restart 4 node(s)"), "{}", plan.stderr);
    assert!(!plan.stderr.contains("restarted 0"), "{}", plan.stderr);
    let real = w.fleetbook().args(["run", book]).run().await;
    real.assert_code(1);
    assert!(real.stderr.contains("FLEETBOOK_PROVISION_TOKEN is not set"), "{}", real.stderr);
    let req = w.fleetbook().args(["req", "choria_provision", "restart", "--dry-run"]).run().await;
    req.assert_code(0);
    assert!(req.stderr.contains("no provisioning token is set; fine for a plan"), "{}", req.stderr);
    assert_eq!(w.sim.stats().requests.get("choria_provision#restart"), None, "nothing was sent");
}

/// Issue 16: `check` rejects what will surely fail at run time, each at its file:line:col.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_rejects_each_class_of_sure_failure() {
    let cases = [
        ("let n = discver();", "unknown function discver(); did you mean discover()?", "1:9"),
        ("let n = discover(\"web\");", "discover(string) is not a form of discover", "1:9"),
        (
            "rpc_batch(\"rpcutil\", \"ping\", #{}, #{ nodes: [], batch: \"lots\" });",
            "rpc_batch.batch: \"lots\" is not a whole number or a percentage",
            "1:",
        ),
        ("rpc_batch(\"rpcutil\", \"ping\", #{}, #{ nodes: [], sleep: \"soon\" });", "rpc_batch.sleep", "1:"),
        (
            "let t = 1;\nrpc_batch(\"choria_provision\", \"restart\", #{ token: t, splay: \"soon\" }, #{ nodes: [] });",
            "invalid input 'splay' for choria_provision#restart",
            "2:",
        ),
        (
            "rpc_batch(\"rpcutil\", \"ping\", #{}, #{ nodes: [], wait_for: #{ event: \"startedup\" } });",
            "rpc_batch.wait_for.event: unknown event",
            "1:",
        ),
    ];
    for (src, want, at) in cases {
        let (_d, rb) = runbook("sure.rhai", src);
        let r = crate::support::Fleetbook::new().args(["check", rb.to_str().unwrap()]).run().await;
        r.assert_code(1);
        assert!(r.stderr.contains(want), "{src}: {}", r.stderr);
        assert!(r.stderr.contains(&format!("sure.rhai:{at}")), "{src}: {}", r.stderr);
    }
    // --arg names the runbook never reads, and --json for editors and CI.
    let book = concat!(env!("CARGO_MANIFEST_DIR"), "/runbooks/rolling-restart.rhai");
    let r = crate::support::Fleetbook::new().args(["check", book, "--arg", "clas=web"]).run().await;
    r.assert_code(1);
    assert!(r.stderr.contains("--arg clas not read by") && r.stderr.contains("it reads: class"), "{}", r.stderr);
    crate::support::Fleetbook::new().args(["check", book, "--arg", "class=web"]).run().await.assert_code(0);
    let (_d, bad) = runbook("bad.rhai", "let n = discver();");
    let r = crate::support::Fleetbook::new().args(["check", "--json", bad.to_str().unwrap(), book]).run().await;
    r.assert_code(1);
    let j = r.json();
    assert_eq!(j["files"][0]["problems"][0]["line"], 1, "{j}");
    assert_eq!(j["files"][0]["problems"][0]["column"], 9, "{j}");
    assert!(j["files"][0]["problems"][0]["message"].as_str().unwrap().contains("did you mean discover()"), "{j}");
    assert_eq!((j["files"][1]["ok"].as_bool(), j["files"][0]["ok"].as_bool()), (Some(true), Some(false)), "{j}");
    // A runbook without such mistakes passes (shipped ones are checked elsewhere).
    let (_d, rb) = runbook("fine.rhai", "let n = discover(#{ class: \"web\" });\nlet f = |x| x + 1;\nprint(f(1));\n");
    crate::support::Fleetbook::new().args(["check", rb.to_str().unwrap()]).run().await.assert_code(0);
}
