//! Resuming a run (`--resume ID`): what the journal says the run already did, and the rules
//! for continuing it. Rhai cannot checkpoint a script, so a resumed runbook runs again from the
//! top and its journaled effects are replayed: the Nth `discover()` gets the Nth journaled
//! node list, the Nth `rpc_batch` skips the nodes the Nth journaled rollout already finished,
//! the Nth `confirm()`, `sleep()` and `evict()` that were done are not done again.
//!
//! Every attempt of a run writes its effects again (replayed ones marked `resumed`), so each
//! attempt's journal is a whole record and the counters line up across attempts; what any
//! attempt recorded for an ordinal is merged here, later results over earlier ones.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::progress::NodeStatus;

/// One node's journaled result.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRecord {
    pub status: NodeStatus,
    pub statuscode: Option<u8>,
    pub statusmsg: Option<String>,
    pub data: Option<Value>,
}

impl NodeRecord {
    /// Finished well: never called again.
    pub fn is_ok(&self) -> bool {
        self.status.is_ok()
    }
}

/// One journaled rollout (`rpc_batch` call, or `req`'s one rollout).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallRecord {
    pub agent: String,
    pub action: String,
    /// The inputs as journaled (secrets masked).
    pub inputs: Value,
    /// The last result of each node.
    pub results: BTreeMap<String, NodeRecord>,
    /// Nodes of batches that were recorded as sent.
    pub sent: BTreeSet<String>,
    /// When its last batch ended (RFC 3339): the pause before the next batch counts from it.
    pub last_batch_end: Option<String>,
}

impl CallRecord {
    /// Nodes whose request may have gone out but whose result is not known: a batch recorded
    /// as sent without their result, or a result of `unknown`.
    pub fn unknown(&self) -> BTreeSet<String> {
        let mut u: BTreeSet<String> = self.sent.iter().filter(|n| !self.results.contains_key(*n)).cloned().collect();
        u.extend(self.results.iter().filter(|(_, r)| r.status == NodeStatus::Unknown).map(|(n, _)| n.clone()));
        u
    }
}

/// Everything the journal holds about a run that resuming needs.
#[derive(Debug, Clone, Default)]
pub struct RunRecord {
    pub run_id: String,
    /// `run` or `req`.
    pub command: String,
    /// The runbook's path (`agent#action` for `req`).
    pub runbook: String,
    pub sha256: Option<String>,
    /// The `--arg` values as journaled (secret names masked).
    pub args: serde_json::Map<String, Value>,
    pub dry_run: bool,
    /// How many times the run was started (the first start and each resume).
    pub attempts: u32,
    /// `run_end` of the last attempt: its status and reason; `None` when it never ended.
    pub ended: Option<(String, Option<String>)>,
    /// Who ran the last attempt, where.
    pub by: String,
    /// The time of the last word from the run and its heartbeat period.
    pub last_seen: String,
    pub period_s: f64,
    /// Node lists of `discover()` (and `rpc_batch` filters, and `req`), by ordinal.
    pub discovered: Vec<Vec<String>>,
    pub calls: Vec<CallRecord>,
    /// Questions `confirm()` had answered yes, by ordinal.
    pub confirmed: Vec<String>,
    /// How many `sleep()`s were slept through.
    pub slept: usize,
    /// `evict()` results (who was evicted), by ordinal.
    pub evicted: Vec<Option<String>>,
    /// The stream sequence of the last resume's claim (0: none): the next claim must follow it.
    pub last_claim: u64,
}

