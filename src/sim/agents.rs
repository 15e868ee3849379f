//! The agents a simulated server runs: `rpcutil` and `choria_provision`, with the guards,
//! messages and splays of go-choria (choria-ops.md §4, choria-protocol.md §7).

use rand::rngs::SmallRng;
use rand::Rng;
use serde_json::{json, Map, Value};

use super::config::SimConfig;
use super::effect::Effect;
use super::node::{Fault, Mode, Node};

/// What a node answers.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) statuscode: u8,
    pub(crate) statusmsg: String,
    pub(crate) data: Value,
    pub(crate) effect: Option<Effect>,
}

impl Answer {
    fn ok(data: Value) -> Self {
        Answer { statuscode: 0, statusmsg: "OK".into(), data, effect: None }
    }

    fn fail(code: u8, msg: impl Into<String>) -> Self {
        Answer { statuscode: code, statusmsg: msg.into(), data: json!({}), effect: None }
    }

    /// The SimpleRPC reply body.
    pub(crate) fn body(&self, action: &str) -> Vec<u8> {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            action: &'a str,
            statuscode: u8,
            statusmsg: &'a str,
            data: &'a Value,
        }
        let body = Body { action, statuscode: self.statuscode, statusmsg: &self.statusmsg, data: &self.data };
        // Serialising a struct of strings and a Value cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

/// Runs `agent#action` on `node`. `None` means the node stays silent.
pub(crate) fn dispatch(
    node: &mut Node,
    cfg: &SimConfig,
    rng: &mut SmallRng,
    agent: &str,
    action: &str,
    data: &Map<String, Value>,
) -> Option<Answer> {
    if node.fault == Fault::Silent {
        return None;
    }
    if let Fault::Failing(code) = node.fault {
        if agent != "rpcutil" {
            return Some(Answer::fail(code, format!("simulated failure of {agent}#{action} on {}", node.identity)));
        }
    }
    Some(match agent {
        "rpcutil" => rpcutil(node, cfg, action, data),
        "choria_provision" => provision(node, cfg, rng, action, data),
        "choria_util" if action == "info" => Answer::ok(json!({
            "security": "file", "secure_protocol": false, "connector": "nats", "connector_tls": false,
            "choria_version": node.version, "client_version": "", "client_flavour": "",
            "middleware_servers": [], "using_srv": false, "path": "", "client_options": {},
            "connected_server": "", "client_stats": {}, "facter_domain": "", "facter_command": "", "srv_domain": ""
        })),
        _ => unknown(agent, action),
    })
}

fn unknown(agent: &str, action: &str) -> Answer {
    Answer::fail(2, format!("Unknown action {action} for agent {agent}"))
}

fn rpcutil(node: &Node, cfg: &SimConfig, action: &str, data: &Map<String, Value>) -> Answer {
    let collective = node.collective(&cfg.collective).to_string();
    match action {
        "ping" => Answer::ok(json!({"pong": chrono::Utc::now().timestamp()})),
        "inventory" => Answer::ok(json!({
            "agents": node.agents,
            "facts": node.facts,
            "classes": node.classes,
            "version": node.version,
            "main_collective": collective,
            "collectives": [collective],
            "data_plugins": [],
            "machines": [],
            "upgradable": cfg.upgradable,
        })),
        "agent_inventory" => Answer::ok(
            json!({"agents": node.agents.iter().map(|a| json!({"agent": a, "name": a})).collect::<Vec<_>>()}),
        ),
        "collective_info" => Answer::ok(json!({"main_collective": collective, "collectives": [collective]})),
        "get_fact" => {
            let name = data.get("fact").and_then(Value::as_str).unwrap_or("");
            Answer::ok(json!({"fact": name, "value": node.fact(name).cloned().unwrap_or(Value::Null)}))
        }
        "get_facts" => {
            let names = data.get("facts").and_then(Value::as_str).unwrap_or("");
            let values: Map<String, Value> = names
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| (n.to_string(), node.fact(n).cloned().unwrap_or(Value::Null)))
                .collect();
            Answer::ok(json!({"values": values}))
        }
        "daemon_stats" => {
            Answer::ok(json!({"version": node.version, "agents": node.agents, "configfile": "/etc/choria/server.conf"}))
        }
        _ => unknown("rpcutil", action),
    }
}

