//! Issue 9 "trustworthy under faults", input at the edges: extreme values are refused with a
//! clear message and the contract's exit code, never a panic (101) or an abort (134).

use std::path::PathBuf;

use crate::support::{broker, Fleetbook, Run};

/// A temporary directory holding one file.
fn file(name: &str, body: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, body).unwrap();
    (dir, path)
}

#[track_caller]
fn refused(run: &Run, code: i32, words: &[&str]) {
    run.assert_code(code);
    assert!(!run.stderr.contains("panicked"), "{run:#?}");
    for w in words {
        assert!(run.stderr.contains(w), "stderr lacks {w:?}: {run:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_extreme_durations_are_usage_errors() {
    let range = "between 0 and 31536000 seconds";
    let cases: [(&[&str], &str); 4] = [
        (&["req", "rpcutil", "ping", "--batch", "1", "--batch-sleep", "1e300"], "--batch-sleep"),
        (&["discover", "--discovery-timeout", "1e19"], "--discovery-timeout"),
        (&["events", "--timeout", "99999999999999999999999s"], "--timeout"),
        (&["metrics", "http://127.0.0.1:1/metrics", "--timeout", "1e300"], "--timeout"),
    ];
    for (args, flag) in cases {
        let run = Fleetbook::new().args(["--sim", "1"]).args(args.iter().copied()).run().await;
        refused(&run, 2, &[flag, range]);
    }
    let run = Fleetbook::new().args(["--sim", "1", "--sim-time-scale", "1e300", "discover"]).run().await;
    refused(&run, 2, &["--sim-time-scale", "between 0 and 1000"]);
    for threads in ["0", "257", "1.5", "many"] {
        let run = Fleetbook::new().args(["sim", "--nodes", "1", "--threads", threads]).run().await;
        refused(&run, 2, &["--threads"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_runbook_sleep_of_1e300_is_a_runbook_error() {
    // Rhai's own sleep(FLOAT) panicked on it (and ignored Ctrl-C); ours refuses it.
    let (_d, rb) = file("sleep.rhai", "sleep(1e300);\n");
    let run = Fleetbook::new().args(["--sim", "1", "run"]).arg_path(&rb).run().await;
    refused(&run, 1, &["sleep", "too long", "sleep.rhai:1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_ddl_timeout_of_u64_max_is_refused_when_it_loads() {
    let mut ddl: serde_json::Value =
        serde_json::from_str(include_str!("../ddl/rpcutil.json")).expect("the built-in DDL is JSON");
    ddl["metadata"]["timeout"] = serde_json::json!(u64::MAX);
    let (dir, path) = file("rpcutil.json", &ddl.to_string());
    let run = Fleetbook::new()
        .args(["--sim", "1", "--ddl-dir", dir.path().to_str().unwrap(), "req", "rpcutil", "ping"])
        .run()
        .await;
    refused(&run, 2, &[path.to_str().unwrap(), "timeout 18446744073709551615 is out of range"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_a_ddl_regex_that_does_not_compile_is_an_error_when_it_loads() {
    let mut ddl: serde_json::Value =
        serde_json::from_str(include_str!("../ddl/choria_provision.json")).expect("the built-in DDL is JSON");
    let restart = ddl["actions"].as_array_mut().unwrap().iter_mut().find(|a| a["action"] == "restart").unwrap();
    restart["input"]["token"]["validation"] = serde_json::json!("^(unclosed");
    let (dir, path) = file("choria_provision.json", &ddl.to_string());
    let (_r, rb) = file("ok.rhai", "print(1);\n");
    let run = Fleetbook::new().args(["--ddl-dir", dir.path().to_str().unwrap(), "check"]).arg_path(&rb).run().await;
    refused(&run, 2, &[path.to_str().unwrap(), "\"restart\"", "\"token\"", "/^(unclosed/", "unclosed group"]);
    // The go-choria DDLs themselves load: `^{.+}$` is valid RE2 (a literal brace).
    let shared = crate::support::choria_file("ddl/agent");
    let run = Fleetbook::new().args(["--ddl-dir", shared.to_str().unwrap(), "check"]).arg_path(&rb).run().await;
    run.assert_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_a_missing_election_bucket_is_a_configuration_error() {
    let b = broker();
    let run = Fleetbook::new()
        .args(["--server", b.url(), "--insecure", "election", "view", "--bucket", "NO_SUCH_BUCKET"])
        .run()
        .await;
    refused(&run, 2, &["NO_SUCH_BUCKET does not exist"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_bad_server_urls_are_usage_errors_before_connecting() {
    for url in ["http://127.0.0.1:4222", "nats://127.0.0.1:99999", "nats://127.0.0.1:0"] {
        let run = Fleetbook::new().args(["--server", url, "--insecure", "discover"]).run().await;
        refused(&run, 2, &[&format!("server URL {url}"), "expected nats://HOST:PORT"]);
        assert!(!run.stderr.contains("cannot connect"), "{run:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_malformed_args_are_usage_errors() {
    let (_d, rb) = file("args.rhai", "print(arg(\"x\", \"none\"));\n");
    for bad in ["foo", " =x", "a b=1", "=x"] {
        let run = Fleetbook::new()
            .args(["--server", "nats://127.0.0.1:1", "--insecure", "run"])
            .arg_path(&rb)
            .args(["--arg", bad])
            .run()
            .await;
        refused(&run, 2, &["--arg", "expected NAME=VALUE"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_check_of_a_missing_file_is_a_usage_error_like_run() {
    let (_d, good) = file("good.rhai", "print(1);\n");
    let run = Fleetbook::new().args(["check", "nosuch.rhai"]).run().await;
    refused(&run, 2, &["cannot read runbook nosuch.rhai"]);
    let run = Fleetbook::new().args(["check"]).arg_path(&good).args(["nosuch.rhai"]).run().await;
    refused(&run, 2, &["cannot read runbook nosuch.rhai"]);
    assert!(run.stdout.contains("ok "), "the readable file is still checked: {run:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_deeply_nested_runbook_values_are_an_error_not_an_abort() {
    // 5,000 levels aborted the process on the old 2 MiB runbook thread (inside Rhai's clone);
    // as an RPC input it is refused at the DDL check, deeper than convert::MAX_DEPTH.
    let body = "let a = [];\nfor i in 0..5000 { a = [a]; }\nprint(`built ${a.len()}`);\n\
                rpc_batch(\"choria_provision\", \"configure\", #{action_policies: #{p: a}}, #{nodes: [\"n001.example.net\"]});\n";
    let (_d, rb) = file("deep.rhai", body);
    let run = Fleetbook::new().args(["--sim", "1", "run"]).arg_path(&rb).run().await;
    refused(&run, 1, &["built 1", "action_policies", "nested deeper than 64 levels", "deep.rhai:4"]);
}
