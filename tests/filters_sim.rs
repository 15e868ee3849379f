//! Issue 9 "Trustworthy under faults": compound filters are checked before they are sent and
//! cannot hurt the simulator; the simulated Provisioner provisions each node once; the
//! simulator serves the collective it is given and answers its stats at scale.

use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::support::{eventually, sim, Fleetbook, World};
use fleetbook::fleet::filter::Filter;
use fleetbook::fleet::protocol::{self, Payload, RequestSpec, Security, Version};
use fleetbook::sim::SimConfig;

fn discover_args(expr: &str) -> Vec<String> {
    ["discover", "--json", "--discovery-timeout", "0.5", "-S", expr].iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_malformed_compound_filters_are_usage_errors_with_the_column() {
    let w = World::start(sim(3)).await;
    let cases = [
        ("with('apache') &&& fact('country') == 'mt'", "column 18"),
        ("€", "column 1"),
        ("(with('apache')", "never closed"),
        ("with('apache) && with('redis')", "unterminated string"),
        ("with('apache') &&", "end of expression after '&&'"),
        ("with(\u{201C}apache\u{201D})", "typographic quote"),
    ];
    let runs =
        futures::future::join_all(cases.iter().map(|(expr, _)| w.fleetbook().args(discover_args(expr)).run())).await;
    for ((expr, what), r) in cases.iter().zip(runs) {
        r.assert_code(2);
        assert!(r.stderr.contains("syntax error") && r.stderr.contains(what), "{expr:?}: {}", r.stderr);
        assert!(r.stderr.contains(&format!("    {expr}\n")), "the expression is echoed above a caret: {}", r.stderr);
    }
    // Issue 21: deep nesting is refused with a clear error, not a crash.
    let deep = format!("{}with('apache')", "!".repeat(10_000));
    let r = w.fleetbook().args(discover_args(&deep)).run().await;
    r.assert_code(2);
    assert!(r.stderr.contains("nested deeper than 64 levels"), "{}", r.stderr);
    // None of them reached the fleet.
    w.settle().await;
    assert_eq!(w.sim.stats().requests.get("discovery"), None);
    // Valid expressions still work, including expr-lang forms the simulator did not read.
    let ok = w.fleetbook().args(discover_args("'profile::base' in classes && identity matches '^n00[12]'")).run().await;
    assert_eq!(ok.assert_code(0).json(), serde_json::json!(["n001.example.net", "n002.example.net"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_the_simulator_does_not_hang_on_a_non_ascii_filter() {
    // Without client-side checking this request reached the simulator, whose lexer spun.
    let r = Fleetbook::new().args(["--sim", "3", "--sim-provisioners", "0"]).args(discover_args("€")).run().await;
    r.assert_code(2);
    assert!(r.stderr.contains("U+20AC"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_runbook_compound_filters_are_checked_too() {
    let w = World::start(sim(3)).await;
    let dir = tempfile::tempdir().unwrap();
    let rb = dir.path().join("bad.rhai");
    std::fs::write(&rb, "let n = discover(#{ compound: \"with('apache') &&& true\" });\nprint(n.len());\n").unwrap();
    let r = w.fleetbook().args(["run", rb.to_str().unwrap()]).run().await;
    r.assert_code(1);
    assert!(r.stderr.contains("syntax error at column 18"), "{}", r.stderr);
    assert!(r.stderr.contains("bad.rhai:1"), "the runbook line is named: {}", r.stderr);
    w.settle().await;
    assert_eq!(w.sim.stats().requests.get("discovery"), None);
}

/// A discovery request with this compound filter, built by hand as another client might.
fn raw_discovery(expr: Option<&str>, reply_to: &str) -> bytes::Bytes {
    raw_request("discovery", Payload::Discovery, expr, reply_to)
}

/// A request built by hand, unchecked.
fn raw_request(agent: &str, payload: Payload<'_>, expr: Option<&str>, reply_to: &str) -> bytes::Bytes {
    let mut filter = Filter::default();
    if let Some(e) = expr {
        filter.add_compound(e);
    }
    let rid = Version::V1.new_request_id();
    let spec = RequestSpec {
        request_id: &rid,
        sender: "rogue.example.net",
        caller: "choria=rogue.mcollective",
        collective: "mcollective",
        agent,
        ttl: 60,
        filter: &filter,
        reply_to,
        payload,
        security: Security::Insecure,
    };
    protocol::encode_request(Version::V1, &spec, chrono::Utc::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue21_hostile_compound_filters_from_the_network_match_nothing() {
    let w = World::start(sim(3)).await;
    let nats = w.nats().await;
    let mut hostile_replies = nats.subscribe("test.hostile").await.unwrap();
    let mut sentinel = nats.subscribe("test.sentinel").await.unwrap();
    nats.flush().await.unwrap();
    let hostile = [
        "€".to_string(),
        "with(\u{2018}apache\u{2019}) || true".into(),
        "true\u{00A0}&&\u{00A0}fact('cpus') > \u{2212}1".into(),
        format!("{}true", "!".repeat(10_000)),
        format!("{}true{}", "(".repeat(50_000), ")".repeat(50_000)),
        "true &&& true".into(),
        "true ||".into(),
    ];
    for expr in &hostile {
        nats.publish("mcollective.broadcast.agent.discovery", raw_discovery(Some(expr), "test.hostile")).await.unwrap();
    }
    // The simulator handles requests in order: once the sentinel is answered by every node,
    // it has been through all the hostile ones, and is alive.
    nats.publish("mcollective.broadcast.agent.discovery", raw_discovery(Some("true"), "test.sentinel")).await.unwrap();
    for _ in 0..3 {
        tokio::time::timeout(Duration::from_secs(20), sentinel.next())
            .await
            .expect("the simulator still answers after hostile filters")
            .expect("reply");
    }
    w.sim.flush().await;
    nats.flush().await.unwrap();
    let late = tokio::time::timeout(Duration::from_millis(1), hostile_replies.next()).await;
    assert!(late.is_err(), "a hostile filter matched: {late:?}");
    assert_eq!(w.sim.stats().malformed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue22_sim_with_a_collective_serves_that_collective() {
    // `--sim N --collective X`: the embedded fleet is in X, where the client looks.
    let embedded = async {
        let r = Fleetbook::new()
            .args(["--sim", "3", "--sim-provisioners", "0", "--collective", "lab", "discover", "--json"])
            .args(["--discovery-timeout", "0.5"])
            .run()
            .await;
        assert_eq!(
            r.assert_code(0).json(),
            serde_json::json!(["n001.example.net", "n002.example.net", "n003.example.net"])
        );
    };

    // `fleetbook sim --nodes N --collective X`: a standalone fleet in X.
    let standalone = async {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleetbook"))
            .args(["sim", "--nodes", "2", "--sim-provisioners", "0", "--collective", "lab"])
            .env_remove("FLEETBOOK_SERVER")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("fleetbook sim starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
        // It prints the URL once its simulator is subscribed.
        let url = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("fleetbook sim prints its broker URL")
            .unwrap()
            .expect("a URL line");
        let base = || {
            Fleetbook::new().args(["--server", &url, "--insecure", "discover", "--json", "--discovery-timeout", "0.5"])
        };
        let (lab, default) = tokio::join!(base().args(["--collective", "lab"]).run(), base().run());
        assert_eq!(lab.assert_code(0).json(), serde_json::json!(["n001.example.net", "n002.example.net"]));
        assert_eq!(default.assert_code(0).json(), serde_json::json!([]));
        child.kill().await.unwrap();
    };
    tokio::join!(embedded, standalone);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue22_stats_answer_promptly_at_50k_nodes() {
    let nodes = 50_000;
    let w = World::start(SimConfig { fail_rate: 0.2, ..sim(nodes) }).await;
    let nats = w.nats().await;
    // One broadcast that every node receives: the per-node record is as big as it gets.
    let ping = r#"{"agent":"rpcutil","action":"ping","data":{}}"#;
    nats.publish("mcollective.broadcast.agent.rpcutil", raw_request("rpcutil", Payload::Rpc(ping), None, "test.void"))
        .await
        .unwrap();
    eventually(Duration::from_secs(60), "every node pinged", || {
        w.sim.stats().requests.get("rpcutil#ping") == Some(&(nodes as u64))
    })
    .await;
    let started = Instant::now();
    let reply = tokio::time::timeout(Duration::from_secs(10), nats.request(fleetbook::sim::STATS_SUBJECT, "".into()))
        .await
        .expect("stats answer within 10 s")
        .expect("stats request");
    let took = started.elapsed();
    let v: serde_json::Value = serde_json::from_slice(&reply.payload).expect("stats are JSON");
    assert_eq!(v["states"]["up"], nodes);
    assert_eq!(v["requests"]["rpcutil#ping"], nodes);
    assert!(took < Duration::from_secs(2), "stats took {took:?}");
    assert_eq!(v["truncated"], true, "50,000 nodes' actions do not fit in one message");
    // The per-node detail is still there for the nodes one asks about.
    let one = nats
        .request(fleetbook::sim::STATS_SUBJECT, r#"{"identities":["n00007.example.net"]}"#.into())
        .await
        .expect("stats for one node");
    let v: serde_json::Value = serde_json::from_slice(&one.payload).unwrap();
    assert_eq!(v["received"], serde_json::json!({"n00007.example.net": ["rpcutil#ping"]}));
    assert_eq!(v.get("truncated"), None);
}

/// A Provisioner counter, summed over the candidates.
fn counter(w: &World, name: &str) -> f64 {
    let site = vec![("site", "simulated".to_string())];
    let prov = w.sim.provisioner.as_ref().expect("provisioner");
    prov.candidates.iter().filter_map(|c| c.registry.get(name, &site)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue13_the_provisioner_provisions_each_node_once() {
    use fleetbook::sim::node::{Mode, State};
    let nodes = ["n001.example.net", "n002.example.net"];
    // Time scale 0.5: a provisioned node restarts 1-1.5 s after the restart request. Seed 6:
    // the nodes' reprovision splays are 2 s and 4 s (1 s and 2 s scaled); seed 1's were 5 s
    // and 11 s, all of it waiting.
    let w = World::start(SimConfig { provisioners: 1, time_scale: 0.5, seed: 6, ..sim(2) }).await;
    let prov = w.sim.provisioner.as_ref().unwrap();
    let mut args = vec!["req", "choria_provision", "reprovision", "token=s3cret"];
    for n in nodes {
        args.extend(["-I", n]);
    }
    // The nodes go into provisioning mode while the election runs: a leader that wins after
    // they are back in that mode finds them by discovery when it wins.
    w.fleetbook().args(args).run().await.assert_code(0);
    eventually(Duration::from_secs(20), "a leader", || prov.leader().is_some()).await;
    let leader = prov.leader().unwrap().clone();
    // While a node is provisioned but has not restarted yet it still answers discovery in the
    // provisioning collective: have the Provisioner discover then, as its timer may.
    let asked_to_restart =
        |n: &str| w.sim.stats().received.get(n).is_some_and(|a| a.iter().any(|x| x == "choria_provision#restart"));
    let in_window = |n: &str| {
        let node = w.sim.node(n).unwrap();
        asked_to_restart(n) && node.mode == Mode::Provisioning && node.state == State::Up
    };
    let back = |n: &str| {
        let node = w.sim.node(n).unwrap();
        asked_to_restart(n) && node.mode == Mode::Normal && node.state == State::Up
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    while !nodes.iter().all(|n| back(n)) {
        assert!(Instant::now() < deadline, "nodes not back in service: {:?}", w.sim.stats().received);
        let received = w.sim.stats().received;
        let twice = received.values().any(|a| a.iter().filter(|x| *x == "choria_provision#configure").count() > 1);
        assert!(!twice, "a node was provisioned twice: {received:?}");
        if nodes.iter().any(|n| in_window(n)) {
            leader.discover_now();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // One more cycle over a fleet with nobody left to provision.
    let cycles = counter(&w, "choria_provisioner_discover_cycles");
    leader.discover_now();
    eventually(Duration::from_secs(10), "another discovery cycle", || {
        counter(&w, "choria_provisioner_discover_cycles") > cycles
    })
    .await;
    let queued = counter(&w, "choria_provisioner_discovered") + counter(&w, "choria_provisioner_event_discovered");
    assert_eq!(queued, 2.0, "each node queued once");
    assert_eq!(counter(&w, "choria_provisioner_provisioned"), 2.0);
    let stats = w.sim.stats();
    for n in nodes {
        let configures = stats.received[n].iter().filter(|a| *a == "choria_provision#configure").count();
        assert_eq!(configures, 1, "{n}: {:?}", stats.received[n]);
    }
    assert_eq!(stats.events.get("provisioned"), Some(&2));
}
