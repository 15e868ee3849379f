//! The agents a simulated server runs: `rpcutil`, `choria_provision`, `choria_util` and
//! `scout` (in [`super::scout`]), with the guards, messages and splays of go-choria
//! (choria-ops.md §4, choria-protocol.md §7). The other go-choria built-ins (`executor`,
//! `aaa_signer`, `choria_registry`) answer "not simulated".

use std::fmt::Write as _;

use rand::rngs::SmallRng;
use rand::Rng;
use serde_json::{json, Map, Value};

use super::config::SimConfig;
use super::effect::Effect;
use super::node::{Fault, Mode, Node};
use super::refusal::Refusal;
use super::scout;

/// A reply's data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Data {
    /// Any JSON.
    Value(Value),
    /// `{"pong": N}`: ping's, the answer every node gives in every health check, written
    /// without building a map for it (issue 15: the map and its key's hashing showed in the
    /// simulator's profile).
    Pong(i64),
}

#[cfg(test)]
impl Data {
    /// The data as a JSON value.
    pub(crate) fn to_value(&self) -> Value {
        match self {
            Data::Value(v) => v.clone(),
            Data::Pong(n) => json!({ "pong": n }),
        }
    }
}

/// What a node answers.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    /// The reply's data, or why the action was refused.
    pub(crate) outcome: Result<Data, Refusal>,
    /// What happens to the node after the reply.
    pub(crate) effect: Option<Effect>,
}

impl Answer {
    pub(crate) fn ok(data: Value) -> Self {
        Answer { outcome: Ok(Data::Value(data)), effect: None }
    }

    /// An answer that then changes the node.
    fn then(self, effect: Effect) -> Self {
        Answer { effect: Some(effect), ..self }
    }

    /// A refusal: its status code and message, and no data.
    pub(crate) fn refused(r: Refusal) -> Self {
        Answer { outcome: Err(r), effect: None }
    }

    /// The SimpleRPC reply body `{"action","statuscode","statusmsg","data"}`, written by hand
    /// (one per node per request; serde's struct serialiser showed in the simulator's profile,
    /// issue 15): the same bytes as serde writes (unit-tested).
    pub(crate) fn body(&self, action: &str) -> Vec<u8> {
        let (statuscode, statusmsg) = match &self.outcome {
            Ok(_) => (0, std::borrow::Cow::Borrowed("OK")),
            Err(r) => (r.statuscode(), std::borrow::Cow::Owned(r.to_string())),
        };
        let mut out = String::with_capacity(128);
        out.push_str("{\"action\":");
        crate::json::string_into(&mut out, action);
        let _ = write!(out, ",\"statuscode\":{statuscode},\"statusmsg\":");
        crate::json::string_into(&mut out, &statusmsg);
        out.push_str(",\"data\":");
        // A Value displays as its JSON text.
        let _ = match &self.outcome {
            Ok(Data::Value(v)) => write!(out, "{v}"),
            Ok(Data::Pong(n)) => write!(out, "{{\"pong\":{n}}}"),
            Err(r) => match r.data() {
                Some(v) => write!(out, "{v}"),
                None => write!(out, "{{}}"),
            },
        };
        out.push('}');
        out.into_bytes()
    }
}

