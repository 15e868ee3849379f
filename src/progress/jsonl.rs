//! The JSONL sink: one JSON object per event on stdout, `{"event": kind, "time": ..., ...}`.

use std::io::Write;

use serde_json::{Map, Value};

use super::{RunEvent, Sink};

/// Writes public events as JSON lines on stdout.
pub struct Jsonl;

impl Sink for Jsonl {
    fn event(&self, e: &RunEvent) {
        if !e.is_public() {
            return;
        }
        let Ok(Value::Object(fields)) = serde_json::to_value(e) else { return };
        let mut obj = Map::new();
        let mut fields = fields.into_iter();
        // The tag comes first (serde writes it first), then the time, then the fields.
        if let Some((k, v)) = fields.next() {
            obj.insert(k, v);
        }
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        obj.insert("time".into(), Value::String(now));
        obj.extend(fields);
        // serde_json escapes every control character, so a line stays one line.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", Value::Object(obj));
        let _ = out.flush();
    }
}
