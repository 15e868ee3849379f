//! The `scout` agent of a simulated server: per-node Scout checks and the `checks`,
//! `maintenance`, `resume` and `trigger` actions, as go-choria's `scout/agent/scout`
//! answers them.
//!
//! go-choria keeps a check as an autonomous-agent machine driven by a nagios watcher; the
//! machine's states are the watcher's `OK`, `WARNING`, `CRITICAL` and `UNKNOWN`
//! (`aagent/watchers/nagioswatcher/nagios.go`, `NotifyStateChance`) plus `MAINTENANCE`, and the
//! agent drives it with the transitions `MAINTENANCE`, `RESUME` and `FORCE_CHECK`
//! (`scout/agent/scout/scout.go`). The machine definition itself comes from the site (e.g. the
//! Puppet module); the simulator models the usual one: `MAINTENANCE` from any check state,
//! `RESUME` from `MAINTENANCE` back to `UNKNOWN` (the next check run settles it, at once here),
//! `FORCE_CHECK` from any state but `MAINTENANCE`.

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::agents::Answer;
use super::node::Node;
use super::refusal::Refusal;

/// The transition `maintenance` asks for (`scout/agent/scout/scout.go`).
const MAINTENANCE: &str = "MAINTENANCE";
/// The transition `resume` asks for.
const RESUME: &str = "RESUME";
/// The transition `trigger` asks for.
const FORCE_CHECK: &str = "FORCE_CHECK";

/// The checks every simulated node runs, all `OK` at start.
const CHECKS: [&str; 2] = ["check_disk", "check_load"];

/// One Scout check on a simulated node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScoutCheck {
    /// The check's (machine's) name.
    pub name: String,
    /// Its machine state: `OK`, `WARNING`, `CRITICAL`, `UNKNOWN` or `MAINTENANCE`.
    pub state: String,
    /// How many times `trigger` forced a run.
    pub triggered: u64,
}

impl ScoutCheck {
    /// The checks a freshly generated node runs.
    pub(crate) fn defaults() -> Vec<ScoutCheck> {
        CHECKS.iter().map(|n| ScoutCheck { name: n.to_string(), state: "OK".into(), triggered: 0 }).collect()
    }

    /// Whether the check's machine has `transition` available in its current state.
    fn can(&self, transition: &str) -> bool {
        let in_maintenance = self.state == MAINTENANCE;
        match transition {
            RESUME => in_maintenance,
            MAINTENANCE | FORCE_CHECK => !in_maintenance,
            _ => false,
        }
    }

    /// Applies an available `transition`.
    fn apply(&mut self, transition: &str) {
        match transition {
            MAINTENANCE => self.state = MAINTENANCE.into(),
            // RESUME goes to UNKNOWN and the check's next run settles it; the simulated check
            // always passes, so it settles on OK at once.
            RESUME => self.state = "OK".into(),
            // FORCE_CHECK runs the check now and lands back on its result.
            _ => self.triggered += 1,
        }
    }
}

/// Answers `scout#action` on `node`.
pub(crate) fn scout(node: &mut Node, action: &str, data: &Map<String, Value>) -> Result<Answer, Refusal> {
    let transition = match action {
        "checks" => {
            let checks: Vec<Value> = node
                .checks
                .iter()
                .map(|c| json!({"name": c.name, "state": c.state, "version": "1.0.0", "start_time": 0, "status": null}))
                .collect();
            return Ok(Answer::ok(json!({ "checks": checks })));
        }
        "maintenance" => MAINTENANCE,
        "resume" => RESUME,
        "trigger" => FORCE_CHECK,
        "goss_validate" => return Err(Refusal::NotSimulated { action: action.to_string() }),
        _ => return Err(Refusal::UnknownAction { agent: "scout".into(), action: action.to_string() }),
    };
    let list = match data.get("checks") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or(Refusal::InvalidBody)?,
        Some(_) => return Err(Refusal::InvalidBody),
    };
    transition_selected(node, list, transition)
}

