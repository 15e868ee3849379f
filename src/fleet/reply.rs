//! What comes back from an RPC: one node's reply, a batch's outcome (every addressed node in
//! exactly one place), and the status names the Choria console shows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{FleetError, Result};

/// One node's answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeReply {
    pub sender: String,
    pub statuscode: u8,
    pub statusmsg: String,
    pub data: Data,
}

/// A reply's `data`. Most replies' data is kept as the JSON text the node sent, when that
/// text is exactly what serde_json would write for it (compact, integers only, plain strings:
/// what Go's encoder writes for most agents), and read into a [`Value`] only where something
/// looks inside; written out (`--json`, JSONL, the journal) it is copied as it is. Anything
/// else is read into a `Value` at once. Either way it reads, compares and writes as the same
/// `Value` (issue 15: building every reply's data as a `Value`, which a rollout mostly never
/// reads, was the largest single cost per reply left in the client).
#[derive(Clone)]
pub struct Data(Repr);

#[derive(Clone)]
enum Repr {
    /// Checked canonical ([`crate::json::Scan::canonical`]).
    Text(Box<serde_json::value::RawValue>),
    Value(Value),
}

impl Data {
    /// Data kept as its text, which must be canonical JSON (see [`crate::json::Scan::canonical`]).
    fn canonical(text: &str) -> Option<Data> {
        serde_json::value::RawValue::from_string(text.to_string()).ok().map(|t| Data(Repr::Text(t)))
    }

    /// The data as a `Value` (read from its text if it was kept as text).
    pub fn value(&self) -> std::borrow::Cow<'_, Value> {
        match &self.0 {
            // Checked canonical when it was kept: it reads.
            Repr::Text(t) => std::borrow::Cow::Owned(serde_json::from_str(t.get()).unwrap_or(Value::Null)),
            Repr::Value(v) => std::borrow::Cow::Borrowed(v),
        }
    }

    /// The data as a `Value`, taken.
    pub fn into_value(self) -> Value {
        match self.0 {
            Repr::Text(t) => serde_json::from_str(t.get()).unwrap_or(Value::Null),
            Repr::Value(v) => v,
        }
    }
}

impl From<Value> for Data {
    fn from(v: Value) -> Data {
        Data(Repr::Value(v))
    }
}

impl Default for Data {
    /// An empty object: a reply without `data`.
    fn default() -> Data {
        Data(Repr::Value(Value::Object(Map::new())))
    }
}

impl PartialEq for Data {
    fn eq(&self, other: &Data) -> bool {
        self.value() == other.value()
    }
}

impl PartialEq<Value> for Data {
    fn eq(&self, other: &Value) -> bool {
        *self.value() == *other
    }
}

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Repr::Text(t) => write!(f, "{}", t.get()),
            Repr::Value(v) => write!(f, "{v}"),
        }
    }
}

