//! Issue 14 part 2: a simulated twin of a real fleet. `inventory --all --out FILE` writes
//! Choria's inventory file; `--sim-from FILE` and `sim --from-inventory FILE` simulate the
//! fleet it describes; the twin answers as the original did, node for node.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fleetbook::sim::{SimConfig, Twin};
use serde_json::Value;

use crate::support::{choria_file, short_rpc_timeouts, sim, Fleetbook, World};

/// go-choria's inventory file schema (`providers/discovery/inventory/schema.go`), without
/// its descriptions: what `choria tool inventory --validate` and `--dm inventory` check.
const GO_CHORIA_SCHEMA: &str = r#"{"$schema":"http://json-schema.org/draft-07/schema","type":"object",
"required":["$schema","nodes"],"additionalProperties":false,"properties":{
"$schema":{"type":"string","const":"https://choria.io/schemas/choria/discovery/v1/inventory_file.json"},
"groups":{"type":"array","items":{"type":"object","additionalProperties":false,"required":["name"],"properties":{
 "name":{"type":"string","pattern":"^[a-zA-Z0-9_-]+$","minLength":1},
 "filter":{"type":"object","additionalProperties":false,"properties":{
  "agents":{"type":"array","items":{"type":"string"}},"classes":{"type":"array","items":{"type":"string"}},
  "facts":{"type":"array","items":{"type":"string"}},"identities":{"type":"array","items":{"type":"string"}},
  "compound":{"type":"string"}}}}}},
"nodes":{"type":"array","items":{"type":"object","required":["name","collectives","facts","classes","agents"],
 "additionalProperties":false,"properties":{"name":{"type":"string","minLength":1},
 "collectives":{"type":"array","items":{"type":"string"}},"facts":{"type":"object"},
 "classes":{"type":"array","items":{"type":"string"}},"agents":{"type":"array","items":{"type":"string"}}}}}}}"#;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The filters the twin must answer as the original does.
const FILTERS: &[&[&str]] = &[
    &[],
    &["-F", "country=mt"],
    &["-F", "cpus>=8", "-F", "os.family=Debian"],
    &["-C", "role::web"],
    &["-C", "/postgres/"],
    &["-A", "package"],
    &["-I", "/n00[1-4]/"],
    &["-W", "role::db environment=production"],
];

/// Writes the inventory of `w`'s fleet to `dir/name` with `fleetbook inventory --all`.
async fn inventory_of(w: &World, dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let r = w.fleetbook().args(["inventory", "--all", "--out", s(&path)]).args(extra).run().await;
    r.assert_code(0);
    assert!(r.stdout.starts_with("Wrote "), "go-choria's last line: {r:?}");
    path
}

/// A twin of the fleet in `file`, in this process, on its own broker.
async fn twin_world(file: &Path) -> World {
    let twin = Twin::read(s(file)).unwrap_or_else(|e| panic!("{e}"));
    World::start(SimConfig { nodes: twin.nodes.len(), twin: Some(Arc::new(twin)), ..sim(1) }).await
}

/// The file as JSON, whatever its format.
fn as_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => serde_json::from_str(&text).unwrap(),
        _ => serde_yaml::from_str(&text).unwrap(),
    }
}

