//! The run events: one serde-tagged enum, one shape per kind. The driver, the runbook API and
//! the commands produce them; the sinks (bars, plain lines, JSONL) consume them. The JSONL
//! names are a contract with CI scripts: see `docs/events.md`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a gate decided after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GateVerdict {
    Continue,
    Stop,
    /// Ask the operator on the terminal.
    Pause,
}

/// One node's result in a rollout, as `node_result.status` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    Ok,
    Failed,
    /// The reply did not decode or failed a check.
    Malformed,
    NoReply,
    /// Sent, but whether it acted is not known (Ctrl-C or a broken connection).
    Unknown,
    /// It answered OK but never published the awaited lifecycle event.
    NoEvent,
    /// An earlier batch called it silent; its OK reply came later.
    LateOk,
    /// An earlier batch called it silent; its failure reply came later.
    LateFailed,
}

impl RunStatus {
    /// The name JSONL and the journal use.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Failed => "failed",
            RunStatus::Stopped => "stopped",
            RunStatus::BrokerLost => "broker_lost",
            RunStatus::Unreachable => "unreachable",
            RunStatus::Error => "error",
        }
    }
}

impl NodeStatus {
    /// Whether the node counts as done well.
    pub fn is_ok(self) -> bool {
        matches!(self, NodeStatus::Ok | NodeStatus::LateOk)
    }
}

/// How a whole run ended (`run_end.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Ok,
    /// Some nodes failed, were silent or unknown.
    Failed,
    /// A guardrail or Ctrl-C stopped it.
    Stopped,
    BrokerLost,
    Unreachable,
    /// The runbook or fleetbook failed.
    Error,
}

/// Everything a run reports. Variants marked "display only" never reach JSONL: they drive
/// the spinner and the bars.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    /// A run starts: a runbook (after it compiled and its `--arg` names were checked) or a
    /// batched `req` (`runbook` is then `agent#action`).
    RunStart {
        run_id: String,
        command: String,
        runbook: String,
        /// The sha256 of the runbook's content (`run` only).
        #[serde(skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
        dry_run: bool,
        args: serde_json::Map<String, Value>,
        /// Who started it, where.
        user: String,
        host: String,
        /// 1 for a new run; each `--resume` of it starts the next attempt under the same id.
        attempt: u32,
    },
    /// Display only: discovery began; `what` describes the filter.
    Discovering { what: String },
    /// Discovery ended with `count` nodes; `nodes` names them when a sink reads the names
    /// ([`super::Reporter::discovered`]), and is empty otherwise.
    Discovered { count: usize, nodes: Vec<String> },
    /// Display only: discovery failed or was cancelled; no count is claimed.
    DiscoveryFailed,
    /// A rollout of `agent#action` begins; `inputs` are masked.
    /// `call` numbers the run's rollouts from 1 (a resumed run matches them by it).
    RolloutStart {
        call: usize,
        agent: String,
        action: String,
        inputs: Value,
        nodes: usize,
        batches: usize,
        dry_run: bool,
    },
    /// A batch is sent (or, under dry-run, planned); `call` is its rollout's.
    BatchStart {
        call: usize,
        batch: usize,
        batches: usize,
        nodes: Vec<String>,
        /// Topology: the batch's nodes counted by the spread (or group) fact's value.
        #[serde(skip_serializing_if = "Option::is_none")]
        groups: Option<std::collections::BTreeMap<String, usize>>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        dry_run: bool,
    },
    /// One node's result, the moment it is known.
    NodeResult {
        node: String,
        status: NodeStatus,
        #[serde(skip_serializing_if = "Option::is_none")]
        statuscode: Option<u8>,
        #[serde(skip_serializing_if = "Option::is_none")]
        statusmsg: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<crate::fleet::rpc::Data>,
        /// The result comes from the journal of an earlier attempt of this run (`--resume`):
        /// the node was not called again.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        resumed: bool,
    },
    /// A batch is done: its counts (`failed` excludes the silent and unknown nodes).
    BatchEnd { batch: usize, batches: usize, ok: usize, failed: usize, no_reply: usize, unknown: usize },
    /// The gate's decision after a batch.
    Gate { batch: usize, decision: GateVerdict },
    /// A guardrail, the gate or Ctrl-C stopped the rollout; `failed` holds `node: why` lines.
    RolloutStopped { reason: String, ok: usize, failed: Vec<String>, unknown: Vec<String>, not_sent: usize },
    /// Display only: the rollout is over (the bars end; a stopped one is left standing).
    RolloutEnd,
    /// Waiting for leases on a Choria Governor (`batch`: for that batch; none: for the run).
    GovernorWait {
        governor: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        batch: Option<usize>,
        leases: usize,
    },
    /// The leases were had, after `waited_ms`.
    Governor {
        governor: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        batch: Option<usize>,
        leases: usize,
        waited_ms: u64,
    },
    /// A lifecycle event `watch_events` saw.
    Event { event_type: String, identity: String, component: String, subject: String },
    /// An election's leader was evicted (`resumed`: an earlier attempt did it; not repeated).
    Evict {
        election: String,
        bucket: String,
        evicted: Option<String>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        resumed: bool,
    },
    /// `confirm()` was answered yes: `by` is `operator`, `--yes`, or `journal` (an earlier
    /// attempt of this run was confirmed; not asked again).
    Confirmed { question: String, by: String },
    /// A runbook's `sleep()` ended (`resumed`: an earlier attempt slept it; not repeated).
    Slept {
        ms: u64,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        resumed: bool,
    },
    /// The run ended: every JSONL run ends with this, whatever happened.
    RunEnd {
        run_id: String,
        status: RunStatus,
        exit_code: i32,
        reason: Option<String>,
        ok: usize,
        failed: usize,
        no_reply: usize,
        unknown: usize,
    },
}

