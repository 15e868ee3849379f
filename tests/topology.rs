//! Issue 14, part 1: topology-aware batches (`spread_by`, `max_per_group`, `group_by`,
//! `group_order`, `max_group_failures`, `last`, `leaders_last`) against the simulated fleet,
//! whose nodes have `site` and `environment` facts; the planner's own property tests are in
//! `src/rollout/topology.rs`.

use std::collections::BTreeMap;

use fleetbook::sim::SimConfig;
use serde_json::Value;

use crate::support::{sim, Run, World};

fn runbook(body: &str) -> (tempfile::TempDir, String) {
    crate::support::runbook_file("topology.rhai", body)
}

fn events(r: &Run) -> Vec<Value> {
    r.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

/// The batches as `batch_start` events list them: (nodes, group counts).
fn batches(r: &Run) -> Vec<(Vec<String>, BTreeMap<String, u64>)> {
    events(r)
        .iter()
        .filter(|e| e["event"] == "batch_start")
        .map(|e| {
            let nodes = e["nodes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()).collect();
            let groups = e["groups"]
                .as_object()
                .map(|g| g.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap())).collect())
                .unwrap_or_default();
            (nodes, groups)
        })
        .collect()
}

/// Spread over sites with one node per site per batch, a named node and a live election's
/// leader last; the dry-run plan is the plan that runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spread_caps_hold_leaders_go_last_and_the_dry_run_plan_is_what_runs() {
    let w = World::start(sim(12)).await;
    // A live election whose leader is one of the nodes (as a leader writes its key).
    let js = async_nats::jetstream::new(w.nats().await);
    let kv = js
        .create_key_value(async_nats::jetstream::kv::Config {
            bucket: "CHORIA_LEADER_ELECTION".into(),
            max_age: std::time::Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .unwrap();
    kv.put("web", "n002.example.net".into()).await.unwrap();
    let (_d, rb) = runbook(
        r#"rpc_batch("choria_provision", "restart", #{ token: secret("FLEETBOOK_PROVISION_TOKEN") }, #{
    filter: #{}, batch: 3, sleep: 0, spread_by: "site", max_per_group: 1,
    leaders_last: true, last: ["n005.example.net"],
});
"#,
    );
    let env = ("FLEETBOOK_PROVISION_TOKEN", "s3cret");
    let plan = w.fleetbook().env(env.0, env.1).args(["run", &rb, "--dry-run", "--output", "json"]).run().await;
    plan.assert_code(0);
    let planned = batches(&plan);
    let real = w.fleetbook().env(env.0, env.1).args(["run", &rb, "--output", "json"]).run().await;
    real.assert_code(0);
    let ran = batches(&real);
    assert_eq!(planned, ran, "the dry-run plan is the executed plan");
    let (last, rest) = ran.split_last().unwrap();
    assert_eq!(last.0, ["n002.example.net", "n005.example.net"], "the leader and the named node go last");
    for (nodes, groups) in rest {
        assert!(nodes.len() <= 3 && !nodes.is_empty(), "{nodes:?}");
        assert!(groups.values().all(|c| *c == 1), "one node per site per batch: {groups:?}");
        assert_eq!(groups.values().sum::<u64>() as usize, nodes.len(), "{groups:?}");
    }
    let all: usize = ran.iter().map(|(n, _)| n.len()).sum();
    assert_eq!(all, 12, "every node once");
    let counts = w.sim.stats().received;
    assert!(counts.values().all(|a| a.iter().filter(|x| *x == "choria_provision#restart").count() == 1));
}

