//! Node lists (`--nodes FILE`, `--dm flatfile`, `nodes_from()`), as go-choria's flatfile
//! discovery reads them (`providers/discovery/flatfile`): one identity per line, a JSON or
//! YAML array of identities, or the JSON a `req --json` prints (the senders of its
//! `replies`, in choria's and in fleetbook's shape). `discover --json` prints a JSON array,
//! so it reads back as one.
//!
//! Unlike go-choria, blank lines and `#` comments in a text list are skipped (go-choria
//! refuses them as invalid identities), the format is recognised from the content when the
//! name does not say, and a bad identity is reported with the line it is on.

use std::fmt;

use serde_json::Value;

/// go-choria's `validIdentity`: dot-separated host name labels.
const VALID_IDENTITY: &str =
    r"^(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9\-]*[A-Za-z0-9])$";

/// How a node list is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// One identity per line.
    Text,
    /// A JSON array of identities.
    Json,
    /// A YAML array of identities.
    Yaml,
    /// The JSON object of `req --json`: the senders of its replies.
    Responses,
}

impl ListFormat {
    /// go-choria's `--do format=` names: json, yaml/yml, choriarpc/results/rpc/response,
    /// anything else text.
    pub fn from_name(name: &str) -> ListFormat {
        match name {
            "json" => ListFormat::Json,
            "yaml" | "yml" => ListFormat::Yaml,
            "choriarpc" | "results" | "rpc" | "response" => ListFormat::Responses,
            _ => ListFormat::Text,
        }
    }

    /// The format of `text` read from `origin`: a `.yaml`/`.yml` name is YAML; otherwise a
    /// leading `[` is a JSON array, a leading `{` a responses object, `---` YAML, and the
    /// rest text.
    pub fn detect(origin: &str, text: &str) -> ListFormat {
        let t = text.trim_start();
        if origin.ends_with(".yaml") || origin.ends_with(".yml") || t.starts_with("---") {
            ListFormat::Yaml
        } else if t.starts_with('[') {
            ListFormat::Json
        } else if t.starts_with('{') {
            ListFormat::Responses
        } else {
            ListFormat::Text
        }
    }
}

/// A node list that could not be read: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListError {
    /// The file name, or `stdin`.
    pub origin: String,
    /// The 1-based line, when the problem has one.
    pub line: Option<usize>,
    pub reason: String,
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.origin, self.reason),
            None => write!(f, "{}: {}", self.origin, self.reason),
        }
    }
}

impl std::error::Error for ListError {}

/// Parses a node list read from `origin` (a file name or `stdin`), in `format` or, when
/// `None`, the format [`ListFormat::detect`] sees. Every identity is checked; a node named
/// twice is kept once, where it was first named.
pub fn parse(origin: &str, text: &str, format: Option<ListFormat>) -> Result<Vec<String>, ListError> {
    parse_query(origin, text, format, None)
}

/// [`parse`], with go-choria's `--do filter=QUERY` for JSON and YAML data: a gjson-style
/// path (`replies.#.sender`, `hosts`, `groups.0.members`) that must lead to an array, whose
/// strings are the identities (other entries are skipped, as gjson does).
pub fn parse_query(
    origin: &str,
    text: &str,
    format: Option<ListFormat>,
    query: Option<&str>,
) -> Result<Vec<String>, ListError> {
    let err = |line: Option<usize>, reason: String| ListError { origin: origin.to_string(), line, reason };
    let format = format.unwrap_or_else(|| ListFormat::detect(origin, text));
    let entries = match (query, format) {
        (None, _) => entries(origin, text, format)?,
        (Some(_), ListFormat::Text) => {
            return Err(err(None, "a filter query reads JSON or YAML data, not a text list".into()))
        }
        (Some(q), _) => {
            let data: Value = match format {
                ListFormat::Yaml => serde_yaml::from_str(text).map_err(|e| err(None, format!("not YAML: {e}")))?,
                _ => serde_json::from_str(text).map_err(|e| err(Some(e.line()), format!("not JSON: {e}")))?,
            };
            if q.is_empty() {
                return Err(err(None, "empty filter string found in discovery options".into()));
            }
            match query_path(&data, q) {
                Value::Array(a) => a.iter().filter_map(Value::as_str).map(|s| (None, s.to_string())).collect(),
                _ => return Err(err(None, format!("query {q:?} did not result in a array of nodes"))),
            }
        }
    };
    checked(origin, entries)
}

/// gjson's path subset: `.`-separated keys, array indexes, and `#` mapping the rest of the
/// path over every element of an array.
fn query_path(v: &Value, path: &str) -> Value {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let next = match (v, head) {
        (Value::Array(a), "#") => {
            return match rest {
                None => Value::from(a.len()),
                Some(r) => Value::Array(a.iter().map(|x| query_path(x, r)).filter(|x| !x.is_null()).collect()),
            }
        }
        (Value::Array(a), i) => i.parse::<usize>().ok().and_then(|i| a.get(i)).cloned().unwrap_or(Value::Null),
        (Value::Object(m), k) => m.get(k).cloned().unwrap_or(Value::Null),
        _ => Value::Null,
    };
    match rest {
        None => next,
        Some(r) => query_path(&next, r),
    }
}