/// go-choria's `transitionSelectedChecks` (`scout/agent/scout/util.go`): no names means every
/// check; an unknown name is `failed`, a check without the transition available is `skipped`;
/// when names were given and some failed the reply is aborted but still carries the lists.
fn transition_selected(node: &mut Node, mut list: Vec<String>, transition: &str) -> Result<Answer, Refusal> {
    let all = list.is_empty();
    if all {
        list = node.checks.iter().map(|c| c.name.clone()).collect();
    }
    let (mut transitioned, mut failed, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for name in &list {
        match node.checks.iter_mut().find(|c| &c.name == name) {
            None => failed.push(name.clone()),
            Some(c) if !c.can(transition) => skipped.push(name.clone()),
            Some(c) => {
                c.apply(transition);
                transitioned.push(name.clone());
            }
        }
    }
    let data = json!({"transitioned": transitioned, "failed": failed, "skipped": skipped});
    if !all && transitioned.len() + skipped.len() != list.len() {
        return Err(Refusal::ChecksNotTransitioned { transition: transition.to_string(), data });
    }
    Ok(Answer::ok(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn node() -> Node {
        Node::generate(1, 3, "example.net", "0.29.4", &mut SmallRng::seed_from_u64(1))
    }

    fn run(n: &mut Node, action: &str, data: Value) -> Result<Value, Refusal> {
        let data = data.as_object().cloned().unwrap_or_default();
        scout(n, action, &data).map(|a| a.outcome.unwrap().to_value())
    }

    fn states(n: &Node) -> Vec<(&str, &str)> {
        n.checks.iter().map(|c| (c.name.as_str(), c.state.as_str())).collect()
    }

    #[test]
    fn maintenance_resume_and_trigger_follow_go_choria() {
        let mut n = node();
        let r = run(&mut n, "maintenance", json!({"checks": ["check_disk"]})).unwrap();
        assert_eq!(r, json!({"transitioned": ["check_disk"], "failed": [], "skipped": []}));
        assert_eq!(states(&n), vec![("check_disk", "MAINTENANCE"), ("check_load", "OK")]);
        // No names: all checks; the one already in maintenance is skipped.
        let r = run(&mut n, "maintenance", json!({})).unwrap();
        assert_eq!(r, json!({"transitioned": ["check_load"], "failed": [], "skipped": ["check_disk"]}));
        // Trigger skips checks in maintenance.
        let r = run(&mut n, "trigger", json!({"checks": []})).unwrap();
        assert_eq!(r, json!({"transitioned": [], "failed": [], "skipped": ["check_disk", "check_load"]}));
        // An unknown name fails, and the reply is aborted with the lists.
        let e = run(&mut n, "resume", json!({"checks": ["check_load", "nope"]})).unwrap_err();
        assert_eq!(e.statuscode(), 1);
        assert_eq!(e.to_string(), "Some checks could not be transitioned to RESUME");
        assert_eq!(e.data(), Some(&json!({"transitioned": ["check_load"], "failed": ["nope"], "skipped": []})));
        assert_eq!(states(&n), vec![("check_disk", "MAINTENANCE"), ("check_load", "OK")]);
        let r = run(&mut n, "resume", json!({})).unwrap();
        assert_eq!(r, json!({"transitioned": ["check_disk"], "failed": [], "skipped": ["check_load"]}));
        let r = run(&mut n, "trigger", json!({"checks": ["check_load"]})).unwrap();
        assert_eq!(r["transitioned"], json!(["check_load"]));
        assert_eq!(n.checks[1].triggered, 1);
        let c = run(&mut n, "checks", json!({})).unwrap();
        assert_eq!(c["checks"][0]["name"], "check_disk");
        assert_eq!(c["checks"][0]["state"], "OK");
        assert_eq!(run(&mut n, "goss_validate", json!({})).unwrap_err().statuscode(), 5);
        assert_eq!(run(&mut n, "maintenance", json!({"checks": "x"})).unwrap_err().statuscode(), 4);
    }
}
