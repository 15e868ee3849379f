//! The JSONL sink: one JSON object per event on stdout, `{"event": kind, "time": ..., ...}`.

use std::io::Write;

use super::{RunEvent, Sink};

/// Writes public events as JSON lines on stdout.
pub struct Jsonl;

/// A public event as one line of JSON, with its kind: `{"event": kind, "time": ..., ...}`.
/// serde_json escapes every control character, so a line stays one line. The event is written
/// straight to text and the time put in after the tag, which serde writes first (the journal
/// writes a line per node result; going through a `Value` was most of its cost).
pub fn line(e: &RunEvent) -> Option<(String, String)> {
    if !e.is_public() {
        return None;
    }
    let body = serde_json::to_string(e).ok()?;
    const TAG: &str = "{\"event\":\"";
    // Kinds are snake_case names: nothing in them is escaped, so the next quote ends the tag.
    let kind_len = body.strip_prefix(TAG)?.find('"')?;
    let split = TAG.len() + kind_len + 1;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut line = String::with_capacity(body.len() + now.len() + 10);
    line.push_str(&body[..split]);
    line.push_str(",\"time\":\"");
    line.push_str(&now);
    line.push('"');
    line.push_str(&body[split..]);
    Some((body[TAG.len()..split - 1].to_string(), line))
}

impl Sink for Jsonl {
    fn event(&self, e: &RunEvent) {
        let Some((_, line)) = line(e) else { return };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value};

    /// The line as it was first written: through a `Value`, the time inserted after the tag.
    fn reference(e: &RunEvent, now: &str) -> (String, String) {
        let Ok(Value::Object(fields)) = serde_json::to_value(e) else { panic!("an object") };
        let mut fields = fields.into_iter();
        let (k, kind) = fields.next().unwrap();
        let name = kind.as_str().unwrap().to_string();
        let mut obj = Map::new();
        obj.insert(k, kind);
        obj.insert("time".into(), Value::String(now.into()));
        obj.extend(fields);
        (name, Value::Object(obj).to_string())
    }

    #[test]
    fn lines_are_the_events_with_the_time_after_the_tag() {
        let mut seen = 0;
        for e in crate::progress::event::samples() {
            let Some((kind, line)) = line(&e) else {
                assert!(!e.is_public(), "{e:?}");
                continue;
            };
            seen += 1;
            let v: Value = serde_json::from_str(&line).unwrap();
            let now = v["time"].as_str().unwrap();
            assert_eq!(now.len(), "2026-11-22T10:00:00.000Z".len(), "{line}");
            assert_eq!((kind, line.clone()), reference(&e, now), "{line}");
            assert!(!line.contains('\n'));
        }
        assert!(seen > 10);
    }
}
