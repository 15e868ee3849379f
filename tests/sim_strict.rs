//! The simulated fleet held to go-choria's rules: the built-in agents' DDLs and the `scout`
//! agent's per-check state.

use std::path::PathBuf;

use crate::support::{sim, World};

/// The state of every check on `identity`, as the simulator holds it.
fn checks(w: &World, identity: &str) -> Vec<(String, String)> {
    w.sim.node(identity).unwrap().checks.into_iter().map(|c| (c.name, c.state)).collect()
}

fn pair(name: &str, state: &str) -> (String, String) {
    (name.to_string(), state.to_string())
}

fn runbook(dir: &tempfile::TempDir, body: &str) -> PathBuf {
    let path = dir.path().join("scout.rhai");
    std::fs::write(&path, body).unwrap();
    path
}

/// `req scout ...` validates against the built-in scout DDL (no `--ddl-dir`) and the nodes
/// answer with the shape the DDL's outputs give.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scout_requests_validate_without_a_ddl_dir() {
    let w = World::start(sim(3)).await;
    let r = w.fleetbook().args(["req", "scout", "checks", "--json"]).run().await;
    r.assert_code(0);
    let j = r.json();
    let text = j.to_string();
    assert!(text.contains("check_disk") && text.contains("check_load"), "{text}");
    let r = w
        .fleetbook()
        .args(["req", "scout", "maintenance", "checks=[\"check_disk\"]", "-I", "n002.example.net", "--json"])
        .run()
        .await;
    r.assert_code(0);
    assert_eq!(checks(&w, "n002.example.net"), vec![pair("check_disk", "MAINTENANCE"), pair("check_load", "OK")]);
    assert_eq!(checks(&w, "n001.example.net"), vec![pair("check_disk", "OK"), pair("check_load", "OK")]);
    // An action the DDL does not know is refused before anything is sent.
    let r = w.fleetbook().args(["req", "scout", "nope"]).run().await;
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("unknown action 'nope'"), "{}", r.stderr);
    // An action the simulator does not model says so.
    let r = w.fleetbook().args(["req", "executor", "list", "--json"]).run().await;
    assert!(r.stdout.contains("list is not simulated"), "{}\n{}", r.stdout, r.stderr);
}

/// A runbook puts checks into maintenance around a restart batch and resumes them after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runbook_holds_checks_in_maintenance_around_a_restart() {
    let w = World::start(sim(4)).await;
    let dir = tempfile::tempdir().unwrap();
    let rb = runbook(
        &dir,
        r#"
let nodes = discover();
let m = rpc_batch("scout", "maintenance", #{ checks: [] }, #{ nodes: nodes, batch: 4, sleep: "0s" });
if m.ok.len() != 4 { abort("maintenance failed"); }
rpc_batch("choria_provision", "restart", #{ token: "s3cret", splay: 1 }, #{
    nodes: nodes, batch: 2, sleep: "0s", wait_for: #{ event: "startup", timeout: "10s" },
});
if arg("resume", "yes") == "yes" {
    rpc_batch("scout", "resume", #{}, #{ nodes: nodes, batch: 4, sleep: "0s" });
}
"#,
    );
    let r = w.fleetbook().args(["run", rb.to_str().unwrap(), "--arg", "resume=no"]).run().await;
    r.assert_code(0);
    for id in w.sim.identities() {
        assert_eq!(checks(&w, &id), vec![pair("check_disk", "MAINTENANCE"), pair("check_load", "MAINTENANCE")], "{id}");
    }
    let r = w.fleetbook().args(["run", rb.to_str().unwrap()]).run().await;
    r.assert_code(0);
    let stats = w.sim.stats();
    for id in w.sim.identities() {
        assert_eq!(checks(&w, &id), vec![pair("check_disk", "OK"), pair("check_load", "OK")], "{id}");
        let seen: Vec<&str> = stats.received[&id].iter().map(String::as_str).collect();
        let (m, r) = ("scout#maintenance", "choria_provision#restart");
        assert_eq!(seen, [m, r, m, r, "scout#resume"], "{id}");
    }
    assert!(stats.events.get("startup").copied().unwrap_or(0) >= 8, "{:?}", stats.events);
}
