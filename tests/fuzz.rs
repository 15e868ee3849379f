//! Fuzzing without nightly: a deterministic, seeded mutator over the real Choria sample
//! files (and messages our own encoder writes) feeds every decoder at the edge. Each input
//! must return, Ok or Err, without a panic and within a time bound.
//!
//! The suite runs a short smoke pass of every target. For a longer run:
//! `FLEETBOOK_FUZZ_ITERS=200000 FLEETBOOK_FUZZ_SEED=7 cargo test --release --test integration fuzz::`
//! (see docs/testing.md). A failure prints the target, seed, iteration and the input.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use fleetbook::choria_conf::ChoriaConfig;
use fleetbook::fleet::ddl::{AgentDdl, DdlRegistry};
use fleetbook::fleet::filter::{compile_slashed, parse_fact, Filter};
use fleetbook::fleet::protocol::{self, Payload, RequestSpec, Security, Version};
use rand::SeedableRng;

use crate::support::choria_file;

/// Iterations per target: a smoke pass by default, `FLEETBOOK_FUZZ_ITERS` for more.
fn iterations() -> usize {
    std::env::var("FLEETBOOK_FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(300)
}

fn seed() -> u64 {
    std::env::var("FLEETBOOK_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(9)
}

/// No single input may take longer than this (debug build, a loaded machine).
const PER_INPUT: Duration = Duration::from_secs(5);

/// xorshift64*: small, deterministic across platforms and crate versions.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Tokens that tend to reach the corners of parsers.
const INTERESTING: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    "\\",
    ",",
    ":",
    "=",
    "/",
    "0",
    "-1",
    "1e308",
    "-1e308",
    "1e-400",
    "NaN",
    "+Inf",
    "18446744073709551615",
    "99999999999999999999999",
    "9223372036854775808",
    "null",
    "true",
    "\u{0}",
    "\u{feff}",
    "é",
    "\n",
    "\r\n",
    " ",
    "#",
    "# TYPE x counter\n",
    "{le=\"+Inf\"}",
    "==",
    "=~",
    "&&",
    "||",
    "!",
    "(",
    ")",
    "'",
    "/^(/",
    "ms",
    "h",
    "choria:reply:1",
    "io.choria.protocol.v2.reply",
    "cGluZw==",
    "====",
    "a{99999}",
];

/// One mutation of `input`, sometimes spliced with another sample.
fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(9) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let end = (at + rng.below(16)).min(v.len());
                v.drain(at.min(end)..end);
            }
            2 => {
                let t = INTERESTING[rng.below(INTERESTING.len())];
                v.splice(at..at, t.bytes());
            }
            3 => v.insert(at, rng.next() as u8),
            4 if !v.is_empty() => {
                // Repeat a chunk: long runs and deep nesting.
                let end = (at + 1 + rng.below(8)).min(v.len());
                let chunk: Vec<u8> = v[at.min(end)..end].to_vec();
                let times = 1 + rng.below(300);
                for _ in 0..times {
                    v.splice(at..at, chunk.iter().copied());
                }
            }
            5 => {
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len() + 1);
                let end = (from + rng.below(64)).min(other.len());
                v.splice(at..at, other[from..end].iter().copied());
            }
            6 => v.truncate(at),
            7 => {
                let depth = 1 + rng.below(5000);
                let open = if rng.below(2) == 0 { "[" } else { "{\"a\":" };
                v.splice(at..at, open.repeat(depth).bytes());
            }
            _ => {
                let n = rng.below(32);
                v.splice(at..at, (0..n).map(|_| rng.next() as u8));
            }
        }
    }
    v
}