fn text(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn strings(v: &Value, k: &str) -> Vec<String> {
    v.get(k)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// Per attempt: how many of each effect it has made so far.
#[derive(Default)]
struct Cursor {
    discovered: usize,
    calls: usize,
    confirmed: usize,
    slept: usize,
    evicted: usize,
}

/// Puts `value` at `ordinal` unless an earlier attempt already recorded one there.
fn first_wins<T>(list: &mut Vec<T>, ordinal: usize, value: T) {
    if ordinal >= list.len() {
        list.push(value);
    }
}

/// Reads one run's events (in journal order) into a record. `None` when they hold no start.
pub fn record(run_id: &str, events: &[Value]) -> Option<RunRecord> {
    let mut r =
        RunRecord { run_id: run_id.to_string(), period_s: super::HEARTBEAT.as_secs_f64(), ..Default::default() };
    let mut c = Cursor::default();
    // The rollout the batch and node events belong to (dry-run ones are not recorded).
    let mut current: Option<usize> = None;
    for v in events {
        let time = text(v, "time");
        if !time.is_empty() {
            r.last_seen = time;
        }
        match text(v, "event").as_str() {
            "run_start" => {
                r.attempts += 1;
                c = Cursor::default();
                current = None;
                r.ended = None;
                if r.attempts == 1 {
                    r.command = text(v, "command");
                    r.runbook = text(v, "runbook");
                    r.sha256 = v.get("sha256").and_then(Value::as_str).map(str::to_string);
                    r.args = v.get("args").and_then(Value::as_object).cloned().unwrap_or_default();
                    r.dry_run = v.get("dry_run") == Some(&Value::Bool(true));
                }
                r.by = format!("{}@{}", text(v, "user"), text(v, "host"));
            }
            "heartbeat" => r.period_s = v.get("period_s").and_then(Value::as_f64).unwrap_or(r.period_s),
            "discovered" => {
                first_wins(&mut r.discovered, c.discovered, strings(v, "nodes"));
                c.discovered += 1;
            }
            "rollout_start" if v.get("dry_run") == Some(&Value::Bool(true)) => current = None,
            "rollout_start" => {
                let call = CallRecord {
                    agent: text(v, "agent"),
                    action: text(v, "action"),
                    inputs: v.get("inputs").cloned().unwrap_or(Value::Null),
                    ..Default::default()
                };
                first_wins(&mut r.calls, c.calls, call);
                current = Some(c.calls);
                c.calls += 1;
            }
            "batch_start" if v.get("dry_run") != Some(&Value::Bool(true)) => {
                if let Some(i) = current {
                    r.calls[i].sent.extend(strings(v, "nodes"));
                }
            }
            "batch_end" => {
                if let Some(i) = current {
                    r.calls[i].last_batch_end = v.get("time").and_then(Value::as_str).map(str::to_string);
                }
            }
            "node_result" => {
                let (Some(i), Ok(status)) = (current, serde_json::from_value::<NodeStatus>(v["status"].clone())) else {
                    continue;
                };
                let status = match status {
                    // A late answer settles what the node did.
                    NodeStatus::LateOk => NodeStatus::Ok,
                    NodeStatus::LateFailed => NodeStatus::Failed,
                    s => s,
                };
                let rec = NodeRecord {
                    status,
                    statuscode: v.get("statuscode").and_then(Value::as_u64).map(|c| c as u8),
                    statusmsg: v.get("statusmsg").and_then(Value::as_str).map(str::to_string),
                    data: v.get("data").cloned(),
                };
                r.calls[i].results.insert(text(v, "node"), rec);
            }
            "confirmed" => {
                first_wins(&mut r.confirmed, c.confirmed, text(v, "question"));
                c.confirmed += 1;
            }
            "slept" => {
                c.slept += 1;
                r.slept = r.slept.max(c.slept);
            }
            "evict" => {
                first_wins(&mut r.evicted, c.evicted, v.get("evicted").and_then(Value::as_str).map(str::to_string));
                c.evicted += 1;
            }
            "claim" => r.last_claim = v.get("seq").and_then(Value::as_u64).unwrap_or(r.last_claim),
            "run_end" => {
                r.ended = Some((text(v, "status"), v.get("reason").and_then(Value::as_str).map(str::to_string)))
            }
            _ => {}
        }
    }
    (r.attempts > 0).then_some(r)
}

/// What `--resume` was asked to do besides continuing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResumeFlags {
    /// Call failed and unanswered nodes again.
    pub retry_failed: bool,
    /// Send a mutating action again to nodes whose result is unknown.
    pub resend_unknown: bool,
    /// Resume although the runbook changed.
    pub force: bool,
}

impl RunRecord {
    /// Whether the run's last attempt may still be running: no end, and a word from it within
    /// three heartbeat periods.
    pub fn running(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        if self.ended.is_some() {
            return false;
        }
        let seen = chrono::DateTime::parse_from_rfc3339(&self.last_seen).map(|t| t.with_timezone(&chrono::Utc));
        seen.map(|t| (now - t).to_std().unwrap_or_default().as_secs_f64() <= super::read::STALE_PERIODS * self.period_s)
            .unwrap_or(false)
    }

    /// Refuses what cannot be resumed: a run still running, a finished one (a failed one
    /// only without `--retry-failed`), a dry run, another command's run.
    pub fn check_resumable(&self, command: &str, flags: &ResumeFlags) -> Result<(), String> {
        let id = &self.run_id;
        if self.command != command {
            return Err(format!(
                "run {id} was a `{}` ({}); resume it with `fleetbook {} ... --resume {id}`",
                self.command, self.runbook, self.command
            ));
        }
        if self.dry_run {
            return Err(format!("run {id} was a dry run: it did nothing to resume"));
        }
        if self.running(chrono::Utc::now()) {
            return Err(format!(
                "run {id} is still running (last heard from at {}, {}); resume it once it has stopped or its heartbeat is silent",
                self.last_seen, self.by
            ));
        }
        match self.ended.as_ref().map(|(s, _)| s.as_str()) {
            Some("ok") => Err(format!("run {id} finished ok: there is nothing to resume")),
            Some("failed") if !flags.retry_failed => Err(format!(
                "run {id} finished with failed or unanswered nodes; --retry-failed resumes it and calls those nodes again"
            )),
            _ => Ok(()),
        }
    }

    /// Refuses a runbook whose content changed since the run started, unless `--force`.
    pub fn check_runbook(&self, path: &str, sha256: &str, force: bool) -> Result<Option<String>, String> {
        let Some(was) = &self.sha256 else { return Ok(None) };
        if was == sha256 {
            return Ok(None);
        }
        let what = format!(
            "the runbook changed since run {} started: {} had sha256 {}, {path} now has {}",
            self.run_id,
            self.runbook,
            &was[..was.len().min(12)],
            &sha256[..sha256.len().min(12)]
        );
        if force {
            Ok(Some(format!(
                "warning: {what}; resuming anyway (--force): calls are still matched by agent, action and inputs"
            )))
        } else {
            Err(format!("{what}; a changed runbook may not do what the run did; --force resumes anyway"))
        }
    }
}

/// Where a resumed run is in its replay: the journal's record and how many of each effect
/// this attempt has made so far (rollouts are numbered by the host, resumed or not).
#[derive(Debug)]
pub struct Replay {
    pub record: RunRecord,
    pub flags: ResumeFlags,
    discovered: usize,
    confirmed: usize,
    slept: usize,
    evicted: usize,
}

impl Replay {
    pub fn new(record: RunRecord, flags: ResumeFlags) -> Replay {
        Replay { record, flags, discovered: 0, confirmed: 0, slept: 0, evicted: 0 }
    }

    /// The journaled node list of the next discovery, if the run got that far.
    pub fn next_discovery(&mut self) -> Option<Vec<String>> {
        let i = self.discovered;
        self.discovered += 1;
        self.record.discovered.get(i).cloned()
    }

    /// Whether the next `confirm()` was answered yes by an earlier attempt.
    pub fn next_confirm(&mut self) -> bool {
        let i = self.confirmed;
        self.confirmed += 1;
        i < self.record.confirmed.len()
    }

    /// Whether the next `sleep()` was already slept.
    pub fn next_sleep(&mut self) -> bool {
        let i = self.slept;
        self.slept += 1;
        i < self.record.slept
    }

    /// The result of the next `evict()`, if an earlier attempt did it.
    pub fn next_evict(&mut self) -> Option<Option<String>> {
        let i = self.evicted;
        self.evicted += 1;
        self.record.evicted.get(i).cloned()
    }
}

/// Checks that a call of this attempt is the journaled one with the same ordinal.
pub fn same_call(ordinal: usize, was: &CallRecord, agent: &str, action: &str, inputs: &Value) -> Result<(), String> {
    let now = format!("{agent}#{action} {inputs}");
    let then = format!("{}#{} {}", was.agent, was.action, was.inputs);
    if now == then {
        return Ok(());
    }
    Err(format!(
        "call #{ordinal} of the resumed run is {now}, but the journal has {then}: the run no longer does what it did, so it cannot be resumed"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(v: Value) -> Value {
        v
    }

    #[test]
    fn attempts_merge_by_ordinal_later_results_win() {
        let events = vec![
            ev(
                json!({"event": "run_start", "command": "run", "runbook": "r.rhai", "sha256": "ab", "args": {}, "user": "u", "host": "h"}),
            ),
            ev(json!({"event": "discovered", "nodes": ["a", "b", "c"]})),
            ev(json!({"event": "rollout_start", "agent": "x", "action": "y", "inputs": {}})),
            ev(json!({"event": "batch_start", "nodes": ["a"]})),
            ev(json!({"event": "node_result", "node": "a", "status": "ok"})),
            ev(json!({"event": "batch_start", "nodes": ["b"]})),
            ev(
                json!({"event": "run_start", "command": "run", "runbook": "r.rhai", "sha256": "ab", "args": {}, "user": "v", "host": "h2"}),
            ),
            ev(json!({"event": "discovered", "nodes": ["a", "b", "c"]})),
            ev(json!({"event": "rollout_start", "agent": "x", "action": "y", "inputs": {}})),
            ev(json!({"event": "node_result", "node": "a", "status": "ok", "resumed": true})),
            ev(json!({"event": "batch_start", "nodes": ["b"]})),
            ev(json!({"event": "node_result", "node": "b", "status": "no_reply"})),
            ev(json!({"event": "node_result", "node": "b", "status": "late_ok"})),
            ev(json!({"event": "run_end", "status": "stopped", "reason": "r"})),
        ];
        let r = record("ID", &events).unwrap();
        assert_eq!((r.attempts, r.discovered.len(), r.calls.len()), (2, 1, 1));
        assert_eq!(r.by, "v@h2");
        let call = &r.calls[0];
        assert_eq!(call.results["b"].status, NodeStatus::Ok);
        assert!(call.unknown().is_empty());
        assert_eq!(r.ended, Some(("stopped".into(), Some("r".into()))));
        assert!(r.check_resumable("run", &ResumeFlags::default()).is_ok());
        assert!(r.check_resumable("req", &ResumeFlags::default()).unwrap_err().contains("was a `run`"));
        assert!(r.check_runbook("r.rhai", "ab", false).unwrap().is_none());
        assert!(r.check_runbook("r.rhai", "cd", false).unwrap_err().contains("--force"));
    }

    #[test]
    fn a_sent_batch_without_results_is_unknown_and_finished_runs_refuse() {
        let events = vec![
            json!({"event": "run_start", "command": "req", "runbook": "x#y", "args": {}}),
            json!({"event": "rollout_start", "agent": "x", "action": "y", "inputs": {}}),
            json!({"event": "batch_start", "nodes": ["a", "b"]}),
            json!({"event": "node_result", "node": "a", "status": "unknown"}),
            json!({"event": "run_end", "status": "failed"}),
        ];
        let r = record("ID", &events).unwrap();
        let want: BTreeSet<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        assert_eq!(r.calls[0].unknown(), want);
        assert!(r.check_resumable("req", &ResumeFlags::default()).unwrap_err().contains("--retry-failed"));
        let retry = ResumeFlags { retry_failed: true, ..Default::default() };
        assert!(r.check_resumable("req", &retry).is_ok());
        let mut ok = r.clone();
        ok.ended = Some(("ok".into(), None));
        assert!(ok.check_resumable("req", &retry).unwrap_err().contains("nothing to resume"));
        let same = same_call(1, &r.calls[0], "x", "y", &json!({}));
        assert!(same.is_ok());
        assert!(same_call(1, &r.calls[0], "x", "z", &json!({})).unwrap_err().contains("call #1"));
    }
}
