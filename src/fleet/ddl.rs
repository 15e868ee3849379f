//! Agent DDLs (the `mcorpc/ddl/v1/agent.json` schema): which actions exist, their inputs and
//! timeouts. Requests are checked against them before anything is sent.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::{FleetError, Result};

/// The DDLs shipped inside the binary: verbatim go-choria copies in `ddl/`, kept in the repo so
/// the binary builds without `../shared`; a test checks they equal the shared originals.
const BUILTIN: [(&str, &str); 3] = [
    ("rpcutil", include_str!("../../ddl/rpcutil.json")),
    ("choria_provision", include_str!("../../ddl/choria_provision.json")),
    ("choria_util", include_str!("../../ddl/choria_util.json")),
];

/// One agent's DDL.
#[derive(Debug, Clone, Deserialize)]
pub struct AgentDdl {
    pub metadata: Metadata,
    #[serde(default)]
    pub actions: Vec<Action>,
}

/// The DDL's metadata block.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub version: String,
    /// Seconds the agent may take; the RPC wait is discovery timeout plus this.
    pub timeout: u64,
}

/// One action.
#[derive(Debug, Clone, Deserialize)]
pub struct Action {
    pub action: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub input: BTreeMap<String, Input>,
    #[serde(default)]
    pub output: BTreeMap<String, Value>,
    #[serde(default)]
    pub display: String,
}

/// One declared input.
#[derive(Debug, Clone, Deserialize)]
pub struct Input {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub optional: bool,
    #[serde(default)]
    pub validation: Option<String>,
    #[serde(default)]
    pub maxlength: Option<u64>,
    #[serde(default)]
    pub default: Option<Value>,
    /// Allowed values of a `list` input.
    #[serde(default)]
    pub list: Option<Vec<Value>>,
    #[serde(default)]
    pub description: String,
    /// `validation` compiled once, when the DDL loads (`None` for named validators).
    #[serde(skip)]
    regex: Option<regex::Regex>,
}

/// What a `validation` string asks for, decided as go-choria's `validateStringValidation` does.
enum Validator<'a> {
    None,
    Shellsafe,
    Ipv4,
    Ipv6,
    Ip,
    /// A name go-choria does not know (starts with a lowercase letter): it warns and passes.
    Unsupported,
    Regex(&'a str),
}

fn validator(v: Option<&str>) -> Validator<'_> {
    match v {
        None | Some("") => Validator::None,
        Some("shellsafe") => Validator::Shellsafe,
        Some("ipv4address") => Validator::Ipv4,
        Some("ipv6address") => Validator::Ipv6,
        Some("ipaddress") => Validator::Ip,
        Some(n) if n.starts_with(|c: char| c.is_ascii_lowercase()) => Validator::Unsupported,
        Some(re) => Validator::Regex(re),
    }
}

/// Compiles a DDL regex written for Go's RE2. Go reads a `{` that does not open a valid
/// repetition (`{2}`, `{2,}`, `{2,5}`) as a literal brace (go-choria's own choria_provision DDL
/// has `^{.+}$`); Rust's regex refuses it, so such braces are escaped first.
pub fn go_regex(re: &str) -> std::result::Result<regex::Regex, regex::Error> {
    let mut out = String::with_capacity(re.len() + 8);
    let mut chars = re.char_indices().peekable();
    let mut in_class = false;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                if let Some((_, n)) = chars.next() {
                    out.push(n);
                }
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // A `]` right after `[` or `[^` is a literal member, not the end.
                if let Some(&(_, '^')) = chars.peek() {
                    out.push('^');
                    chars.next();
                }
                if let Some(&(_, ']')) = chars.peek() {
                    out.push(']');
                    chars.next();
                }
                continue;
            }
            ']' if in_class => in_class = false,
            '{' if !in_class && !is_repetition(&re[i + 1..]) => {
                out.push_str("\\{");
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    regex::Regex::new(&out)
}

/// Whether `rest` (the text after a `{`) is `n}`, `n,}` or `n,m}`.
fn is_repetition(rest: &str) -> bool {
    let Some(end) = rest.find('}') else { return false };
    let body = &rest[..end];
    let (min, max) = body.split_once(',').unwrap_or((body, "0"));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    !min.is_empty() && digits(min) && digits(max)
}

