//! Lifecycle events: go-choria's test events and samples parse, `fleetbook events` prints
//! what `choria tool event` prints, `wait_for` catches nodes that never come back.

use std::time::Duration;

use crate::support::{choria_file, sim, World};
use fleetbook::lifecycle::{self, Format};
use fleetbook::sim::SimConfig;

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(choria_file(rel)).unwrap()
}

#[test]
fn go_choria_test_events_and_samples_parse() {
    let choria = lifecycle::parse(&read("lifecycle/testdata/choriaFormatShutdown.json")).unwrap();
    assert_eq!(
        (choria.format, choria.kind.as_str(), choria.identity.as_str()),
        (Format::Choria, "shutdown", "dev1.devco.net")
    );
    assert_eq!(choria.display(), "[shutdown] dev1.devco.net: server");
    let cloud = lifecycle::parse(&read("lifecycle/testdata/cloudEventFormatShutdown.json")).unwrap();
    assert_eq!(cloud.format, Format::CloudEvent);
    assert_eq!(cloud.display(), "[shutdown] ginkgo.example.net: ginkgo");
    assert_eq!(cloud.timestamp, 1535106973);

    let cases = [
        ("lifecycle-startup-v1-sample.json", Format::Choria, "startup"),
        ("lifecycle-shutdown-v1-sample.json", Format::Choria, "shutdown"),
        ("lifecycle-provisioned-v1-sample.json", Format::Choria, "provisioned"),
        ("lifecycle-alive-v1-sample.json", Format::Choria, "alive"),
        ("lifecycle-startup-legacy-protocol-sample.json", Format::Legacy, "startup"),
        ("lifecycle-shutdown-legacy-protocol-sample.json", Format::Legacy, "shutdown"),
        ("lifecycle-provisioned-legacy-protocol-sample.json", Format::Legacy, "provisioned"),
        ("lifecycle-startup-cloudevent-sample.json", Format::CloudEvent, "startup"),
    ];
    for (file, format, kind) in cases {
        let e =
            lifecycle::parse(&read(&format!("lifecycle/samples/{file}"))).unwrap_or_else(|err| panic!("{file}: {err}"));
        assert_eq!((e.format, e.kind.as_str()), (format, kind), "{file}");
        assert_eq!(e.protocol, format!("io.choria.lifecycle.v1.{kind}"), "{file}: legacy protocols are normalised");
        assert!(e.display().starts_with(&format!("[{kind}] {}: ", e.identity)), "{file}: {}", e.display());
    }
    // Not a lifecycle event: a machine watcher CloudEvent.
    assert!(lifecycle::parse(&read("lifecycle/samples/machine-watcher-exec-state-cloudevent-sample.json")).is_err());

    // The legacy lines of the 2019 blog's `--debug` output parse to the lines it showed.
    let debug = String::from_utf8(read("cli-output/cli-output-tool-event-debug-legacy.txt")).unwrap();
    let shown: Vec<String> = debug
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| lifecycle::parse(l.as_bytes()).unwrap().display())
        .collect();
    assert_eq!(
        shown,
        vec!["[shutdown] dev1.example.net: server", "[startup] dev1.example.net: server version 0.99.0.20181230"]
    );
}

#[test]
fn simulator_events_validate_against_the_lifecycle_schemas() {
    for kind in ["startup", "shutdown", "provisioned", "alive"] {
        let inner = lifecycle::choria_event(kind, "n1.example.net", "server", Some("0.29.4"), chrono::Utc::now());
        let schema = crate::support::choria_json(&format!("lifecycle/schema/{kind}.json"));
        let v = jsonschema::validator_for(&schema).unwrap();
        let errs: Vec<String> = v.iter_errors(&inner).map(|e| e.to_string()).collect();
        assert!(errs.is_empty(), "{kind}: {errs:?}");
        let back = lifecycle::parse(lifecycle::cloud_event(inner).to_string().as_bytes()).unwrap();
        assert_eq!(back.kind, kind);
    }
}

/// Runs `fleetbook events ARGS` while `publish` sends events; returns stdout lines.
pub(crate) async fn watch(w: &World, args: &[&str], publish: Vec<(String, String)>) -> Vec<String> {
    let send = async {
        let nats = w.nats().await;
        for (subject, body) in publish {
            nats.publish(subject, body.into()).await.unwrap();
        }
        nats.flush().await.unwrap();
    };
    watch_while(w, args, send).await.0
}

