//! Tab completion: API functions with their parameters as a hint, variables in scope, map
//! keys of results (`r.fa` -> `r.failed`), agents and actions inside `rpc_batch("...")`,
//! and node names from the last discovery inside other strings.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rhai::{Dynamic, Engine, Map};

use crate::fleet::ddl::DdlRegistry;

/// One completion: what the list shows and what replaces the word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub display: String,
    pub replacement: String,
}

/// Everything completion draws from.
pub struct Completer {
    /// (name, "name(param, param)") of every registered or script function.
    functions: Vec<(String, String)>,
    agents: BTreeMap<String, Vec<String>>,
    vars: Arc<Mutex<Vec<(String, Dynamic)>>>,
    nodes: Arc<dyn Fn() -> Vec<String> + Send + Sync>,
}

const KEYWORDS: [&str; 14] =
    ["let", "const", "fn", "if", "else", "for", "in", "while", "loop", "break", "continue", "return", "try", "catch"];

impl Completer {
    pub fn new(
        engine: &Engine,
        ddl: &DdlRegistry,
        vars: Arc<Mutex<Vec<(String, Dynamic)>>>,
        nodes: Arc<dyn Fn() -> Vec<String> + Send + Sync>,
    ) -> Completer {
        let meta: serde_json::Value =
            engine.gen_fn_metadata_to_json(false).ok().and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default();
        let mut functions: Vec<(String, String)> = meta["functions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| {
                let name = f["name"].as_str()?.to_string();
                if !name.chars().next()?.is_alphabetic() {
                    return None;
                }
                let params: Vec<String> = f["params"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["name"].as_str().map(str::to_string))
                    .collect();
                Some((name.clone(), format!("{name}({})", params.join(", "))))
            })
            .collect();
        functions.sort();
        functions.dedup();
        let agents = ddl
            .agent_names()
            .into_iter()
            .map(|a| (a.clone(), ddl.agent(&a).map(|d| d.action_names()).unwrap_or_default()))
            .collect();
        Completer { functions, agents, vars, nodes }
    }

    /// Completions for `line` with the cursor at `pos`: the start of the word and the items.
    pub fn complete(&self, line: &str, pos: usize) -> (usize, Vec<Item>) {
        let before = &line[..pos];
        if let Some(start) = open_string(before) {
            let word = &before[start..];
            return (start, self.in_string(&before[..start.saturating_sub(1)], word));
        }
        let start = before.rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.')).map(|i| i + 1).unwrap_or(0);
        let word = &before[start..];
        if let Some((var, field)) = word.rsplit_once('.') {
            let dot = start + var.len() + 1;
            return (dot, self.fields(var, field));
        }
        let mut items: Vec<Item> = Vec::new();
        let vars = self.vars.lock().map(|v| v.clone()).unwrap_or_default();
        for (name, _) in vars.iter().filter(|(n, _)| n.starts_with(word)) {
            items.push(Item { display: name.clone(), replacement: name.clone() });
        }
        let mut seen = std::collections::HashSet::new();
        for (name, sig) in self.functions.iter().filter(|(n, _)| n.starts_with(word)) {
            if seen.insert(sig.clone()) {
                items.push(Item { display: sig.clone(), replacement: format!("{name}(") });
            }
        }
        for k in KEYWORDS.iter().filter(|k| k.starts_with(word) && !word.is_empty()) {
            items.push(Item { display: k.to_string(), replacement: k.to_string() });
        }
        // Several overloads share a name: complete the name once, show every signature.
        (start, items)
    }

    /// Keys of a map variable (`r.fa` -> `failed`), nested (`r.failed.n0`).
    fn fields(&self, path: &str, partial: &str) -> Vec<Item> {
        let vars = self.vars.lock().map(|v| v.clone()).unwrap_or_default();
        let mut parts = path.split('.');
        let Some(root) = parts.next().and_then(|r| vars.iter().find(|(n, _)| n == r).map(|(_, v)| v.clone())) else {
            return Vec::new();
        };
        let mut cur = root;
        for p in parts {
            let next = cur.read_lock::<Map>().and_then(|m| m.get(p).cloned());
            match next {
                Some(n) => cur = n,
                None => return Vec::new(),
            }
        }
        let Some(m) = cur.read_lock::<Map>() else { return Vec::new() };
        m.keys()
            .filter(|k| k.starts_with(partial))
            .map(|k| Item { display: k.to_string(), replacement: k.to_string() })
            .collect()
    }

    /// Inside a string: agent or action names in `rpc_batch(`, node names elsewhere.
    fn in_string(&self, before_quote: &str, word: &str) -> Vec<Item> {
        let candidates: Vec<String> = match rpc_arg(before_quote) {
            Some((0, _)) => self.agents.keys().cloned().collect(),
            Some((1, Some(agent))) => self.agents.get(&agent).cloned().unwrap_or_default(),
            _ => (self.nodes)(),
        };
        candidates
            .into_iter()
            .filter(|c| c.starts_with(word))
            .map(|c| Item { display: c.clone(), replacement: c })
            .collect()
    }
}

/// The byte index after an unclosed `"` before the cursor, if any.
fn open_string(before: &str) -> Option<usize> {
    let mut open = None;
    let mut escaped = false;
    for (i, c) in before.char_indices() {
        match c {
            '\\' if open.is_some() => escaped = !escaped,
            '"' if !escaped => open = if open.is_some() { None } else { Some(i + 1) },
            _ => escaped = false,
        }
    }
    open
}

/// When the text ends inside `rpc_batch(`: which argument, and the agent if it is a literal.
fn rpc_arg(before: &str) -> Option<(usize, Option<String>)> {
    let call = before.rfind("rpc_batch(")?;
    let args = &before[call + "rpc_batch(".len()..];
    if args.contains(')') {
        return None;
    }
    let index = args.matches(',').count();
    let agent = args.split(',').next().map(|a| a.trim().trim_matches('"').to_string()).filter(|a| !a.is_empty());
    Some((index, agent))
}

/// The rustyline helper around [`Completer`].
pub struct Helper(pub Completer);

impl rustyline::completion::Completer for Helper {
    type Candidate = rustyline::completion::Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Self::Candidate>)> {
        let (start, items) = self.0.complete(line, pos);
        Ok((
            start,
            items
                .into_iter()
                .map(|i| rustyline::completion::Pair { display: i.display, replacement: i.replacement })
                .collect(),
        ))
    }
}

impl rustyline::hint::Hinter for Helper {
    type Hint = String;
}

impl rustyline::highlight::Highlighter for Helper {}

impl rustyline::validate::Validator for Helper {}

impl rustyline::Helper for Helper {}
