//! Elections against a real JetStream KV bucket, failover in the simulated Provisioner, and
//! its metrics matching what it did.

use std::time::Duration;

use async_nats::jetstream::{self, kv};

use crate::support::{eventually, sim, Fleetbook, World};
use fleetbook::sim::SimConfig;

async fn bucket(w: &World, ttl: Duration) -> kv::Store {
    let js = jetstream::new(w.nats().await);
    js.create_key_value(kv::Config {
        bucket: "CHORIA_LEADER_ELECTION".into(),
        history: 1,
        max_age: ttl,
        ..Default::default()
    })
    .await
    .unwrap()
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(crate::support::choria_file(&format!("cli-output/{name}"))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_matches_choria_election_info() {
    let w = World::start(sim(1)).await;
    let kv = bucket(&w, Duration::from_secs(10)).await;
    kv.create("task_scheduler", "task-scheduler-asyncjobs-task-scheduler-6c96b69db5-zc8cr".into()).await.unwrap();
    let r = w.fleetbook().args(["election", "view"]).run().await;
    r.assert_code(0);
    // Everything but the creation time is the real output, line for line.
    let want: Vec<String> = fixture("cli-output-election-info.txt").lines().skip(1).map(str::to_string).collect();
    let got: Vec<String> = r.stdout.lines().map(str::to_string).collect();
    assert_eq!(got.len(), want.len() + 1, "{}", r.stdout);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        if w.starts_with("       Created:") {
            assert!(g.starts_with("       Created: ") && g.ends_with(" +0000"), "{g}");
        } else {
            assert_eq!(g, w, "line {i}");
        }
    }
    assert_eq!(got.last().unwrap(), "", "a blank line closes the table");
    // A name pattern that matches nothing leaves an empty table; a bad pattern is a usage error.
    let none = w.fleetbook().args(["election", "view", "^provisioner$"]).run().await;
    assert!(!none.stdout.contains("task_scheduler"), "{}", none.stdout);
    w.fleetbook().args(["election", "view", "("]).run().await.assert_code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evict_is_a_delete_and_refuses_without_force_off_a_terminal() {
    let w = World::start(sim(1)).await;
    let kv = bucket(&w, Duration::from_secs(60)).await;
    kv.create("provisioner", "p1.example.net".into()).await.unwrap();

    let r = w.fleetbook().args(["election", "evict", "provisioner"]).run().await;
    r.assert_code(3);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    assert_eq!(kv.get("provisioner").await.unwrap().as_deref(), Some(&b"p1.example.net"[..]), "untouched");

    let r = w
        .fleetbook()
        .args(["election", "evict", "provisioner", "--force", "--expect-leader", "p2.example.net"])
        .run()
        .await;
    r.assert_code(3);
    assert!(r.stderr.contains("led by p1.example.net, not p2.example.net"), "{}", r.stderr);
    assert!(kv.get("provisioner").await.unwrap().is_some(), "untouched");

    let r = w.fleetbook().args(["election", "evict", "provisioner", "--force"]).run().await;
    r.assert_code(0);
    let want =
        fixture("cli-output-election-evict.txt").lines().last().unwrap().replace("task_scheduler", "provisioner");
    assert_eq!(r.stdout.trim_end(), want);
    let entry = kv.entry("provisioner").await.unwrap().unwrap();
    assert_eq!(entry.operation, kv::Operation::Delete, "a delete marker, not a purge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbook_election_functions() {
    let w = World::start(sim(1)).await;
    let kv = bucket(&w, Duration::from_secs(30)).await;
    let rev = kv.create("provisioner", "p1.example.net".into()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rb = dir.path().join("e.rhai");
    std::fs::write(
        &rb,
        r#"
        let i = election_info("provisioner");
        print(`leader ${i.leader} rev ${i.revision} ttl ${i.ttl} fresh ${i.age < 10.0}`);
        print(`none ${election_leader("nobody") == ()}`);
        try { evict("provisioner", #{ expect_leader: "p9.example.net" }); } catch (e) { print(`refused ${e.kind}`); }
        print(`still ${election_leader("provisioner")}`);
        let gone = evict("provisioner", #{ expect_leader: "p1.example.net" });
        print(`evicted ${gone} now ${election_leader("provisioner") == ()}`);
        print(`again ${evict("provisioner") == ()}`);
        "#,
    )
    .unwrap();
    let r = w.fleetbook().args(["run", rb.to_str().unwrap()]).run().await;
    r.assert_code(0);
    for want in [
        format!("leader p1.example.net rev {rev} ttl 30.0 fresh true"),
        "none true".into(),
        "refused denied".into(),
        "still p1.example.net".into(),
        "evicted p1.example.net now true".into(),
        "again true".into(),
    ] {
        assert!(r.stderr.contains(&want), "{want}: {}", r.stderr);
    }
}

/// The candidate that leads now, from the bucket.
async fn leader(kv: &kv::Store) -> Option<(String, u64)> {
    let e = kv.entry("provisioner").await.ok()??;
    (e.operation == kv::Operation::Put).then(|| (String::from_utf8_lossy(&e.value).into_owned(), e.revision))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provisioner_fails_over_after_evict_and_its_metrics_match() {
    let w = World::start(SimConfig { provisioners: 3, time_scale: 0.05, ..sim(6) }).await;
    let kv = jetstream::new(w.nats().await).get_key_value("CHORIA_LEADER_ELECTION").await.unwrap();
    let prov = w.sim.provisioner.as_ref().unwrap();
    eventually(Duration::from_secs(20), "a leader", || prov.leader().is_some()).await;
    let (first, rev) = leader(&kv).await.unwrap();
    assert_eq!(prov.leader().unwrap().identity, first);

    // Reprovision two nodes: the leader provisions them, and its counters say so.
    let r = w
        .fleetbook()
        .args([
            "req",
            "choria_provision",
            "reprovision",
            "token=s3cret",
            "-I",
            "n001.example.net",
            "-I",
            "n002.example.net",
        ])
        .run()
        .await;
    r.assert_code(0);
    let url = w.sim.metrics_url().unwrap();
    let site = vec![("site", "simulated".to_string())];
    eventually(Duration::from_secs(30), "two nodes provisioned", || {
        prov.leader().and_then(|c| c.registry.get("choria_provisioner_provisioned", &site)) == Some(2.0)
    })
    .await;
    let m = fleetbook::metrics::http::scrape(&url, Duration::from_secs(5)).await.unwrap();
    let val = |name: &str, rpc: Option<&str>| {
        m.samples
            .iter()
            .filter(|s| s.name == name && rpc.is_none_or(|r| s.labels.get("rpc").map(String::as_str) == Some(r)))
            .map(|s| s.value)
            .sum::<f64>()
    };
    assert_eq!(val("choria_provisioner_provisioned", None), 2.0);
    assert_eq!(val("choria_provisioner_paused", None), 0.0);
    assert_eq!(val("choria_election_leader", None), 1.0);
    for rpc in ["rpcutil#inventory", "choria_provision#configure", "choria_provision#restart"] {
        assert_eq!(val("choria_provisioner_rpc_time_count", Some(rpc)), 2.0, "{rpc}");
    }
    assert!(m
        .samples
        .iter()
        .all(|s| !s.name.starts_with("choria_provisioner")
            || s.labels.get("site").map(String::as_str) == Some("simulated")));
    // What the simulator saw agrees: each node got configure then restart.
    let stats = w.sim.stats();
    for n in ["n001.example.net", "n002.example.net"] {
        let acts = &stats.received[n];
        assert_eq!(acts.iter().filter(|a| *a == "choria_provision#configure").count(), 1, "{n}: {acts:?}");
        assert!(
            acts.ends_with(&["choria_provision#configure".to_string(), "choria_provision#restart".to_string()]),
            "{n}: {acts:?}"
        );
    }
    // Each node announces `provisioned` once its restart's splay has passed.
    eventually(Duration::from_secs(30), "two provisioned events", || {
        w.sim.stats().events.get("provisioned") == Some(&2)
    })
    .await;

    // Evict: a new term begins (possibly the same candidate), and provisioning carries on.
    w.fleetbook().args(["election", "evict", "provisioner", "--force"]).run().await.assert_code(0);
    let mut next = None;
    for _ in 0..200 {
        if let Some((who, r)) = leader(&kv).await {
            if r > rev {
                next = Some(who);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let next = next.expect("a new leader after the eviction");
    eventually(Duration::from_secs(20), "the new leader announced", || {
        prov.leader().is_some_and(|c| c.identity == next)
    })
    .await;
    let before = prov.leader().unwrap().registry.get("choria_provisioner_provisioned", &site).unwrap_or(0.0);
    w.fleetbook()
        .args(["req", "choria_provision", "reprovision", "token=s3cret", "-I", "n003.example.net"])
        .run()
        .await
        .assert_code(0);
    eventually(Duration::from_secs(30), "provisioning after failover", || {
        prov.leader().and_then(|c| c.registry.get("choria_provisioner_provisioned", &site)).unwrap_or(0.0) > before
    })
    .await;
    // Losers are paused (a deposed leader notices at its next refresh).
    eventually(Duration::from_secs(10), "only the new leader unpaused", || {
        prov.candidates
            .iter()
            .all(|c| (c.identity == next) == (c.registry.get("choria_provisioner_paused", &site) == Some(0.0)))
    })
    .await;
    assert_eq!(prov.candidates.iter().filter(|c| c.is_leader()).count(), 1, "one leader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn election_commands_need_the_bucket() {
    let w = World::start(sim(1)).await;
    let r = w.fleetbook().args(["election", "view"]).run().await;
    // The broker is reachable: a missing bucket is configuration (2), not unreachable (4).
    r.assert_code(2);
    assert!(r.stderr.contains("CHORIA_LEADER_ELECTION does not exist"), "{}", r.stderr);
    let _ = Fleetbook::new();
}

/// Evicting from an election nobody ever campaigned in says so (exit 2) and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicting_an_election_that_does_not_exist_says_so() {
    let r = crate::support::Fleetbook::new().args(["--sim", "2", "election", "evict", "nosuch", "--force"]).run().await;
    r.assert_code(2);
    assert!(r.stderr.contains("there is no election nosuch in bucket CHORIA_LEADER_ELECTION"), "{}", r.stderr);
    assert!(!r.stdout.contains("Evicted"), "{}", r.stdout);
}