/// Runs `fleetbook events ARGS`, and `action` once it watches (its header line is printed
/// after its subscription is in place); returns stdout lines and what `action` returned.
pub(crate) async fn watch_while<T>(
    w: &World,
    args: &[&str],
    action: impl std::future::Future<Output = T>,
) -> (Vec<String>, T) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleetbook"))
        .args(["--server", w.url(), "--insecure", "events", "--timeout", "5s"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let header = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await.unwrap().unwrap().unwrap();
    assert_eq!(header, format!("Waiting for events from topic choria.lifecycle.event.> on {}", w.url()));
    let done = action.await;
    let mut out = Vec::new();
    while let Ok(Ok(Some(l))) = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await {
        out.push(l);
    }
    child.wait().await.unwrap();
    (out, done)
}

fn all_kinds() -> Vec<(String, String)> {
    let e = |kind: &str, extra: &str| {
        (
            format!("choria.lifecycle.event.{kind}.server"),
            format!(
                r#"{{"protocol":"io.choria.lifecycle.v1.{kind}","id":"x","identity":"n1.example.net","component":"server","timestamp":1{extra}}}"#
            ),
        )
    };
    vec![
        e("startup", r#","version":"0.29.4""#),
        ("choria.lifecycle.event.x".into(), "this is not an event".into()),
        e("shutdown", ""),
        e("provisioned", ""),
        e("alive", r#","version":"0.29.4""#),
        e("upgraded", r#","version":"0.27.0","new_version":"0.28.0""#),
        e("governor", r#","governor":"PUPPET","event_type":"enter","sequence":3"#),
        (
            "choria.lifecycle.event.startup.provision_mode_server".into(),
            lifecycle::cloud_event(lifecycle::choria_event("startup", "n2.example.net", "provision_mode_server", Some("0.26.15"), chrono::Utc::now())).to_string(),
        ),
        ("choria.lifecycle.event.shutdown.server".into(), r#"{"protocol":"choria:lifecycle:shutdown:1","identity":"old.example.net","component":"server","timestamp":1546257693}"#.into()),
    ]
}

fn strip_time(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            let (t, rest) = l.split_at(8);
            assert!(chrono::NaiveTime::parse_from_str(t, "%H:%M:%S").is_ok(), "HH:MM:SS prefix: {l}");
            rest.trim_start().to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_prints_each_type_like_choria_tool_event() {
    let w = World::start(sim(1)).await;
    let lines = watch(&w, &["--count", "8"], all_kinds()).await;
    assert_eq!(
        strip_time(&lines),
        vec![
            "[startup] n1.example.net: server version 0.29.4",
            "[shutdown] n1.example.net: server",
            "[provisioned] n1.example.net: server",
            "[alive] n1.example.net: server version 0.29.4",
            "[upgraded] n1.example.net: server version 0.27.0 to 0.28.0",
            "[governor] n1.example.net: obtained slot 3 on PUPPET",
            "[startup] n2.example.net: provision_mode_server version 0.26.15",
            "[shutdown] old.example.net: server",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_filters_by_type_and_component_and_prints_raw_json() {
    let w = World::start(sim(1)).await;
    let startups = watch(&w, &["--type", "startup", "--count", "2"], all_kinds()).await;
    assert_eq!(
        strip_time(&startups),
        vec![
            "[startup] n1.example.net: server version 0.29.4",
            "[startup] n2.example.net: provision_mode_server version 0.26.15"
        ]
    );
    let pms = watch(&w, &["--component", "provision_mode_server", "--count", "1"], all_kinds()).await;
    assert_eq!(strip_time(&pms), vec!["[startup] n2.example.net: provision_mode_server version 0.26.15"]);
    let raw = watch(&w, &["--json", "--type", "shutdown", "--count", "2"], all_kinds()).await;
    assert_eq!(raw.len(), 2);
    assert!(raw[1].contains(r#""protocol":"choria:lifecycle:shutdown:1""#), "raw bytes as received: {raw:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_restart_shows_in_events() {
    let w = World::start(sim(2)).await;
    let fb =
        w.fleetbook().args(["req", "choria_provision", "restart", "token=s3cret", "splay=1", "-I", "n001.example.net"]);
    let (lines, r) = watch_while(&w, &["--count", "2"], fb.run()).await;
    r.assert_code(0);
    assert_eq!(
        strip_time(&lines),
        vec!["[shutdown] n001.example.net: server", "[startup] n001.example.net: server version 0.29.4"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_fails_nodes_that_never_come_back() {
    // The stuck node is failed when the wait_for timeout is over; the others' startup events
    // come tens of milliseconds after their restart.
    let w = World::start(SimConfig { stuck_nodes: vec!["n003".into()], ..sim(6) }).await;
    let dir = tempfile::tempdir().unwrap();
    let rb = dir.path().join("wait.rhai");
    std::fs::write(
        &rb,
        r#"
        let r = rpc_batch("choria_provision", "restart", #{ token: "s3cret", splay: 1 }, #{
            filter: #{}, batch: 2, sleep: 0, max_failures: 0,
            wait_for: #{ event: "startup", timeout: "2s" },
        });
        "#,
    )
    .unwrap();
    let r = w.fleetbook().args(["run", rb.to_str().unwrap(), "--output", "json"]).run().await;
    r.assert_code(3);
    assert!(r.stderr.contains("n003.example.net: no startup event within 2s"), "{}", r.stderr);
    let received: Vec<String> = w.sim.stats().received.keys().cloned().collect();
    assert_eq!(
        received,
        vec!["n001.example.net", "n002.example.net", "n003.example.net", "n004.example.net"],
        "batch 3 never sent"
    );
    assert!(r.stdout.contains(r#""status":"no_event""#), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_events_collects_until_the_closure_says_stop() {
    // Splays of 0.4 s or more: the watch starts well before the node goes down.
    let w = World::start(SimConfig { time_scale: 0.2, ..sim(3) }).await;
    let dir = tempfile::tempdir().unwrap();
    let rb = dir.path().join("watch.rhai");
    std::fs::write(
        &rb,
        r#"
        rpc_batch("choria_provision", "restart", #{ token: "s3cret", splay: 1 }, #{ nodes: ["n002.example.net"] });
        let seen = watch_events(#{ identities: "/^n002/", timeout: "10s", "until": |e| e.kind == "startup" });
        print(`seen ${seen.map(|e| e["type"])} format ${seen[0].format} subject ${seen[0].subject}`);
        let none = watch_events(#{ types: ["upgraded"], timeout: "300ms", stop_when: |e| true });
        print(`upgraded ${none.len()}`);
        "#,
    )
    .unwrap();
    let r = w.fleetbook().args(["run", rb.to_str().unwrap()]).run().await;
    r.assert_code(0);
    assert!(
        r.stderr.contains(
            r#"seen ["shutdown", "startup"] format cloudevent subject choria.lifecycle.event.shutdown.server"#
        ),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("upgraded 0"), "{}", r.stderr);
}

/// A busy subject never holds a watch past its deadline or Ctrl-C: events the filter refuses
/// (by subject, or once read) keep arriving the whole time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_events_flooding_in_do_not_hold_a_watch_past_its_deadline() {
    use fleetbook::fleet::ddl::DdlRegistry;
    use fleetbook::fleet::events::EventFilter;
    use fleetbook::fleet::{ClientOptions, Fleet, FleetError};
    use tokio::time::Instant;
    use tokio_util::sync::CancellationToken;

    let broker = crate::support::broker();
    let opts = ClientOptions { servers: vec![broker.url().to_string()], ..ClientOptions::default() };
    let fleet = Fleet::connect(opts, DdlRegistry::builtin()).await.unwrap();
    let mut events = fleet.lifecycle_events().await.unwrap();
    let flood = tokio::spawn({
        let url = broker.url().to_string();
        async move {
            let nats = async_nats::connect(url).await.unwrap();
            let body = lifecycle::choria_event("alive", "n1.example.net", "server", Some("1"), chrono::Utc::now());
            let body = bytes::Bytes::from(body.to_string());
            loop {
                for _ in 0..100 {
                    nats.publish(lifecycle::subject("alive", "server"), body.clone()).await.unwrap();
                }
                nats.flush().await.unwrap();
            }
        }
    });
    let never = CancellationToken::new();
    let by_subject = EventFilter::new(vec!["upgraded".into()], None, Vec::new()).unwrap();
    let by_identity = EventFilter::new(Vec::new(), None, vec!["other.example.net".into()]).unwrap();
    for filter in [&by_subject, &by_identity] {
        let started = Instant::now();
        let deadline = Some(started + Duration::from_millis(300));
        let r = tokio::time::timeout(Duration::from_secs(5), events.next_matching(filter, deadline, &never))
            .await
            .unwrap_or_else(|_| panic!("{filter:?}: still watching 5 s after a 300 ms deadline"))
            .unwrap();
        assert!(r.is_none(), "{filter:?} kept {r:?}");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "{filter:?}: the 300 ms deadline ended the watch after {took:?}");
    }
    // Ctrl-C during the flood, with no deadline at all.
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.cancel();
    });
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(5), events.next_matching(&by_identity, None, &cancel))
        .await
        .expect("Ctrl-C ends the watch");
    assert!(matches!(r, Err(FleetError::Cancelled)), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "Ctrl-C took {:?}", started.elapsed());
    flood.abort();
}
