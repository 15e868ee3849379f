//! The interactive REPL: one engine and scope for the whole session, so variables and
//! functions persist while earlier statements do not run again; multi-line input; commands;
//! completion; a history file that never holds secrets.

pub mod complete;
pub mod input;
pub mod render;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rhai::{Dynamic, Engine, Scope, AST};

use crate::engine::{self, diag, Host};
use crate::redact::{is_secret_name, MASK};

/// What one read from the user gave.
pub enum Read {
    Line(String),
    /// Ctrl-C at the prompt.
    Interrupted,
    /// Ctrl-D.
    Eof,
}

/// Where lines come from: the terminal, or a script in tests.
pub trait LineSource {
    fn read(&mut self, prompt: &str) -> Read;
    /// A line that may go to the history.
    fn remember(&mut self, _line: &str) {}
}

/// Whether the loop goes on.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

const HELP: &str = "\
Type Rhai statements; results print below. Variables and functions stay defined.
Commands:
  :help          this text
  :doc NAME      signature and documentation of a function
  :scope         the variables defined so far
  :load FILE     run a runbook into this session
  :save FILE     write this session's successful lines as a runbook
  :quit          leave (Ctrl-D also leaves)
Tab completes functions, variables, result fields (r.fa -> r.failed), agents and actions
inside rpc_batch(\"...\", \"...\") and node names from the last discovery inside strings.
Ctrl-C cancels a running call and keeps the session.";

/// A REPL session: the engine, the scope, the functions defined so far.
pub struct Session {
    engine: Engine,
    scope: Scope<'static>,
    functions: AST,
    pub host: Arc<Host>,
    /// Lines that ran without error, for `:save`.
    lines: Vec<String>,
    out: Box<dyn Write + Send>,
    /// Variables by name after each line, for completion.
    pub vars: Arc<Mutex<Vec<(String, Dynamic)>>>,
}

impl Session {
    pub fn new(host: Arc<Host>, out: Box<dyn Write + Send>) -> Session {
        let engine = engine::build(host.clone(), Some(PathBuf::from(".")));
        Session {
            engine,
            scope: Scope::new(),
            functions: AST::empty(),
            host,
            lines: Vec::new(),
            out,
            vars: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The engine (for metadata and completion).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn say(&mut self, text: &str) {
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
    }

    /// Handles one complete input: a command or Rhai source.
    pub fn handle(&mut self, input: &str) -> Flow {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Flow::Continue;
        }
        if let Some(cmd) = trimmed.strip_prefix(':') {
            return self.command(cmd);
        }
        if self.eval(input, "<repl>") {
            self.lines.push(input.trim_end().to_string());
        }
        Flow::Continue
    }

    /// Runs source in the session; true when it succeeded.
    fn eval(&mut self, src: &str, name: &str) -> bool {
        self.host.interrupt.reset();
        self.host.clear_stop();
        let ast = match self.engine.compile_with_scope(&self.scope, src) {
            Ok(a) => a,
            Err(e) => {
                let text = diag::render(name, src, e.position(), &e.err_type().to_string());
                self.say(&text);
                return false;
            }
        };
        let combined = self.functions.merge(&ast);
        let before = self.scope.len();
        let result = self.engine.eval_ast_with_scope::<Dynamic>(&mut self.scope, &combined);
        if result.is_ok() {
            // Keep the functions, never the statements: earlier lines do not run again.
            self.functions = combined.clone_functions_only();
        } else {
            // A failed line is not saved, so it leaves no variables (or functions) behind
            // either: what `:save` writes defines everything later lines use.
            self.scope.rewind(before);
        }
        self.snapshot();
        match result {
            Ok(v) if v.is_unit() => true,
            Ok(v) => {
                let text = render::render(&v);
                self.say(&text);
                true
            }
            Err(e) => {
                let text = match (self.host.lost(), self.host.stopped()) {
                    (Some(reason), _) => format!("the broker is gone: {reason}"),
                    (None, Some(reason)) => crate::error::stopped(&reason),
                    (None, None) => {
                        let (msg, pos) = diag::explained(&e, &self.engine, None, src);
                        diag::render(name, src, pos, &msg)
                    }
                };
                self.say(&text);
                false
            }
        }
    }

    fn snapshot(&self) {
        let vars: Vec<(String, Dynamic)> = self.scope.iter().map(|(n, _, v)| (n.to_string(), v)).collect();
        *self.vars.lock().unwrap_or_else(|p| p.into_inner()) = vars;
    }

    fn command(&mut self, cmd: &str) -> Flow {
        let (name, arg) = cmd.split_once(char::is_whitespace).map(|(a, b)| (a, b.trim())).unwrap_or((cmd, ""));
        match name {
            "quit" | "q" | "exit" => return Flow::Quit,
            "help" | "h" => self.say(HELP),
            "doc" => {
                let text = doc(&self.engine, arg);
                self.say(&text);
            }
            "scope" => {
                let vars: Vec<String> = self
                    .scope
                    .iter()
                    .map(|(n, c, v)| {
                        let value = if is_secret_name(n) && v.is_string() { MASK.to_string() } else { short(&v) };
                        let kind = self.engine.map_type_name(v.type_name());
                        format!("{}{n}: {kind} = {value}", if c { "const " } else { "" })
                    })
                    .collect();
                let text = if vars.is_empty() { "(no variables)".to_string() } else { vars.join("\n") };
                self.say(&text);
            }
            "load" => self.load(arg),
            "save" => self.save(arg),
            other => self.say(&format!("unknown command :{other}; :help lists the commands")),
        }
        Flow::Continue
    }

    fn load(&mut self, file: &str) {
        if file.is_empty() {
            return self.say(":load needs a file");
        }
        match std::fs::read_to_string(file) {
            Ok(src) => {
                let body = engine::strip_shebang(&src);
                if self.eval(&body, file) {
                    self.lines.push(format!("// :load {file}\n{}", body.trim()));
                    self.say(&format!("loaded {file}"));
                }
            }
            Err(e) => self.say(&format!("cannot read {file}: {e}")),
        }
    }

    fn save(&mut self, file: &str) {
        if file.is_empty() {
            return self.say(":save needs a file");
        }
        // Lines typed without a final `;` still make statements of their own in a file.
        let statements: Vec<String> = self
            .lines
            .iter()
            .map(|l| {
                let t = l.trim_end();
                let last = t.lines().last().unwrap_or("").trim();
                if t.ends_with(';') || t.ends_with('}') || last.starts_with("//") {
                    t.to_string()
                } else if last.contains("//") {
                    // `x + 1 // note`: a `;` after it would be part of the comment.
                    format!("{t}\n;")
                } else {
                    format!("{t};")
                }
            })
            .collect();
        let body = format!("// Saved from a fleetbook REPL session.\n\n{}\n", statements.join("\n"));
        match std::fs::write(file, body) {
            Ok(()) => self.say(&format!("saved {} line(s) to {file}", self.lines.len())),
            Err(e) => self.say(&format!("cannot write {file}: {e}")),
        }
    }

    /// The prompt loop: reads (with continuation lines) until `:quit` or Ctrl-D.
    pub fn run(&mut self, src: &mut dyn LineSource) {
        self.say("fleetbook REPL; :help for help, Ctrl-D to leave");
        loop {
            let mut buf = String::new();
            let mut prompt = "fleetbook> ";
            let input = loop {
                match src.read(prompt) {
                    Read::Eof if buf.is_empty() => return,
                    Read::Eof => break buf,
                    Read::Interrupted if buf.is_empty() => {
                        self.say("(To leave, press Ctrl-D or type :quit)");
                        break String::new();
                    }
                    Read::Interrupted => {
                        // Ctrl-C abandons an unfinished multi-line input.
                        break String::new();
                    }
                    Read::Line(l) => {
                        buf.push_str(&l);
                        buf.push('\n');
                        if buf.trim_start().starts_with(':') || !input::needs_more(&buf) {
                            break buf;
                        }
                        prompt = "      ...> ";
                    }
                }
            };
            if input.trim().is_empty() {
                continue;
            }
            if input::keep_in_history(&input) {
                src.remember(input.trim_end());
            }
            if self.handle(&input) == Flow::Quit {
                return;
            }
        }
    }
}

fn short(v: &Dynamic) -> String {
    let s = render::inline(v);
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(57).collect::<String>())
    } else {
        s
    }
}

/// `:doc NAME`: signatures and doc comments from the engine metadata.
pub fn doc(engine: &Engine, name: &str) -> String {
    if name.is_empty() {
        return ":doc needs a function name".into();
    }
    let Ok(json) = engine.gen_fn_metadata_to_json(false) else { return "no metadata".into() };
    let meta: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    let mut out = Vec::new();
    for f in meta["functions"].as_array().into_iter().flatten().filter(|f| f["name"] == name) {
        let sig = f["signature"].as_str().unwrap_or(name).to_string();
        let comments: Vec<String> = f["docComments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str())
            .flat_map(|c| c.lines().map(|l| l.trim_start_matches("///").trim().to_string()).collect::<Vec<_>>())
            .collect();
        out.push(format!("{sig}\n  {}", comments.join("\n  ")));
    }
    if out.is_empty() {
        format!("no function named {name}")
    } else {
        out.join("\n\n")
    }
}