impl std::fmt::Display for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl Serialize for Data {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match &self.0 {
            Repr::Text(t) => t.serialize(s),
            Repr::Value(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Data, D::Error> {
        Value::deserialize(d).map(Data::from)
    }
}

impl NodeReply {
    /// Status 0 is success; every other code is a failure.
    pub fn ok(&self) -> bool {
        self.statuscode == 0
    }
}

/// The outcome of one batch (or one broadcast). Every addressed node ends in exactly one of
/// `replies`, `malformed`, `no_reply` and `unknown`.
#[derive(Debug, Clone, Default)]
pub struct BatchOutcome {
    /// Replies in arrival order.
    pub replies: Vec<NodeReply>,
    /// Addressed nodes whose reply did not decode, with the reason.
    pub malformed: BTreeMap<String, String>,
    /// Addressed nodes that did not answer in time.
    pub no_reply: Vec<String>,
    /// Addressed nodes whose fate we cannot know: the wait was cancelled (Ctrl-C), or the
    /// broker connection broke during it, so a reply may have been lost on the way.
    pub unknown: Vec<String>,
    /// Replies that arrived during this wait from nodes an earlier batch reported as
    /// `no_reply`: they acted after all.
    pub late: Vec<NodeReply>,
    /// Replies from nodes we did not address (or that answered twice): counted apart, never
    /// as node results.
    pub unexpected: Vec<String>,
    /// Messages on the reply subject that decode to no addressed node (garbage, forgeries):
    /// counted apart, never as node results.
    pub stray: usize,
    /// Set when the wait was cut short by Ctrl-C.
    pub interrupted: bool,
    /// Set when the broker was gone at the end of the wait; the run must end.
    pub broker_lost: Option<String>,
}

/// The nodes of `replies` that answered with status 0, sorted. (A batch's replies, once the
/// tally has taken them from its [`BatchOutcome`]: the outcome is left without them.)
pub fn ok_nodes(replies: &[NodeReply]) -> Vec<String> {
    let mut v: Vec<String> = replies.iter().filter(|r| r.ok()).map(|r| r.sender.clone()).collect();
    v.sort();
    v
}

/// A node's result the moment it is known, for the caller to show while the wait goes on.
/// (Late replies are not shown here: they are taken between batches, from `late`.)
#[derive(Debug)]
pub enum Arrival<'a> {
    /// An addressed node answered.
    Reply(&'a NodeReply),
    /// An addressed node's only message did not decode (known at the end of the wait).
    Malformed { node: &'a str, reason: &'a str },
}

/// Parses a SimpleRPC reply body `{"action","statuscode","statusmsg","data"}` from `sender`
/// (taken, not copied: one allocation less per reply).
pub(crate) fn parse_body(sender: String, body: &[u8]) -> Result<NodeReply> {
    let mut reply = match scan_body(body) {
        Some(r) => r,
        None => parse_body_serde(body)?,
    };
    reply.sender = sender;
    Ok(reply)
}

/// The fast path of [`parse_body`] (the client reads one body per node, issue 15): one pass
/// with [`crate::json::Scan`] for plain bodies, `None` for anything else (duplicate or escaped
/// keys, floats, a status code that is not a small integer, deep nesting), which the serde
/// readers decide.
fn scan_body(body: &[u8]) -> Option<NodeReply> {
    let mut s = crate::json::Scan::new(body)?;
    let (mut code, mut msg, mut data, mut seen) = (None, String::new(), None, 0);
    s.ws();
    s.object(0, |s, key| {
        match key {
            "statuscode" => {
                crate::json::once(&mut seen, 0)?;
                code = match s.integer()? {
                    crate::json::Int::U(c) if c <= 5 => Some(c as u8),
                    _ => return None,
                };
            }
            "statusmsg" => {
                crate::json::once(&mut seen, 1)?;
                // A string, or null for no message. Anything else the serde path builds as a
                // `Value` first (refusing, say, `1e400`), so it decides.
                match s.peek()? {
                    b'"' => msg = s.unescaped()?.into_owned(),
                    _ => s.literal(b"null")?,
                }
            }
            "data" => {
                crate::json::once(&mut seen, 2)?;
                data = Some(match s.canonical(0).and_then(Data::canonical) {
                    Some(d) => d,
                    None => s.value(0)?.into(),
                });
            }
            _ => s.skip(0)?,
        }
        Some(())
    })?;
    if !s.at_end() {
        return None;
    }
    Some(NodeReply { sender: String::new(), statuscode: code?, statusmsg: msg, data: data.unwrap_or_default() })
}

/// [`parse_body`] the serde way: the reference. (The sender is left empty.)
fn parse_body_serde(body: &[u8]) -> Result<NodeReply> {
    // Straight into the three fields we keep: no map for the outer object and no copy of
    // `data`. What this reader refuses (a non-object, duplicate keys) goes the `Value` way,
    // which decides exactly as before.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        if let Ok(b) = serde_json::from_slice::<BodyIn>(body) {
            return node_reply(b.statuscode.as_ref(), b.statusmsg, b.data);
        }
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| FleetError::decode("reply body", e))?;
    node_reply(v.get("statuscode"), v.get("statusmsg").cloned(), v.get("data").cloned())
}

