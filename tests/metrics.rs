//! The Prometheus parser against prometheus/common's own corpus, one test per format rule,
//! and scrapes over real HTTP.

use std::collections::BTreeMap;
use std::time::Duration;

use fleetbook::metrics::{self, Kind};

fn corpus(name: &str) -> String {
    std::fs::read_to_string(crate::support::choria_file(&format!("prometheus/{name}"))).unwrap()
}

#[test]
fn every_valid_corpus_file_parses() {
    for name in [
        "valid-minimal.txt",
        "valid-parse-0.txt",
        "valid-parse-1.txt",
        "valid-parse-2.txt",
        "valid-parse-3.txt",
        "valid-parse-4.txt",
        "text-scrape.txt",
    ] {
        metrics::parse(&corpus(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn every_invalid_corpus_file_is_rejected_with_a_line() {
    for i in 0..20 {
        let name = format!("invalid-parse-error-{i}.txt");
        let err = metrics::parse(&corpus(&name)).err().unwrap_or_else(|| panic!("{name} must be rejected"));
        assert!(err.line >= 1 && !err.reason.is_empty(), "{name}: {err}");
    }
}

#[test]
fn the_corpus_reads_as_expfmt_reads_it() {
    let s = metrics::parse(&corpus("valid-parse-2.txt")).unwrap();
    let name = s.family("name").unwrap();
    assert_eq!(name.kind, Kind::Counter);
    assert_eq!(name.help.as_deref(), Some("two-line\n doc  str\\ing"));
    let n2 = s.family("name2").unwrap();
    assert_eq!((n2.kind, n2.help.as_deref()), (Kind::Gauge, Some("doc str\"ing 2")));
    let v: Vec<&metrics::Sample> = s.samples.iter().filter(|x| x.name == "name").collect();
    assert!(v[0].value.is_nan());
    assert_eq!(v[1].labels["basename"], "base\"v\\al\nue");
    assert_eq!((v[1].value, v[1].timestamp_ms), (0.23, Some(1234567890)));
    let n2s: Vec<f64> = s.samples.iter().filter(|x| x.name == "name2").map(|x| x.value).collect();
    assert_eq!(n2s, vec![f64::INFINITY, f64::NEG_INFINITY]);

    let sum = metrics::parse(&corpus("valid-parse-3.txt")).unwrap();
    let fam = |n: &str| sum.samples.iter().find(|x| x.name == n).map(|x| (x.family.clone(), x.kind)).unwrap();
    assert_eq!(fam("my_summary_count"), ("my_summary".into(), Kind::Summary));
    assert_eq!(fam("fake_sum"), ("fake_sum".into(), Kind::Untyped), "no family 'fake': its own family");
    assert_eq!(sum.samples.iter().find(|x| x.name == "decoy").unwrap().timestamp_ms, Some(-2));
    assert_eq!(sum.samples.iter().find(|x| x.name == "my_summary_sum" && x.labels["n1"] == "val2").unwrap().value, 8.0);

    let hist = metrics::parse(&corpus("valid-parse-4.txt")).unwrap();
    let buckets: Vec<&str> =
        hist.samples.iter().filter(|x| x.name.ends_with("_bucket")).map(|x| x.labels["le"].as_str()).collect();
    assert_eq!(buckets, vec!["100", "120", "144", "172.8", "+Inf"]);
    assert!(hist.samples.iter().all(|x| x.family == "request_duration_microseconds" && x.kind == Kind::Histogram));
    assert!(
        metrics::parse(&corpus("valid-parse-1.txt")).unwrap().family("line").is_none(),
        "HELP-only families are dropped"
    );
}

/// One test per rule of choria-ops.md §6: each input is rejected and the reason says why.
#[test]
fn each_format_rule_is_enforced() {
    let cases: &[(&str, usize, &str)] = &[
        ("m 1", 1, "no final newline"),
        ("m{l=\"\\t\"} 1\n", 1, "invalid escape sequence '\\t' in label value"),
        ("m{l=\"a\nb\"} 1\n", 1, "not terminated"),
        ("m 1 2 3\n", 1, "unexpected text after the sample"),
        ("m 1 2.5\n", 1, "integer timestamp"),
        ("m blubb\n", 1, "expected a float as value"),
        ("# HELP m one\n# HELP m two\n", 2, "second HELP"),
        ("# HELP m bad \\t escape\n", 1, "invalid escape sequence"),
        ("# TYPE m counter\n# TYPE m gauge\n", 2, "second TYPE"),
        ("m 1\n# TYPE m counter\n", 2, "TYPE reported after samples"),
        ("# TYPE m bla\n", 1, "unknown metric type"),
        ("# TYPE m-x counter\n", 1, "invalid metric name"),
        ("@m 1\n", 1, "invalid metric name"),
        ("{l=\"v\"} 1\n", 1, "invalid metric name"),
        ("m{@=\"v\"} 1\n", 1, "invalid label name"),
        ("m{__name__=\"v\"} 1\n", 1, "reserved"),
        ("m{l+=\"v\"} 1\n", 1, "expected '='"),
        ("m{l=v} 1\n", 1, "expected '\"'"),
        ("m{l=\"v\"+} 1\n", 1, "expected ',' or '}'"),
        ("m{l=\"v\",l=\"w\"} 1\n", 1, "duplicate label"),
        ("# TYPE s summary\ns{quantile=\"x\"} 1\n", 2, "quantile"),
        ("# TYPE h histogram\nh_bucket{le=\"x\"} 1\n", 2, "le label"),
        ("\n\nm\n", 3, "missing sample value"),
    ];
    for (input, line, reason) in cases {
        let err = metrics::parse(input).err().unwrap_or_else(|| panic!("{input:?} must be rejected"));
        assert_eq!(err.line, *line, "{input:?}: {err}");
        assert!(err.to_string().contains(reason), "{input:?}: {err} should mention {reason:?}");
    }
    // And the lenient forms are accepted.
    let ok = metrics::parse("m{} 1\nm2 {a=\"b\",} +Inf\n  # comment\n\nm3{a=\"x\"}-1e3 -5\n# HELP\n# TYPE\n").unwrap();
    assert_eq!(ok.samples.len(), 3);
    assert_eq!(ok.samples[2].timestamp_ms, Some(-5));
    assert_eq!(metrics::parse("").unwrap().samples.len(), 0);
}

/// A one-shot HTTP server on a free port that answers with `response`.
async fn serve(response: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(&response).await;
        }
    });
    format!("http://{addr}/metrics")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_over_http_and_the_cli_prints_them() {
    let body = corpus("text-scrape.txt");
    let chunked = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    let url = serve(chunked.into_bytes()).await;
    let s = metrics::http::scrape(&url, Duration::from_secs(5)).await.unwrap();
    let labels: BTreeMap<String, String> = [("handler".to_string(), "/alerts".to_string())].into();
    assert_eq!(s.select("http_request_duration_microseconds_count", &labels).count(), 1);

    let r = crate::support::Fleetbook::new().args(["metrics", &url, "--json"]).run().await;
    r.assert_code(0);
    let j = r.json();
    assert_eq!(j.as_array().unwrap().len(), s.samples.len());
    let t = crate::support::Fleetbook::new().args(["metrics", &url]).run().await;
    t.assert_code(0);
    assert!(
        t.stdout.contains("http_request_duration_microseconds (summary): The HTTP request latencies in microseconds."),
        "{}",
        t.stdout
    );

    let bad = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\nm{l=\"\\t\"} 1\n    ".to_vec()).await;
    let r = crate::support::Fleetbook::new().args(["metrics", &bad]).run().await;
    r.assert_code(1);
    assert!(r.stderr.contains("line 1: invalid escape sequence"), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "no partial result: {}", r.stdout);

    let missing = serve(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()).await;
    let r = crate::support::Fleetbook::new().args(["metrics", &missing]).run().await;
    r.assert_code(1);
    assert!(r.stderr.contains("HTTP 404"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbooks_read_values_sums_and_absent_series() {
    let text = "# TYPE jobs counter\njobs{site=\"a\",kind=\"x\"} 2\njobs{site=\"a\",kind=\"y\"} 3\njobs{site=\"b\",kind=\"x\"} 5\n# TYPE t summary\nt_sum{site=\"a\"} 1.5\nt_count{site=\"a\"} 4\n";
    let url = serve(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}", text.len()).into_bytes()).await;
    let w = crate::support::World::start(crate::support::sim(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let rb = dir.path().join("m.rhai");
    std::fs::write(
        &rb,
        r#"
        let m = metrics(arg("url"));
        print(`sum ${metric_sum(m, "jobs")} a ${metric_sum(m, "jobs", #{ site: "a" })}`);
        print(`one ${metric_value(m, "jobs", #{ site: "b" })} absent ${metric_value(m, "nope") == ()}`);
        print(`count ${metric_value(m, "t_count")} family ${metric_select(m, "t", #{}).len()}`);
        try { metric_value(m, "jobs"); } catch (e) { print(`ambiguous ${e.kind}`); }
        try { metrics("http://127.0.0.1:1/metrics"); } catch (e) { print(`down ${e.kind}`); }
        "#,
    )
    .unwrap();
    let r = w.fleetbook().args(["run", rb.to_str().unwrap(), "--arg", &format!("url={url}")]).run().await;
    r.assert_code(0);
    for want in ["sum 10.0 a 5.0", "one 5.0 absent true", "count 4.0 family 2", "ambiguous invalid", "down connection"]
    {
        assert!(r.stderr.contains(want), "{want}: {}", r.stderr);
    }
}