/// Runs `agent#action` on `node` at `now_secs` (the request's clock read: one per request).
/// `None` means the node stays silent.
pub(crate) fn dispatch(
    node: &mut Node,
    cfg: &SimConfig,
    rng: &mut SmallRng,
    agent: &str,
    action: &str,
    data: &Map<String, Value>,
    now_secs: i64,
) -> Option<Answer> {
    if node.fault == Fault::Silent {
        return None;
    }
    if let Fault::Failing(code) = node.fault {
        if agent != "rpcutil" {
            return Some(Answer::refused(Refusal::Injected {
                code,
                agent: agent.to_string(),
                action: action.to_string(),
                identity: node.identity.clone(),
            }));
        }
    }
    let answer = match agent {
        "rpcutil" => rpcutil(node, cfg, action, data, now_secs),
        "choria_provision" => provision(node, cfg, rng, action, data),
        "choria_util" if action == "info" => Ok(Answer::ok(json!({
            "security": "file", "secure_protocol": false, "connector": "nats", "connector_tls": false,
            "choria_version": node.version, "client_version": "", "client_flavour": "",
            "middleware_servers": [], "using_srv": false, "path": "", "client_options": {},
            "connected_server": "", "client_stats": {}, "facter_domain": "", "facter_command": "", "srv_domain": ""
        }))),
        "scout" => scout::scout(node, action, data),
        "executor" | "aaa_signer" | "choria_registry" => Err(Refusal::NotSimulated { action: action.to_string() }),
        _ => Err(unknown(agent, action)),
    };
    Some(answer.unwrap_or_else(Answer::refused))
}

fn unknown(agent: &str, action: &str) -> Refusal {
    Refusal::UnknownAction { agent: agent.to_string(), action: action.to_string() }
}

fn rpcutil(
    node: &Node,
    cfg: &SimConfig,
    action: &str,
    data: &Map<String, Value>,
    now_secs: i64,
) -> Result<Answer, Refusal> {
    if action == "ping" {
        return Ok(Answer { outcome: Ok(Data::Pong(now_secs)), effect: None });
    }
    // Built only for the actions that show them.
    let collectives = || node.collectives(&cfg.collective);
    Ok(Answer::ok(match action {
        "inventory" => {
            let (collectives, main) = collectives();
            json!({
            "agents": &node.agents[..],
            "facts": node.facts,
            "classes": node.classes,
            "version": node.version,
            "main_collective": main,
            "collectives": collectives,
            "data_plugins": [],
            "machines": [],
            "upgradable": cfg.upgradable,
            })
        }
        "agent_inventory" => {
            json!({"agents": node.agents.iter().map(|a| json!({"agent": a, "name": a})).collect::<Vec<_>>()})
        }
        "collective_info" => {
            let (collectives, main) = collectives();
            json!({"main_collective": main, "collectives": collectives})
        }
        "get_fact" => {
            let name = data.get("fact").and_then(Value::as_str).unwrap_or("");
            json!({"fact": name, "value": node.fact(name).cloned().unwrap_or(Value::Null)})
        }
        "get_facts" => {
            let names = data.get("facts").and_then(Value::as_str).unwrap_or("");
            let values: Map<String, Value> = names
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| (n.to_string(), node.fact(n).cloned().unwrap_or(Value::Null)))
                .collect();
            json!({"values": values})
        }
        "daemon_stats" => node.daemon.stats(&node.version, &node.agents, 12 + node.agents.len()),
        _ => return Err(unknown("rpcutil", action)),
    }))
}

/// The `checkToken` of go-choria: an empty build token accepts anything.
fn check_token(cfg: &SimConfig, data: &Map<String, Value>) -> Result<(), Refusal> {
    if cfg.token.is_empty() || data.get("token").and_then(Value::as_str) == Some(cfg.token.as_str()) {
        Ok(())
    } else {
        Err(Refusal::BadToken)
    }
}