/// The fields of a reply body; `data` is `Some(Null)` for `"data": null`, `None` when absent.
#[derive(Deserialize)]
struct BodyIn {
    #[serde(default)]
    statuscode: Option<Value>,
    #[serde(default)]
    statusmsg: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    data: Option<Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

fn node_reply(code: Option<&Value>, msg: Option<Value>, data: Option<Value>) -> Result<NodeReply> {
    let code = code
        .and_then(Value::as_u64)
        .filter(|c| *c <= 5)
        .ok_or_else(|| FleetError::malformed("reply body", "statuscode missing or not 0-5"))?;
    let statusmsg = match msg {
        Some(Value::String(s)) => s,
        _ => String::new(),
    };
    Ok(NodeReply {
        sender: String::new(),
        statuscode: code as u8,
        statusmsg,
        data: data.map(Data::from).unwrap_or_default(),
    })
}

/// Name of a status code as the Choria console shows it.
pub fn status_name(code: u8) -> &'static str {
    match code {
        0 => "OK",
        1 => "Request Aborted",
        2 => "Unknown Action",
        3 => "Missing Request Data",
        4 => "Invalid Request Data",
        _ => "Unknown Request Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_body_needs_a_status() {
        assert!(parse_body("n".into(), br#"{"statuscode":0,"statusmsg":"OK","data":{"pong":1}}"#).unwrap().ok());
        assert!(parse_body("n".into(), br#"{"statusmsg":"OK"}"#).is_err());
        assert!(parse_body("n".into(), b"pong").is_err());
        assert_eq!(parse_body("n".into(), br#"{"statuscode":1,"statusmsg":"no"}"#).unwrap().statuscode, 1);
    }

    /// The typed reader and the `Value` reader give the same reply (or both refuse).
    #[test]
    fn both_body_readers_agree() {
        let slow = |b: &[u8]| {
            let v: Value = serde_json::from_slice(b).map_err(|e| e.to_string())?;
            node_reply(v.get("statuscode"), v.get("statusmsg").cloned(), v.get("data").cloned())
                .map_err(|e| e.to_string())
        };
        let cases: [&[u8]; 10] = [
            br#"{"action":"ping","statuscode":0,"statusmsg":"OK","data":{"pong":1}}"#,
            br#"{"statuscode":0,"data":null}"#,
            br#"{"statuscode":0}"#,
            br#"{"statuscode":0.0,"data":{}}"#,
            br#"{"statuscode":6}"#,
            br#"{"statuscode":2,"statusmsg":7,"data":[1,2]}"#,
            br#"{"statuscode":1,"statuscode":0,"data":{"a":"\u00e9"}}"#,
            br#" {"statuscode":3,"statusmsg":"caf\u00e9"} "#,
            br#"[0]"#,
            br#"{"statuscode":0"#,
        ];
        for c in cases {
            let fast = parse_body(String::new(), c).map_err(|e| e.to_string());
            match (&fast, slow(c)) {
                (Ok(a), Ok(b)) => assert_eq!(*a, b, "{}", String::from_utf8_lossy(c)),
                (Err(_), Err(_)) => {}
                (a, b) => panic!("{}: {a:?} vs {b:?}", String::from_utf8_lossy(c)),
            }
        }
    }

    /// The serde readers, the reference for the one-pass one. (Not the `Value` reader alone:
    /// the typed one ignores unknown fields unread, so it takes an out-of-range number there
    /// that a `Value` refuses, and so does the one-pass reader.)
    fn reference(b: &[u8]) -> Option<NodeReply> {
        parse_body_serde(b).ok()
    }

    /// Written out (`--json`, JSONL, the journal), a reply whose data was kept as text reads
    /// exactly as one whose data is a `Value`: same bytes.
    fn written_alike(a: &NodeReply, b: &NodeReply) {
        let as_value = |r: &NodeReply| NodeReply { data: r.data.value().into_owned().into(), ..r.clone() };
        let text = |r: &NodeReply| serde_json::to_string(r).expect("a reply writes");
        assert_eq!(text(a), text(&as_value(b)), "{a:?}");
        assert_eq!(text(b), text(&as_value(a)), "{b:?}");
    }

    /// Whenever the one-pass reader answers, it answers as the serde readers do; and it
    /// answers for the bodies servers send (the shared go-choria replies among them).
    #[test]
    fn the_scanning_reader_agrees_on_mutated_bodies() {
        use rand::rngs::SmallRng;
        use rand::{Rng, SeedableRng};
        let mut seeds: Vec<Vec<u8>> = [
            r#"{"action":"ping","statuscode":0,"statusmsg":"OK","data":{"pong":1}}"#,
            r#"{"statuscode":1,"statusmsg":"quote \" and \u00e9","data":{"a":[true,false,null,-3,"x"],"b":{}}}"#,
            r#" {"statuscode":5, "data":[[],[{}]], "statusmsg":null} "#,
            r#"{"statuscode":0,"statusmsg":1e400}"#,
            r#"{"statuscode":0,"statusmsg":[1]}"#,
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/choria/rpc-replies");
        for f in ["choria.json", "package_replies.json"] {
            let all: Value =
                serde_json::from_slice(&std::fs::read(format!("{dir}/{f}")).expect("shared replies")).expect("JSON");
            let replies = all.get("replies").unwrap_or(&all).as_array().expect("replies").clone();
            seeds.extend(replies.iter().map(|r| r.to_string().into_bytes()));
        }
        for s in &seeds {
            let fast = scan_body(s);
            let text = String::from_utf8_lossy(s);
            // A status message that is no string (nor null) is the serde path's to judge:
            // `1e400` is out of range for it.
            assert_eq!(fast.is_none(), text.contains("\"statusmsg\":1e400") || text.contains("[1]}"), "{text}");
            if let Some(f) = &fast {
                assert_eq!(fast, reference(s), "{text}");
                written_alike(f, &reference(s).expect("the reference reads it"));
            }
        }
        // A plain reply's data is kept as its text.
        let ping = scan_body(seeds[0].as_slice()).expect("a ping reply");
        assert!(matches!(ping.data.0, Repr::Text(_)), "{:?}", ping.data);
        assert_eq!(serde_json::to_string(&ping.data).unwrap(), r#"{"pong":1}"#);
        assert!(reference(br#"{"statuscode":0,"statusmsg":1e400}"#).is_none(), "serde refuses it");
        let mut rng = SmallRng::seed_from_u64(15);
        let (mut fast, mut total) = (0, 0);
        for _ in 0..100_000 {
            let mut b = seeds[rng.gen_range(0..seeds.len())].clone();
            crate::json::mutate(&mut rng, &mut b);
            total += 1;
            if let Some(r) = scan_body(&b) {
                fast += 1;
                let slow = reference(&b);
                assert_eq!(Some(&r), slow.as_ref(), "{}", String::from_utf8_lossy(&b));
                written_alike(&r, &slow.expect("the reference reads it"));
            }
        }
        assert!(fast > total / 20, "only {fast} of {total} mutations took the fast path");
    }
}
