//! Choria lifecycle events (choria-ops.md §2): building them as servers publish them.

use serde_json::{json, Value};

/// Subject of an event: `choria.lifecycle.event.<type>.<component>`.
pub fn subject(kind: &str, component: &str) -> String {
    format!("choria.lifecycle.event.{kind}.{component}")
}

/// A Choria-format event body (`io.choria.lifecycle.v1.<type>`), fields in Go's order.
pub fn choria_event(
    kind: &str,
    identity: &str,
    component: &str,
    version: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Value {
    let mut v = json!({
        "protocol": format!("io.choria.lifecycle.v1.{kind}"),
        "id": uuid::Uuid::new_v4().to_string(),
        "identity": identity,
        "component": component,
        "timestamp": now.timestamp(),
    });
    if let (Some(ver), Some(map)) = (version, v.as_object_mut()) {
        if kind == "startup" || kind == "alive" {
            map.insert("version".into(), json!(ver));
        }
    }
    v
}

/// The CloudEvents 1.0 envelope servers publish by default (`ToCloudEventV1`).
pub fn cloud_event(inner: Value) -> Value {
    let ts = inner.get("timestamp").and_then(Value::as_i64).unwrap_or(0);
    let time =
        chrono::DateTime::from_timestamp(ts, 0).map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_default();
    json!({
        "specversion": "1.0",
        "id": inner.get("id").cloned().unwrap_or(Value::Null),
        "source": "io.choria.lifecycle",
        "type": inner.get("protocol").cloned().unwrap_or(Value::Null),
        "subject": inner.get("identity").cloned().unwrap_or(Value::Null),
        "datacontenttype": "application/json",
        "time": time,
        "data": inner,
    })
}