fn provision(
    node: &mut Node,
    cfg: &SimConfig,
    rng: &mut SmallRng,
    action: &str,
    data: &Map<String, Value>,
) -> Result<Answer, Refusal> {
    let provisioning = node.mode == Mode::Provisioning;
    match action {
        "restart" => {
            if !provisioning && cfg.token.is_empty() {
                return Err(Refusal::RestartNotAllowed);
            }
            check_token(cfg, data)?;
            if provisioning && !node.configured {
                return Err(Refusal::NotConfigured);
            }
            // Go unmarshals splay into an int: a float or a string is invalid data.
            let splay = match data.get("splay") {
                None | Some(Value::Null) => 0,
                Some(v) => v.as_u64().ok_or_else(|| Refusal::BadSplay(v.clone()))?,
            };
            let splay = if splay == 0 { 10 } else { splay };
            let delay = rng.gen_range(0..splay).saturating_add(2);
            Ok(Answer::ok(json!({"message": format!("Restarting Choria Server after {delay}s")}))
                .then(Effect::Restart(delay)))
        }
        "reprovision" => {
            if provisioning {
                return Err(Refusal::AlreadyProvisioning);
            }
            check_token(cfg, data)?;
            let delay = rng.gen_range(0..10) + 2;
            Ok(Answer::ok(json!({"message": format!("Restarting after {delay}s")})).then(Effect::Reprovision(delay)))
        }
        "shutdown" => {
            if !provisioning && cfg.token.is_empty() {
                return Err(Refusal::ShutdownNotAllowed);
            }
            check_token(cfg, data)?;
            let delay = rng.gen_range(0..10);
            Ok(Answer::ok(json!({"message": format!("Shutting Choria Server down after {delay}s")}))
                .then(Effect::Shutdown(delay)))
        }
        "configure" => {
            if !provisioning {
                return Err(Refusal::ReconfigureNotAllowed);
            }
            check_token(cfg, data)?;
            let config = data.get("config").and_then(Value::as_str).unwrap_or("");
            let lines = match serde_json::from_str::<Map<String, Value>>(config) {
                Ok(m) if !m.is_empty() => m.len(),
                _ => return Err(Refusal::EmptyConfiguration),
            };
            node.configured = true;
            Ok(Answer::ok(json!({"message": format!("Wrote {lines} lines to /etc/choria/server.conf")}))
                .then(Effect::Provisioned))
        }
        "gen25519" | "gencsr" | "jwt" | "release_update" if !provisioning => Err(Refusal::NotProvisioning),
        "gen25519" | "gencsr" | "jwt" | "release_update" => Err(Refusal::NotSimulated { action: action.to_string() }),
        _ => Err(unknown("choria_provision", action)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body as serde writes it from a struct: the reference for [`Answer::body`].
    fn serde_body(answer: &Answer, action: &str) -> Vec<u8> {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            action: &'a str,
            statuscode: u8,
            statusmsg: &'a str,
            data: &'a Value,
        }
        let (statuscode, statusmsg, data) = match &answer.outcome {
            Ok(data) => (0, "OK".to_string(), data.to_value()),
            Err(r) => (r.statuscode(), r.to_string(), r.data().cloned().unwrap_or(json!({}))),
        };
        serde_json::to_vec(&Body { action, statuscode, statusmsg: &statusmsg, data: &data }).expect("serialises")
    }

    #[test]
    fn bodies_are_written_as_serde_writes_them() {
        let answers = [
            Answer::ok(json!({"pong": 1732200001})),
            Answer { outcome: Ok(Data::Pong(1732200001)), effect: None },
            Answer { outcome: Ok(Data::Pong(-5)), effect: None },
            Answer::ok(
                json!({"message": "quote \" backslash \\ newline \n é \u{1} <&>", "n": [1.5, -2, null, true], "o": {}}),
            ),
            Answer::ok(Value::Null),
            Answer::refused(Refusal::InvalidBody),
            Answer::refused(Refusal::Injected {
                code: 5,
                agent: "choria_provision".into(),
                action: "restart".into(),
                identity: "n\"1".into(),
            }),
            Answer::refused(Refusal::NotSimulated { action: "jwt".into() }),
            Answer::refused(Refusal::ChecksNotTransitioned {
                transition: "force_check".into(),
                data: json!({"transitioned": [], "failed": ["a\"b"], "skipped": []}),
            }),
        ];
        for a in &answers {
            for action in ["ping", "re\"start", ""] {
                assert_eq!(
                    String::from_utf8(a.body(action)).expect("UTF-8"),
                    String::from_utf8(serde_body(a, action)).expect("UTF-8")
                );
            }
        }
    }
}
