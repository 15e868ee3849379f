//! Choria lifecycle events (choria-ops.md §2): building them as servers publish them.

use serde_json::{json, Value};

mod fields;
mod scan;

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

/// What happened on a governor (go-choria `lifecycle.GovernorEventType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GovernorEvent {
    /// A slot was obtained.
    Enter,
    /// A slot was left.
    Exit,
    /// No slot could be had in time (go-choria spells it `timeouts`).
    Timeout,
    /// A lease was evicted through the admin commands.
    Eviction,
}

impl GovernorEvent {
    /// The `event_type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            GovernorEvent::Enter => "enter",
            GovernorEvent::Exit => "exit",
            GovernorEvent::Timeout => "timeouts",
            GovernorEvent::Eviction => "eviction",
        }
    }
}

/// A governor lifecycle event as go-choria's `choria governor run` and `evict` publish it: a
/// CloudEvent around `io.choria.lifecycle.v1.governor` with `governor`, `sequence` (the lease
/// id, 0 when none) and `event_type`; and its subject.
pub fn governor_event(
    identity: &str,
    component: &str,
    governor: &str,
    seq: u64,
    kind: GovernorEvent,
) -> (String, Value) {
    let mut inner = choria_event("governor", identity, component, None, chrono::Utc::now());
    if let Some(m) = inner.as_object_mut() {
        m.insert("governor".into(), json!(governor));
        m.insert("sequence".into(), json!(seq));
        m.insert("event_type".into(), json!(kind.as_str()));
    }
    (subject("governor", component), cloud_event(inner))
}

/// The event types `--type` accepts, sorted as go-choria lists them.
pub const TYPES: [&str; 6] = ["alive", "governor", "provisioned", "shutdown", "startup", "upgraded"];

/// `io.choria.lifecycle.v1.<type>` for each of [`TYPES`], in the same order.
const PROTOCOLS: [&str; 6] = [
    "io.choria.lifecycle.v1.alive",
    "io.choria.lifecycle.v1.governor",
    "io.choria.lifecycle.v1.provisioned",
    "io.choria.lifecycle.v1.shutdown",
    "io.choria.lifecycle.v1.startup",
    "io.choria.lifecycle.v1.upgraded",
];

/// How an event arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `io.choria.lifecycle.v1.<type>` at the top level.
    Choria,
    /// A CloudEvents 1.0 envelope around the Choria form.
    CloudEvent,
    /// The pre-2019 `choria:lifecycle:<type>:1` form.
    Legacy,
}

/// A parsed lifecycle event.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: String,
    pub protocol: String,
    pub id: Option<String>,
    pub identity: String,
    pub component: String,
    pub timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub governor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    pub format: Format,
}

/// Parses an event in any of the three forms (go-choria `lifecycle.NewFromJSON`, plus the
/// legacy protocol strings, which today's Go viewer drops but older servers send).
pub fn parse(bytes: &[u8]) -> Result<Event, String> {
    parse_kept(bytes, &|_| true).unwrap_or_else(|| Err("unsupported event format".into()))
}

/// What a filter sees of an event before it is built: its type, component and identity.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    pub kind: &'a str,
    pub component: &'a str,
    pub identity: &'a str,
}

/// [`parse`], but an event that `keep` refuses is not built: `None`. Errors are returned as
/// by [`parse`], kept or not. A watch that keeps one event in ten skips most of the work.
pub fn parse_kept(bytes: &[u8], keep: &dyn Fn(&Head<'_>) -> bool) -> Option<Result<Event, String>> {
    // The fast reader borrows from the bytes; what it does not take goes the `Value` way.
    match fields::Fields::read(bytes) {
        Some(f) => parse_from(&f, keep, |f| match &f.data {
            fields::Data::Missing => None,
            fields::Data::Fields(d) => Some(Ok(d.as_ref())),
            fields::Data::NotObject => Some(Err(())),
        }),
        None => match serde_json::from_slice::<Value>(bytes) {
            Ok(v) => parse_from(&v, keep, |v| v.get("data").map(Ok)),
            Err(e) => Some(Err(format!("not JSON: {e}"))),
        },
    }
}

/// Event fields by name, from a `Value` or from [`fields::Fields`].
trait Source {
    fn str(&self, key: &str) -> Option<&str>;
    fn i64(&self, key: &str) -> Option<i64>;
    fn u64(&self, key: &str) -> Option<u64>;
}

impl Source for Value {
    fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
    fn i64(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_i64)
    }
    fn u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_u64)
    }
}

impl fields::Fields<'_> {
    fn field(&self, key: &str) -> Option<&fields::Loose<'_>> {
        Some(match key {
            "protocol" => &self.protocol,
            "id" => &self.id,
            "identity" => &self.identity,
            "component" => &self.component,
            "timestamp" => &self.timestamp,
            "version" => &self.version,
            "new_version" => &self.new_version,
            "governor" => &self.governor,
            "sequence" => &self.sequence,
            "event_type" => &self.event_type,
            "specversion" => &self.specversion,
            "source" => &self.source,
            _ => return None,
        })
    }
}