impl AgentDdl {
    /// Parses and checks a DDL: the timeout is in range and every validation regex compiles.
    /// `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<AgentDdl> {
        let err = |reason: String| FleetError::Ddl { path: origin.to_string(), reason };
        let mut ddl: AgentDdl = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
        let max = crate::config::MAX_DURATION.as_secs();
        if ddl.metadata.timeout > max {
            return Err(err(format!(
                "timeout {} is out of range; must be between 0 and {max} seconds (1 year)",
                ddl.metadata.timeout
            )));
        }
        for action in &mut ddl.actions {
            for (name, input) in &mut action.input {
                if let Validator::Regex(re) = validator(input.validation.as_deref()) {
                    let compiled = go_regex(re).map_err(|e| {
                        let why = e.to_string().lines().last().unwrap_or_default().trim().to_string();
                        err(format!(
                            "action {:?}, input {name:?}: validation regex /{re}/ does not compile: {why}",
                            action.action
                        ))
                    })?;
                    input.regex = Some(compiled);
                }
            }
        }
        Ok(ddl)
    }

    /// The action named `name`, or an error listing the valid ones.
    pub fn action(&self, name: &str) -> Result<&Action> {
        self.actions.iter().find(|a| a.action == name).ok_or_else(|| FleetError::UnknownAction {
            agent: self.metadata.name.clone(),
            action: name.to_string(),
            valid: self.action_names().join(", "),
        })
    }

    /// Names of all actions, in DDL order.
    pub fn action_names(&self) -> Vec<String> {
        self.actions.iter().map(|a| a.action.clone()).collect()
    }
}

/// The agents we know, by name.
#[derive(Debug, Clone)]
pub struct DdlRegistry {
    agents: BTreeMap<String, AgentDdl>,
}

impl DdlRegistry {
    /// The built-in DDLs (rpcutil, choria_provision, choria_util).
    pub fn builtin() -> Self {
        let mut agents = BTreeMap::new();
        for (name, text) in BUILTIN {
            // These are compiled in and covered by a test, so a parse failure is impossible.
            if let Ok(ddl) = AgentDdl::parse(text, name) {
                agents.insert(name.to_string(), ddl);
            }
        }
        DdlRegistry { agents }
    }

    /// Adds every `*.json` agent DDL found in `dir`, replacing built-ins of the same name.
    pub fn load_dir(&mut self, dir: &Path) -> Result<()> {
        let err = |reason: String| FleetError::Ddl { path: dir.display().to_string(), reason };
        let entries = std::fs::read_dir(dir).map_err(|e| err(e.to_string()))?;
        for entry in entries {
            let path = entry.map_err(|e| err(e.to_string()))?.path();
            if path.extension().and_then(|e| e.to_str()) == Some("json") {
                self.insert(load_file(&path)?);
            }
        }
        Ok(())
    }

    /// Adds (or replaces) one agent's DDL.
    pub fn insert(&mut self, ddl: AgentDdl) {
        self.agents.insert(ddl.metadata.name.clone(), ddl);
    }

    /// The DDL of `agent`, or an error listing the known agents.
    pub fn agent(&self, agent: &str) -> Result<&AgentDdl> {
        self.agents
            .get(agent)
            .ok_or_else(|| FleetError::UnknownAgent { agent: agent.to_string(), known: self.agent_names().join(", ") })
    }

    /// Names of all known agents, sorted.
    pub fn agent_names(&self) -> Vec<String> {
        self.agents.keys().cloned().collect()
    }

    /// Checks an action's inputs given as typed JSON values, fills in DDL defaults, and
    /// returns the map to send.
    pub fn validate(&self, agent: &str, action: &str, inputs: &Map<String, Value>) -> Result<Map<String, Value>> {
        let act = self.agent(agent)?.action(action)?;
        let bad = |input: &str, reason: String| FleetError::BadInput {
            agent: agent.to_string(),
            action: action.to_string(),
            input: input.to_string(),
            reason,
        };
        for name in inputs.keys() {
            if !act.input.contains_key(name) {
                let valid: Vec<&str> = act.input.keys().map(String::as_str).collect();
                let valid = if valid.is_empty() { "none".to_string() } else { valid.join(", ") };
                return Err(bad(name, format!("not an input of this action; valid inputs: {valid}")));
            }
        }
        let mut out = Map::new();
        for (name, spec) in &act.input {
            match inputs.get(name) {
                Some(v) if too_deep(v, MAX_DEPTH) => {
                    return Err(bad(name, format!("nested deeper than {MAX_DEPTH} levels of arrays and maps")))
                }
                Some(v) => {
                    let v = coerce(spec, v).map_err(|r| bad(name, r))?;
                    check(spec, &v).map_err(|r| bad(name, r))?;
                    out.insert(name.clone(), v);
                }
                // Like go-choria's SetDefaults, optional inputs get their declared default.
                // Required ones must be given: a default of "" would only fail validation.
                None if spec.optional => {
                    if let Some(d) = spec.default.as_ref().filter(|d| !d.is_null()) {
                        out.insert(name.clone(), d.clone());
                    }
                }
                None => return Err(bad(name, format!("is required ({})", spec.kind))),
            }
        }
        Ok(out)
    }

