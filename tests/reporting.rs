//! Issue 13, items 2, 4, 7, 8 and 9: `req`'s output at scale (DDL display, `--display`,
//! `--senders`, the capped no-response list, `-o`), `inventory` as `choria inventory` prints
//! it and `inventory()` in runbooks, the election wording of go-choria, and the Provisioner's
//! optional leader election.

use std::time::Duration;

use fleetbook::sim::SimConfig;

use crate::support::{eventually, short_rpc_timeouts, sim, Fleetbook, World};

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect()
}

/// The table row of `node`, if the report shows one.
fn row<'a>(stdout: &'a str, node: &str) -> Option<&'a str> {
    stdout.lines().find(|l| l.starts_with(&format!("{node} ")))
}

/// The PIDs of the nodes a restart succeeds on (every node but the failing n002).
fn pids(w: &World) -> Vec<u32> {
    ["n001.example.net", "n003.example.net"].iter().map(|n| w.sim.node(n).unwrap().daemon.pid).collect()
}

/// Waits until those nodes run with other PIDs than `before`, i.e. have been restarted and
/// are up again. (Waiting for "every node up" is not enough: right after the reply a node
/// has not gone down yet, and would then miss the next discovery.)
async fn restarted_since(w: &World, before: &[u32]) {
    eventually(Duration::from_secs(10), "the restarted nodes back up", || {
        let up = w.sim.identities().iter().all(|n| w.sim.node(n).unwrap().state == fleetbook::sim::node::State::Up);
        up && pids(w).iter().zip(before).all(|(now, was)| now != was)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn req_shows_the_replies_the_ddl_display_or_display_asks_for() {
    let w = World::start(SimConfig { fail_nodes: vec!["n002".into()], ..sim(3) }).await;
    let restart = ["req", "choria_provision", "restart", "token=s3cret"];
    // One after the other: a restarted node is away for a moment. restart's DDL says
    // display "failed": only the failed node has a row.
    let mut before = pids(&w);
    let quiet = w.fleetbook().args(restart).run().await;
    quiet.assert_code(1);
    assert!(row(&quiet.stdout, "n002.example.net").is_some(), "{}", quiet.stdout);
    assert!(row(&quiet.stdout, "n001.example.net").is_none(), "{}", quiet.stdout);
    assert!(quiet.stdout.contains("2 ok, 1 failed, 0 no reply"), "{}", quiet.stdout);
    for (display, shown, hidden) in [
        ("all", vec!["n001", "n002", "n003"], vec![]),
        ("ok", vec!["n001", "n003"], vec!["n002"]),
        ("none", vec![], vec!["n001", "n002", "n003"]),
    ] {
        restarted_since(&w, &before).await;
        before = pids(&w);
        let r = w.fleetbook().args(restart).args(["--display", display]).run().await;
        r.assert_code(1);
        for n in shown {
            assert!(row(&r.stdout, &format!("{n}.example.net")).is_some(), "--display {display}: {}", r.stdout);
        }
        for n in hidden {
            assert!(row(&r.stdout, &format!("{n}.example.net")).is_none(), "--display {display}: {}", r.stdout);
        }
        assert!(r.stdout.contains("Finished processing 3 / 3 hosts"), "{}", r.stdout);
    }
    // ping's DDL says "always"; a bad --display value is a usage error.
    restarted_since(&w, &before).await;
    let (ping, bad) = tokio::join!(
        w.fleetbook().args(["req", "rpcutil", "ping"]).run(),
        w.fleetbook().args(["req", "rpcutil", "ping", "--display", "some"]).run(),
    );
    ping.assert_code(0);
    assert!(["n001", "n002", "n003"].iter().all(|n| row(&ping.stdout, &format!("{n}.example.net")).is_some()));
    bad.assert_code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_and_a_no_response_list_capped_unless_verbose() {
    // 205 silent nodes of 208: more than go-choria's cap of 200.
    let silent: Vec<String> = (1..=205).map(|i| format!("n{i:03}")).collect();
    let w = World::start(SimConfig { silent_nodes: silent, ..sim(208) }).await;
    let ddl = short_rpc_timeouts();
    let req = |extra: &[&str]| {
        w.fleetbook()
            .args(["--ddl-dir", ddl.path().to_str().unwrap(), "req", "rpcutil", "ping"])
            .args(extra.iter().copied())
            .run()
    };
    let (capped, verbose, senders, senders_json) =
        tokio::join!(req(&[]), req(&["-v"]), req(&["--senders"]), req(&["--senders", "-j"]));
    capped.assert_code(1);
    let t = &capped.stdout;
    assert!(t.contains("\nNo Responses from (showing first 200): 205\n\n"), "{t}");
    // Sorted, three a row in aligned columns, the first 200 only.
    assert!(t.contains("\n    n001.example.net    n002.example.net    n003.example.net    \n"), "{t}");
    assert!(t.contains("n200.example.net") && !t.contains("n201.example.net"), "{t}");
    assert!(row(t, "n206.example.net").is_some(), "ping shows every reply: {t}");
    verbose.assert_code(1);
    assert!(verbose.stdout.contains("\nNo Responses from: 205\n"), "{}", verbose.stdout);
    assert!(verbose.stdout.contains("n205.example.net"), "{}", verbose.stdout);
    // --senders: only the identities that answered OK; the exit code still counts the rest.
    senders.assert_code(1);
    assert_eq!(senders.stdout, "n206.example.net\nn207.example.net\nn208.example.net\n");
    senders_json.assert_code(1);
    assert_eq!(strings(&senders_json.json()), vec!["n206.example.net", "n207.example.net", "n208.example.net"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_file_gets_the_json_and_the_jsonl() {
    let w = World::start(sim(3)).await;
    let dir = tempfile::tempdir().unwrap();
    let (json_file, jsonl_file) = (dir.path().join("out.json"), dir.path().join("out.jsonl"));
    let (j, l, bad) = tokio::join!(
        w.fleetbook().args(["req", "rpcutil", "ping", "-j", "-o"]).arg_path(&json_file).run(),
        w.fleetbook()
            .args(["req", "rpcutil", "ping", "--jsonl", "--no-journal", "--output-file"])
            .arg_path(&jsonl_file)
            .run(),
        w.fleetbook().args(["req", "rpcutil", "ping", "--json", "-o", "/nonexistent/dir/out.json"]).run(),
    );
    j.assert_code(0);
    assert_eq!(j.stdout, "", "the result went to the file");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json_file).unwrap()).unwrap();
    assert_eq!(strings(&v["ok"]).len(), 3);
    l.assert_code(0);
    assert_eq!(l.stdout, "");
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&jsonl_file).unwrap().lines().map(|x| serde_json::from_str(x).unwrap()).collect();
    assert_eq!(lines.first().unwrap()["event"], "run_start");
    assert_eq!(lines.iter().filter(|e| e["event"] == "node_result").count(), 3);
    assert_eq!(lines.last().unwrap()["event"], "run_end");
    // A file that cannot be created is a usage error, said in the JSON on stdout.
    bad.assert_code(2);
    assert!(bad.json()["error"].as_str().unwrap().contains("--output-file"), "{}", bad.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_jsonl_output_file_keeps_what_arrived() {
    let cfg = SimConfig { slow_nodes: vec!["n003".into()], slow_delay: Duration::from_secs(60), ..sim(3) };
    let w = World::start(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleetbook"))
        .args(["--config", crate::support::client_conf().to_str().unwrap(), "--server", w.url(), "--insecure"])
        .args(["req", "rpcutil", "ping", "--jsonl", "--no-journal", "-o", file.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let results = || std::fs::read_to_string(&file).unwrap_or_default().matches("\"node_result\"").count();
    // The two fast nodes' results are in the file while the slow one is awaited.
    eventually(Duration::from_secs(20), "two node results in the file", || results() == 2).await;
    // Ctrl-C twice: the first stops after the batch, the second ends the wait now.
    let pid = child.id().unwrap() as libc::pid_t;
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
    let stderr = || std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
    eventually(Duration::from_secs(20), "the first Ctrl-C counted", || stderr().contains("Ctrl-C again")).await;
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(3), "Ctrl-C stops with exit 3");
    let text = std::fs::read_to_string(&file).unwrap();
    let kinds: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("run_start"), "{text}");
    assert!(kinds.contains(&"discovered".to_string()), "{text}");
    assert_eq!(kinds.last().map(String::as_str), Some("run_end"), "{text}");
}

/// One expected line of `choria inventory`.
enum Want {
    Exact(String),
    /// The start time: the date, time and offset; the zone's name is the system's.
    Prefix(String),
    /// A message counter: its label exactly, any count (the requests themselves move them).
    Counter(&'static str),
}

/// Facts with every object's keys sorted, as tidwall/pretty's SortKeys prints them.
fn sorted(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            serde_json::Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&m[k]))).collect())
        }
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// The lines of go-choria's `cmd/inventory.go` for a simulated node, built from its format
/// strings and `util.SliceVerticalGroups`.
fn go_choria_inventory(node: &fleetbook::sim::node::Node, show_facts: bool) -> Vec<Want> {
    use chrono::TimeZone;
    let mut l = Vec::new();
    let mut p = |s: String| l.extend(s.split('\n').map(|x| Want::Exact(x.to_string())));
    p(format!("Inventory for {}\n", node.identity));
    p("  Choria Server Statistics:\n".into());
    p(format!("                    Version: {} (upgradable during provisioning)", node.version));
    let start = chrono::Local.timestamp_opt(node.daemon.started, 0).unwrap().format("%Y-%m-%d %H:%M:%S %z");
    l.push(Want::Prefix(format!("                 Start Time: {start} ")));
    let mut p = |s: String| l.extend(s.split('\n').map(|x| Want::Exact(x.to_string())));
    p("                Config File: /etc/choria/server.conf".into());
    p("                Collectives: mcollective".into());
    p("            Main Collective: mcollective".into());
    p(format!("                 Process ID: {}", node.daemon.pid));
    for label in [
        "             Total Messages",
        "    Messages Passed Filters",
        "          Messages Filtered",
        "           Expired Messages",
        "               Replies Sent",
        "           Events Published",
    ] {
        l.push(Want::Counter(label));
    }
    let mut p = |s: String| l.extend(s.split('\n').map(|x| Want::Exact(x.to_string())));
    p("\n  Agents:\n".into());
    let mut agents = node.agents.to_vec();
    while !agents.len().is_multiple_of(3) {
        agents.push(String::new());
    }
    let rows = agents.len() / 3;
    for i in 0..rows {
        p(format!("    {:<15} {:<15} {:<15}", agents[i], agents[i + rows], agents[i + 2 * rows]));
    }
    p("\n  Tagged Classes:\n".into());
    let mut classes = node.classes.clone();
    let longest = classes.iter().map(String::len).max().unwrap_or(0).min(40);
    while !classes.len().is_multiple_of(2) {
        classes.push(String::new());
    }
    let rows = classes.len() / 2;
    for i in 0..rows {
        p(format!("    {:<longest$} {:<longest$}", classes[i], classes[i + rows]));
    }
    p(String::new());
    if show_facts {
        p("  Facts:\n".into());
        for line in serde_json::to_string_pretty(&sorted(&node.facts)).unwrap().lines() {
            p(format!("    {line}"));
        }
        p(String::new());
    }
    l
}

fn assert_inventory(got: &str, want: &[Want]) {
    let got: Vec<&str> = got.lines().collect();
    assert_eq!(got.len(), want.len(), "line count; got:\n{}", got.join("\n"));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        match w {
            Want::Exact(w) => assert_eq!(g, w, "line {i}"),
            Want::Prefix(w) => assert!(g.starts_with(w.as_str()) && g.len() > w.len(), "line {i}: {g:?} vs {w:?}"),
            Want::Counter(label) => {
                let n = g.strip_prefix(&format!("{label}: ")).unwrap_or_else(|| panic!("line {i}: {g:?}"));
                assert!(n.parse::<u64>().is_ok(), "line {i}: a count, got {g:?}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_prints_what_choria_inventory_prints() {
    let w = World::start(sim(3)).await;
    let (text, no_facts, json) = tokio::join!(
        w.fleetbook().args(["inventory", "n002.example.net"]).run(),
        w.fleetbook().args(["inventory", "n002.example.net", "--no-facts"]).run(),
        w.fleetbook().args(["inventory", "n002.example.net", "--json"]).run(),
    );
    let node = w.sim.node("n002.example.net").unwrap();
    text.assert_code(0);
    assert_inventory(&text.stdout, &go_choria_inventory(&node, true));
    no_facts.assert_code(0);
    assert_inventory(&no_facts.stdout, &go_choria_inventory(&node, false));
    json.assert_code(0);
    let j = json.json();
    assert_eq!(j["identity"], "n002.example.net");
    assert_eq!(j["stats"]["pid"], node.daemon.pid);
    assert_eq!(j["stats"]["starttime"], node.daemon.started);
    assert!(j["stats"]["total"].as_u64().unwrap() >= 2, "inventory and daemon_stats reached it: {j}");
    // A restart is a new process: a new PID and start time, counters from zero.
    w.fleetbook()
        .args(["req", "choria_provision", "restart", "token=s3cret", "-I", "n002.example.net"])
        .run()
        .await
        .assert_code(0);
    eventually(Duration::from_secs(10), "n002 restarted", || {
        let n = w.sim.node("n002.example.net").unwrap();
        n.daemon.pid != node.daemon.pid && n.state == fleetbook::sim::node::State::Up
    })
    .await;
    let again = w.fleetbook().args(["inventory", "n002.example.net", "--json"]).run().await;
    again.assert_code(0);
    let j = again.json();
    let after = w.sim.node("n002.example.net").unwrap();
    assert_eq!(j["stats"]["pid"], after.daemon.pid);
    assert!(after.daemon.started > node.daemon.started, "a new start time");
    assert!(j["stats"]["events"].as_u64().unwrap() >= 1, "the startup event: {j}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_in_a_runbook_is_the_same_data() {
    let w = World::start(sim(2)).await;
    let ddl = short_rpc_timeouts();
    let dir = tempfile::tempdir().unwrap();
    let book = dir.path().join("inv.rhai");
    std::fs::write(
        &book,
        r#"
        let i = inventory("n001.example.net");
        print(`inv ${i.identity} ${i.version} ${i.main_collective} pid=${i.stats.pid} site=${i.facts.site}`);
        try { inventory("nobody.example.net"); } catch (e) { print(`missing ${e.kind}`); }
        "#,
    )
    .unwrap();
    let r = w.fleetbook().args(["--ddl-dir", ddl.path().to_str().unwrap(), "run"]).arg_path(&book).run().await;
    r.assert_code(0);
    let node = w.sim.node("n001.example.net").unwrap();
    let site = node.facts["site"].as_str().unwrap();
    let want = format!("inv n001.example.net 0.29.4 mcollective pid={} site={site}", node.daemon.pid);
    assert!(r.stderr.contains(&want), "{}", r.stderr);
    assert!(r.stderr.contains("missing timeout"), "{}", r.stderr);
    // `check` knows its option keys.
    let bad = dir.path().join("bad.rhai");
    std::fs::write(&bad, "inventory(\"n1\", #{ colective: \"x\" });\n").unwrap();
    let c = Fleetbook::new().args(["check"]).arg_path(&bad).run().await;
    c.assert_code(1);
    assert!(c.stdout.contains("colective") || c.stderr.contains("colective"), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_says_when_no_provisioner_campaigns() {
    let path = format!("{}/runbooks/leader-failover.rhai", env!("CARGO_MANIFEST_DIR"));
    let run = |extra: &[&str]| {
        Fleetbook::new()
            .test_config()
            .args(["--sim", "10", "--sim-time-scale", "0.01"])
            .args(extra.iter().copied())
            .args(["run", &path, "--arg", "campaign_wait=2"])
            .run()
    };
    let (without, with) = tokio::join!(run(&["--sim-no-leader-election"]), run(&[]));
    without.assert_code(3);
    let e = &without.stderr;
    assert!(e.contains("no Provisioner campaigns in election provisioner"), "{e}");
    assert!(e.contains("nothing was evicted") && e.contains("leader_election: true"), "{e}");
    assert!(e.contains("runs without leader election"), "the metrics say why: {e}");
    assert!(!e.contains("Evicted"), "{e}");
    with.assert_code(0);
    assert!(with.stderr.contains("provisioning carries on"), "{}", with.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn election_wording_is_go_choria_s() {
    use async_nats::jetstream::{self, kv};
    let w = World::start(sim(1)).await;
    let js = jetstream::new(w.nats().await);
    let store = js
        .create_key_value(kv::Config {
            bucket: "CHORIA_LEADER_ELECTION".into(),
            history: 1,
            max_age: Duration::from_secs(2),
            ..Default::default()
        })
        .await
        .unwrap();
    store.create("provisioner", "p1.example.net".into()).await.unwrap();
    let r = w.fleetbook().args(["election", "view"]).run().await;
    r.assert_code(0);
    let first = r.stdout.lines().next().unwrap();
    assert_eq!(first, "WARNING: CHORIA_LEADER_ELECTION is not a valid election bucket, maximum age 2s is too low");
    // A single JetStream server names itself the stream's leader: no cluster-leader warning.
    assert!(!r.stdout.contains("cluster leader"), "{}", r.stdout);
    // --help says what declining does.
    let help = Fleetbook::new().args(["election", "evict", "--help"]).run().await;
    assert!(help.stdout.contains("Declining the question evicts nothing and exits 3"), "{}", help.stdout);
}

#[test]
fn declining_the_evict_question_evicts_nothing_and_exits_3() {
    use expectrl::Expect;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let w = rt.block_on(World::start(sim(1)));
    let store = rt.block_on(async {
        let js = async_nats::jetstream::new(w.nats().await);
        let cfg = async_nats::jetstream::kv::Config {
            bucket: "CHORIA_LEADER_ELECTION".into(),
            history: 1,
            max_age: Duration::from_secs(60),
            ..Default::default()
        };
        let store = js.create_key_value(cfg).await.unwrap();
        store.create("provisioner", "p1.example.net".into()).await.unwrap();
        store
    });
    let dir = tempfile::tempdir().unwrap();
    let mut p = crate::support::pty(
        &["--server", w.url(), "--insecure", "election", "evict", "provisioner"],
        &dir.path().join("history"),
        Duration::from_secs(30),
    );
    p.expect("Evict the current leader from election provisioner in bucket CHORIA_LEADER_ELECTION?")
        .expect("the question");
    p.send_line("n").unwrap();
    p.expect("not confirmed").expect("says it was declined");
    let status = p.get_process().wait().unwrap();
    assert_eq!(status, expectrl::process::unix::WaitStatus::Exited(p.get_process().pid(), 3));
    let still = rt.block_on(store.get("provisioner")).unwrap();
    assert_eq!(still.as_deref(), Some(&b"p1.example.net"[..]), "nothing was evicted");
}

/// Everything `fleetbook ARGS` writes on a terminal until it exits, and its exit code.
fn on_a_terminal(args: &[&str]) -> (String, i32) {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let mut p = crate::support::pty(args, &dir.path().join("history"), Duration::from_secs(60));
    let mut text = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 4096];
    // Read until the terminal closes (EIO or 0 once the process is gone).
    loop {
        assert!(std::time::Instant::now() < deadline, "still running: {}", String::from_utf8_lossy(&text));
        match p.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&text).into_owned();
    let code = match p.get_process().wait().unwrap() {
        expectrl::process::unix::WaitStatus::Exited(_, c) => c,
        other => panic!("{other:?}: {text}"),
    };
    (text, code)
}

#[test]
fn req_draws_a_bar_on_a_terminal_unless_np() {
    let conf = crate::support::client_conf().to_str().unwrap();
    let base = ["--config", conf, "--sim", "3", "--sim-provisioners", "0", "req", "rpcutil", "ping", "--no-journal"];
    let (bar, code) = on_a_terminal(&base);
    assert_eq!(code, 0, "{bar}");
    assert!(bar.contains("rpcutil#ping") && bar.contains("] 3/3 nodes, 0 failed"), "the bar: {bar}");
    let np: Vec<&str> = base.iter().copied().chain(["--np"]).collect();
    let (plain, code) = on_a_terminal(&np);
    assert_eq!(code, 0, "{plain}");
    assert!(!plain.contains("3/3 nodes"), "no bar with --np: {plain}");
    assert!(plain.contains("discovered 3 node(s)") && plain.contains("n003.example.net"), "{plain}");
}
