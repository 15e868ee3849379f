//! The command line as a person meets it: each command's help, completion scripts, the man
//! page, flags a Choria user would misread, and the commands the docs show.

use crate::support::Fleetbook;

/// The visible commands, from the definition the binary parses with.
fn commands() -> Vec<String> {
    fleetbook::cli::Cli::clap()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect()
}

async fn help(args: &[&str]) -> String {
    let r = Fleetbook::new().args(args.iter().copied()).arg("--help").run().await;
    r.assert_code(0);
    r.stdout
}

/// Does `help` list option `--flag` (as an option, not in prose)?
fn lists(help: &str, flag: &str) -> bool {
    help.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with(&format!("{flag} "))
            || l.starts_with(&format!("{flag},"))
            || l == flag
            || l.contains(&format!(", {flag} "))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_command_help_shows_only_the_options_it_uses() {
    let check = help(&["check"]).await;
    for flag in ["--server", "--tls-ca", "--insecure", "--sim", "--sim-fail", "--client-identity"] {
        assert!(!lists(&check, flag), "check --help lists {flag}:\n{check}");
    }
    assert!(lists(&check, "--ddl-dir") && lists(&check, "--lib"), "{check}");

    let metrics = help(&["metrics"]).await;
    for flag in ["--server", "--tls-ca", "--tls-cert", "--tls-key", "--jwt", "--creds", "--insecure", "--ddl-dir"] {
        assert!(!lists(&metrics, flag), "metrics --help lists {flag}:\n{metrics}");
    }
    assert!(lists(&metrics, "--sim"), "{metrics}");

    let req = help(&["req"]).await;
    for flag in ["--server", "--tls-ca", "--insecure", "--sim", "--sim-fail", "--ddl-dir", "--batch"] {
        assert!(lists(&req, flag), "req --help lacks {flag}:\n{req}");
    }
    // The node filters under their own heading, as choria (and mcollective) spell them.
    assert!(
        req.contains("Node selection:") && req.contains("Connection:") && req.contains("Simulated fleet:"),
        "{req}"
    );
    assert!(req.contains("-I, --wi <IDENTITY>") && req.contains("--with-identity"), "{req}");
    assert!(req.contains("FLEETBOOK_PROVISION_TOKEN"), "{req}");
    // Every positional argument says what it is.
    assert!(req.contains("<AGENT>  The agent to call") || req.contains("<AGENT>\n          The agent"), "{req}");

    let sim = help(&["sim"]).await;
    assert!(lists(&sim, "--server") && lists(&sim, "--sim-fail"), "{sim}");
    assert!(!lists(&sim, "--tls-ca") && !lists(&sim, "--sim"), "{sim}");

    let runs = help(&["runs"]).await;
    assert!(lists(&runs, "--server") && !lists(&runs, "--sim-fail"), "{runs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_help_ends_with_examples_and_exit_codes() {
    for c in commands() {
        // -h: one line per argument, its description beside it.
        let r = Fleetbook::new().args([c.as_str(), "-h"]).run().await;
        r.assert_code(0);
        let h = r.stdout;
        assert!(h.contains("Examples:\n  fleetbook "), "{c} --help has no examples:\n{h}");
        assert!(h.contains("Exit codes:"), "{c} --help has no exit codes:\n{h}");
        // No argument without a description: clap prints a bare `<NAME>` line then.
        for l in h.lines().skip_while(|l| !l.starts_with("Arguments:")).skip(1).take_while(|l| !l.is_empty()) {
            assert!(l.trim().contains("  "), "{c}: argument without a description: {l:?}\n{h}");
        }
    }
    let top = help(&[]).await;
    for var in [
        "FLEETBOOK_SERVER",
        "FLEETBOOK_PROVISION_TOKEN",
        "FLEETBOOK_NATS_SERVER",
        "FLEETBOOK_HISTORY",
        "FLEETBOOK_FIPS",
        "FLEETBOOK_JOURNAL_HEARTBEAT",
    ] {
        assert!(top.contains(var), "fleetbook --help does not name {var}:\n{top}");
    }
    assert!(help(&["repl"]).await.contains("FLEETBOOK_HISTORY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_and_man_cover_every_command() {
    let (bash, zsh, fish, man) = tokio::join!(
        Fleetbook::new().args(["completions", "bash"]).run(),
        Fleetbook::new().args(["completions", "zsh"]).run(),
        Fleetbook::new().args(["completions", "fish"]).run(),
        Fleetbook::new().args(["man"]).run(),
    );
    for (what, r) in [("bash", &bash), ("zsh", &zsh), ("fish", &fish), ("man", &man)] {
        r.assert_code(0);
        for c in commands() {
            assert!(r.stdout.contains(&c), "{what} does not mention {c}");
        }
    }
    // `req <TAB>` offers the built-in agents and their actions.
    let req = bash.stdout.lines().skip_while(|l| !l.contains("fleetbook__subcmd__req)")).nth(1).unwrap_or_default();
    for name in ["rpcutil", "choria_provision", "choria_util", "scout", "ping", "restart", "reprovision"] {
        assert!(req.split_whitespace().any(|w| w.trim_matches('"') == name), "bash req completion lacks {name}: {req}");
    }
    // And bash itself, given the script, completes `fleetbook req <TAB>` with them.
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), &bash.stdout).unwrap();
    let complete = |line: &str| {
        let words: Vec<&str> = line.split(' ').collect();
        let prog = format!(
            "source {}; COMP_WORDS=({}); COMP_CWORD={}; _fleetbook fleetbook '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.path().display(),
            words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" "),
            words.len() - 1,
            words[words.len() - 1],
            words[words.len() - 2],
        );
        let out = std::process::Command::new("bash").args(["-c", &prog]).output().expect("bash runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_string).collect::<Vec<_>>()
    };
    let offered = complete("fleetbook req ");
    assert!(
        offered.contains(&"rpcutil".to_string()) && offered.contains(&"choria_provision".to_string()),
        "{offered:?}"
    );
    assert!(complete("fleetbook check --s").is_empty(), "check offers no --server");
    assert!(complete("fleetbook req rpcutil ping --ser").contains(&"--server".to_string()));
    // A command offers only its own options.
    let check = bash.stdout.lines().skip_while(|l| !l.contains("fleetbook__subcmd__check)")).nth(1).unwrap_or_default();
    assert!(check.contains("--ddl-dir") && !check.contains("--server"), "{check}");
    assert!(man.stdout.starts_with(".ie") && man.stdout.contains(".SH NAME"), "{}", man.stdout);
    assert!(man.stdout.contains("Exit codes"), "the man page carries the exit codes");

    let dir = tempfile::tempdir().unwrap();
    Fleetbook::new().args(["man", "--dir"]).arg_path(dir.path()).run().await.assert_code(0);
    for c in commands() {
        assert!(dir.path().join(format!("fleetbook-{c}.1")).exists(), "no page for {c}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_that_reads_like_a_node_filter_is_refused() {
    // Refused before anything connects: the broker named here does not exist.
    for args in [
        &["--server", "nats://127.0.0.1:1", "--insecure", "req", "rpcutil", "ping", "--identity", "n001"][..],
        &["--server", "nats://127.0.0.1:1", "--insecure", "--identity=n001", "discover"][..],
    ] {
        let r = Fleetbook::new().args(args.iter().copied()).run().await;
        r.assert_code(2);
        assert!(r.stderr.contains("did you mean -I n001?"), "{}", r.stderr);
        assert!(r.stderr.contains("--client-identity sets fleetbook's own identity"), "{}", r.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_reaches_its_provisioner_without_a_url() {
    let (metrics, election, none) = tokio::join!(
        Fleetbook::new().args(["--sim", "3", "metrics", "--json"]).run(),
        Fleetbook::new().args(["--sim", "3", "election", "view"]).run(),
        Fleetbook::new().args(["metrics"]).run(),
    );
    metrics.assert_code(0);
    let names: Vec<String> =
        metrics.json().as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_string()).collect();
    assert!(names.iter().any(|n| n.starts_with("choria_provisioner_")), "{names:?}");
    // Right after start: the first campaign is waited for, so there is a leader to show.
    election.assert_code(0);
    assert!(election.stdout.contains("│ provisioner │ provisioner"), "{election:?}");
    none.assert_code(2);
    assert!(none.stderr.contains("--sim N"), "{}", none.stderr);
}

/// The code lines of a Markdown text (fenced or indented), with their line numbers, a line
/// ending in `\` joined with the next.
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let (mut fenced, mut open) = (false, false);
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let code = fenced || line.starts_with("    ");
        let trimmed = line.trim();
        match out.last_mut() {
            Some((_, last)) if open && code => last.push_str(&format!(" {}", trimmed.trim_end_matches('\\'))),
            _ if code => out.push((n + 1, trimmed.trim_end_matches('\\').to_string())),
            _ => {}
        }
        open = code && trimmed.ends_with('\\');
    }
    out
}

/// Every `fleetbook ...` command line in the README and docs parses with today's flags.
#[test]
fn commands_in_the_docs_parse() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        files.push(e.unwrap().path());
    }
    let mut checked = 0;
    for file in files.iter().filter(|f| f.extension().is_some_and(|e| e == "md")) {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in code_lines(&text) {
            let line = line.trim_start_matches("$ ");
            // A command, not output such as the REPL's banner "fleetbook REPL; ...".
            let second = line.strip_prefix("fleetbook ").and_then(|r| r.chars().next());
            if !second.is_some_and(|c| c == '-' || c.is_ascii_lowercase()) {
                continue;
            }
            // A comment ends the command; a pipe starts the next one.
            let line = line.split(" #").next().unwrap();
            for part in line.split(" | ").map(str::trim).filter(|p| p.starts_with("fleetbook ")) {
                let part = part.split(" > ").next().unwrap().split(" < ").next().unwrap();
                let words =
                    shlex::split(part).unwrap_or_else(|| panic!("{}:{n}: cannot split {part:?}", file.display()));
                if let Err(e) = fleetbook::cli::Cli::try_parse_args(&words) {
                    if !matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion)
                    {
                        panic!("{}:{n}: {part}\n{e}", file.display());
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 40, "only {checked} command lines found");
}

/// Every command at every depth (`election view`, `governor add`, ...), as the binary
/// builds them: (path, command).
fn all_commands() -> Vec<(String, clap::Command)> {
    fn walk(prefix: &str, cmd: &clap::Command, out: &mut Vec<(String, clap::Command)>) {
        for sc in cmd.get_subcommands().filter(|c| !c.is_hide_set() && c.get_name() != "help") {
            let path = format!("{prefix} {}", sc.get_name()).trim().to_string();
            out.push((path.clone(), sc.clone()));
            walk(&path, sc, out);
        }
    }
    let mut cmd = fleetbook::cli::Cli::clap();
    cmd.build();
    let mut out = Vec::new();
    walk("", &cmd, &mut out);
    out
}

/// Nested commands too: examples, exit codes, a description for every argument, and every
/// example parses.
#[test]
fn every_help_at_every_depth_is_complete_and_its_examples_parse() {
    let mut examples = 0;
    let mut top = fleetbook::cli::Cli::clap();
    let top_help = top.render_help().to_string();
    for (path, mut cmd) in all_commands().into_iter().chain([("".to_string(), fleetbook::cli::Cli::clap())]) {
        let after = cmd.get_after_help().map(|s| s.to_string()).unwrap_or_default();
        assert!(after.contains("Examples:\n  fleetbook ") && after.contains("Exit codes:"), "{path}: {after}");
        for arg in cmd.get_positionals() {
            assert!(arg.get_help().is_some(), "{path}: argument {} has no description", arg.get_id());
        }
        let _ = cmd.render_help();
        for line in after.lines().filter_map(|l| l.trim_start().strip_prefix("fleetbook ")) {
            let line = line.split(" #").next().unwrap().split(" > ").next().unwrap().split(" | ").next().unwrap();
            let words = shlex::split(&format!("fleetbook {line}")).unwrap();
            if let Err(e) = fleetbook::cli::Cli::try_parse_args(&words) {
                panic!("{path}: example `fleetbook {line}` does not parse:\n{e}");
            }
            examples += 1;
        }
    }
    assert!(examples > 40, "{examples} examples");
    assert!(top_help.contains("Commands:"), "{top_help}");
}
