//! The real binary against a real nats-server and an in-process simulated fleet.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::protocol::{validate_reply, validate_request};
use crate::support::{drain, record, short_rpc_timeouts, sim, Fleetbook, World};
use fleetbook::sim::SimConfig;

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

/// Identities whose facts satisfy `pred`, computed from the simulator's own node data.
fn expected(world: &World, pred: impl Fn(&Value) -> bool) -> Vec<String> {
    world.sim.identities().into_iter().filter(|id| pred(&world.sim.node(id).unwrap().facts)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_applies_each_filter_kind() {
    let w = World::start(SimConfig { nodes: 40, seed: 7, ..sim(40) }).await;
    let discover = |args: &[&str]| {
        w.fleetbook().args(["discover", "--json", "--discovery-timeout", "0.5"]).args(args.iter().copied()).run()
    };
    // Each discovery waits out its timeout: run the independent ones side by side.
    let (all, mt_r, big_r, web_r, web_re_r, pkg_r, ids_r, web_mt_r, prov_r) = tokio::join!(
        discover(&[]),
        discover(&["-F", "country=mt"]),
        discover(&["-F", "cpus>=8", "-F", "os.family=/^Deb/"]),
        discover(&["-C", "apache"]),
        discover(&["-C", "/^role::web$/"]),
        discover(&["-A", "package"]),
        discover(&["-I", "/^n00[1-3]/"]),
        discover(&["-S", "with('apache') && fact('country') == 'mt'"]),
        discover(&["-T", "provisioning"]),
    );
    all.assert_code(0);
    assert_eq!(strings(&all.json()), w.sim.identities());

    let mt = expected(&w, |f| f["country"] == "mt");
    assert!(!mt.is_empty() && mt.len() < 40, "seed gives a useful split: {mt:?}");
    assert_eq!(strings(&mt_r.json()), mt);

    let big = expected(&w, |f| f["cpus"].as_u64().unwrap() >= 8 && f["os"]["family"] == "Debian");
    assert_eq!(strings(&big_r.json()), big);

    let web = expected(&w, |f| f["role"] == "web");
    assert_eq!(strings(&web_r.json()), web);
    assert_eq!(strings(&web_re_r.json()), web);

    let pkg: Vec<String> = w
        .sim
        .identities()
        .into_iter()
        .filter(|id| w.sim.node(id).unwrap().agents.contains(&"package".to_string()))
        .collect();
    assert_eq!(strings(&pkg_r.json()), pkg);

    assert_eq!(strings(&ids_r.json()), vec!["n001.example.net", "n002.example.net", "n003.example.net"]);

    let web_mt = expected(&w, |f| f["role"] == "web" && f["country"] == "mt");
    assert_eq!(strings(&web_mt_r.json()), web_mt);

    // Nobody is in provisioning mode yet.
    assert!(strings(&prov_r.json()).is_empty());

    // Exact identities skip the network (identityOptimize): even a node that does not exist.
    // (After the others: the count must not move while it runs.)
    w.settle().await;
    let before = w.sim.stats().requests.get("discovery").copied().unwrap_or(0);
    let r = discover(&["-I", "ghost.example.net", "-I", "n002.example.net"]).await;
    assert_eq!(strings(&r.json()), vec!["ghost.example.net", "n002.example.net"]);
    w.settle().await;
    assert_eq!(w.sim.stats().requests.get("discovery").copied().unwrap_or(0), before);

    // A bad regex is refused before anything is sent.
    discover(&["-I", "/[/"]).await.assert_code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_window_ends_early() {
    let w = World::start(sim(10)).await;
    let start = std::time::Instant::now();
    let r = w.fleetbook().args(["discover", "--json", "--discovery-timeout", "10", "--discovery-window"]).run().await;
    r.assert_code(0);
    assert_eq!(strings(&r.json()).len(), 10);
    assert!(start.elapsed() < Duration::from_secs(8), "the 300 ms window ended discovery well before 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_requests_share_one_id_and_wait_between_batches() {
    let w = World::start(sim(5)).await;
    let nats = w.nats().await;
    let mut requests = record(&nats, "mcollective.node.>").await;
    let mut replies = record(&nats, "mcollective.reply.>").await;
    let r = w
        .fleetbook()
        .args([
            "req",
            "choria_provision",
            "restart",
            "token=s3cret",
            "splay=1",
            "--batch",
            "2",
            "--batch-sleep",
            "0.7",
            "--json",
            "--discovery-timeout",
            "0.5",
        ])
        .run()
        .await;
    r.assert_code(0);
    let j = r.json();
    assert_eq!(j["batches"], 3);
    assert_eq!(strings(&j["ok"]).len(), 5);
    assert!(r.stderr.contains("batch 1/3: 2 node(s)") && r.stderr.contains("batch 3/3: 1 node(s)"), "{}", r.stderr);

    let reqs = drain(&mut requests);
    assert_eq!(reqs.len(), 5, "one direct request per node");
    let mut ids = BTreeSet::new();
    for (subject, payload, _) in &reqs {
        let req = validate_request(payload);
        ids.insert(req["envelope"]["requestid"].as_str().unwrap().to_string());
        assert!(subject.starts_with("mcollective.node.n00"));
        // splay travels as a number, the agent is in the filter.
        let body: Value = serde_json::from_str(req["message"].as_str().unwrap()).unwrap();
        assert_eq!(body["data"]["splay"], 1);
        assert_eq!(req["envelope"]["filter"]["agent"][0], "choria_provision");
    }
    assert_eq!(ids.len(), 1, "all batches share one request id");
    // Batches of 2, 2, 1, separated by the sleep.
    let t: Vec<_> = reqs.iter().map(|x| x.2).collect();
    assert!(t[1] - t[0] < Duration::from_millis(300));
    assert!(t[2] - t[1] >= Duration::from_millis(650), "sleep between batch 1 and 2");
    assert!(t[3] - t[2] < Duration::from_millis(300));
    assert!(t[4] - t[3] >= Duration::from_millis(650), "sleep between batch 2 and 3");
    for (_, payload, _) in drain(&mut replies) {
        validate_reply(&payload);
    }
    // Every node got exactly one restart.
    let stats = w.sim.stats();
    for id in w.sim.identities() {
        assert_eq!(stats.received.get(&id).map(Vec::len), Some(1), "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_fails_every_node() {
    let w = World::start(sim(3)).await;
    // JSON and text side by side: a refused restart changes nothing.
    let req = ["req", "choria_provision", "restart", "token=wrong", "--discovery-timeout", "0.5"];
    let (r, t) = tokio::join!(w.fleetbook().args(req).arg("--json").run(), w.fleetbook().args(req).run());
    r.assert_code(1);
    let j = r.json();
    assert!(strings(&j["ok"]).is_empty());
    let failed = j["failed"].as_object().unwrap();
    assert_eq!(failed.len(), 3);
    for v in failed.values() {
        assert_eq!(v["statuscode"], 1);
        assert_eq!(v["statusmsg"], "Incorrect provision token supplied");
    }
    // Text mode says the same, per node.
    t.assert_code(1);
    assert!(t.stdout.contains("n001.example.net  Request Aborted  Incorrect provision token supplied"), "{}", t.stdout);
    assert!(t.stdout.contains("0 ok, 3 failed, 0 no reply"), "{}", t.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_nodes_are_no_reply_never_success() {
    let cfg = SimConfig { silent_nodes: vec!["n002".into()], fail_nodes: vec!["n003".into()], ..sim(4) };
    let w = World::start(cfg).await;
    let ddl = short_rpc_timeouts();
    let r = w
        .fleetbook()
        .args(["--ddl-dir", ddl.path().to_str().unwrap()])
        .args(["req", "choria_provision", "restart", "token=s3cret", "--json", "--discovery-timeout", "0.5"])
        .run()
        .await;
    r.assert_code(1);
    let j = r.json();
    assert_eq!(strings(&j["no_reply"]), vec!["n002.example.net"]);
    assert_eq!(strings(&j["ok"]), vec!["n001.example.net", "n004.example.net"]);
    let code = j["failed"]["n003.example.net"]["statuscode"].as_u64().unwrap();
    assert!(code == 1 || code == 5, "failing nodes answer 1 or 5, got {code}");
    assert!(r.stderr.contains("2 of 4 node(s) did not succeed"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_nodes_count_when_in_time_and_not_after() {
    let cfg = SimConfig { slow_nodes: vec!["n001".into()], slow_delay: Duration::from_millis(1500), ..sim(2) };
    let w = World::start(cfg).await;
    // rpcutil: wait = the config's discovery timeout (support::DISCOVERY_TIMEOUT, 0.5 s) + DDL
    // timeout (2 s) > 1.5 s.
    let r = w.fleetbook().args(["req", "rpcutil", "ping", "--json", "--discovery-timeout", "0.3"]).run().await;
    r.assert_code(0);
    assert_eq!(strings(&r.json()["ok"]).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_action_is_rejected_before_sending() {
    let w = World::start(sim(3)).await;
    let r = w.fleetbook().args(["req", "choria_provision", "reboot", "token=s3cret"]).run().await;
    r.assert_code(2);
    assert!(r.stderr.contains("unknown action 'reboot' for agent 'choria_provision'"), "{}", r.stderr);
    assert!(
        r.stderr.contains("restart") && r.stderr.contains("reprovision") && r.stderr.contains("shutdown"),
        "{}",
        r.stderr
    );
    let r = w.fleetbook().args(["req", "nosuch", "ping"]).run().await;
    r.assert_code(2);
    assert!(r.stderr.contains("unknown agent 'nosuch'") && r.stderr.contains("rpcutil"), "{}", r.stderr);
    let r = w.fleetbook().args(["req", "choria_provision", "restart", "token=s3cret", "splay=soon"]).run().await;
    r.assert_code(2);
    assert!(r.stderr.contains("'splay'"), "{}", r.stderr);
    w.settle().await;
    assert!(w.sim.stats().requests.is_empty(), "nothing reached the fleet: {:?}", w.sim.stats().requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_broker_exits_4() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("nats://127.0.0.1:{port}");
    let r = Fleetbook::new().args(["--server", &url, "--insecure", "discover"]).run().await;
    r.assert_code(4);
    assert!(r.stderr.contains("cannot connect to the broker at") && r.stderr.contains(&url), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_broker_needs_insecure_until_signing_exists() {
    let r = Fleetbook::new().args(["--server", "nats://127.0.0.1:1", "discover"]).run().await;
    r.assert_code(2);
    assert!(r.stderr.contains("--insecure"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_replies_are_reported_not_counted() {
    use futures::StreamExt;
    let w = World::start(sim(1)).await;
    // A fake node that answers with garbage on the reply subject from the request.
    let nats = w.nats().await;
    let mut sub = nats.subscribe("mcollective.node.bad.example.net").await.unwrap();
    nats.flush().await.unwrap();
    let responder = nats.clone();
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            let t: Value = serde_json::from_slice(&m.payload).unwrap();
            let reply_to = t["headers"]["reply-to"].as_str().unwrap().to_string();
            let garbage = serde_json::json!({"protocol": "choria:transport:1", "data": "bm90IGpzb24=", "headers": {"mc_sender": "bad.example.net"}});
            responder.publish(reply_to, garbage.to_string().into()).await.unwrap();
        }
    });
    // The bad node's only message is known not to decode at the end of the wait.
    let ddl = short_rpc_timeouts();
    let r = w
        .fleetbook()
        .args(["--ddl-dir", ddl.path().to_str().unwrap()])
        .args(["req", "rpcutil", "ping", "-I", "bad.example.net", "-I", "n001.example.net", "--json"])
        .run()
        .await;
    r.assert_code(1);
    let j = r.json();
    assert_eq!(strings(&j["ok"]), vec!["n001.example.net"]);
    assert!(j["malformed"]["bad.example.net"].as_str().unwrap().contains("malformed"), "{j}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_v2_end_to_end() {
    let w = World::start(sim(6)).await;
    let nats = w.nats().await;
    let mut requests = record(&nats, "mcollective.>").await;
    let r = w
        .fleetbook()
        .args([
            "--protocol",
            "v2",
            "req",
            "rpcutil",
            "ping",
            "--json",
            "--discovery-timeout",
            "0.5",
            "-F",
            "country!=zz",
        ])
        .run()
        .await;
    r.assert_code(0);
    assert_eq!(strings(&r.json()["ok"]).len(), 6);
    let mut seen_request = 0;
    let mut seen_reply = 0;
    for (subject, payload, _) in drain(&mut requests) {
        if subject.contains(".reply.") {
            let reply = validate_reply(&payload);
            assert_eq!(reply["protocol"], "io.choria.protocol.v2.reply");
            seen_reply += 1;
        } else {
            let req = validate_request(&payload);
            assert_eq!(req["protocol"], "io.choria.protocol.v2.request");
            assert_eq!(req["id"].as_str().unwrap().len(), 27, "KSUID request id");
            seen_request += 1;
        }
    }
    assert_eq!(seen_request, 1 + 6, "one discovery broadcast and six direct requests");
    assert_eq!(seen_reply, 6 + 6, "six pongs and six ping replies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_of_one_node() {
    let w = World::start(sim(3)).await;
    // Side by side: the missing node takes the whole wait.
    let ddl = short_rpc_timeouts();
    let (r, t, missing) = tokio::join!(
        w.fleetbook().args(["inventory", "n002.example.net", "--json"]).run(),
        w.fleetbook().args(["inventory", "n002.example.net"]).run(),
        w.fleetbook().args(["--ddl-dir", ddl.path().to_str().unwrap(), "inventory", "nobody.example.net"]).run(),
    );
    r.assert_code(0);
    let j = r.json();
    assert_eq!(j["version"], "0.29.4");
    assert_eq!(j["upgradable"], true);
    assert_eq!(j["main_collective"], "mcollective");
    assert!(strings(&j["agents"]).contains(&"choria_provision".to_string()));
    assert_eq!(j["facts"], w.sim.node("n002.example.net").unwrap().facts);
    t.assert_code(0);
    assert!(t.stdout.contains("                    Version: 0.29.4 (upgradable during provisioning)"), "{}", t.stdout);
    missing.assert_code(1);
    assert!(missing.stderr.contains("nobody.example.net did not answer"), "{}", missing.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_sim_runs_the_readme_demo() {
    // Three embedded fleets, side by side; the tests' config shortens their discovery.
    let run = |args: &[&str]| Fleetbook::new().test_config().args(args.iter().copied()).run();
    let (r, broadcast, demo) = tokio::join!(
        run(&["--sim", "12", "req", "rpcutil", "ping", "--json"]),
        run(&["--sim", "4", "req", "rpcutil", "ping", "--broadcast", "--json"]),
        run(&["--sim", "5", "run", "runbooks/rolling-restart.rhai"]),
    );
    r.assert_code(0);
    assert_eq!(strings(&r.json()["ok"]).len(), 12);
    broadcast.assert_code(0);
    assert_eq!(strings(&broadcast.json()["ok"]).len(), 4);
    demo.assert_code(0);
    assert!(demo.stderr.contains("restarted 5 node(s)"), "{}", demo.stderr);
    // Stopping our own embedded broker at the end is not a lost connection.
    assert!(!demo.stderr.contains("lost the connection"), "{}", demo.stderr);
}