    /// Turns `key=value` strings from the command line into typed values by the DDL
    /// (`splay=1` becomes the number 1), then validates them.
    pub fn parse_cli(&self, agent: &str, action: &str, pairs: &[String]) -> Result<Map<String, Value>> {
        let act = self.agent(agent)?.action(action)?;
        let mut map = Map::new();
        for pair in pairs {
            let (k, v) = pair.split_once('=').ok_or_else(|| FleetError::BadInput {
                agent: agent.to_string(),
                action: action.to_string(),
                input: pair.clone(),
                reason: "expected key=value".to_string(),
            })?;
            if map.contains_key(k) {
                return Err(FleetError::BadInput {
                    agent: agent.to_string(),
                    action: action.to_string(),
                    input: k.to_string(),
                    reason: "given twice; give each input once".to_string(),
                });
            }
            let value = match act.input.get(k).map(|i| i.kind.as_str()) {
                Some("hash" | "array") => serde_json::from_str(v).unwrap_or(Value::String(v.to_string())),
                _ => Value::String(v.to_string()),
            };
            map.insert(k.to_string(), value);
        }
        self.validate(agent, action, &map)
    }
}

fn load_file(path: &Path) -> Result<AgentDdl> {
    let origin = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| FleetError::Ddl { path: origin.clone(), reason: e.to_string() })?;
    AgentDdl::parse(&text, &origin)
}

/// How deeply an input's arrays and maps may nest (the runbook side cuts deeper values off).
pub const MAX_DEPTH: usize = 64;

/// Whether `v` nests arrays and maps more than `limit` levels deep; stops looking there.
fn too_deep(v: &Value, limit: usize) -> bool {
    let children: Box<dyn Iterator<Item = &Value>> = match v {
        Value::Array(a) => Box::new(a.iter()),
        Value::Object(o) => Box::new(o.values()),
        _ => return false,
    };
    limit == 0 || children.into_iter().any(|c| too_deep(c, limit - 1))
}

/// Converts a value to the DDL type, accepting strings for numbers and booleans (CLI form).
fn coerce(spec: &Input, v: &Value) -> std::result::Result<Value, String> {
    let s = v.as_str();
    match spec.kind.as_str() {
        "integer" => match (v, s) {
            (Value::Number(n), _) if n.is_i64() || n.is_u64() => Ok(v.clone()),
            (_, Some(s)) => s.trim().parse::<i64>().map(Value::from).map_err(|_| format!("{s:?} is not an integer")),
            _ => Err(format!("expected an integer, got {v}")),
        },
        "number" | "float" => {
            let n = match (v, s) {
                (Value::Number(n), _) => n.as_f64(),
                (_, Some(s)) => s.trim().parse::<f64>().ok(),
                _ => None,
            }
            .ok_or_else(|| format!("expected a number, got {v}"))?;
            // Whole numbers go out as integers: Go agents unmarshal `splay` into an int and
            // reject 1.0 (choria-protocol.md §7).
            if spec.kind == "number" && n.fract() == 0.0 && n.abs() < 9.0e15 {
                Ok(Value::from(n as i64))
            } else {
                Ok(Value::from(n))
            }
        }
        "boolean" => match (v, s) {
            (Value::Bool(_), _) => Ok(v.clone()),
            (_, Some("true" | "yes" | "y" | "1")) => Ok(Value::Bool(true)),
            (_, Some("false" | "no" | "n" | "0")) => Ok(Value::Bool(false)),
            _ => Err(format!("expected a boolean, got {v}")),
        },
        "hash" if v.is_object() => Ok(v.clone()),
        "hash" => Err(format!("expected a map, got {v}")),
        "array" if v.is_array() => Ok(v.clone()),
        "array" => Err(format!("expected an array, got {v}")),
        // string and list take strings; other scalars are written out as text.
        _ => match v {
            Value::String(_) => Ok(v.clone()),
            Value::Number(_) | Value::Bool(_) => Ok(Value::String(v.to_string())),
            _ => Err(format!("expected a string, got {v}")),
        },
    }
}