/// group_by finishes one group before the next, in group_order, with a failure budget per
/// group; nodes that do not give their facts are their own group, and the plan says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_go_in_order_with_their_own_budget_and_missing_facts_are_reported() {
    let w = World::start(SimConfig { fail_nodes: vec!["n001".into()], ..sim(10) }).await;
    let (_d, rb) = runbook(
        r#"rpc_batch("choria_provision", "restart", #{ token: secret("FLEETBOOK_PROVISION_TOKEN") }, #{
    filter: #{}, batch: 2, sleep: 0, group_by: "environment", group_order: ["staging", "production"],
    max_group_failures: 0,
});
"#,
    );
    let plan = w.fleetbook().env("FLEETBOOK_PROVISION_TOKEN", "s3cret").args(["run", &rb, "--dry-run"]).run().await;
    plan.assert_code(0);
    let lines: Vec<&str> = plan.stderr.lines().filter(|l| l.contains("dry-run: batch")).collect();
    let groups: Vec<&str> =
        lines.iter().map(|l| l.split("[group ").nth(1).unwrap().split(':').next().unwrap()).collect();
    let mut order = groups.clone();
    order.dedup();
    assert!(order == ["staging", "production"] || order == ["production"], "{groups:?}");
    // n001 fails: its group's budget of 0 stops the rollout after that batch.
    let r = w.fleetbook().env("FLEETBOOK_PROVISION_TOKEN", "s3cret").args(["run", &rb]).run().await;
    r.assert_code(3);
    assert!(r.stderr.contains("node(s) in group") && r.stderr.contains("max_group_failures 0"), "{}", r.stderr);

    // A node that does not answer has no facts: it is planned in a group of its own.
    let w = World::start(SimConfig { silent_nodes: vec!["n003".into()], ..sim(4) }).await;
    let (_d, rb) = runbook(
        r#"rpc_batch("choria_provision", "restart", #{ token: "x" }, #{ nodes: ["n001.example.net", "n002.example.net", "n003.example.net"], spread_by: "site" });
"#,
    );
    let ddl = crate::support::short_rpc_timeouts();
    let plan = w.fleetbook().args(["--ddl-dir", ddl.path().to_str().unwrap(), "run", &rb, "--dry-run"]).run().await;
    plan.assert_code(0);
    assert!(plan.stderr.contains("1 node(s) did not give their facts"), "{}", plan.stderr);
    assert!(plan.stderr.contains("1 node(s) have no site fact: they form the group (no fact)"), "{}", plan.stderr);
}

/// `req` takes the same topology as flags: spread across sites, capped, a node kept for last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn req_spreads_batches_by_flags() {
    let w = World::start(sim(12)).await;
    let args = [
        "req",
        "choria_provision",
        "restart",
        "token=s3cret",
        "--batch",
        "4",
        "--batch-sleep",
        "0.1",
        "--spread-by",
        "site",
        "--max-per-group",
        "1",
        "--last",
        "n001.example.net",
        "--jsonl",
    ];
    let r = w.fleetbook().args(args).run().await;
    r.assert_code(0);
    let ran = batches(&r);
    let (last, rest) = ran.split_last().unwrap();
    assert_eq!(last.0, ["n001.example.net"], "{ran:?}");
    for (nodes, groups) in rest {
        assert!(groups.values().all(|c| *c == 1) && nodes.len() <= 4, "{groups:?}");
    }
    assert_eq!(ran.iter().map(|(n, _)| n.len()).sum::<usize>(), 12);
    let bad = w.fleetbook().args(["req", "rpcutil", "ping", "--max-per-group", "1"]).run().await;
    bad.assert_code(2);
}

/// With the nodes from an inventory file, the plan takes their facts from the file: nothing
/// is asked of the fleet (these nodes are not even on it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_come_from_the_inventory_file_when_it_is_the_source() {
    let w = World::start(sim(1)).await;
    let file = crate::support::choria_file("discovery/inventory/good-inventory.yaml");
    let r = w
        .fleetbook()
        .args(["req", "rpcutil", "ping", "--dm", "inventory", "--do"])
        .arg(&format!("file={}", file.display()))
        .args(["--batch", "1", "--spread-by", "country", "--dry-run", "--jsonl"])
        .run()
        .await;
    r.assert_code(0);
    assert!(!r.stderr.contains("asking"), "no fleet request for facts: {}", r.stderr);
    let groups: Vec<BTreeMap<String, u64>> = batches(&r).into_iter().map(|(_, g)| g).collect();
    let mut seen: Vec<String> = groups.iter().flat_map(|g| g.keys().cloned()).collect();
    seen.sort();
    assert_eq!(seen, ["de", "mt"], "{groups:?}");
    assert_eq!(w.sim.stats().requests.get("rpcutil#get_facts"), None);
}
