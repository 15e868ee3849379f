//! Reading the journal back: the list of recent runs (`fleetbook runs`) and one run's
//! timeline (`fleetbook runs show ID`).

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull::OrderedConfig, consumer::DeliverPolicy};
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;

use super::{RunId, HEARTBEAT, PREFIX, STREAM};
use crate::fleet::{Fleet, FleetError};

/// How many heartbeat periods a run may be silent before it counts as interrupted.
pub const STALE_PERIODS: f64 = 3.0;

/// One run as `fleetbook runs` lists it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RunSummary {
    pub run_id: String,
    pub command: String,
    pub runbook: String,
    pub user: String,
    pub host: String,
    pub started: String,
    /// running, ok, failed, stopped, interrupted or error.
    pub status: String,
    pub reason: Option<String>,
    /// Nodes with a result so far (ok, failed, silent, unknown).
    pub done: usize,
    pub failed: usize,
    /// Nodes the run's rollouts planned so far.
    pub planned: usize,
    /// The time of the last word from the run.
    pub last_seen: String,
    /// The run's heartbeat period, in seconds.
    #[serde(skip)]
    period_s: f64,
}

/// Reads every message on `filters` in order; an absent stream reads as empty.
async fn read(fleet: &Fleet, filters: Vec<String>) -> Result<Vec<(String, Value)>, FleetError> {
    let js = jetstream::new(fleet.nats().clone());
    let mut stream = match js.get_stream(STREAM).await {
        Ok(s) => s,
        Err(e) => match e.kind() {
            // No run was ever journaled on this broker.
            jetstream::context::GetStreamErrorKind::JetStream(j)
                if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                return Ok(Vec::new())
            }
            _ => return Err(FleetError::nats("reading the run journal", e)),
        },
    };
    let info = stream.info().await.map_err(|e| FleetError::nats("reading the run journal", e))?;
    if info.state.messages == 0 {
        return Ok(Vec::new());
    }
    let config = OrderedConfig { filter_subjects: filters, deliver_policy: DeliverPolicy::All, ..Default::default() };
    let consumer = stream.create_consumer(config).await.map_err(|e| FleetError::nats("reading the run journal", e))?;
    let mut messages = consumer.messages().await.map_err(|e| FleetError::nats("reading the run journal", e))?;
    let mut out = Vec::new();
    // Nothing matching at all shows as silence: a short wait ends it.
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(2), messages.next()).await {
        let m = m.map_err(|e| FleetError::nats("reading the run journal", e))?;
        let info = m.info().ok();
        let pending = info.as_ref().map(|i| i.pending).unwrap_or(0);
        // A resume claims its attempt against the last claim it read: it needs its sequence.
        let claim_seq = info.as_ref().filter(|_| m.subject.ends_with(".claim")).map(|i| i.stream_sequence);
        let subject = m.subject.to_string();
        // Events of one kind written together share a message, a JSON line each.
        for line in m.payload.split(|b| *b == b'\n') {
            let mut value: Value = serde_json::from_slice(line).unwrap_or(Value::Null);
            if let (Some(seq), Some(obj)) = (claim_seq, value.as_object_mut()) {
                obj.insert("seq".into(), seq.into());
            }
            out.push((subject.clone(), value));
        }
        if pending == 0 {
            break;
        }
    }
    Ok(out)
}

/// The run id and kind in a journal subject.
fn parts(subject: &str) -> Option<(&str, &str)> {
    let rest = subject.strip_prefix(PREFIX)?.strip_prefix('.')?;
    rest.split_once('.')
}

fn text(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn count(v: &Value, k: &str) -> usize {
    v.get(k).and_then(Value::as_u64).unwrap_or(0) as usize
}

/// Recent runs, oldest first, at most `limit`.
pub async fn list(fleet: &Fleet, limit: usize) -> Result<Vec<RunSummary>, FleetError> {
    let kinds = ["run_start", "run_end", "heartbeat", "rollout_start", "node_result"];
    let filters = kinds.iter().map(|k| format!("{PREFIX}.*.{k}")).collect();
    let messages = fleet.within("reading the run journal", read(fleet, filters)).await?;
    let mut runs: BTreeMap<String, RunSummary> = BTreeMap::new();
    for (subject, v) in &messages {
        let Some((id, kind)) = parts(subject) else { continue };
        let r = runs.entry(id.to_string()).or_insert_with(|| RunSummary {
            run_id: id.to_string(),
            status: "running".into(),
            period_s: HEARTBEAT.as_secs_f64(),
            ..Default::default()
        });
        let time = text(v, "time");
        if !time.is_empty() {
            r.last_seen = time.clone();
        }
        match kind {
            "run_start" => {
                // A resumed run starts again under its id: its last attempt tells the story
                // (it reports the nodes earlier attempts finished again, marked resumed).
                r.status = "running".into();
                r.reason = None;
                (r.done, r.failed, r.planned) = (0, 0, 0);
                r.command = text(v, "command");
                r.runbook = text(v, "runbook");
                r.user = text(v, "user");
                r.host = text(v, "host");
                if r.started.is_empty() {
                    r.started = time;
                }
            }
            "heartbeat" => r.period_s = v.get("period_s").and_then(Value::as_f64).unwrap_or(r.period_s),
            "rollout_start" if v.get("dry_run") != Some(&Value::Bool(true)) => r.planned += count(v, "nodes"),
            "node_result" => match text(v, "status").as_str() {
                "ok" => r.done += 1,
                "late_ok" | "late_failed" | "no_event" => {}
                _ => {
                    r.done += 1;
                    r.failed += 1;
                }
            },
            "run_end" => {
                r.status = match text(v, "status").as_str() {
                    "broker_lost" | "unreachable" => "interrupted".into(),
                    s => s.to_string(),
                };
                r.reason = v.get("reason").and_then(Value::as_str).map(str::to_string);
            }
            _ => {}
        }
    }
    let now = chrono::Utc::now();
    for r in runs.values_mut() {
        let seen = chrono::DateTime::parse_from_rfc3339(&r.last_seen).map(|t| t.with_timezone(&chrono::Utc));
        let silent = seen.map(|t| (now - t).to_std().unwrap_or_default().as_secs_f64());
        let stale = silent.map(|s| s > STALE_PERIODS * r.period_s).unwrap_or(true);
        if r.status == "running" && stale {
            r.status = "interrupted".into();
        }
    }
    // In start order (ids sort by second only).
    let mut all: Vec<RunSummary> = runs.into_values().collect();
    all.sort_by(|a, b| (&a.started, &a.run_id).cmp(&(&b.started, &b.run_id)));
    Ok(all[all.len().saturating_sub(limit)..].to_vec())
}

/// Every event of one run, in order.
pub async fn show(fleet: &Fleet, id: &RunId) -> Result<Vec<Value>, FleetError> {
    let filters = vec![format!("{PREFIX}.{id}.>")];
    let messages = fleet.within("reading the run journal", read(fleet, filters)).await?;
    Ok(messages.into_iter().map(|(_, v)| v).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn subjects_split_into_run_and_kind() {
        assert_eq!(super::parts("fleetbook.runs.ABC.node_result"), Some(("ABC", "node_result")));
        assert_eq!(super::parts("other.runs.ABC.x"), None);
    }
}