/// Applies the DDL's validation, maxlength and list rules.
fn check(spec: &Input, v: &Value) -> std::result::Result<(), String> {
    if let Some(list) = &spec.list {
        if spec.kind == "list" && !list.contains(v) {
            let allowed: Vec<String> = list.iter().map(|x| x.to_string()).collect();
            return Err(format!("{v} is not one of {}", allowed.join(", ")));
        }
    }
    let Some(s) = v.as_str() else { return Ok(()) };
    if let Some(max) = spec.maxlength.filter(|m| *m > 0) {
        if s.chars().count() as u64 > max {
            return Err(format!("longer than {max} characters"));
        }
    }
    match validator(spec.validation.as_deref()) {
        Validator::None | Validator::Unsupported => Ok(()),
        Validator::Shellsafe => match s.chars().find(|c| "`$;|&><".contains(*c)) {
            Some(c) => Err(format!("contains the shell-unsafe character {c:?}")),
            None => Ok(()),
        },
        Validator::Ipv4 => s.parse::<std::net::Ipv4Addr>().map(|_| ()).map_err(|_| "not an IPv4 address".into()),
        Validator::Ipv6 => s.parse::<std::net::Ipv6Addr>().map(|_| ()).map_err(|_| "not an IPv6 address".into()),
        Validator::Ip => s.parse::<std::net::IpAddr>().map(|_| ()).map_err(|_| "not an IP address".into()),
        // Compiled when the DDL loaded; a DDL built in code without `parse` has none.
        Validator::Regex(re) => match &spec.regex {
            Some(r) if r.is_match(s) => Ok(()),
            Some(_) => Err(format!("does not match the validation /{re}/")),
            None => Err(format!("validation /{re}/ was never compiled")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builtins_load() {
        let r = DdlRegistry::builtin();
        assert_eq!(r.agent_names(), vec!["choria_provision", "choria_util", "rpcutil"]);
        assert_eq!(r.agent("choria_provision").unwrap().metadata.timeout, 20);
        assert_eq!(r.agent("rpcutil").unwrap().metadata.timeout, 2);
    }

    #[test]
    fn splay_is_sent_as_a_number() {
        let r = DdlRegistry::builtin();
        let m = r.parse_cli("choria_provision", "restart", &["token=s3cret".into(), "splay=1".into()]).unwrap();
        assert_eq!(Value::Object(m), json!({"splay": 1, "token": "s3cret"}));
    }

    #[test]
    fn errors_name_the_valid_choices() {
        let r = DdlRegistry::builtin();
        let e = r.parse_cli("choria_provision", "reboot", &[]).unwrap_err().to_string();
        assert!(e.contains("unknown action 'reboot'") && e.contains("restart") && e.contains("shutdown"), "{e}");
        let e = r.parse_cli("nope", "x", &[]).unwrap_err().to_string();
        assert!(e.contains("unknown agent 'nope'") && e.contains("rpcutil"), "{e}");
        let e = r.parse_cli("choria_provision", "restart", &["splay=1".into()]).unwrap_err().to_string();
        assert!(e.contains("'token'") && e.contains("required"), "{e}");
        let e = r.parse_cli("choria_provision", "restart", &["token=x".into(), "splay=soon".into()]).unwrap_err();
        assert!(e.to_string().contains("not a number") || e.to_string().contains("expected a number"), "{e}");
        let e = r.parse_cli("rpcutil", "ping", &["foo=1".into()]).unwrap_err().to_string();
        assert!(e.contains("valid inputs: none"), "{e}");
        let e = r.parse_cli("choria_provision", "restart", &["token=".into()]).unwrap_err().to_string();
        assert!(e.contains("does not match"), "{e}");
    }

    #[test]
    fn inputs_nest_at_most_max_depth() {
        let nest = |n: usize| (0..n).fold(json!(1), |v, _| json!([v]));
        assert!(!too_deep(&nest(MAX_DEPTH), MAX_DEPTH));
        assert!(too_deep(&nest(MAX_DEPTH + 1), MAX_DEPTH));
        assert!(!too_deep(&json!({"a": [1, {"b": 2}]}), 3));
        assert!(too_deep(&json!({"a": [1, {"b": []}]}), 3));
    }

    #[test]
    fn go_regexes_compile() {
        // go-choria's choria_provision DDL: a brace that is no repetition is a literal in RE2.
        let r = go_regex("^{.+}$").unwrap();
        assert!(r.is_match("{\"a\":1}") && !r.is_match("x"));
        assert!(go_regex("^a{2}$").unwrap().is_match("aa"));
        assert!(go_regex("^a{2,}$").unwrap().is_match("aaa"));
        assert!(go_regex("^[{]x\\{$").unwrap().is_match("{x{"));
        assert!(go_regex("^[]{]+$").unwrap().is_match("]{"));
        assert!(go_regex("^(unclosed").is_err());
    }

    #[test]
    fn named_validators_go_choria_does_not_know_pass() {
        assert!(matches!(validator(Some("hostname")), Validator::Unsupported));
        assert!(matches!(validator(Some("^x$")), Validator::Regex(_)));
    }
}