/// The entries of a list in `format`, with their lines where they have one.
fn entries(origin: &str, text: &str, format: ListFormat) -> Result<Vec<(Option<usize>, String)>, ListError> {
    let err = |line: Option<usize>, reason: String| ListError { origin: origin.to_string(), line, reason };
    let entries: Vec<(Option<usize>, String)> = match format {
        ListFormat::Text => text
            .lines()
            .enumerate()
            .map(|(i, l)| (Some(i + 1), l.trim().to_string()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
            .collect(),
        ListFormat::Json => {
            let v: Value = serde_json::from_str(text)
                .map_err(|e| err(Some(e.line()), format!("not a JSON array of identities: {e}")))?;
            strings(&v).map_err(|r| err(None, r))?
        }
        ListFormat::Yaml => {
            let v: Value = serde_yaml::from_str(text)
                .map_err(|e| err(e.location().map(|l| l.line()), format!("not a YAML list of identities: {e}")))?;
            strings(&v).map_err(|r| err(None, r))?
        }
        ListFormat::Responses => {
            let v: Value = serde_json::from_str(text)
                .map_err(|e| err(Some(e.line()), format!("not the JSON of `req --json`: {e}")))?;
            senders(&v).map_err(|r| err(None, r))?
        }
    };
    Ok(entries)
}

/// Checks every identity (go-choria's rule) and keeps each once, in order.
fn checked(origin: &str, entries: Vec<(Option<usize>, String)>) -> Result<Vec<String>, ListError> {
    let err = |line: Option<usize>, reason: String| ListError { origin: origin.to_string(), line, reason };
    let re = regex::Regex::new(VALID_IDENTITY).map_err(|e| err(None, e.to_string()))?;
    let mut seen = std::collections::HashSet::new();
    let mut nodes = Vec::new();
    for (line, id) in entries {
        if !re.is_match(&id) {
            return Err(err(line, format!("invalid identity string {id:?}")));
        }
        if seen.insert(id.clone()) {
            nodes.push(id);
        }
    }
    Ok(nodes)
}

/// The entries of a JSON array of strings.
fn strings(v: &Value) -> Result<Vec<(Option<usize>, String)>, String> {
    let Some(a) = v.as_array() else {
        return Err("expected an array of identities".into());
    };
    a.iter()
        .enumerate()
        .map(|(i, x)| match x.as_str() {
            Some(s) => Ok((None, s.to_string())),
            None => Err(format!("entry {} is {x}, not an identity", i + 1)),
        })
        .collect()
}

/// The senders of the `replies` of a `req --json` object.
fn senders(v: &Value) -> Result<Vec<(Option<usize>, String)>, String> {
    let Some(replies) = v.get("replies").and_then(Value::as_array) else {
        return Err("expected an object with \"replies\", as `req --json` prints".into());
    };
    replies
        .iter()
        .enumerate()
        .map(|(i, r)| match r.get("sender").and_then(Value::as_str) {
            Some(s) => Ok((None, s.to_string())),
            None => Err(format!("reply {} names no sender", i + 1)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_recognised_and_read() {
        let ok = |origin: &str, text: &str| parse(origin, text, None).unwrap();
        assert_eq!(ok("x", "a\n\n# c\n  b.example.net \n"), ["a", "b.example.net"]);
        assert_eq!(ok("x", r#"["a","b"]"#), ["a", "b"]);
        assert_eq!(ok("x.yml", "- a\n- b\n"), ["a", "b"]);
        assert_eq!(ok("x", "---\n- a\n"), ["a"]);
        assert_eq!(ok("x", r#"{"replies":[{"sender":"a"},{"sender":"b"}]}"#), ["a", "b"]);
        assert_eq!(ok("x", "a\nb\na\n"), ["a", "b"], "a node named twice is kept once");
        assert_eq!(ok("x", ""), Vec::<String>::new());
    }

    /// go-choria's "Should support gjson matches" case, on its file.
    #[test]
    fn filter_queries_pick_identities_out_of_json_and_yaml() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/choria/rpc-replies/choria.json");
        let text = std::fs::read_to_string(path).unwrap();
        let q = |text: &str, f, q| parse_query("x", text, f, Some(q));
        assert_eq!(
            q(&text, Some(ListFormat::Json), "replies.#.sender").unwrap(),
            ["n1.example.net", "n2.example.net", "n3.example.net"]
        );
        assert_eq!(q("hosts:\n  web: [a, b]\n", Some(ListFormat::Yaml), "hosts.web").unwrap(), ["a", "b"]);
        assert_eq!(q(r#"{"g": [{"m": ["a"]}, {"m": ["b"]}]}"#, None, "g.1.m").unwrap(), ["b"]);
        let e = q(&text, Some(ListFormat::Json), "agent").unwrap_err();
        assert_eq!(e.reason, "query \"agent\" did not result in a array of nodes");
        assert!(q("a\n", Some(ListFormat::Text), "x").is_err());
    }

    #[test]
    fn errors_say_where() {
        let e = parse("nodes.txt", "good\nfoo bar\n", None).unwrap_err();
        assert_eq!(e.to_string(), "nodes.txt:2: invalid identity string \"foo bar\"");
        let e = parse("n.json", "[\"a\", 3]", None).unwrap_err();
        assert_eq!(e.to_string(), "n.json: entry 2 is 3, not an identity");
        let e = parse("stdin", "{\"replies\": 1}", None).unwrap_err();
        assert!(e.to_string().starts_with("stdin: expected an object with \"replies\""), "{e}");
        let e = parse("n.json", "[\"a\",\n", Some(ListFormat::Json)).unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
    }
}
