//! The REPL: the line loop through its `LineSource` trait against a real broker and the
//! simulator, completion, and one end-to-end run of the real binary in a pseudo-terminal.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};

use fleetbook::engine::{Host, Prompter, RunSettings};
use fleetbook::fleet::ddl::DdlRegistry;
use fleetbook::fleet::{ClientOptions, Fleet};
use fleetbook::interrupt::Interrupt;
use fleetbook::progress::Reporter;
use fleetbook::repl::complete::Completer;
use fleetbook::repl::{LineSource, Read, Session};

use crate::support::{client_conf, sim, Fleetbook, World, DISCOVERY_TIMEOUT};

/// Scripted input; records what was offered to the history.
struct Script {
    lines: VecDeque<Read>,
    history: Arc<Mutex<Vec<String>>>,
}

impl LineSource for Script {
    fn read(&mut self, _prompt: &str) -> Read {
        self.lines.pop_front().unwrap_or(Read::Eof)
    }
    fn remember(&mut self, line: &str) {
        self.history.lock().unwrap().push(line.to_string());
    }
}

/// Output captured for assertions.
#[derive(Clone, Default)]
struct Out(Arc<Mutex<Vec<u8>>>);

impl Write for Out {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Out {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Answers confirmations from a list.
struct Answers(Mutex<VecDeque<String>>);

impl Prompter for Answers {
    fn ask(&self, _q: &str) -> Option<String> {
        self.0.lock().unwrap().pop_front()
    }
}

async fn session(w: &World, answers: &[&str]) -> (Session, Out) {
    let fleet = Fleet::connect(
        ClientOptions {
            servers: vec![w.url().to_string()],
            discovery_timeout: std::time::Duration::from_secs_f64(DISCOVERY_TIMEOUT),
            ..ClientOptions::default()
        },
        DdlRegistry::builtin(),
    )
    .await
    .unwrap();
    let settings = RunSettings { confirm_mutations: true, ..RunSettings::default() };
    let prompter = Box::new(Answers(Mutex::new(answers.iter().map(|s| s.to_string()).collect())));
    let reporter = Reporter::new(false, false);
    let host =
        Host::new(tokio::runtime::Handle::current(), Some(fleet), reporter, Interrupt::new(), settings, prompter);
    let out = Out::default();
    (Session::new(host, Box::new(out.clone())), out)
}

/// Runs `lines` through the loop on a blocking thread (the engine blocks on the runtime).
async fn drive(mut s: Session, lines: Vec<Read>) -> (Session, Vec<String>) {
    let history = Arc::new(Mutex::new(Vec::new()));
    let h = history.clone();
    let s = tokio::task::spawn_blocking(move || {
        s.run(&mut Script { lines: lines.into(), history: h });
        s
    })
    .await
    .unwrap();
    let hist = history.lock().unwrap().clone();
    (s, hist)
}

fn lines(v: &[&str]) -> Vec<Read> {
    v.iter().map(|l| Read::Line(l.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_persists_and_earlier_statements_do_not_rerun() {
    let w = World::start(sim(5)).await;
    let (s, out) = session(&w, &[]).await;
    let input = lines(&[
        "let nodes = discover();",
        "fn twice(x) {",
        "  x * 2",
        "}",
        "twice(nodes.len())",
        "let counter = 1;",
        "counter += 1;",
        "counter",
        ":scope",
    ]);
    let (_s, history) = drive(s, input).await;
    let text = out.text();
    assert!(text.contains("\n10\n"), "function and variable persist: {text}");
    assert!(text.contains("\n2\n"), "counter incremented once: {text}");
    assert!(text.contains("nodes: array"), "{text}");
    // One discovery answered by 5 nodes: the discovery line ran once.
    assert_eq!(w.sim.stats().requests.get("discovery"), Some(&5), "the discovery line ran once");
    assert!(history.contains(&"fn twice(x) {\n  x * 2\n}".to_string()), "multi-line input is one entry: {history:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_keep_the_session_and_ctrl_c_at_the_prompt_says_how_to_leave() {
    let w = World::start(sim(2)).await;
    let (s, out) = session(&w, &[]).await;
    let mut input = lines(&["let a = 1;", "a +* 2"]);
    input.push(Read::Interrupted);
    input.extend(lines(&["print(nope)", "a", ":nosuch", ":quit", "a"]));
    drive(s, input).await;
    let text = out.text();
    assert!(text.contains("<repl>:1:"), "{text}");
    assert!(text.contains("(To leave, press Ctrl-D or type :quit)"), "{text}");
    assert!(text.contains("nope"), "{text}");
    assert!(text.contains("unknown command :nosuch"), "{text}");
    assert_eq!(text.matches("\n1\n").count(), 1, ":quit stopped the loop before the last line: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_tokens_stay_out_of_history() {
    let w = World::start(sim(2)).await;
    let (s, _out) = session(&w, &["n"]).await;
    let input = lines(&[
        "let t = secret(\"HOME\");",
        "let n = discover();",
        "rpc_batch(\"choria_provision\", \"restart\", #{ token: \"s3cret\" }, #{ nodes: n })",
        "n.len()",
    ]);
    let (_s, history) = drive(s, input).await;
    assert_eq!(history, vec!["let n = discover();", "n.len()"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_calls_ask_first() {
    let w = World::start(sim(3)).await;
    let (s, out) = session(&w, &["n", "y"]).await;
    let input = lines(&[
        "let n = discover();",
        "rpc_batch(\"choria_provision\", \"restart\", #{ token: \"s3cret\" }, #{ nodes: n })",
        "rpc_batch(\"choria_provision\", \"restart\", #{ token: \"s3cret\" }, #{ nodes: n })",
        "rpc_batch(\"rpcutil\", \"ping\", #{}, #{ nodes: n }).ok.len()",
    ]);
    drive(s, input).await;
    let text = out.text();
    assert!(text.contains("stopped: not confirmed"), "{text}");
    assert!(text.contains("3 ok, 0 failed, 0 no reply"), "the confirmed call ran: {text}");
    assert!(text.contains("\n3\n"), "read-only calls do not ask: {text}");
    let restarts: usize =
        w.sim.stats().received.values().map(|a| a.iter().filter(|x| *x == "choria_provision#restart").count()).sum();
    assert_eq!(restarts, 3, "one confirmed restart per node, none for the refused call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_save_doc_and_help() {
    let w = World::start(sim(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib.rhai");
    std::fs::write(&lib, "#!/usr/bin/env -S fleetbook run\nfn hello(n) { `hello ${n}` }\nlet loaded = 7;\n").unwrap();
    let saved = dir.path().join("saved.rhai");
    let (s, out) = session(&w, &[]).await;
    let input = lines(&[
        &format!(":load {}", lib.display()),
        "hello(loaded)",
        "let n = discover(#{ timeout: \"500ms\" });",
        "bad syntax (",
        ")",
        ":doc discover",
        ":help",
        &format!(":save {}", saved.display()),
    ]);
    drive(s, input).await;
    let text = out.text();
    assert!(text.contains("\"hello 7\""), "{text}");
    assert!(text.contains("discover(filter: Map) -> Array") && text.contains("Discovers the nodes matching"), "{text}");
    assert!(text.contains(":save FILE"), "{text}");
    let body = std::fs::read_to_string(&saved).unwrap();
    assert!(body.contains("fn hello(n)") && body.contains("let n = discover("), "{body}");
    assert!(!body.contains("bad syntax"), "only successful lines are saved: {body}");
    let r = Fleetbook::new().args(["check", saved.to_str().unwrap()]).run().await;
    r.assert_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_offers_functions_variables_fields_agents_actions_and_nodes() {
    let w = World::start(sim(3)).await;
    let (s, _out) = session(&w, &["y"]).await;
    let (s, _) = drive(s, lines(&["let result = rpc_batch(\"rpcutil\", \"ping\", #{}, #{ filter: #{} });"])).await;
    let host = s.host.clone();
    let nodes: Arc<dyn Fn() -> Vec<String> + Send + Sync> = Arc::new(move || host.last_nodes.lock().unwrap().clone());
    let c = Completer::new(s.engine(), &DdlRegistry::builtin(), s.vars.clone(), nodes);
    let names =
        |line: &str| c.complete(line, line.len()).1.into_iter().map(|i| (i.display, i.replacement)).collect::<Vec<_>>();

    let f = names("rpc_b");
    assert!(f.contains(&("rpc_batch(agent, action, inputs, opts)".into(), "rpc_batch(".into())), "{f:?}");
    assert!(names("disc").iter().any(|(d, _)| d == "discover(filter)"), "parameter hint");
    assert!(names("res").iter().any(|(_, r)| r == "result"), "variables");
    assert_eq!(names("result.fa"), vec![("failed".to_string(), "failed".to_string())]);
    let (start, _) = c.complete("result.fa", 9);
    assert_eq!(start, 7, "only the field is replaced");
    let agents: Vec<String> = names("rpc_batch(\"cho").into_iter().map(|x| x.1).collect();
    assert_eq!(agents, vec!["choria_provision", "choria_registry", "choria_util"]);
    let actions: Vec<String> = names("rpc_batch(\"choria_provision\", \"re").into_iter().map(|x| x.1).collect();
    assert_eq!(actions, vec!["reprovision", "restart", "release_update"]);
    let ids: Vec<String> = names("let x = [\"n00").into_iter().map(|x| x.1).collect();
    assert_eq!(ids, vec!["n001.example.net", "n002.example.net", "n003.example.net"], "from the last discovery");
}

/// The real binary in a pseudo-terminal: discovery, Tab completion, Ctrl-C during a slow
/// call, and leaving.
#[test]
fn the_binary_in_a_pseudo_terminal() {
    use expectrl::{ControlCode, Eof, Expect};
    let broker_check = fleetbook::sim::broker::find_nats_server();
    assert!(broker_check.is_ok(), "{}", broker_check.unwrap_err());
    let dir = tempfile::tempdir().unwrap();
    let conf = client_conf().to_str().unwrap();
    let mut p = crate::support::pty(
        &[
            "--config",
            conf,
            "--sim",
            "4",
            "--sim-provisioners",
            "0",
            "--sim-slow",
            "n001",
            "--sim-slow-delay",
            "60s",
            "repl",
        ],
        &dir.path().join("history"),
        std::time::Duration::from_secs(30),
    );
    p.expect("fleetbook> ").expect("prompt");
    p.send_line("let n = discover()").unwrap();
    p.expect("discovered 4 node(s)").expect("discovery output");
    // The line editor prints its prompt once it reads the terminal raw: keys sent after it
    // reach the editor, not the terminal's line discipline.
    p.expect("fleetbook> ").unwrap();
    // Tab completes the function name.
    p.send("election_lea").unwrap();
    p.send("\t").unwrap();
    p.expect("election_leader(").expect("completion");
    p.send(ControlCode::EndOfText).unwrap();
    p.expect("fleetbook> ").unwrap();
    // A slow call, then Ctrl-C: back at the prompt with the session intact.
    p.send_line("rpc_batch(\"rpcutil\", \"ping\", #{}, #{ nodes: [\"n001.example.net\"], timeout: \"60s\" })").unwrap();
    // Its progress bar shows the batch once it is sent: the call is in its wait.
    p.expect("batch 1/1").expect("the call's progress");
    p.send(ControlCode::EndOfText).unwrap();
    p.expect("interrupted").expect("the call was cancelled");
    p.expect("fleetbook> ").unwrap();
    p.send_line("n.len() * 10").unwrap();
    p.expect("40").expect("the session survived");
    // Wait until the line editor is reading again (raw mode), or the tty may drop the key.
    p.expect("fleetbook> ").unwrap();
    p.send(ControlCode::EndOfTransmission).unwrap();
    p.expect(Eof).expect("Ctrl-D leaves");
    let history = std::fs::read_to_string(dir.path().join("history")).unwrap();
    assert!(history.contains("let n = discover()"), "{history}");
}

/// Issue 9, finding 14: lines pasted together, or typed while a call runs, all run in order.
#[test]
fn pasted_and_typed_ahead_lines_all_run() {
    use expectrl::{ControlCode, Eof, Expect};
    let dir = tempfile::tempdir().unwrap();
    let mut p = crate::support::pty(
        &["--sim", "3", "--sim-provisioners", "0", "--sim-slow", "n001", "--sim-slow-delay", "2s", "repl"],
        &dir.path().join("history"),
        std::time::Duration::from_secs(30),
    );
    // Keys are sent once the prompt shows: the line editor prints it after switching the
    // terminal to raw mode, so nothing typed reaches the line discipline instead.
    p.expect("fleetbook> ").expect("prompt");
    // A paste: three lines in one write.
    p.send("let a = 20;\nlet b = a + 1;\nb * 100\n").unwrap();
    p.expect("2100").expect("every pasted line ran");
    p.expect("fleetbook> ").unwrap();
    // Typed ahead: the slow call takes 2 s; the next lines arrive while it runs.
    p.send_line("let r = rpc_batch(\"rpcutil\", \"ping\", #{}, #{ nodes: [\"n001.example.net\"], timeout: \"10s\" });")
        .unwrap();
    // Its progress bar shows the batch once it is sent: the call is running.
    p.expect("batch 1/1").expect("the call's progress");
    p.send("let c = r.ok.len();\nc + 4000\n").unwrap();
    p.expect("4001").expect("lines typed during a call ran after it");
    p.expect("fleetbook> ").unwrap();
    p.send(ControlCode::EndOfTransmission).unwrap();
    p.expect(Eof).expect("Ctrl-D leaves");
}

/// Issue 9, findings 5 and 19: a secret shows as `[secret]` (not its Rust type), and a token
/// typed as a literal is not echoed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_show_as_the_mask() {
    let w = World::start(sim(1)).await;
    let (s, out) = session(&w, &[]).await;
    let input = lines(&[
        "let t = secret(\"HOME\");",
        "t",
        "[t, #{ s: t }]",
        "#{ token: \"s3cretLit\", node: \"n1\\u001b[2J\" }",
        "let token = \"s3cretLit\";",
        ":scope",
    ]);
    drive(s, input).await;
    let text = out.text();
    let home = std::env::var("HOME").unwrap();
    assert!(!text.contains("fleetbook::redact") && !text.contains(&home), "{text}");
    assert!(text.contains("\n[secret]\n"), "{text}");
    assert!(text.contains("[[secret], #{s: [secret]}]"), "{text}");
    assert!(text.contains("token: [secret]") && !text.contains("s3cretLit"), "{text}");
    assert!(text.contains("node: n1\\u{1b}[2J") && !text.contains('\u{1b}'), "{text}");
    assert!(text.contains("t: Secret = [secret]"), "{text}");
}

/// Issue 9, finding 19: lines naming any secret input (choria_provision#configure's private
/// `key` too) stay out of the history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_inputs_stay_out_of_history() {
    let w = World::start(sim(1)).await;
    let (s, _out) = session(&w, &[]).await;
    let input = lines(&["let m = #{ key: \"-----BEGIN RSA PRIVATE KEY-----\" };", "let PW = \"hunter2\";", "1 + 1"]);
    let (_s, history) = drive(s, input).await;
    assert_eq!(history, vec!["1 + 1"]);
}

/// Issue 9, finding 14: a line that fails after defining a variable leaves nothing behind, so
/// `:save` writes a runbook that `fleetbook check` accepts (a trailing comment included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_sessions_pass_check() {
    let w = World::start(sim(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("saved.rhai");
    let (s, out) = session(&w, &[]).await;
    let input = lines(&[
        "let a = 1; let b = nope();",
        "a",
        "let x = 5 // five",
        "let y = x + 1",
        &format!(":save {}", saved.display()),
    ]);
    drive(s, input).await;
    let text = out.text();
    assert!(text.contains("Variable not found: a") || text.contains("Undefined variable: a"), "{text}");
    let body = std::fs::read_to_string(&saved).unwrap();
    let r = Fleetbook::new().args(["check", saved.to_str().unwrap()]).run().await;
    assert_eq!(r.code, 0, "{body}\n{r:#?}");
}