/// The `checkToken` of go-choria: an empty build token accepts anything.
fn token_ok(cfg: &SimConfig, data: &Map<String, Value>) -> bool {
    cfg.token.is_empty() || data.get("token").and_then(Value::as_str) == Some(cfg.token.as_str())
}

fn provision(node: &mut Node, cfg: &SimConfig, rng: &mut SmallRng, action: &str, data: &Map<String, Value>) -> Answer {
    let provisioning = node.mode == Mode::Provisioning;
    let bad_token = || Answer::fail(1, "Incorrect provision token supplied");
    match action {
        "restart" => {
            if !provisioning && cfg.token.is_empty() {
                return Answer::fail(
                    1,
                    "Cannot restart a server that is not in provisioning mode or with no token set",
                );
            }
            if !token_ok(cfg, data) {
                return bad_token();
            }
            if provisioning && !node.configured {
                return Answer::fail(
                    1,
                    "Configuration /etc/choria/server.conf enables provisioning, restart cannot continue",
                );
            }
            // Go unmarshals splay into an int: a float or a string is invalid data.
            let splay = match data.get("splay") {
                None | Some(Value::Null) => 0,
                Some(v) => match v.as_u64() {
                    Some(s) => s,
                    None => {
                        return Answer::fail(4, format!("Could not parse request data: splay {v} is not an integer"))
                    }
                },
            };
            let splay = if splay == 0 { 10 } else { splay };
            let delay = rng.gen_range(0..splay).saturating_add(2);
            Answer {
                effect: Some(Effect::Restart(delay)),
                ..Answer::ok(json!({"message": format!("Restarting Choria Server after {delay}s")}))
            }
        }
        "reprovision" => {
            if provisioning {
                return Answer::fail(
                    1,
                    "Server is already in provisioning mode, cannot enable provisioning mode again",
                );
            }
            if !token_ok(cfg, data) {
                return bad_token();
            }
            let delay = rng.gen_range(0..10) + 2;
            Answer {
                effect: Some(Effect::Reprovision(delay)),
                ..Answer::ok(json!({"message": format!("Restarting after {delay}s")}))
            }
        }
        "shutdown" => {
            if !provisioning && cfg.token.is_empty() {
                return Answer::fail(
                    1,
                    "Cannot shutdown a server that is not in provisioning mode or with no token set",
                );
            }
            if !token_ok(cfg, data) {
                return bad_token();
            }
            let delay = rng.gen_range(0..10);
            Answer {
                effect: Some(Effect::Shutdown(delay)),
                ..Answer::ok(json!({"message": format!("Shutting Choria Server down after {delay}s")}))
            }
        }
        "configure" => {
            if !provisioning {
                return Answer::fail(1, "Cannot reconfigure a server that is not in provisioning mode");
            }
            if !token_ok(cfg, data) {
                return bad_token();
            }
            let config = data.get("config").and_then(Value::as_str).unwrap_or("");
            let lines = match serde_json::from_str::<Map<String, Value>>(config) {
                Ok(m) if !m.is_empty() => m.len(),
                _ => {
                    return Answer::fail(
                        1,
                        "Did not receive any configuration to write, cannot write a empty configuration file",
                    )
                }
            };
            node.configured = true;
            Answer {
                effect: Some(Effect::Provisioned),
                ..Answer::ok(json!({"message": format!("Wrote {lines} lines to /etc/choria/server.conf")}))
            }
        }
        "gen25519" | "gencsr" | "jwt" | "release_update" if !provisioning => {
            Answer::fail(1, "Cannot perform this action on a server that is not in provisioning mode")
        }
        "gen25519" | "gencsr" | "jwt" | "release_update" => Answer::fail(5, format!("{action} is not simulated")),
        _ => unknown("choria_provision", action),
    }
}
