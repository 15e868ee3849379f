//! `fleetbook check FILE...`: compile and lint runbooks without a fleet.

use std::path::PathBuf;

use crate::cli::EngineArgs;
use crate::engine::{self, Host, RunSettings, TerminalPrompter};
use crate::error::Error;
use crate::fleet::ddl::DdlRegistry;
use crate::interrupt::Interrupt;
use crate::progress::Reporter;

/// What `check` was asked for, validated.
pub(crate) struct CheckOptions {
    files: Vec<PathBuf>,
    /// The built-in DDLs and those of `--ddl-dir`, to lint RPC calls against.
    ddl: DdlRegistry,
    engine: RunSettings,
}

impl CheckOptions {
    /// Loads the `--ddl-dir` DDLs: one that does not load is an error before any file is checked.
    pub(crate) fn from_cli(
        files: Vec<PathBuf>,
        engine: &EngineArgs,
        ddl_dirs: &[PathBuf],
    ) -> Result<CheckOptions, Error> {
        let mut ddl = DdlRegistry::builtin();
        for dir in ddl_dirs {
            ddl.load_dir(dir)?;
        }
        Ok(CheckOptions { files, ddl, engine: super::options::engine(engine) })
    }
}

/// Checks each file; prints `ok FILE` or the rendered problems. Fails if any file fails; a
/// file that cannot be read is a usage error (exit 2), as it is for `run`.
pub(crate) async fn run(a: CheckOptions) -> Result<(), Error> {
    let CheckOptions { files, ddl, engine: settings } = a;
    let ddl = &ddl;
    let mut failed = Vec::new();
    let mut unreadable = Vec::new();
    for file in &files {
        let dir = file.parent().map(|d| if d.as_os_str().is_empty() { PathBuf::from(".") } else { d.to_path_buf() });
        let reporter = Reporter::new(false, false);
        let rt = tokio::runtime::Handle::current();
        let prompter = Box::new(TerminalPrompter { interrupt: Interrupt::new() });
        let host = Host::new(rt, None, reporter, Interrupt::new(), settings.clone(), prompter);
        let engine = engine::build(host, dir);
        match super::run::compile(&engine, file, ddl) {
            Ok(_) => println!("ok {}", file.display()),
            Err(Error::Usage { message }) => unreadable.push(message),
            Err(e) => {
                eprintln!("{e}");
                failed.push(file.display().to_string());
            }
        }
    }
    if !unreadable.is_empty() {
        if !failed.is_empty() {
            eprintln!("{}", Error::CheckFailed { files: failed });
        }
        return Err(Error::Usage { message: unreadable.join("\n") });
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::CheckFailed { files: failed })
    }
}
