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
}

impl AgentDdl {
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
            if let Ok(ddl) = serde_json::from_str::<AgentDdl>(text) {
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
                let ddl = load_file(&path)?;
                self.agents.insert(ddl.metadata.name.clone(), ddl);
            }
        }
        Ok(())
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
    let err = |reason: String| FleetError::Ddl { path: path.display().to_string(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| err(e.to_string()))
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
    match spec.validation.as_deref() {
        None | Some("") => Ok(()),
        Some("shellsafe") => match s.chars().find(|c| "`$;|&><".contains(*c)) {
            Some(c) => Err(format!("contains the shell-unsafe character {c:?}")),
            None => Ok(()),
        },
        Some("ipv4address") => s.parse::<std::net::Ipv4Addr>().map(|_| ()).map_err(|_| "not an IPv4 address".into()),
        Some("ipv6address") => s.parse::<std::net::Ipv6Addr>().map(|_| ()).map_err(|_| "not an IPv6 address".into()),
        Some("ipaddress") => s.parse::<std::net::IpAddr>().map(|_| ()).map_err(|_| "not an IP address".into()),
        Some(re) => match regex::Regex::new(re) {
            Ok(r) if r.is_match(s) => Ok(()),
            Ok(_) => Err(format!("does not match the validation /{re}/")),
            Err(_) => Ok(()), // a validator name we do not know: the server will check it
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
}
