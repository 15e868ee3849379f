//! `fleetbook check FILE...`: compile and lint runbooks without a fleet; with `--arg`, also
//! refuse argument names the runbook never reads; with `--json`, say it as one JSON object.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use serde_json::json;

use crate::cli::EngineArgs;
use crate::engine::{self, Host, RunSettings, TerminalPrompter};
use crate::error::Error;
use crate::fleet::ddl::DdlRegistry;
use crate::interrupt::Interrupt;
use crate::progress::Reporter;

/// What `check` was asked for, validated.
pub(crate) struct CheckOptions {
    files: Vec<PathBuf>,
    /// `--arg` values, each name once.
    args: BTreeMap<String, String>,
    json: bool,
    /// The built-in DDLs and those of `--ddl-dir`, to lint RPC calls against.
    ddl: DdlRegistry,
    engine: RunSettings,
}

impl CheckOptions {
    /// Loads the `--ddl-dir` DDLs (one that does not load is an error before any file is
    /// checked) and parses the `--arg`s as `run` does.
    pub(crate) fn from_cli(
        files: Vec<PathBuf>,
        args: &[String],
        json: bool,
        engine: &EngineArgs,
        ddl_dirs: &[PathBuf],
    ) -> Result<CheckOptions, Error> {
        let mut ddl = DdlRegistry::builtin();
        for dir in ddl_dirs {
            ddl.load_dir(dir)?;
        }
        let args = super::run::parse_args(args)?;
        Ok(CheckOptions { files, args, json, ddl, engine: super::options::engine(engine) })
    }
}

/// One file's problems, each at a line and column (0 when the place is not known).
struct Checked {
    file: String,
    problems: Vec<(usize, usize, String)>,
    /// Rendered for a person: file:line:col, the source line and a caret.
    rendered: Vec<String>,
}

/// Checks one readable file.
fn check_file(file: &std::path::Path, a: &CheckOptions) -> Result<Checked, Error> {
    let dir = file.parent().map(|d| if d.as_os_str().is_empty() { PathBuf::from(".") } else { d.to_path_buf() });
    let reporter = Reporter::new(false, false);
    let rt = tokio::runtime::Handle::current();
    let prompter = Box::new(TerminalPrompter { interrupt: Interrupt::new() });
    let host = Host::new(rt, None, reporter.clone(), Interrupt::new(), a.engine.clone(), prompter);
    let eng = engine::build(host, dir.clone());
    let analysis = super::run::analyse(&eng, file, &a.ddl)?;
    let mut problems: Vec<(rhai::Position, String)> = analysis.problems.clone();
    if let (Some(ast), true, false) = (&analysis.ast, problems.is_empty(), a.args.is_empty()) {
        let dirs: Vec<PathBuf> = dir.iter().chain(a.engine.lib_dirs.iter()).cloned().collect();
        let used = engine::args::collect(&eng, ast, &analysis.shown, &dirs);
        if let Err(e) = super::run::check_args(&used, &a.args, &analysis.shown, &reporter) {
            problems.push((rhai::Position::NONE, e.to_string()));
        }
    }
    let rendered =
        problems.iter().map(|(pos, msg)| engine::diag::render(&analysis.shown, &analysis.source, *pos, msg)).collect();
    let problems =
        problems.into_iter().map(|(pos, msg)| (pos.line().unwrap_or(0), pos.position().unwrap_or(0), msg)).collect();
    Ok(Checked { file: analysis.shown, problems, rendered })
}

/// Checks each file; prints `ok FILE` or the rendered problems (or one JSON object). Fails if
/// any file fails; a file that cannot be read is a usage error (exit 2), as it is for `run`.
pub(crate) async fn run(a: CheckOptions) -> Result<(), Error> {
    let mut checked = Vec::new();
    let mut unreadable = Vec::new();
    for file in &a.files {
        match check_file(file, &a) {
            Ok(c) => checked.push(c),
            Err(Error::Usage { message }) => unreadable.push((file.display().to_string(), message)),
            Err(e) => return Err(e),
        }
    }
    let failed: Vec<String> = checked.iter().filter(|c| !c.problems.is_empty()).map(|c| c.file.clone()).collect();
    if a.json {
        let mut files: Vec<serde_json::Value> = checked
            .iter()
            .map(|c| {
                let problems: Vec<serde_json::Value> =
                    c.problems.iter().map(|(l, col, m)| json!({"line": l, "column": col, "message": m})).collect();
                json!({"file": c.file, "ok": problems.is_empty(), "problems": problems})
            })
            .collect();
        for (file, message) in &unreadable {
            files.push(json!({"file": file, "ok": false, "problems": [{"line": 0, "column": 0, "message": message}]}));
        }
        writeln!(std::io::stdout().lock(), "{}", json!({ "files": files }))?;
    } else {
        for c in &checked {
            match c.rendered.is_empty() {
                true => println!("ok {}", c.file),
                false => eprintln!("{}", c.rendered.join("\n\n")),
            }
        }
    }
    if !unreadable.is_empty() {
        if !failed.is_empty() && !a.json {
            eprintln!("{}", Error::CheckFailed { files: failed });
        }
        let messages: Vec<String> = unreadable.into_iter().map(|(_, m)| m).collect();
        return Err(Error::Usage { message: messages.join("\n") });
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::CheckFailed { files: failed })
    }
}
