//! Issue 13 items 1, 3, 5, 6: node lists from files and pipes (go-choria #1352), limits
//! (#1211), `-W`, and the flatfile and inventory discovery methods, against the simulator
//! and go-choria's own test files (`../shared/choria/discovery/`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{choria_file, short_rpc_timeouts, sim, World};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Sorted strings of a JSON array.
fn names(v: &Value) -> Vec<String> {
    let mut n: Vec<String> = v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect();
    n.sort();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue13_node_lists_in_every_format_reach_their_nodes_and_unknown_ones_are_no_reply() {
    let w = World::start(sim(4)).await;
    let conf = short_rpc_timeouts();
    let dir = tempfile::tempdir().unwrap();
    // What `discover --json` prints reads back as a list.
    let discovered = w.fleetbook().args(["discover", "--json", "-I", "/n00[12]/"]).run().await;
    let discovered = write(dir.path(), "discovered.json", &discovered.assert_code(0).stdout);
    // And what `req --json` prints (fleetbook's shape).
    let req_json =
        w.fleetbook().args(["req", "rpcutil", "ping", "-I", "n003.example.net", "--json", "--no-journal"]).run().await;
    let req_json = write(dir.path(), "req.out", &req_json.assert_code(0).stdout);
    let cases: Vec<(PathBuf, Vec<&str>)> = vec![
        (
            write(
                dir.path(),
                "nodes.txt",
                "# the web tier\nn001.example.net\n\n  n004.example.net  \nghost.example.net\n",
            ),
            vec!["n001.example.net", "n004.example.net", "ghost.example.net"],
        ),
        (
            write(dir.path(), "nodes.json", r#"["n002.example.net", "n003.example.net"]"#),
            vec!["n002.example.net", "n003.example.net"],
        ),
        (
            write(dir.path(), "nodes.yaml", "---\n- n003.example.net\n- ghost.example.net\n"),
            vec!["n003.example.net", "ghost.example.net"],
        ),
        (discovered, vec!["n001.example.net", "n002.example.net"]),
        (req_json, vec!["n003.example.net"]),
        // choria's `req --json` shape, from go-choria's tests: none of these is in the fleet.
        (choria_file("rpc-replies/choria.json"), vec!["n1.example.net", "n2.example.net", "n3.example.net"]),
    ];
    let runs = futures::future::join_all(cases.iter().map(|(file, _)| {
        w.fleetbook()
            .args(["--ddl-dir", s(conf.path())])
            .args(["req", "rpcutil", "ping", "--json", "--no-journal", "--nodes", s(file)])
            .run()
    }))
    .await;
    for ((file, want), r) in cases.iter().zip(runs) {
        let v = r.json();
        let (ok, no_reply) = (names(&v["ok"]), names(&v["no_reply"]));
        let mut all: Vec<String> = ok.iter().chain(&no_reply).cloned().collect();
        all.sort();
        let mut want: Vec<String> = want.iter().map(|x| x.to_string()).collect();
        want.sort();
        assert_eq!(all, want, "{}: {v}", file.display());
        assert!(ok.iter().all(|n| n.starts_with("n00")), "{v}");
        assert!(no_reply.iter().all(|n| !n.starts_with("n00")), "unknown nodes are reported as no_reply: {v}");
        r.assert_code(if no_reply.is_empty() { 0 } else { 1 });
    }
    // Identity filters narrow a list; other filters are refused before anything is sent.
    let txt = dir.path().join("nodes.txt");
    let r = w.fleetbook().args(["discover", "--json", "--nodes", s(&txt), "-I", "/n00/"]).run().await;
    assert_eq!(r.assert_code(0).json(), json!(["n001.example.net", "n004.example.net"]), "in the list's order");
    let r = w.fleetbook().args(["discover", "--nodes", s(&txt), "-C", "apache"]).run().await;
    assert!(r.assert_code(2).stderr.contains("takes only identity filters"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue13_go_choria_flatfiles_and_their_errors() {
    let w = World::start(sim(2)).await;
    let flat = |f: &str| choria_file(&format!("discovery/flatfile/{f}"));
    let discover = |args: Vec<String>| w.fleetbook().arg("discover").arg("--json").args(args).run();
    let arg = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let (txt, json_file, yaml, bad) = (flat("nodes.txt"), flat("nodes.json"), flat("nodes.yaml"), flat("badnodes.txt"));
    let file_opt = |p: &Path| format!("file={}", s(p));
    let (a, b, c, d) = tokio::join!(
        discover(arg(&["--dm", "flatfile", "--do", &file_opt(&txt)])),
        discover(arg(&["--nodes", s(&json_file)])),
        discover(arg(&["--dm", "file", "--do", &file_opt(&yaml)])),
        // format= overrides what the content shows, as go-choria's --do format.
        discover(arg(&["--dm", "flatfile", "--do", &file_opt(&json_file), "--do", "format=text"])),
    );
    assert_eq!(a.assert_code(0).json(), json!(["one", "two", "three", "123-abc.example.net", "4bb280ea283e"]));
    assert_eq!(b.assert_code(0).json(), json!(["one.json", "two.json", "three.json"]));
    assert_eq!(c.assert_code(0).json(), json!(["one.yaml", "two.yaml", "three.yaml"]));
    assert!(d.assert_code(2).stderr.contains("nodes.json:1: invalid identity string"), "{}", d.stderr);
    let cases = [
        (arg(&["--nodes", s(&bad)]), "badnodes.txt:5: invalid identity string \"foo bar\""),
        (arg(&["--nodes", "/nonexistent/nodes.txt"]), "/nonexistent/nodes.txt: No such file"),
        (arg(&["--dm", "flatfile"]), "--dm flatfile needs a node list"),
        (arg(&["--dm", "inventory", "--nodes", s(&txt)]), "cannot be used with --dm inventory"),
        (
            arg(&["--dm", "flatfile", "--do", "nope=1"]),
            "\"nope\" is not an option of the flatfile method; valid: file, format, filter",
        ),
        (arg(&["--dm", "choria"]), "\"choria\" is not supported by fleetbook"),
        (
            arg(&["--dm", "nope"]),
            "unknown discovery method \"nope\"; valid: broadcast (mc), flatfile (file), inventory",
        ),
        (arg(&["--do", "file=x"]), "--do needs --dm METHOD"),
    ];
    let runs = futures::future::join_all(cases.iter().map(|(a, _)| discover(a.clone()))).await;
    for ((a, want), r) in cases.iter().zip(runs) {
        r.assert_code(2);
        assert!(r.stderr.contains(want), "{a:?}: {}", r.stderr);
    }
    // go-choria's gjson filter over its own `choria req -j` file.
    let replies = choria_file("rpc-replies/choria.json");
    let r = discover(arg(&["--dm", "flatfile", "--do", &file_opt(&replies), "--do", "filter=replies.#.sender"])).await;
    assert_eq!(r.assert_code(0).json(), json!(["n1.example.net", "n2.example.net", "n3.example.net"]));
    // mc is broadcast.
    let r = discover(arg(&["--dm", "mc"])).await;
    assert_eq!(r.assert_code(0).json(), json!(["n001.example.net", "n002.example.net"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue13_piped_node_lists_are_read_and_empty_or_garbled_pipes_refused() {
    let w = World::start(sim(4)).await;
    let bin = env!("CARGO_BIN_EXE_fleetbook");
    let base = |cmd: &mut tokio::process::Command| {
        cmd.args(["--config", s(crate::support::client_conf()), "--server", w.url(), "--insecure"])
            .env_remove("FLEETBOOK_SERVER")
            .kill_on_drop(true);
    };
    // `fleetbook discover --json -I ... | fleetbook req rpcutil ping --json`: the list is
    // auto-detected (no filter, no --nodes), and `--nodes -` reads it explicitly.
    for explicit in [false, true] {
        let mut producer = tokio::process::Command::new(bin);
        base(&mut producer);
        producer.args(["discover", "--json", "-I", "/n00[23]/"]).stdin(Stdio::null()).stdout(Stdio::piped());
        let mut producer = producer.spawn().unwrap();
        let pipe: Stdio = producer.stdout.take().unwrap().try_into().unwrap();
        let mut consumer = tokio::process::Command::new(bin);
        base(&mut consumer);
        consumer.args(["req", "rpcutil", "ping", "--json", "--no-journal"]);
        if explicit {
            consumer.args(["--nodes", "-"]);
        }
        let out = tokio::time::timeout(Duration::from_secs(60), consumer.stdin(pipe).output()).await.unwrap().unwrap();
        let _ = producer.wait().await;
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(names(&v["ok"]), ["n002.example.net", "n003.example.net"], "explicit {explicit}: {v}");
    }
    // An empty pipe (a producer that failed) or one that is no node list is refused: never
    // read as "every node".
    // `req --broadcast` takes no list: a piped one is refused, not silently ignored.
    let cases = [
        ("", None, "stdin is a pipe but empty"),
        ("echo hello world\n", None, "stdin:1: invalid identity string"),
        (
            "n001.example.net\n",
            Some("--broadcast"),
            "req --broadcast reaches every matching node and takes no node list",
        ),
    ];
    for (input, extra, want) in cases {
        let mut consumer = tokio::process::Command::new(bin);
        base(&mut consumer);
        consumer
            .args(["req", "rpcutil", "ping", "--no-journal"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = consumer.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stdin, input.as_bytes()).await.unwrap();
        drop(stdin);
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.unwrap().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{input:?}: {err}");
        assert!(err.contains(want), "{input:?}: {err}");
    }
    w.settle().await;
    assert_eq!(w.sim.stats().requests.get("rpcutil#ping"), Some(&4), "only the piped nodes, twice, were called");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue13_limits_by_count_percent_and_a_stable_seeded_random_pick() {
    let w = World::start(sim(20)).await;
    let discover = |extra: &[&str]| {
        let args: Vec<String> = extra.iter().map(|x| x.to_string()).collect();
        w.fleetbook().args(["discover", "--json"]).args(args).run()
    };
    let (first, pct, s1, s1_again, s2, random) = tokio::join!(
        discover(&["--limit", "3"]),
        discover(&["--limit", "25%", "--limit-method", "first"]),
        discover(&["--limit", "25%", "--limit-seed", "42"]),
        discover(&["--limit", "25%", "--limit-seed", "42", "--limit-method", "random"]),
        discover(&["--limit", "25%", "--limit-seed", "43"]),
        discover(&["--limit", "5", "--limit-method", "random"]),
    );
    assert_eq!(names(&first.assert_code(0).json()), ["n001.example.net", "n002.example.net", "n003.example.net"]);
    assert_eq!(names(&pct.assert_code(0).json()).len(), 5);
    let s1 = names(&s1.assert_code(0).json());
    assert_eq!(s1.len(), 5);
    assert_eq!(s1, names(&s1_again.assert_code(0).json()), "the same seed picks the same nodes in another process");
    assert_ne!(s1, names(&s2.assert_code(0).json()), "another seed picks others");
    assert_eq!(names(&random.assert_code(0).json()).len(), 5);
    // Pinned: operators' seeded limits must keep picking these nodes across releases.
    let pinned = ["n004.example.net", "n009.example.net", "n012.example.net", "n017.example.net", "n018.example.net"];
    assert_eq!(s1, pinned, "a changed seeded pick breaks operators' reruns");
    // -W against the fleet: the same nodes as the class and fact flags it stands for.
    let (with, split, with_re, split_re) = tokio::join!(
        discover(&["-W", "profile::base cpus>=4"]),
        discover(&["-C", "profile::base", "-F", "cpus>=4"]),
        discover(&["-W", "/^role::(web|db)$/ os.family=Debian"]),
        discover(&["-C", "/^role::(web|db)$/", "-F", "os.family=Debian"]),
    );
    assert_eq!(with.assert_code(0).json(), split.assert_code(0).json());
    assert_eq!(with_re.assert_code(0).json(), split_re.assert_code(0).json());
    let n = names(&with.json()).len();
    assert!(n > 0 && n < 20, "the filter selects some nodes: {n}");
    // The client config's rpclimitmethod is the default method, as in go-choria; the flag wins.
    let dir = tempfile::tempdir().unwrap();
    let random_conf = write(dir.path(), "random.conf", "discovery_timeout = 0.5\nrpclimitmethod = random\n");
    let bad_conf = write(dir.path(), "bad.conf", "rpclimitmethod = sometimes\n");
    let with_conf = |conf: &Path, extra: &[&str]| {
        let args: Vec<String> = extra.iter().map(|x| x.to_string()).collect();
        crate::support::Fleetbook::new()
            .args(["--config", s(conf), "--server", w.url(), "--insecure", "discover", "--json"])
            .args(args)
            .run()
    };
    let (conf_random, conf_seeded, conf_first, conf_bad) = tokio::join!(
        with_conf(&random_conf, &["--limit", "25%"]),
        with_conf(&random_conf, &["--limit", "25%", "--limit-seed", "42"]),
        with_conf(&random_conf, &["--limit", "3", "--limit-method", "first"]),
        with_conf(&bad_conf, &["--limit", "3"]),
    );
    assert_eq!(names(&conf_random.assert_code(0).json()).len(), 5);
    assert_eq!(names(&conf_seeded.assert_code(0).json()), s1);
    assert_eq!(names(&conf_first.assert_code(0).json()), names(&first.json()));
    assert!(conf_bad.assert_code(2).stderr.contains("rpclimitmethod"), "{}", conf_bad.stderr);
    // req acts on the limited nodes only.
    let r = w
        .fleetbook()
        .args(["req", "rpcutil", "ping", "--json", "--no-journal", "--limit", "2", "--limit-seed", "42"])
        .run()
        .await;
    let v = r.assert_code(0).json().clone();
    assert_eq!(names(&v["ok"]).len(), 2, "{v}");
    assert!(names(&v["ok"]).iter().all(|n| s1.contains(n)) || names(&v["ok"]).len() == 2, "{v}");
    // Nothing left, and bad limits.
    let cases = [
        (vec!["--limit", "1%"], 1, "no targets left after applying target limits of '1%' to 20 node(s)"),
        (vec!["--limit", "x"], 2, "--limit: \"x\" is neither a number nor a percentage"),
        (vec!["--limit", "0"], 2, "a limit must be at least 1"),
        (vec!["--limit", "2", "--limit-seed", "1", "--limit-method", "first"], 2, "needs the random method"),
        (vec!["--limit-seed", "1"], 2, "--limit"),
    ];
    let runs = futures::future::join_all(cases.iter().map(|(a, _, _)| discover(a))).await;
    for ((a, code, want), r) in cases.iter().zip(runs) {
        r.assert_code(*code);
        assert!(r.stderr.contains(want), "{a:?}: {}", r.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue13_inventory_files_are_a_source_of_truth_with_filters_and_groups() {
    let w = World::start(sim(2)).await;
    let inv = choria_file("discovery/inventory/good-inventory.yaml");
    let file = format!("file={}", s(&inv));
    let discover = |extra: &[&str]| {
        let args: Vec<String> = extra.iter().map(|x| x.to_string()).collect();
        w.fleetbook().args(["discover", "--json", "--dm", "inventory", "--do", &file]).args(args).run()
    };
    let (dev1, dev2) = ("dev1.example.net", "dev2.example.net");
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec![], vec![dev1, dev2]),
        (vec!["-T", "mt_collective"], vec![dev1]),
        (vec!["-F", "country=mt"], vec![dev1]),
        (vec!["-C", "one", "-C", "three"], vec![dev2]),
        (vec!["-A", "other"], vec![dev2]),
        (vec!["-W", "one customer=acme"], vec![dev1]),
        (vec!["-S", "with('customer=acme') and with('one')"], vec![dev1]),
        (vec!["-I", "/dev2/"], vec![dev2]),
        (vec!["-I", "group:malta", "-I", "group:germany"], vec![dev1, dev2]),
        (vec!["-I", "group:acme"], vec![dev1]),
        (vec!["-F", "country=nz"], vec![]),
    ];
    let runs = futures::future::join_all(cases.iter().map(|(a, _)| discover(a))).await;
    for ((a, want), r) in cases.iter().zip(runs) {
        assert_eq!(r.assert_code(0).json(), json!(want), "{a:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let bad_schema = write(dir.path(), "inv.json", r#"{"$schema": "nope", "nodes": []}"#);
    let bad_yaml = write(dir.path(), "inv.yaml", "$schema: x\nnodes:\n  - nmae: a\n");
    let errors = [
        (vec!["-I", "group:nope"], "unknown group 'nope'".to_string()),
        (vec!["-I", "group:malta", "-C", "one"], "group matches cannot be combined with other filters".into()),
    ];
    let runs = futures::future::join_all(errors.iter().map(|(a, _)| discover(a))).await;
    for ((a, want), r) in errors.iter().zip(runs) {
        r.assert_code(2);
        assert!(r.stderr.contains(want.as_str()), "{a:?}: {}", r.stderr);
    }
    for (f, want) in
        [(bad_schema, "inv.json: invalid schema \"nope\""), (bad_yaml, "inv.yaml:3: not an inventory file")]
    {
        let r = w.fleetbook().args(["discover", "--dm", "inventory", "--do", &format!("file={}", s(&f))]).run().await;
        r.assert_code(2);
        assert!(r.stderr.contains(want), "{}", r.stderr);
    }
    // A file source needs no broker: nothing listens on this port.
    let r = crate::support::Fleetbook::new()
        .args([
            "--server",
            "nats://127.0.0.1:1",
            "--insecure",
            "discover",
            "--json",
            "--dm",
            "inventory",
            "--do",
            &file,
            "-C",
            "three",
        ])
        .run()
        .await;
    assert_eq!(r.assert_code(0).json(), json!([dev2]));
    let r = w.fleetbook().args(["discover", "--dm", "inventory"]).run().await;
    assert!(
        r.assert_code(2).stderr.contains("--dm inventory needs the inventory file: --do file=FILE"),
        "{}",
        r.stderr
    );
    // req through an inventory: its nodes are not in this fleet, so they are no_reply.
    let conf = short_rpc_timeouts();
    let r = w
        .fleetbook()
        .args(["--ddl-dir", s(conf.path())])
        .args([
            "req",
            "rpcutil",
            "ping",
            "--json",
            "--no-journal",
            "--dm",
            "inventory",
            "--do",
            &file,
            "-I",
            "group:malta",
        ])
        .run()
        .await;
    assert_eq!(r.assert_code(1).json()["no_reply"], json!([dev1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue13_runbooks_choose_sources_limits_and_with_by_the_same_names() {
    let w = World::start(sim(6)).await;
    let dir = tempfile::tempdir().unwrap();
    let list = write(dir.path(), "nodes.txt", "n002.example.net\nn005.example.net\nghost.example.net\n");
    let inv = choria_file("discovery/inventory/good-inventory.yaml");
    let rb = write(
        dir.path(),
        "sources.rhai",
        &format!(
            r#"
            let listed = nodes_from({list:?});
            let flat = discover(#{{ dm: "flatfile", "do": #{{ file: {list:?} }}, identity: "/n00/" }});
            let inv = discover(#{{ dm: "inventory", discovery_options: #{{ file: {inv:?} }}, class: "three" }});
            let grp = discover(#{{ dm: "inventory", "do": #{{ file: {inv:?} }}, identity: "group:malta" }});
            let limited = discover(#{{ limit: "50%", limit_seed: 42 }});
            let combined = discover(#{{ combined: "/./ country=/./", limit: 2 }});
            let r = rpc_batch("rpcutil", "ping", #{{}}, #{{ nodes: listed, limit: 2 }});
            print(`RESULT ${{#{{ listed: listed, flat: flat, inv: inv, grp: grp, limited: limited, combined: combined, ok: r.ok, no_reply: r.no_reply }}.to_json()}}`);
            try {{ discover(#{{ dm: "choria" }}); }} catch (e) {{ print(`DM ${{e.message}} ${{e.kind}}`); }}
            try {{ nodes_from({bad:?}); }} catch (e) {{ print(`BAD ${{e.message}}`); }}
            try {{ discover(#{{ limit_seed: 1 }}); }} catch (e) {{ print(`SEED ${{e.message}}`); }}
            "#,
            list = s(&list),
            inv = s(&inv),
            bad = s(&choria_file("discovery/flatfile/badnodes.txt")),
        ),
    );
    let r = w.fleetbook().args(["run", s(&rb), "--no-journal"]).run().await;
    r.assert_code(0);
    let line =
        r.stdout.lines().chain(r.stderr.lines()).find_map(|l| l.split_once("RESULT ")).map(|(_, j)| j.to_string());
    let v: Value = serde_json::from_str(&line.unwrap_or_else(|| panic!("{r:?}"))).unwrap();
    assert_eq!(v["listed"], json!(["n002.example.net", "n005.example.net", "ghost.example.net"]));
    assert_eq!(v["flat"], json!(["n002.example.net", "n005.example.net"]));
    assert_eq!(v["inv"], json!(["dev2.example.net"]));
    assert_eq!(v["grp"], json!(["dev1.example.net"]));
    let cli = w.fleetbook().args(["discover", "--json", "--limit", "50%", "--limit-seed", "42"]).run().await;
    assert_eq!(v["limited"], cli.assert_code(0).json().clone(), "a runbook's limit picks what the CLI's picks");
    assert_eq!(v["combined"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["ok"], json!(["n002.example.net", "n005.example.net"]), "the first two of the list");
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("DM discover.dm: discovery method \"choria\" is not supported by fleetbook"), "{all}");
    assert!(
        all.contains("BAD nodes_from: ") && all.contains("badnodes.txt:5: invalid identity string \"foo bar\""),
        "{all}"
    );
    assert!(all.contains("SEED discover.limit_seed: give limit too"), "{all}");
    // The lint knows the new keys and flags misspelt ones.
    let lint = write(
        dir.path(),
        "lint.rhai",
        r#"discover(#{ dm: "inventory", "do": #{ file: "x.yaml" }, "with": "apache", limit: 2, limit_seed: 1, limit_method: "random" });
           rpc_batch("rpcutil", "ping", #{}, #{ nodes: [], limit: "10%", limit_seed: 3, limit_method: "random" });
           discover(#{ limt: 2 });"#,
    );
    let r = crate::support::Fleetbook::new().args(["check", s(&lint)]).run().await;
    assert!(r.stderr.contains("unknown option 'limt'") && !r.stderr.contains("'limit_seed'"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue13_run_nodes_is_the_runbooks_default_source() {
    let w = World::start(sim(3)).await;
    let conf = short_rpc_timeouts();
    let dir = tempfile::tempdir().unwrap();
    let list = write(dir.path(), "nodes.txt", "n003.example.net\nghost.example.net\n");
    let rb = write(
        dir.path(),
        "rb.rhai",
        r#"
        let r = rpc_batch("rpcutil", "ping", #{}, #{ filter: #{} });
        print(`RESULT ${#{ listed: discover(), web: discover(#{ identity: "/^n/" }), all: discover(#{ dm: "mc" }), ok: r.ok, no_reply: r.no_reply }.to_json()}`);
        try { discover(#{ class: "apache" }); } catch (e) { print(`CLASS ${e.kind} ${e.message}`); }
        "#,
    );
    let r = w
        .fleetbook()
        .args(["--ddl-dir", s(conf.path()), "run", s(&rb), "--no-journal", "--nodes", s(&list)])
        .run()
        .await;
    r.assert_code(1);
    let all = format!("{}{}", r.stdout, r.stderr);
    let line = all.lines().find_map(|l| l.split_once("RESULT ")).map(|(_, j)| j.to_string());
    let v: Value = serde_json::from_str(&line.unwrap_or_else(|| panic!("{r:?}"))).unwrap();
    assert_eq!(v["listed"], json!(["n003.example.net", "ghost.example.net"]));
    assert_eq!(v["web"], json!(["n003.example.net"]));
    assert_eq!(v["all"], json!(["n001.example.net", "n002.example.net", "n003.example.net"]), "an explicit dm wins");
    assert_eq!((&v["ok"], &v["no_reply"]), (&json!(["n003.example.net"]), &json!(["ghost.example.net"])));
    assert!(all.contains("CLASS invalid discover: a node list"), "{all}");
    let bad = choria_file("discovery/flatfile/badnodes.txt");
    let r = w.fleetbook().args(["run", s(&rb), "--no-journal", "--nodes", s(&bad)]).run().await;
    assert!(r.assert_code(2).stderr.contains("badnodes.txt:5: invalid identity string"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue13_the_client_configs_default_discovery_method_is_followed() {
    let w = World::start(sim(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let inv = choria_file("discovery/inventory/good-inventory.yaml");
    let conf = write(
        dir.path(),
        "client.conf",
        &format!(
            "discovery_timeout = 0.5\ndefault_discovery_method = inventory\nplugin.choria.discovery.inventory.source = {}\n",
            s(&inv)
        ),
    );
    let list = write(dir.path(), "nodes.txt", "n002.example.net\n");
    let flat_conf = write(
        dir.path(),
        "flat.conf",
        &format!("default_discovery_method = flatfile\ndefault_discovery_options = file={}\n", s(&list)),
    );
    let rb = write(
        dir.path(),
        "rb.rhai",
        r#"print(`RESULT ${#{ a: discover(#{ class: "three" }), b: discover(#{ dm: "mc" }) }.to_json()}`);"#,
    );
    let with = |conf: &Path, extra: &[&str]| {
        let args: Vec<String> = extra.iter().map(|x| x.to_string()).collect();
        crate::support::Fleetbook::new().args(["--config", s(conf), "--server", w.url(), "--insecure"]).args(args).run()
    };
    let (inv_cli, mc_cli, flat_cli, run) = tokio::join!(
        with(&conf, &["discover", "--json", "-C", "three"]),
        with(&conf, &["discover", "--json", "--dm", "mc"]),
        with(&flat_conf, &["discover", "--json"]),
        with(&conf, &["run", s(&rb), "--no-journal"]),
    );
    assert_eq!(inv_cli.assert_code(0).json(), json!(["dev2.example.net"]));
    assert_eq!(mc_cli.assert_code(0).json(), json!(["n001.example.net", "n002.example.net"]), "--dm wins");
    assert_eq!(flat_cli.assert_code(0).json(), json!(["n002.example.net"]));
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains(r#"RESULT {"a":["dev2.example.net"],"b":["n001.example.net","n002.example.net"]}"#), "{all}");
}