/// A batch's group counts as a person reads them: `fra1 2, ams1 1`.
pub fn group_counts(groups: &std::collections::BTreeMap<String, usize>) -> String {
    groups.iter().map(|(v, n)| format!("{v} {n}")).collect::<Vec<_>>().join(", ")
}

impl RunEvent {
    /// Whether the event is part of the JSONL stream (display-only ones are not).
    pub fn is_public(&self) -> bool {
        !matches!(self, RunEvent::Discovering { .. } | RunEvent::DiscoveryFailed | RunEvent::RolloutEnd)
    }
}

/// One event of each kind, for tests: every public kind once, then an event with strings
/// that need escaping and the display-only kinds.
#[cfg(test)]
pub(crate) fn samples() -> Vec<RunEvent> {
    use serde_json::json;
    vec![
        RunEvent::RunStart {
            run_id: "i".into(),
            command: "run".into(),
            runbook: "r".into(),
            sha256: Some("s".into()),
            dry_run: false,
            args: serde_json::Map::new(),
            user: "u".into(),
            host: "h".into(),
            attempt: 1,
        },
        RunEvent::Discovered { count: 0, nodes: Vec::new() },
        RunEvent::RolloutStart {
            call: 1,
            agent: "a".into(),
            action: "b".into(),
            inputs: json!({}),
            nodes: 1,
            batches: 1,
            dry_run: false,
        },
        RunEvent::BatchStart {
            call: 1,
            batch: 1,
            batches: 1,
            nodes: Vec::new(),
            groups: Some(std::collections::BTreeMap::new()),
            dry_run: true,
        },
        RunEvent::NodeResult {
            node: "n".into(),
            status: NodeStatus::Ok,
            statuscode: Some(0),
            statusmsg: Some("OK".into()),
            data: Some(json!({}).into()),
            resumed: true,
        },
        RunEvent::BatchEnd { batch: 1, batches: 1, ok: 1, failed: 0, no_reply: 0, unknown: 0 },
        RunEvent::Gate { batch: 1, decision: GateVerdict::Continue },
        RunEvent::RolloutStopped { reason: "r".into(), ok: 0, failed: Vec::new(), unknown: Vec::new(), not_sent: 0 },
        RunEvent::Event { event_type: "t".into(), identity: "i".into(), component: "c".into(), subject: "s".into() },
        RunEvent::GovernorWait { governor: "g".into(), batch: Some(1), leases: 2 },
        RunEvent::Governor { governor: "g".into(), batch: Some(1), leases: 2, waited_ms: 5 },
        RunEvent::Evict { election: "e".into(), bucket: "b".into(), evicted: None, resumed: true },
        RunEvent::Confirmed { question: "q".into(), by: "operator".into() },
        RunEvent::Slept { ms: 1, resumed: true },
        RunEvent::RunEnd {
            run_id: "i".into(),
            status: RunStatus::Ok,
            exit_code: 0,
            reason: None,
            ok: 0,
            failed: 0,
            no_reply: 0,
            unknown: 0,
        },
        // Strings that need escaping, and the kinds that never reach JSONL.
        RunEvent::NodeResult {
            node: "quote\"back\\slash\ttab\u{1}ctl".into(),
            status: NodeStatus::Failed,
            statuscode: Some(1),
            statusmsg: Some("line\nbreak é 🦀".into()),
            data: Some(json!({"x": [1, 2.5, -3, null, true, "\u{7f}"], "nested": {"k": "v"}}).into()),
            resumed: false,
        },
        RunEvent::RolloutEnd,
        RunEvent::DiscoveryFailed,
        RunEvent::Discovering { what: "all".into() },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_kind_has_the_documented_shape() {
        let e = RunEvent::NodeResult {
            node: "n1".into(),
            status: NodeStatus::NoReply,
            statuscode: None,
            statusmsg: None,
            data: None,
            resumed: false,
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"event": "node_result", "node": "n1", "status": "no_reply"})
        );
        let b = RunEvent::BatchStart {
            call: 1,
            batch: 1,
            batches: 2,
            nodes: vec!["n1".into()],
            groups: None,
            dry_run: false,
        };
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            json!({"event": "batch_start", "call": 1, "batch": 1, "batches": 2, "nodes": ["n1"]})
        );
        let g = RunEvent::Gate { batch: 2, decision: GateVerdict::Pause };
        assert_eq!(serde_json::to_value(&g).unwrap(), json!({"event": "gate", "batch": 2, "decision": "pause"}));
        assert!(!RunEvent::RolloutEnd.is_public() && g.is_public());
    }

    /// The documented fields of each kind: backticked names in the table of docs/events.md,
    /// parenthesised remarks left out.
    fn documented() -> std::collections::BTreeMap<String, Vec<String>> {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/events.md")).unwrap();
        let ticked = |s: &str| -> Vec<String> {
            let mut depth = 0;
            let plain: String = s
                .chars()
                .filter(|c| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => return depth == 0,
                    }
                    false
                })
                .collect();
            plain.split('`').skip(1).step_by(2).map(str::to_string).collect()
        };
        doc.lines()
            .filter(|l| l.starts_with("| `"))
            .filter_map(|l| {
                let cells: Vec<&str> = l.split(" | ").collect();
                let kind = ticked(cells.first()?).first()?.clone();
                (cells.len() == 3).then(|| (kind, ticked(cells[1])))
            })
            .collect()
    }

    /// The escaping sample repeats a kind.
    fn tricky(e: &RunEvent) -> bool {
        matches!(e, RunEvent::NodeResult { node, .. } if node.contains('"'))
    }

    #[test]
    fn every_public_kind_is_documented_with_exactly_its_fields() {
        let samples: Vec<RunEvent> =
            super::samples().into_iter().filter(RunEvent::is_public).filter(|e| !tricky(e)).collect();
        let docs = documented();
        assert_eq!(docs.len(), samples.len(), "one documented row per public kind: {docs:?}");
        for e in samples {
            let v = serde_json::to_value(&e).unwrap();
            let kind = v["event"].as_str().unwrap().to_string();
            let mut fields: Vec<String> = v.as_object().unwrap().keys().filter(|k| *k != "event").cloned().collect();
            let mut want = docs.get(&kind).unwrap_or_else(|| panic!("{kind} is documented")).clone();
            fields.sort();
            want.sort();
            assert_eq!(fields, want, "{kind}");
        }
    }
}
