//! What reaches a person: secrets redacted at their source, and text from the network made
//! safe to print.
//!
//! A secret is never found again by searching output for its text (that corrupts JSON and
//! shows where the text occurs). Instead a secret is a value that displays and serialises as
//! [`MASK`] ([`Secret`]), and inputs whose *name* says they are secrets (`token`, `password`,
//! ...) are masked where they are shown ([`is_secret_name`], [`mask_inputs`]).

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{Map, Value};

/// The text shown wherever a secret would appear.
pub const MASK: &str = "[secret]";

/// Parts of input, argument and key names that mark the value as a secret. The DDL schema has
/// no "secret" flag, so names decide: choria_provision's `token`, configure's private `key`.
const SECRET_PARTS: [&str; 7] = ["token", "password", "passwd", "passphrase", "secret", "credential", "private_key"];

/// Names that are secrets only when they are the whole name (`key` in `api_key` is, in
/// `key_count` it is not).
const SECRET_NAMES: [&str; 5] = ["key", "pass", "pw", "api_key", "apikey"];

/// Whether an input, `--arg` or map key named `name` holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SECRET_PARTS.iter().any(|p| n.contains(p)) || SECRET_NAMES.contains(&n.as_str())
}

/// A copy of `inputs` (RPC inputs, `--arg` values) to show: values under secret names are
/// the mask, at any depth. The wire keeps using the original.
pub fn mask_inputs(inputs: &Map<String, Value>) -> Map<String, Value> {
    inputs.iter().map(|(k, v)| (k.clone(), mask_value(k, v))).collect()
}

fn mask_value(key: &str, v: &Value) -> Value {
    match v {
        Value::Null => Value::Null,
        _ if is_secret_name(key) => Value::String(MASK.to_string()),
        Value::Object(m) => Value::Object(mask_inputs(m)),
        Value::Array(a) => Value::Array(a.iter().map(|x| mask_value("", x)).collect()),
        other => other.clone(),
    }
}

/// `--arg` values to show: secret-named ones masked.
pub fn mask_args(args: &std::collections::BTreeMap<String, String>) -> Map<String, Value> {
    args.iter()
        .map(|(k, v)| {
            let shown = if is_secret_name(k) { MASK } else { v.as_str() };
            (k.clone(), Value::String(shown.to_string()))
        })
        .collect()
}

/// Text from the network (identities, components, status messages, reply data) made safe
/// for a terminal: control characters (ANSI escapes, newlines, carriage returns, C1 codes)
/// and bidirectional overrides are written as visible escapes like `\u{1b}` or `\n`, so
/// they can neither drive the terminal nor forge lines.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Like [`printable`], but line breaks stay: for multi-line messages a runbook prints on
/// purpose. Every other control character is escaped.
pub fn printable_lines(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c != '\n' && needs_escape(c)) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.split('\n').map(|l| printable(l).into_owned()).collect::<Vec<_>>().join("\n"))
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A secret value in a runbook: prints, debugs and serialises as the mask; only the wire
/// encoder of an RPC sees the clear value.
#[derive(Clone)]
pub struct Secret {
    pub(crate) name: String,
    pub(crate) value: Arc<str>,
    /// Not set, stood in for under `--dry-run`: it must never reach the wire.
    pub(crate) missing: bool,
}

impl Secret {
    /// A secret called `name` (an environment variable or `--arg` name) holding `value`.
    pub fn new(name: &str, value: &str) -> Self {
        Secret { name: name.to_string(), value: Arc::from(value), missing: false }
    }

    /// A secret that is not set, standing in under `--dry-run`, where the calls that need it
    /// are only planned. Sending it is refused.
    pub fn missing(name: &str) -> Self {
        Secret { name: name.to_string(), value: Arc::from("not-set-dry-run"), missing: true }
    }

    /// Whether this stands in for a secret that is not set.
    pub fn is_missing(&self) -> bool {
        self.missing
    }

    /// The clear value, for the wire only.
    pub(crate) fn reveal(&self) -> &str {
        &self.value
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "secret({})", self.name)
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MASK)
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(MASK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_secret_never_shows_its_value() {
        let s = Secret::new("T", "hunter2");
        assert_eq!(format!("{s}"), MASK);
        assert_eq!(format!("{s:?}"), "secret(T)");
        assert_eq!(serde_json::to_value(&s).unwrap(), json!(MASK));
        assert_eq!(s.reveal(), "hunter2");
    }

    #[test]
    fn secret_names_are_masked_and_nothing_else_changes() {
        let inputs =
            json!({"token": "ok", "splay": 1, "status": "ok", "nested": {"Password": "ok", "n": "ok"}, "key": "k"});
        let shown = Value::Object(mask_inputs(inputs.as_object().unwrap()));
        assert_eq!(
            shown,
            json!({"token": MASK, "splay": 1, "status": "ok", "nested": {"Password": MASK, "n": "ok"}, "key": MASK})
        );
        assert!(is_secret_name("FLEETBOOK_PROVISION_TOKEN") && is_secret_name("api_key"));
        assert!(!is_secret_name("class") && !is_secret_name("key_count") && !is_secret_name("nonce"));
    }

    #[test]
    fn control_characters_become_visible_escapes() {
        assert!(matches!(printable("n1.example.net"), Cow::Borrowed(_)));
        assert_eq!(printable("a\u{1b}[2Jb\nc\rd\u{9b}e\u{202e}"), "a\\u{1b}[2Jb\\nc\\rd\\u{9b}e\\u{202e}");
        assert_eq!(printable_lines("one\ntwo\u{1b}[31m"), "one\ntwo\\u{1b}[31m");
    }
}
