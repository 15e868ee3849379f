//! The one node/status table: `req` prints it after a call, the REPL after an `rpc_batch`.

use std::fmt::Write;

use crate::redact::printable;

/// One row: a node, its status name (`OK`, `No Reply`, ...) and a message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    pub node: String,
    pub status: String,
    pub message: String,
}

impl Row {
    /// A row; text from the network is escaped here.
    pub fn new(node: &str, status: impl Into<String>, message: &str) -> Row {
        Row { node: printable(node).into_owned(), status: status.into(), message: printable(message).into_owned() }
    }
}

/// Rows sorted by node under a `NODE STATUS MESSAGE` header; with `width`, messages are cut
/// so a line fits.
pub fn render(mut rows: Vec<Row>, width: Option<usize>) -> String {
    rows.sort();
    let wn = rows.iter().map(|r| r.node.chars().count()).max().unwrap_or(0).max(4);
    let ws = rows.iter().map(|r| r.status.chars().count()).max().unwrap_or(0).max(6);
    let room = width.map(|w| w.saturating_sub(wn + ws + 4).max(10));
    let mut out = String::new();
    let _ = writeln!(out, "{:wn$}  {:ws$}  MESSAGE", "NODE", "STATUS");
    for r in &rows {
        let msg: String = match room {
            Some(n) => r.message.chars().take(n).collect(),
            None => r.message.clone(),
        };
        let _ = writeln!(out, "{:wn$}  {:ws$}  {msg}", r.node, r.status);
    }
    out
}

/// Rows of cells aligned as Go's `text/tabwriter` aligns them with a padding of 4 (the way
/// `choria` prints node lists and tables without borders): every cell is padded to its
/// column's widest plus 4, the last one too.
pub fn go_tabwriter(rows: &[Vec<String>]) -> Vec<String> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().filter_map(|r| r.get(i)).map(|c| c.chars().count()).max().unwrap_or(0) + 4)
        .collect();
    rows.iter().map(|r| r.iter().zip(&widths).map(|(c, n)| format!("{c:n$}")).collect()).collect()
}

/// One line for a reply's data: its `message` if it has one, else compact JSON, cut at 80.
pub fn summarize(data: &serde_json::Value) -> String {
    if let Some(m) = data.get("message").and_then(serde_json::Value::as_str) {
        return m.to_string();
    }
    let s = data.to_string();
    if s.chars().count() > 80 {
        let cut: String = s.chars().take(77).collect();
        format!("{cut}...")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sorted_aligned_escaped_and_cut() {
        let rows = vec![
            Row::new("n2.example.net", "No Reply", ""),
            Row::new("n1\u{1b}[2J", "OK", "fine"),
            Row::new("n10", "Aborted", &"x".repeat(300)),
        ];
        let text = render(rows, Some(60));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NODE ") && lines[0].ends_with("MESSAGE"), "{text}");
        assert!(lines[1].starts_with("n10 ") && lines[2].starts_with("n1\\u{1b}[2J"), "escaped, sorted: {text}");
        assert!(lines.iter().all(|l| l.chars().count() <= 60), "{text}");
        assert_eq!(lines[1].find("OK"), lines[2].find("Aborted"), "aligned: {text}");
        assert_eq!(summarize(&serde_json::json!({"message": "hi", "x": 1})), "hi");
    }
}