/// Runs `target` over mutations of `corpus` on a watched thread: a panic or an input that
/// takes longer than [`PER_INPUT`] fails the test and names the input.
fn fuzz(name: &'static str, corpus: Vec<Vec<u8>>, target: fn(&[u8])) {
    assert!(!corpus.is_empty(), "{name}: empty corpus");
    let (iters, seed) = (iterations(), seed());
    let current = Arc::new(Mutex::new((0usize, Vec::new())));
    let (tx, rx) = mpsc::channel();
    let cur = current.clone();
    let worker = std::thread::Builder::new()
        .name(format!("fuzz-{name}"))
        .stack_size(64 << 20)
        .spawn(move || {
            let mut rng = Rng::new(seed ^ name.len() as u64);
            for i in 0..iters {
                // The samples themselves first, then mutations (sometimes of mutations).
                let input = if i < corpus.len() {
                    corpus[i].clone()
                } else {
                    let base = corpus[rng.below(corpus.len())].clone();
                    let once = mutate(&mut rng, &base, &corpus);
                    if rng.below(4) == 0 {
                        mutate(&mut rng, &once, &corpus)
                    } else {
                        once
                    }
                };
                *cur.lock().unwrap() = (i, input.clone());
                let started = Instant::now();
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| target(&input))) {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    let _ = tx.send(Err(format!("panicked: {msg}")));
                    return;
                }
                let _ = tx.send(Ok(started.elapsed()));
            }
        })
        .expect("fuzz thread starts");
    let show = |(i, input): &(usize, Vec<u8>)| {
        let text = String::from_utf8_lossy(input);
        let cut: String = text.chars().take(2000).collect();
        format!("target {name}, seed {seed}, iteration {i}, {} bytes: {cut:?}", input.len())
    };
    for _ in 0..iters {
        match rx.recv_timeout(PER_INPUT) {
            Ok(Ok(took)) if took <= PER_INPUT => {}
            Ok(Ok(took)) => panic!("took {took:?}: {}", show(&current.lock().unwrap())),
            Ok(Err(e)) => panic!("{e}: {}", show(&current.lock().unwrap())),
            Err(_) => panic!("no answer within {PER_INPUT:?}: {}", show(&current.lock().unwrap())),
        }
    }
    worker.join().expect("fuzz thread ends");
}