impl Source for fields::Fields<'_> {
    fn str(&self, key: &str) -> Option<&str> {
        self.field(key).and_then(fields::Loose::as_str)
    }
    fn i64(&self, key: &str) -> Option<i64> {
        self.field(key).and_then(fields::Loose::as_i64)
    }
    fn u64(&self, key: &str) -> Option<u64> {
        self.field(key).and_then(fields::Loose::as_u64)
    }
}

/// The format decision of [`parse`]; `data` gives a CloudEvent's `data` (`Err`: not an
/// object, so it has no fields).
fn parse_from<S: Source>(
    v: &S,
    keep: &dyn Fn(&Head<'_>) -> bool,
    data: impl Fn(&S) -> Option<Result<&S, ()>>,
) -> Option<Result<Event, String>> {
    let protocol = v.str("protocol").unwrap_or("");
    if protocol.starts_with("io.choria.lifecycle") {
        return from_choria(v, Format::Choria, keep);
    }
    if protocol.starts_with("choria:lifecycle:") {
        return from_choria(v, Format::Legacy, keep);
    }
    if v.str("specversion") == Some("1.0") && v.str("source") == Some("io.choria.lifecycle") {
        let e = match data(v) {
            None => return Some(Err("CloudEvent without data".into())),
            Some(Ok(d)) => from_choria(d, Format::Choria, keep)?,
            // A `data` that is no object has no protocol, as `Value::get` sees it.
            Some(Err(())) => return Some(Err("no protocol".into())),
        };
        return Some(e.map(|mut e| {
            e.format = Format::CloudEvent;
            e
        }));
    }
    Some(Err("unsupported event format".into()))
}

fn from_choria<S: Source>(v: &S, format: Format, keep: &dyn Fn(&Head<'_>) -> bool) -> Option<Result<Event, String>> {
    let s = |k: &str| v.str(k).map(str::to_string);
    let Some(protocol) = v.str("protocol") else { return Some(Err("no protocol".into())) };
    // Dotted: io.choria.lifecycle.v1.<type> (5 parts). Colon: choria:lifecycle:<type>:1 (4 parts).
    let count = |c: u8| protocol.bytes().filter(|&b| b == c).count();
    let kind = match (count(b'.'), count(b':')) {
        (4, _) => protocol.rsplit('.').next().unwrap_or(""),
        (_, 3) => protocol.split(':').nth(2).unwrap_or(""),
        _ => "",
    };
    let Some(i) = TYPES.iter().position(|t| *t == kind) else {
        return Some(Err(format!("unknown protocol '{protocol}' received")));
    };
    let Some(identity) = v.str("identity") else { return Some(Err("no identity".into())) };
    if kind == "governor" && v.str("governor").unwrap_or("").is_empty() {
        return Some(Err("governor event without a governor".into()));
    }
    if !keep(&Head { kind, component: v.str("component").unwrap_or(""), identity }) {
        return None;
    }
    Some(Ok(Event {
        kind: kind.to_string(),
        protocol: PROTOCOLS[i].to_string(),
        id: s("id"),
        identity: identity.to_string(),
        component: s("component").unwrap_or_default(),
        timestamp: v.i64("timestamp").unwrap_or(0),
        version: s("version"),
        new_version: s("new_version"),
        governor: s("governor"),
        sequence: v.u64("sequence"),
        event_type: s("event_type"),
        format,
    }))
}

impl Event {
    /// go-choria's `String()` of the event, as `choria tool event` prints it after the time.
    pub fn display(&self) -> String {
        let head = format!("[{}] {}", self.kind, self.identity);
        let v = self.version.as_deref().unwrap_or("");
        match self.kind.as_str() {
            "startup" | "alive" => format!("{head}: {} version {v}", self.component),
            "upgraded" => {
                format!("{head}: {} version {v} to {}", self.component, self.new_version.as_deref().unwrap_or(""))
            }
            "governor" => {
                let gov = self.governor.as_deref().unwrap_or("");
                let seq = self.sequence.unwrap_or(0);
                match (self.event_type.as_deref().unwrap_or(""), seq) {
                    ("enter", 0) => format!("{head}: obtained slot on {gov}"),
                    ("enter", n) => format!("{head}: obtained slot {n} on {gov}"),
                    ("exit", 0) => format!("{head}: vacated {gov}"),
                    ("exit", n) => format!("{head}: vacated slot {n} on {gov}"),
                    ("timeouts", _) => format!("{head}: failed to obtain a slot on {gov}"),
                    ("eviction", 0) => format!("{head}: evicted from {gov}"),
                    ("eviction", n) => format!("{head}: evicted from slot {n} on {gov}"),
                    _ => format!("{head}: unknown stage on Governor {gov}"),
                }
            }
            _ => format!("{head}: {}", self.component),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_go_choria() {
        let startup = br#"{"protocol":"io.choria.lifecycle.v1.startup","id":"x","identity":"n1.choria.local","component":"provision_mode_server","timestamp":1,"version":"0.26.15"}"#;
        assert_eq!(
            parse(startup).unwrap().display(),
            "[startup] n1.choria.local: provision_mode_server version 0.26.15"
        );
        let up = br#"{"protocol":"io.choria.lifecycle.v1.upgraded","identity":"n","component":"server","timestamp":1,"version":"0.27.0","new_version":"0.28.0"}"#;
        assert_eq!(parse(up).unwrap().display(), "[upgraded] n: server version 0.27.0 to 0.28.0");
        let gov = |t: &str, seq: u64| {
            let j = format!(
                r#"{{"protocol":"io.choria.lifecycle.v1.governor","identity":"g","component":"c","timestamp":1,"governor":"PUPPET","event_type":"{t}","sequence":{seq}}}"#
            );
            parse(j.as_bytes()).unwrap().display()
        };
        assert_eq!(gov("enter", 10), "[governor] g: obtained slot 10 on PUPPET");
        assert_eq!(gov("enter", 0), "[governor] g: obtained slot on PUPPET");
        assert_eq!(gov("exit", 3), "[governor] g: vacated slot 3 on PUPPET");
        assert_eq!(gov("exit", 0), "[governor] g: vacated PUPPET");
        assert_eq!(gov("timeouts", 0), "[governor] g: failed to obtain a slot on PUPPET");
        assert_eq!(gov("eviction", 2), "[governor] g: evicted from slot 2 on PUPPET");
        assert_eq!(gov("eviction", 0), "[governor] g: evicted from PUPPET");
        assert_eq!(gov("other", 0), "[governor] g: unknown stage on Governor PUPPET");
    }

    /// The borrowing reader and the `Value` path agree, whatever the bytes.
    #[test]
    fn both_readers_agree() {
        let slow = |b: &[u8]| {
            let v: Value = serde_json::from_slice(b).map_err(|e| format!("not JSON: {e}"))?;
            parse_from(&v, &|_| true, |v| v.get("data").map(Ok)).expect("kept")
        };
        let cases: [&[u8]; 14] = [
            br#"{"protocol":"io.choria.lifecycle.v1.startup","identity":"n\u0031","component":"c","timestamp":-1,"version":"1"}"#,
            br#"{"specversion":"1.0","source":"io.choria.lifecycle","data":{"protocol":"io.choria.lifecycle.v1.alive","identity":"n","timestamp":1.5}}"#,
            br#"{"specversion":"1.0","source":"io.choria.lifecycle","data":null}"#,
            br#"{"specversion":"1.0","source":"io.choria.lifecycle","data":[1]}"#,
            br#"{"specversion":"1.0","source":"io.choria.lifecycle"}"#,
            br#"{"protocol":"choria:lifecycle:shutdown:1","identity":"n","component":7,"timestamp":18446744073709551615}"#,
            br#"{"protocol":"io.choria.lifecycle.v1.governor","identity":"g","governor":"G","sequence":-3,"extra":{"a":[1,{}]}}"#,
            br#"{"protocol":"io.choria.lifecycle.v1.startup","identity":"a","identity":"b"}"#,
            br#"["io.choria.lifecycle.v1.startup","n"]"#,
            br#"{"protocol":null,"identity":true}"#,
            br#"  {"protocol":"io.choria.lifecycle.v1.upgraded","identity":"n","new_version":"2"} "#,
            br#"{"protocol":"io.choria.lifecycle.v1.startup""#,
            b"42",
            b"",
        ];
        for c in cases {
            assert_eq!(parse(c), slow(c), "{}", String::from_utf8_lossy(c));
            // A refused event is not built, and an error is an error either way.
            match (parse(c), parse_kept(c, &|_| false)) {
                (Ok(_), None) | (Err(_), Some(Err(_))) => {}
                (a, b) => panic!("{}: {a:?} vs {b:?}", String::from_utf8_lossy(c)),
            }
        }
    }

    #[test]
    fn protocols_follow_the_types() {
        for (t, p) in TYPES.iter().zip(PROTOCOLS) {
            assert_eq!(format!("io.choria.lifecycle.v1.{t}"), p);
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        assert!(parse(br#"{"protocol":"io.choria.lifecycle.v1.reboot","identity":"n","component":"c","timestamp":1}"#)
            .unwrap_err()
            .contains("unknown protocol 'io.choria.lifecycle.v1.reboot' received"));
        assert!(parse(
            br#"{"protocol":"io.choria.lifecycle.v1.governor","identity":"n","component":"c","timestamp":1}"#
        )
        .is_err());
        assert!(parse(b"not json").is_err());
        assert!(parse(br#"{"specversion":"1.0","source":"io.choria.machine","data":{}}"#).is_err());
    }
}
