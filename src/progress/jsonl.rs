//! The JSONL sink: one JSON object per event on stdout, `{"event": kind, "time": ..., ...}`.

use std::io::Write;

use serde_json::{Map, Value};

use super::{RunEvent, Sink};

/// Writes public events as JSON lines on stdout.
pub struct Jsonl;

/// A public event as one line of JSON, with its kind: `{"event": kind, "time": ..., ...}`.
/// serde_json escapes every control character, so a line stays one line.
pub fn line(e: &RunEvent) -> Option<(String, String)> {
    if !e.is_public() {
        return None;
    }
    let Ok(Value::Object(fields)) = serde_json::to_value(e) else { return None };
    let mut obj = Map::new();
    let mut fields = fields.into_iter();
    // The tag comes first (serde writes it first), then the time, then the fields.
    let (k, kind) = fields.next()?;
    let name = kind.as_str().unwrap_or("event").to_string();
    obj.insert(k, kind);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    obj.insert("time".into(), Value::String(now));
    obj.extend(fields);
    Some((name, Value::Object(obj).to_string()))
}

impl Sink for Jsonl {
    fn event(&self, e: &RunEvent) {
        let Some((_, line)) = line(e) else { return };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}
