//! The agents we know: the built-in DDLs plus any loaded from a directory, and the check of
//! a request's inputs against them.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use super::agent::{ddl_error, AgentDdl};
use super::input::{too_deep, InputType, MAX_DEPTH};
use crate::fleet::error::{FleetError, Result};

/// The DDLs shipped inside the binary: verbatim go-choria copies in `ddl/`, kept in the repo so
/// the binary builds without `../shared`; a test checks they equal the shared originals.
const BUILTIN: [(&str, &str); 7] = [
    ("aaa_signer", include_str!("../../../ddl/aaa_signer.json")),
    ("choria_provision", include_str!("../../../ddl/choria_provision.json")),
    ("choria_registry", include_str!("../../../ddl/choria_registry.json")),
    ("choria_util", include_str!("../../../ddl/choria_util.json")),
    ("executor", include_str!("../../../ddl/executor.json")),
    ("rpcutil", include_str!("../../../ddl/rpcutil.json")),
    ("scout", include_str!("../../../ddl/scout.json")),
];

/// The agents we know, by name.
#[derive(Debug, Clone)]
pub struct DdlRegistry {
    agents: BTreeMap<String, AgentDdl>,
}

impl DdlRegistry {
    /// The built-in DDLs: go-choria's seven (aaa_signer, choria_provision, choria_registry,
    /// choria_util, executor, rpcutil, scout).
    pub fn builtin() -> Self {
        let mut agents = BTreeMap::new();
        for (name, text) in BUILTIN {
            // These are compiled in and covered by a test, so a parse failure is impossible.
            if let Ok(ddl) = AgentDdl::parse_builtin(text, name) {
                agents.insert(name.to_string(), ddl);
            }
        }
        DdlRegistry { agents }
    }

    /// Adds every `*.json` agent DDL found in `dir`, replacing built-ins of the same name.
    pub fn load_dir(&mut self, dir: &Path) -> Result<()> {
        let err = |e: std::io::Error| ddl_error(&dir.display().to_string(), e.into());
        let entries = std::fs::read_dir(dir).map_err(err)?;
        for entry in entries {
            let path = entry.map_err(err)?.path();
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
                    let v = spec.coerce(v).map_err(|r| bad(name, r))?;
                    spec.check(&v).map_err(|r| bad(name, r))?;
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
            let value = match act.input.get(k).map(|i| i.kind) {
                Some(InputType::Hash | InputType::Array) => {
                    serde_json::from_str(v).unwrap_or(Value::String(v.to_string()))
                }
                _ => Value::String(v.to_string()),
            };
            map.insert(k.to_string(), value);
        }
        self.validate(agent, action, &map)
    }
}

fn load_file(path: &Path) -> Result<AgentDdl> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ddl_error(&origin, e.into()))?;
    AgentDdl::parse(&text, &origin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The built-in DDLs compile their regexes on first use; every one must compile.
    #[test]
    fn builtin_validations_compile() {
        let mut regexes = 0;
        for (name, text) in BUILTIN {
            for action in AgentDdl::parse(text, name).expect("parses, regexes compiled").actions {
                for input in action.input.values() {
                    if let Some(v @ super::super::Validation::Regex { .. }) = &input.validation {
                        // A value either matches or not; an uncompilable regex says so instead.
                        assert!(!v.check("x").is_err_and(|e| e.contains("does not compile")), "{name}");
                        regexes += 1;
                    }
                }
            }
        }
        assert!(regexes > 40, "{regexes}");
    }

    #[test]
    fn builtins_load() {
        let r = DdlRegistry::builtin();
        // All seven parse (a failure would drop one silently).
        let all = ["aaa_signer", "choria_provision", "choria_registry", "choria_util", "executor", "rpcutil", "scout"];
        assert_eq!(r.agent_names(), all);
        assert_eq!(r.agent("scout").unwrap().metadata.timeout, 5);
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
