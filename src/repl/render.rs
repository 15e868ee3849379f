//! Results shown readably: identity lists in columns, RPC results as a short table with a
//! summary, maps as indented key/values. Secrets show as `[secret]` (and so do values under
//! secret names like `token`); text from the network has its control characters escaped.

use rhai::{Array, Dynamic, Map};

use crate::progress::table::{self, Row};
use crate::redact::{is_secret_name, printable, Secret, MASK};

const WIDTH: usize = 100;

/// The text for a value the REPL prints after a line.
pub fn render(v: &Dynamic) -> String {
    if let Some(m) = v.read_lock::<Map>() {
        if is_rpc_result(&m) {
            return rpc_table(&m);
        }
        let mut out = String::new();
        map_lines(&m, 0, &mut out);
        return out.trim_end().to_string();
    }
    if let Some(a) = v.read_lock::<Array>() {
        if !a.is_empty() && a.iter().all(|x| x.is_string()) {
            return columns(&a.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        }
    }
    inline(v)
}

/// A value on one line, Rhai-like: strings quoted and escaped, `[a, b]`, `#{k: v}`, secrets
/// (and values under secret names) as `[secret]`.
pub fn inline(v: &Dynamic) -> String {
    if v.is_string() {
        return format!("{:?}", v.to_string());
    }
    if v.is::<Secret>() {
        return MASK.to_string();
    }
    if let Some(a) = v.read_lock::<Array>() {
        return format!("[{}]", a.iter().map(inline).collect::<Vec<_>>().join(", "));
    }
    if let Some(m) = v.read_lock::<Map>() {
        let fields: Vec<String> = m.iter().map(|(k, x)| format!("{}: {}", printable(k), field(k, x))).collect();
        return format!("#{{{}}}", fields.join(", "));
    }
    printable(&format!("{v:?}")).into_owned()
}

/// A map field: masked under a secret name unless it is empty.
fn field(key: &str, v: &Dynamic) -> String {
    if is_secret_name(key) && !v.is_unit() && !v.is_map() {
        MASK.to_string()
    } else {
        inline(v)
    }
}

fn is_rpc_result(m: &Map) -> bool {
    ["ok", "failed", "no_reply", "replies"].iter().all(|k| m.contains_key(*k))
}

/// Strings in as many columns as fit.
pub fn columns(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| printable(s).into_owned()).collect();
    let w = items.iter().map(|s| s.chars().count()).max().unwrap_or(0) + 2;
    let per = (WIDTH / w.max(1)).max(1);
    items
        .chunks(per)
        .map(|row| row.iter().map(|s| format!("{s:w$}")).collect::<String>().trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn map_lines(m: &Map, indent: usize, out: &mut String) {
    let pad = "  ".repeat(indent);
    for (k, v) in m {
        let k = printable(k);
        if let Some(inner) = v.read_lock::<Map>() {
            out.push_str(&format!("{pad}{k}:\n"));
            map_lines(&inner, indent + 1, out);
        } else if v.is_string() && !is_secret_name(&k) {
            out.push_str(&format!("{pad}{k}: {}\n", printable(&v.to_string())));
        } else {
            out.push_str(&format!("{pad}{k}: {}\n", field(&k, v)));
        }
    }
}

fn strings(d: Option<&Dynamic>) -> Vec<String> {
    d.and_then(|d| d.read_lock::<Array>().map(|a| a.iter().map(|x| x.to_string()).collect())).unwrap_or_default()
}

/// The node table (shared with `req`), then `N ok, N failed, N no reply`.
fn rpc_table(m: &Map) -> String {
    let mut rows = Vec::new();
    if let Some(replies) = m.get("replies").and_then(|r| r.read_lock::<Array>().map(|a| a.clone())) {
        for r in replies {
            let Some(r) = r.read_lock::<Map>() else { continue };
            let get = |k: &str| r.get(k).map(|v| v.to_string()).unwrap_or_default();
            let code = r.get("statuscode").and_then(|c| c.as_int().ok()).unwrap_or(-1);
            let msg = if code == 0 {
                r.get("data")
                    .map(|d| match d.read_lock::<Map>().and_then(|m| m.get("message").map(|x| x.to_string())) {
                        Some(message) => message,
                        None => inline(d),
                    })
                    .unwrap_or_default()
            } else {
                get("statusmsg")
            };
            let status = u8::try_from(code).map(crate::fleet::rpc::status_name).unwrap_or("Unknown Request Status");
            rows.push(Row::new(&get("sender"), status, &msg));
        }
    }
    for n in strings(m.get("no_reply")) {
        rows.push(Row::new(&n, "No Reply", ""));
    }
    let mut out = if rows.is_empty() { String::new() } else { table::render(rows, Some(WIDTH)) };
    let failed = m.get("failed").and_then(|f| f.read_lock::<Map>().map(|f| f.len())).unwrap_or(0);
    let dry = m.get("dry_run").and_then(|d| d.as_bool().ok()).unwrap_or(false);
    if dry {
        out.push_str(&format!(
            "dry-run: {} batch(es) planned, nothing sent",
            m.get("batches").map(|b| b.to_string()).unwrap_or_default()
        ));
    } else {
        out.push_str(&format!(
            "{} ok, {failed} failed, {} no reply",
            strings(m.get("ok")).len(),
            strings(m.get("no_reply")).len()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_lists_in_columns_and_maps_indented() {
        let ids: Vec<String> = (1..=12).map(|i| format!("n{i:03}.example.net")).collect();
        let text = columns(&ids);
        assert!(text.lines().count() < 12 && text.lines().next().unwrap().contains("n002.example.net"), "{text}");
        let mut m = Map::new();
        let mut inner = Map::new();
        inner.insert("b".into(), Dynamic::from(1_i64));
        m.insert("a".into(), Dynamic::from_map(inner));
        assert_eq!(render(&Dynamic::from_map(m)), "a:\n  b: 1");
    }

    #[test]
    fn secrets_and_control_characters_never_show() {
        assert_eq!(render(&Dynamic::from(Secret::new("T", "hunter2"))), MASK);
        let mut m = Map::new();
        m.insert("token".into(), Dynamic::from("hunter2".to_string()));
        m.insert("s".into(), Dynamic::from(Secret::new("T", "hunter2")));
        m.insert("node".into(), Dynamic::from("n1\u{1b}[2J\nforged".to_string()));
        let text = render(&Dynamic::from_map(m.clone()));
        assert_eq!(text, "node: n1\\u{1b}[2J\\nforged\ns: [secret]\ntoken: [secret]");
        let list = Dynamic::from_array(vec![Dynamic::from_map(m), Dynamic::from(Secret::new("T", "hunter2"))]);
        let text = render(&list);
        assert!(!text.contains("hunter2") && !text.contains('\u{1b}') && text.contains("[secret]]"), "{text}");
    }
}