async fn discover(f: Fleetbook, filter: &[&str]) -> Vec<String> {
    let r = f.args(["discover", "--json"]).args(filter).run().await;
    serde_json::from_str(r.assert_code(0).stdout.trim()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_a_twin_of_a_written_inventory_answers_as_the_original_node_for_node() {
    let w = World::start(sim(12)).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = inventory_of(&w, dir.path(), "fleet.yaml", &[]).await;
    // In batches of 5, as JSON: the same nodes.
    let json = inventory_of(&w, dir.path(), "fleet.json", &["--batch", "5"]).await;
    let schema = jsonschema::validator_for(&serde_json::from_str(GO_CHORIA_SCHEMA).unwrap()).unwrap();
    for f in [&yaml, &json] {
        let v = as_json(f);
        let errors: Vec<String> = schema.iter_errors(&v).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: go-choria would refuse it: {errors:?}", f.display());
    }
    assert_eq!(as_json(&yaml), as_json(&json), "the format does not change the content");

    let t = twin_world(&yaml).await;
    assert_eq!(t.sim.identities(), w.sim.identities());
    for id in w.sim.identities() {
        let (a, b) = (w.sim.node(&id).unwrap(), t.sim.node(&id).unwrap());
        assert_eq!(
            (&a.facts, &a.classes, &a.agents, &a.version),
            (&b.facts, &b.classes, &b.agents, &b.version),
            "{id}"
        );
    }
    // Over the wire: discovery with each filter, and what inventory says of each node.
    for filter in FILTERS {
        let (real, twin) = tokio::join!(discover(w.fleetbook(), filter), discover(t.fleetbook(), filter));
        assert!(!real.is_empty() || filter.len() > 2, "{filter:?} should match someone");
        assert_eq!(real, twin, "discover {filter:?}");
    }
    for id in ["n001.example.net", "n007.example.net", "n012.example.net"] {
        let ask = |f: Fleetbook| async move { f.args(["inventory", id, "--json"]).run().await.assert_code(0).json() };
        let (real, twin) = tokio::join!(ask(w.fleetbook()), ask(t.fleetbook()));
        for k in ["agents", "classes", "facts", "collectives", "main_collective", "version"] {
            assert_eq!(real[k], twin[k], "{id}: {k}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_dm_inventory_of_the_written_file_discovers_what_broadcast_does() {
    let w = World::start(sim(10)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = inventory_of(&w, dir.path(), "fleet.yml", &[]).await;
    let file_option = format!("file={}", s(&file));
    for filter in FILTERS {
        let mut from_file = filter.to_vec();
        from_file.extend(["--dm", "inventory", "--do", &file_option]);
        let (real, listed) =
            tokio::join!(discover(w.fleetbook(), filter), discover(Fleetbook::new().arg("--insecure"), &from_file));
        assert_eq!(real, listed, "discover {filter:?}");
    }
    // Only the selected nodes are written, and the groups of an inventory already there stay.
    std::fs::copy(choria_file("discovery/inventory/good-inventory.yaml"), &file).unwrap();
    let r = w.fleetbook().args(["inventory", "--all", "--out", s(&file), "-C", "role::web"]).run().await;
    r.assert_code(0);
    let v = as_json(&file);
    let groups: Vec<&str> = v["groups"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(groups, ["malta", "germany", "acme", "all"]);
    let written: Vec<&str> = v["nodes"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(written, discover(w.fleetbook(), &["-C", "role::web"]).await, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_the_go_choria_inventory_file_runs_as_a_twin() {
    let file = choria_file("discovery/inventory/good-inventory.yaml");
    let twin = || Fleetbook::new().args(["--sim-from", s(&file), "--sim-provisioners", "0"]);
    // The cases of go-choria's inventory_test.go, asked of the twin over the wire.
    let cases: &[(&[&str], &[&str])] = &[
        (&[], &["dev1.example.net", "dev2.example.net"]),
        (&["-T", "mt_collective"], &["dev1.example.net"]),
        (&["-T", "de_collective"], &["dev2.example.net"]),
        (&["-F", "country=mt"], &["dev1.example.net"]),
        (&["-F", "customer=acme"], &["dev1.example.net"]),
        (&["-C", "one"], &["dev1.example.net", "dev2.example.net"]),
        (&["-C", "one", "-C", "three"], &["dev2.example.net"]),
        (&["-A", "other"], &["dev2.example.net"]),
    ];
    let runs = futures::future::join_all(cases.iter().map(|(filter, _)| discover(twin(), filter))).await;
    for ((filter, want), got) in cases.iter().zip(runs) {
        assert_eq!(got, *want, "discover {filter:?}");
    }
    let r = twin().args(["inventory", "dev2.example.net", "--json"]).run().await;
    let v = r.assert_code(0).json();
    assert_eq!(v["collectives"], serde_json::json!(["mcollective", "de_collective"]));
    assert_eq!(v["main_collective"], "mcollective");
    assert_eq!(v["facts"], serde_json::json!({"country": "de"}));
    assert_eq!(v["agents"], serde_json::json!(["other", "rpcutil"]));
    // Fault injection applies to a twin's nodes, by identity or short name.
    let conf = short_rpc_timeouts();
    let r = twin()
        .args(["--sim-silent", "dev1", "--ddl-dir", s(conf.path())])
        .args(["req", "rpcutil", "ping", "--json", "--no-journal"])
        .run()
        .await;
    let v = r.json();
    assert_eq!(
        (&v["ok"], &v["no_reply"]),
        (&serde_json::json!(["dev2.example.net"]), &serde_json::json!(["dev1.example.net"])),
        "{v}"
    );
}

/// The batches a dry run of the rolling restart plans: one list of nodes per batch.
async fn planned_batches(f: Fleetbook) -> Vec<Value> {
    let r = f
        .args(["run", "runbooks/rolling-restart.rhai", "--dry-run", "--output", "json", "--no-journal"])
        .args(["--arg", "class=profile::base", "--arg", "sleep=0s"])
        .run()
        .await;
    r.assert_code(0);
    let events = r.stdout.lines().map(|l| serde_json::from_str::<Value>(l).unwrap());
    events.filter(|e| e["event"] == "batch_start").map(|e| e["nodes"].clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_a_dry_run_against_the_twin_plans_the_batches_of_the_real_fleet() {
    let w = World::start(sim(9)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = inventory_of(&w, dir.path(), "prod.yaml", &[]).await;
    let twin = Fleetbook::new().args(["--sim-from", s(&file), "--sim-provisioners", "0", "--sim-time-scale", "0.01"]);
    let (real, offline) = tokio::join!(planned_batches(w.fleetbook()), planned_batches(twin));
    assert!(real.len() >= 3, "canary, 5, then 25%: {real:?}");
    assert_eq!(real, offline);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_bad_inventory_files_are_refused_naming_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let head = "$schema: https://choria.io/schemas/choria/discovery/v1/inventory_file.json\n";
    let missing = dir.path().join("missing.yaml");
    let cases = [
        (missing.clone(), "missing.yaml: No such file"),
        (write("schema.yaml", "$schema: x\nnodes: []\n"), "schema.yaml: invalid schema"),
        (write("typo.yaml", &format!("{head}nodes:\n  - nmae: a\n")), "typo.yaml:3: not an inventory file"),
        (write("empty.yaml", &format!("{head}nodes: []\n")), "empty.yaml: the inventory has no nodes"),
        (
            write(
                "lonely.json",
                r#"{"$schema": "https://choria.io/schemas/choria/discovery/v1/inventory_file.json", "nodes": [{"name": "a"}]}"#,
            ),
            "lonely.json: node 1 (\"a\"): no collectives",
        ),
    ];
    for (file, want) in &cases {
        for args in [vec!["--sim-from", s(file), "discover"], vec!["sim", "--from-inventory", s(file)]] {
            let r = Fleetbook::new().args(&args).run().await;
            r.assert_code(2);
            assert!(r.stderr.contains(want), "{args:?}: want {want:?} in {}", r.stderr);
        }
    }
    // --out: a format the extension does not name, or a file that is no inventory, is
    // refused before any node is asked.
    let notes = write("notes.yaml", "shopping:\n  - milk\n");
    for (out, want) in
        [(dir.path().join("fleet.txt"), "cannot tell the inventory format"), (notes, "refusing to overwrite")]
    {
        let r = Fleetbook::new()
            .args(["--sim", "2", "--sim-provisioners", "0", "inventory", "--all", "--out", s(&out)])
            .run()
            .await;
        r.assert_code(2);
        assert!(r.stderr.contains(want) && r.stderr.contains(s(&out)), "{want}: {}", r.stderr);
    }
    assert_eq!(std::fs::read_to_string(dir.path().join("notes.yaml")).unwrap(), "shopping:\n  - milk\n");
    let missing_dir = dir.path().join("no/such/dir/fleet.yaml");
    let r = Fleetbook::new()
        .args(["--sim", "2", "--sim-provisioners", "0", "inventory", "--all", "--out", s(&missing_dir)])
        .run()
        .await;
    assert!(r.assert_code(2).stderr.contains("does not exist"), "{}", r.stderr);
    let r = Fleetbook::new().args(["--sim", "2", "--sim-from", s(&missing), "discover"]).run().await;
    r.assert_code(2);
    // One node's inventory takes no filters: they select nodes for --all.
    let r = Fleetbook::new().args(["--sim", "2", "inventory", "n001.example.net", "-C", "apache"]).run().await;
    assert!(r.assert_code(2).stderr.contains("--all --out FILE"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_nothing_is_written_when_a_node_does_not_answer() {
    let w = World::start(SimConfig { silent_nodes: vec!["n003".into()], ..sim(5) }).await;
    let conf = short_rpc_timeouts();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fleet.yaml");
    let r = w.fleetbook().args(["--ddl-dir", s(conf.path()), "inventory", "--all", "--out", s(&out)]).run().await;
    r.assert_code(1);
    assert!(r.stderr.contains("not writing") && r.stderr.contains("n003.example.net: no reply"), "{}", r.stderr);
    assert!(!out.exists());
}

/// The topology-aware runbook against a twin: spreading by site needs the nodes' facts, which
/// the twin answers from the file, so the offline plan is the real fleet's plan; and it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_rack_safe_restart_plans_on_the_twin_as_on_the_fleet() {
    let w = World::start(sim(12)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = inventory_of(&w, dir.path(), "prod.json", &[]).await;
    let plan = |f: Fleetbook| async move {
        let r = f
            .env("FLEETBOOK_PROVISION_TOKEN", "s3cret")
            .args(["run", "runbooks/rack-safe-restart.rhai", "--dry-run", "--output", "json", "--no-journal"])
            .args(["--arg", "batch=4", "--arg", "max_per_group=1"])
            .run()
            .await;
        r.assert_code(0);
        let events: Vec<Value> = r.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        events
            .into_iter()
            .filter(|e| e["event"] == "batch_start")
            .map(|e| (e["nodes"].clone(), e["groups"].clone()))
            .collect::<Vec<_>>()
    };
    let twin =
        || Fleetbook::new().args(["--sim-from", s(&file), "--sim-provisioners", "0", "--sim-time-scale", "0.01"]);
    let (real, offline) = tokio::join!(plan(w.fleetbook()), plan(twin()));
    assert!(real.len() >= 3, "{real:?}");
    assert_eq!(real, offline, "the twin plans the real fleet's batches");
    for (_, groups) in &real {
        assert!(groups.as_object().unwrap().values().all(|c| c == 1), "one node per site per batch: {groups}");
    }
    let ran = twin()
        .env("FLEETBOOK_PROVISION_TOKEN", "s3cret")
        .args(["run", "runbooks/rack-safe-restart.rhai", "--no-journal", "--arg", "sleep=0s"])
        .run()
        .await;
    ran.assert_code(0);
    assert!(ran.stderr.contains("restarted 12 node(s)"), "{}", ran.stderr);
}
