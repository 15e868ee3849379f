//! The simulated fleet behaves like Choria servers: lifecycle events around restarts,
//! provisioning mode after reprovision, shutdown for good, TTL checks, statistics.

use std::time::Duration;

use serde_json::Value;

use crate::support::{eventually, record, short_rpc_timeouts, sim, take, World};
use fleetbook::sim::node::{Mode, State};
use fleetbook::sim::SimConfig;

/// The lifecycle events recorded: at least `n`, and every one the simulator counts as
/// published (it counts each just before publishing it).
async fn events(
    w: &World,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, bytes::Bytes, std::time::Instant)>,
    n: usize,
) -> Vec<(String, Value)> {
    let mut got = take(rx, n, Duration::from_secs(10), "lifecycle events").await;
    let published = w.sim.stats().events.values().sum::<u64>() as usize;
    if published > got.len() {
        let more = published - got.len();
        got.extend(take(rx, more, Duration::from_secs(10), "more lifecycle events").await);
    }
    got.into_iter().map(|(s, p, _)| (s, serde_json::from_slice(&p).expect("event is JSON"))).collect()
}

/// Validates a CloudEvent's data against the published lifecycle schema of its type.
fn assert_lifecycle_schema(kind: &str, data: &Value) {
    let schema = crate::support::choria_json(&format!("lifecycle/schema/{kind}.json"));
    let v = jsonschema::validator_for(&schema).expect("lifecycle schema compiles");
    let errs: Vec<String> = v.iter_errors(data).map(|e| e.to_string()).collect();
    assert!(errs.is_empty(), "{kind} event {data} fails its schema: {errs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_publishes_shutdown_then_startup_cloudevents() {
    let w = World::start(sim(3)).await;
    let nats = w.nats().await;
    let mut rx = record(&nats, "choria.lifecycle.event.>").await;
    w.fleetbook()
        .args(["req", "choria_provision", "restart", "token=s3cret", "splay=1", "-I", "n002.example.net"])
        .run()
        .await
        .assert_code(0);
    let got = events(&w, &mut rx, 2).await;
    let kinds: Vec<&str> = got.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(kinds, vec!["choria.lifecycle.event.shutdown.server", "choria.lifecycle.event.startup.server"]);
    for (subject, e) in &got {
        assert_eq!(e["specversion"], "1.0");
        assert_eq!(e["source"], "io.choria.lifecycle");
        assert_eq!(e["subject"], "n002.example.net");
        let kind = subject.split('.').nth(3).unwrap();
        assert_eq!(e["type"], format!("io.choria.lifecycle.v1.{kind}"));
        assert_eq!(e["data"]["component"], "server");
        assert_lifecycle_schema(kind, &e["data"]);
    }
    assert_eq!(got[1].1["data"]["version"], "0.29.4");
    assert_eq!(w.sim.node("n002.example.net").unwrap().state, State::Up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reprovision_moves_a_node_into_provisioning_mode_and_back() {
    // Back in service 3 s after entering provisioning mode: the checks in between run side by
    // side and take well under a second.
    let cfg = SimConfig { auto_provision: Some(Duration::from_secs(3)), ..sim(3) };
    let w = World::start(cfg).await;
    let nats = w.nats().await;
    let mut rx = record(&nats, "choria.lifecycle.event.>").await;
    let r = w
        .fleetbook()
        .args(["req", "choria_provision", "reprovision", "token=s3cret", "-I", "n001.example.net", "--json"])
        .run()
        .await;
    r.assert_code(0);
    assert!(r.json()["replies"][0]["data"]["message"].as_str().unwrap().starts_with("Restarting after "));
    eventually(Duration::from_secs(10), "provisioning mode", || {
        w.sim.node("n001.example.net").unwrap().mode == Mode::Provisioning
    })
    .await;
    let (prov, normal, again) = tokio::join!(
        w.fleetbook().args(["discover", "--json", "-T", "provisioning", "--discovery-timeout", "0.5"]).run(),
        w.fleetbook().args(["discover", "--json", "--discovery-timeout", "0.5"]).run(),
        w.fleetbook()
            .args([
                "req",
                "choria_provision",
                "reprovision",
                "token=s3cret",
                "-I",
                "n001.example.net",
                "-T",
                "provisioning",
                "--json",
            ])
            .run(),
    );
    // Now it answers only in the provisioning collective.
    assert_eq!(prov.json(), serde_json::json!(["n001.example.net"]));
    assert_eq!(normal.json(), serde_json::json!(["n002.example.net", "n003.example.net"]));
    // Reprovisioning it again is refused the way go-choria refuses it.
    again.assert_code(1);
    assert_eq!(
        again.json()["failed"]["n001.example.net"]["statusmsg"],
        "Server is already in provisioning mode, cannot enable provisioning mode again"
    );
    // --sim-auto-provision returns it to service.
    eventually(Duration::from_secs(10), "back in service", || {
        let n = w.sim.node("n001.example.net").unwrap();
        n.mode == Mode::Normal && n.state == State::Up
    })
    .await;
    let seq: Vec<String> = events(&w, &mut rx, 5)
        .await
        .into_iter()
        .map(|(s, _)| s.trim_start_matches("choria.lifecycle.event.").to_string())
        .collect();
    assert_eq!(
        seq,
        vec![
            "shutdown.server",
            "startup.provision_mode_server",
            "provisioned.provision_mode_server",
            "shutdown.provision_mode_server",
            "startup.server"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_nodes_stay_gone() {
    let w = World::start(sim(3)).await;
    let r = w
        .fleetbook()
        .args(["req", "choria_provision", "shutdown", "token=s3cret", "-I", "n003.example.net", "--json", "--yes"])
        .run()
        .await;
    r.assert_code(0);
    assert!(r.json()["replies"][0]["data"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Shutting Choria Server down after "));
    eventually(Duration::from_secs(10), "node gone", || w.sim.node("n003.example.net").unwrap().state == State::Gone)
        .await;
    // Side by side: the ping of the gone node takes the whole wait.
    let ddl = short_rpc_timeouts();
    let (d, r) = tokio::join!(
        w.fleetbook().args(["discover", "--json", "--discovery-timeout", "0.5"]).run(),
        w.fleetbook()
            .args(["--ddl-dir", ddl.path().to_str().unwrap()])
            .args(["req", "rpcutil", "ping", "-I", "n003.example.net", "--json", "--discovery-timeout", "0.2"])
            .run(),
    );
    assert_eq!(d.json(), serde_json::json!(["n001.example.net", "n002.example.net"]));
    r.assert_code(1);
    assert_eq!(r.json()["no_reply"], serde_json::json!(["n003.example.net"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_requests_are_dropped_and_stats_are_served() {
    use fleetbook::fleet::filter::Filter;
    use fleetbook::fleet::protocol::{self, Payload, RequestSpec, Security, Version};
    let w = World::start(sim(2)).await;
    let nats = w.nats().await;
    let id = Version::V1.new_request_id();
    let filter = Filter::default();
    let spec = RequestSpec {
        request_id: &id,
        sender: "t",
        caller: "choria=t.mcollective",
        collective: "mcollective",
        agent: "discovery",
        ttl: 60,
        filter: &filter,
        reply_to: "mcollective.reply.x",
        payload: Payload::Discovery,
        security: Security::Insecure,
    };
    let old = chrono::Utc::now() - chrono::Duration::seconds(120);
    nats.publish("mcollective.broadcast.agent.discovery", protocol::encode_request(Version::V1, &spec, old))
        .await
        .unwrap();
    nats.flush().await.unwrap();
    eventually(Duration::from_secs(5), "ttl drop", || w.sim.stats().ttl_expired == 1).await;
    let reply = nats.request(fleetbook::sim::STATS_SUBJECT, "".into()).await.expect("stats answer");
    let stats: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(stats["ttl_expired"], 1);
    assert_eq!(stats["states"]["up"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_follow_the_seed() {
    let cfg = |seed| SimConfig { seed, fail_rate: 0.2, silent_rate: 0.1, slow_rate: 0.1, ..sim(200) };
    let a = World::start(cfg(42)).await;
    let b = World::start(cfg(42)).await;
    let c = World::start(cfg(43)).await;
    let (fa, fb, fc) = (a.sim.stats().faults, b.sim.stats().faults, c.sim.stats().faults);
    assert_eq!(fa, fb, "same seed, same faults");
    assert_ne!(fa, fc, "another seed, other faults");
    let count = |k: &str| fa.values().filter(|v| *v == k).count();
    assert!((20..=60).contains(&count("failing")), "about 20% failing: {}", count("failing"));
    assert!((5..=35).contains(&count("silent")), "about 10% silent: {}", count("silent"));
    assert_eq!(a.sim.node("n001.example.net").unwrap().facts, b.sim.node("n001.example.net").unwrap().facts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_breaking_the_schema_are_dropped() {
    use fleetbook::fleet::filter::Filter;
    use fleetbook::fleet::protocol::{self, Payload, RequestSpec, Security, Version};
    let w = World::start(sim(2)).await;
    let nats = w.nats().await;
    let filter = Filter::default();
    let send = |id: &str, ttl: u64| {
        let spec = RequestSpec {
            request_id: id,
            sender: "t",
            caller: "choria=t.mcollective",
            collective: "mcollective",
            agent: "discovery",
            ttl,
            filter: &filter,
            reply_to: "mcollective.reply.x",
            payload: Payload::Discovery,
            security: Security::Insecure,
        };
        protocol::encode_request(Version::V1, &spec, chrono::Utc::now())
    };
    nats.publish("mcollective.broadcast.agent.discovery", send("short-id", 60)).await.unwrap();
    nats.publish("mcollective.broadcast.agent.discovery", send(&Version::V1.new_request_id(), 10)).await.unwrap();
    nats.flush().await.unwrap();
    eventually(Duration::from_secs(5), "schema rejections", || {
        let r = w.sim.stats().rejected;
        r.get("schema: requestid is not 32 characters") == Some(&2)
            && r.get("schema: ttl below the minimum") == Some(&2)
    })
    .await;
    assert!(w.sim.stats().requests.is_empty(), "nothing was served");
}

/// A client of the broker at `url` and an `rpcutil ping` session on it (2 s wait per batch).
async fn ping_session(url: &str) -> (fleetbook::fleet::Fleet, fleetbook::fleet::rpc::RpcSession) {
    use fleetbook::fleet::{ddl::DdlRegistry, filter::Filter, ClientOptions, Fleet};
    let opts = ClientOptions { servers: vec![url.to_string()], ..ClientOptions::default() };
    let fleet = Fleet::connect(opts, DdlRegistry::builtin()).await.expect("connects");
    let s = fleet
        .rpc_session("rpcutil", "ping", &serde_json::Map::new(), None, Some(Duration::from_secs(2)), Filter::default())
        .await
        .expect("a session");
    (fleet, s)
}

/// A session counts each node's reply once: a node addressed again in a later batch of the
/// same session (its second answer) is unexpected, and its place in that batch stays open
/// (no reply), so every addressed node still has exactly one outcome per batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodes_second_answer_in_a_session_is_unexpected_and_its_batch_place_stays_open() {
    let w = World::start(sim(3)).await;
    let (_fleet, mut s) = ping_session(w.url()).await;
    let cancel = tokio_util::sync::CancellationToken::new();
    let (a, b) = ("n001.example.net".to_string(), "n002.example.net".to_string());
    let first = s.send_batch(std::slice::from_ref(&a), &cancel, &mut |_| {}).await.expect("batch 1");
    assert_eq!(fleetbook::fleet::rpc::ok_nodes(&first.replies), vec![a.clone()]);
    let second = s.send_batch(&[a.clone(), b.clone()], &cancel, &mut |_| {}).await.expect("batch 2");
    let senders: Vec<&str> = second.replies.iter().map(|r| r.sender.as_str()).collect();
    assert_eq!(senders, vec![b.as_str()], "{second:?}");
    assert_eq!(second.unexpected, vec![a.clone()], "{second:?}");
    assert_eq!(second.no_reply, vec![a], "{second:?}");
    assert!(second.unknown.is_empty() && second.malformed.is_empty() && second.stray == 0, "{second:?}");
}

/// A session's reply subscription ends with the session (replies are opened by a task of its
/// own, which goes too): a REPL or runbook making call after call keeps no subscription, and
/// no task, per finished call. Read from the broker's own list of subscriptions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sessions_reply_subscription_ends_with_the_session() {
    use fleetbook::fleet::protocol;
    let monitor = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let broker =
        fleetbook::sim::broker::EmbeddedBroker::start_with(&["-m", &monitor]).unwrap_or_else(|e| panic!("{e}"));
    let _sim = fleetbook::sim::Simulator::start(broker.url(), sim(2)).await.expect("simulator starts");
    let subscriptions = || async {
        let url = format!("http://127.0.0.1:{monitor}/subsz?subs=1&limit=10000");
        fleetbook::metrics::http::get(&url, Duration::from_secs(5)).await.expect("the broker's subscription list")
    };
    let (fleet, mut s) = ping_session(broker.url()).await;
    let cancel = tokio_util::sync::CancellationToken::new();
    let node = "n001.example.net".to_string();
    let out = s.send_batch(std::slice::from_ref(&node), &cancel, &mut |_| {}).await.expect("a batch");
    assert_eq!(fleetbook::fleet::rpc::ok_nodes(&out.replies), vec![node]);
    let subject = protocol::reply_subject(&s.collective, &fleet.options().caller_id, &s.request_id);
    let quoted = format!("\"{subject}\"");
    let list = subscriptions().await;
    assert!(list.contains(&quoted), "the live session's subscription is listed: {list}");
    drop(s);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let list = subscriptions().await;
        if !list.contains(&quoted) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still subscribed 5 s after the drop: {list}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