/// Every file under a shared Choria directory.
fn samples(dir: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(choria_file(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Requests and replies of both versions as our encoder writes them.
fn wire_samples() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut filter = Filter::default();
    filter.add_fact("country=mt").unwrap();
    filter.add_compound("with('apache')");
    let now = chrono::Utc::now();
    let (mut requests, mut replies) = (Vec::new(), Vec::new());
    for version in [Version::V1, Version::V2] {
        for payload in [Payload::Discovery, Payload::Rpc(r#"{"agent":"rpcutil","action":"ping","data":{}}"#)] {
            let spec = RequestSpec {
                request_id: "9f2c7e0d1b3a4c5d8e6f7a8b9c0d1e2f",
                sender: "runbook.example.net",
                caller: "choria=runbook.mcollective",
                collective: "mcollective",
                agent: "rpcutil",
                ttl: 60,
                filter: &filter,
                reply_to: "mcollective.reply.x.9f2c7e0d1b3a4c5d8e6f7a8b9c0d1e2f",
                payload,
                security: Security::Insecure,
            };
            let req = protocol::encode_request(version, &spec, now);
            let decoded = protocol::decode_request(&req).expect("our own request decodes");
            let body = br#"{"statuscode":0,"statusmsg":"OK","data":{"pong":1732200000}}"#;
            replies.push(protocol::encode_reply(&decoded, "n1.example.net", body, now).to_vec());
            requests.push(req.to_vec());
        }
    }
    (requests, replies)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn fuzz_reply_decoder() {
    let (requests, mut replies) = wire_samples();
    replies.extend(requests);
    replies.extend(samples("rpc-replies"));
    fuzz("reply", replies, |b| {
        let _ = protocol::decode_reply(b);
        let _ = protocol::transport_sender(b);
    });
}

#[test]
fn fuzz_request_decoder() {
    let (mut requests, replies) = wire_samples();
    requests.extend(replies);
    fuzz("request", requests, |b| {
        if let Ok(r) = protocol::decode_request(b) {
            // What a simulated server does next with it.
            let _ = r.filter.validate();
        }
    });
}

#[test]
fn fuzz_lifecycle_events() {
    fuzz("lifecycle", samples("lifecycle/samples"), |b| {
        if let Ok(e) = fleetbook::lifecycle::parse(b) {
            let _ = e.display();
        }
    });
}

#[test]
fn fuzz_prometheus_text() {
    fuzz("prometheus", samples("prometheus"), |b| {
        let _ = fleetbook::metrics::parse::parse(&text(b));
    });
}

#[test]
fn fuzz_client_config() {
    let corpus = vec![
        b"# comment\nplugin.choria.middleware_hosts = broker1:4222, nats://broker2:4222\ncollectives = mcollective,ops\nmain_collective = ops\nidentity = me.example.net\nplugin.security.provider = file\nplugin.security.file.certificate = certs/me.pem\nplugin.security.file.key = ~/key.pem\nplugin.security.file.ca = /etc/ca.pem\ndiscovery_timeout = 3\n".to_vec(),
        b"plugin.security.provider = choria\nplugin.security.choria.token_file = t.jwt\nplugin.security.choria.seed_file = s.seed\n".to_vec(),
    ];
    fuzz("client-config", corpus, |b| {
        if let Ok(c) = ChoriaConfig::parse(Path::new("/etc/choria/client.conf"), &text(b)) {
            for h in c.middleware_hosts() {
                let _ = fleetbook::config::check_server(&h);
            }
            let _ = (c.main_collective(), c.identity(), c.security_provider(), c.x509_paths(), c.ed25519_paths());
            let _ = c.discovery_timeout();
        }
    });
}

#[test]
fn fuzz_ddl() {
    fuzz("ddl", samples("ddl/agent"), |b| {
        let Ok(ddl) = AgentDdl::parse(&text(b), "fuzz.json") else { return };
        let mut reg = DdlRegistry::builtin();
        let name = ddl.metadata.name.clone();
        let actions: Vec<_> =
            ddl.actions.iter().map(|a| (a.action.clone(), a.input.keys().cloned().collect::<Vec<_>>())).collect();
        reg.insert(ddl);
        for (action, inputs) in actions {
            let pairs: Vec<String> = inputs.iter().map(|i| format!("{i}=1")).collect();
            let _ = reg.parse_cli(&name, &action, &pairs);
            let strings: Vec<String> = inputs.iter().map(|i| format!("{i}=[[[\"x\"]]]")).collect();
            let _ = reg.parse_cli(&name, &action, &strings);
        }
    });
}

#[test]
fn fuzz_filters_and_compound_expressions() {
    let corpus: Vec<Vec<u8>> = [
        "country=mt",
        "cpus>=8",
        "os.family=/^Deb/",
        "/^n00[1-3]/",
        "role!=web",
        "uptime<1000",
        "with('apache') && fact('country') == 'mt'",
        "with('apache') and not with('nginx')",
        "fact('cpus') >= 4 && (fact('os.family') == 'RedHat' || fact('os.family') == 'Debian')",
        "identity =~ '^n001'",
        "with('country=mt')",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    fuzz("filters", corpus, |b| {
        let s = text(b);
        let _ = parse_fact(&s);
        let _ = compile_slashed(&s);
        let mut f = Filter::default();
        let _ = f.add_fact(&s);
        f.add_compound(&s);
        let _ = f.validate();
        // The compound evaluator the simulated servers run (the current public entry point).
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let node = fleetbook::sim::node::Node::generate(1, 3, "example.net", "1", &mut rng);
        let _ = fleetbook::sim::compound::eval(&s, &node);
    });
}

#[test]
fn fuzz_durations_and_urls() {
    let corpus: Vec<Vec<u8>> =
        ["30s", "2m", "500ms", "1h", "1.5", "8760h", "nats://127.0.0.1:4222", "tls://u:p@broker:4222", "broker:4222"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
    fuzz("durations-urls", corpus, |b| {
        let s = text(b);
        if let Ok(d) = fleetbook::config::parse_duration(&s) {
            assert!(d <= fleetbook::config::MAX_DURATION, "{s:?} gave {d:?}");
            // Whatever passes must be usable as a deadline.
            let _ = Instant::now() + d;
        }
        let _ = fleetbook::config::check_server(&s);
    });
}
