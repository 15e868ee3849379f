//! `fleetbook repl`: the REPL on a terminal, with completion and a history file.

use std::path::PathBuf;
use std::sync::Arc;

use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;

use crate::cli::EngineArgs;
use crate::config::Settings;
use crate::engine::{Host, RunSettings, TerminalPrompter};
use crate::env::FleetEnv;
use crate::error::Error;
use crate::interrupt::Interrupt;
use crate::progress::Reporter;
use crate::repl::complete::{Completer, Helper};
use crate::repl::{LineSource, Read, Session};

/// `$FLEETBOOK_HISTORY`, else `$XDG_DATA_HOME/fleetbook/history`, else
/// `~/.local/share/fleetbook/history`.
pub(crate) fn history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FLEETBOOK_HISTORY") {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(base.join("fleetbook").join("history"))
}

struct Terminal {
    rl: rustyline::Editor<Helper, FileHistory>,
    history: Option<PathBuf>,
}

impl LineSource for Terminal {
    fn read(&mut self, prompt: &str) -> Read {
        match self.rl.readline(prompt) {
            Ok(l) => Read::Line(l),
            Err(ReadlineError::Interrupted) => Read::Interrupted,
            Err(_) => Read::Eof,
        }
    }

    fn remember(&mut self, line: &str) {
        let _ = self.rl.add_history_entry(line);
        if let Some(p) = &self.history {
            // Written as we go, so a killed session keeps its history.
            let _ = self.rl.append_history(p);
        }
    }
}

/// What `repl` was asked for.
pub(crate) struct ReplOptions {
    engine: RunSettings,
}

impl ReplOptions {
    /// The engine settings for a session against `settings`; nothing to check.
    pub(crate) fn from_cli(yes: bool, engine: &EngineArgs, settings: &Settings) -> ReplOptions {
        let mut engine = super::options::engine_for(engine, settings);
        engine.yes = yes;
        ReplOptions { engine }
    }
}

/// Opens the fleet and runs the REPL until `:quit` or Ctrl-D.
pub(crate) async fn run(settings: Settings, a: ReplOptions, interrupt: Interrupt) -> Result<(), Error> {
    let mut rs = a.engine;
    let ddl = settings.ddl.clone();
    let env = FleetEnv::open(settings).await?;
    if let Some(url) = env.sim.as_ref().and_then(|s| s.metrics_url()) {
        rs.arg_defaults.insert("metrics_url".into(), url);
    }
    rs.confirm_mutations = true;
    interrupt.set_immediate(true);
    let reporter = Reporter::for_terminal(false);
    let rt = tokio::runtime::Handle::current();
    let prompter = Box::new(TerminalPrompter { interrupt: interrupt.clone() });
    let host = Host::new(rt, Some(env.fleet.clone()), reporter, interrupt, rs, prompter);
    let result = crate::engine::thread::on_script_thread(move || -> Result<(), String> {
        let mut session = Session::new(host.clone(), Box::new(std::io::stdout()));
        let h = host.clone();
        let nodes: Arc<dyn Fn() -> Vec<String> + Send + Sync> =
            Arc::new(move || h.last_nodes.lock().map(|n| n.clone()).unwrap_or_default());
        let completer = Completer::new(session.engine(), &ddl, session.vars.clone(), nodes);
        let config = rustyline::Config::builder()
            .auto_add_history(false)
            .completion_type(rustyline::CompletionType::List)
            .build();
        let mut rl = rustyline::Editor::<Helper, FileHistory>::with_config(config).map_err(|e| e.to_string())?;
        rl.set_helper(Some(Helper(completer)));
        let history = history_path();
        if let Some(p) = &history {
            if let Some(dir) = p.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = rl.load_history(p);
        }
        session.run(&mut Terminal { rl, history });
        Ok(())
    })
    .await
    .map_err(|e| Error::Internal { message: format!("the REPL thread failed: {e}") })?;
    result.map_err(|message| Error::Internal { message: format!("the REPL cannot use the terminal: {message}") })?;
    drop(env);
    Ok(())
}
