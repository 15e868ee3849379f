//! What `req` prints when it is done: a node table like `choria req` (only the replies the
//! action's DDL `display` or `--display` asks for), the failures grouped by message (a wrong
//! token reads as one line, not a thousand), a summary and the unanswered nodes, capped like
//! `choria req` caps them; or, with `--json`, one JSON object; or, with `--senders`, the nodes
//! that answered OK.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::error::Error;
use crate::fleet::rpc::status_name;
use crate::progress::table::{self, Row};
use crate::redact::printable;
use crate::rollout::Tally;

/// How long discovery and the whole command took.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) discovery: Duration,
    pub(crate) total: Duration,
}

/// Which replies the text report shows: go-choria's display modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Display {
    Ok,
    Failed,
    All,
    None,
}

impl Display {
    /// The mode an action's DDL asks for: `ok`, `failed` or `always`; go-choria shows only
    /// failures when the DDL says nothing.
    pub(crate) fn from_ddl(display: &str) -> Display {
        match display {
            "ok" => Display::Ok,
            "always" => Display::All,
            _ => Display::Failed,
        }
    }

    /// Whether a reply that succeeded (`ok`) or failed is shown.
    fn shows(self, ok: bool) -> bool {
        match self {
            Display::Ok => ok,
            Display::Failed => !ok,
            Display::All => true,
            Display::None => false,
        }
    }
}

/// How the report is written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReportStyle {
    /// One JSON object (with `senders`: a JSON array of names).
    pub(crate) json: bool,
    /// Only the identities that answered OK.
    pub(crate) senders: bool,
    /// Which replies the text table shows.
    pub(crate) display: Display,
    /// Every unanswered node listed, not the first [`LIST_CAP`].
    pub(crate) verbose: bool,
}

/// How many nodes of a list (no responses, unknown, not sent) the text report shows without
/// `--verbose`: go-choria's cap.
pub(crate) const LIST_CAP: usize = 200;

/// The `--dry-run` plan.
pub(crate) fn print_plan(
    out: &mut dyn Write,
    agent: &str,
    action: &str,
    json: bool,
    batches: &[Vec<String>],
) -> Result<(), Error> {
    let total = batches.len();
    let nodes: usize = batches.iter().map(Vec::len).sum();
    if json {
        let v = json!({"dry_run": true, "agent": agent, "action": action, "discovered": nodes, "batches": batches});
        writeln!(out, "{v}")?;
    } else {
        writeln!(out, "dry-run: would call {agent}#{action} on {nodes} node(s) in {total} batch(es); nothing sent")?;
        for (i, b) in batches.iter().enumerate() {
            writeln!(out, "batch {}/{total}: {}", i + 1, b.join(", "))?;
        }
    }
    Ok(())
}

/// Writes the report of a finished (or stopped) request; `result` is how it ends.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_report(
    w: &mut dyn Write,
    agent: &str,
    action: &str,
    style: ReportStyle,
    t: &Tally,
    discovered: usize,
    (request_id, run_id): (Option<&str>, Option<&str>),
    timing: Timing,
    result: &Result<(), Error>,
) -> std::io::Result<()> {
    // The same status words as `run_end`.
    let (status, error, _) = super::run::run_status(result);
    if style.senders {
        return write_senders(w, t, style.json);
    }
    if style.json {
        let (status, rid) = (status.as_str(), request_id.unwrap_or(""));
        let report = json_report(t, agent, action, rid, discovered, timing, status, error, run_id);
        // Straight to the writer, in big writes: building a `Value` copied every reply's data
        // first, and stdout's line buffer wrote a 10,000-node line 1 KiB at a time.
        let mut b = std::io::BufWriter::with_capacity(1 << 16, &mut *w);
        serde_json::to_writer(&mut b, &report).map_err(std::io::Error::from)?;
        writeln!(b)?;
        return b.flush();
    }
    write_text(w, t, style, discovered, timing.total)?;
    if let Some(id) = run_id {
        writeln!(w, "Run {id} (fleetbook runs show {id})")?;
    }
    if let Some(why) = error {
        writeln!(w, "Stopped: {why}")?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn json_report<'a>(
    t: &'a Tally,
    agent: &'a str,
    action: &'a str,
    request_id: &'a str,
    discovered: usize,
    timing: Timing,
    status: &'a str,
    error: Option<String>,
    run_id: Option<&'a str>,
) -> JsonReport<'a> {
    let answered = t.replies.iter().chain(&t.late);
    let failed: Map<String, Value> = answered
        .filter(|x| !x.ok())
        .map(|x| (x.sender.clone(), json!({"statuscode": x.statuscode, "statusmsg": x.statusmsg})))
        .collect();
    JsonReport {
        request_id,
        agent,
        action,
        status,
        error,
        discovered,
        replies: &t.replies,
        ok: t.ok_names(),
        failed,
        no_reply: &t.no_reply,
        unknown: &t.unknown,
        not_sent: &t.not_sent,
        late: t.late.iter().map(|x| x.sender.as_str()).collect(),
        malformed: &t.malformed,
        unexpected: &t.unexpected,
        stray: t.stray,
        batches: t.batches,
        timing: TimingMs {
            discovery_ms: timing.discovery.as_millis() as u64,
            total_ms: timing.total.as_millis() as u64,
        },
        run_id,
    }
}

/// The `--json` report, keys in the order scripts have always seen them.
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    request_id: &'a str,
    agent: &'a str,
    action: &'a str,
    status: &'a str,
    error: Option<String>,
    discovered: usize,
    replies: &'a [crate::fleet::rpc::NodeReply],
    ok: Vec<&'a str>,
    failed: Map<String, Value>,
    no_reply: &'a [String],
    unknown: &'a [String],
    not_sent: &'a [String],
    late: Vec<&'a str>,
    malformed: &'a BTreeMap<String, String>,
    unexpected: &'a [String],
    stray: usize,
    batches: usize,
    timing: TimingMs,
    run_id: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct TimingMs {
    discovery_ms: u64,
    total_ms: u64,
}

/// `--senders`: the identities that answered OK, sorted, one a line or a JSON array.
fn write_senders(w: &mut dyn Write, t: &Tally, json: bool) -> std::io::Result<()> {
    let mut names: Vec<&str> = t.replies.iter().chain(&t.late).filter(|x| x.ok()).map(|x| x.sender.as_str()).collect();
    names.sort_unstable();
    if json {
        return writeln!(w, "{}", serde_json::to_string_pretty(&names).unwrap_or_default());
    }
    for n in names {
        writeln!(w, "{}", printable(n))?;
    }
    Ok(())
}

fn write_text(
    w: &mut dyn Write,
    t: &Tally,
    style: ReportStyle,
    discovered: usize,
    elapsed: Duration,
) -> std::io::Result<()> {
    let clean = |s: &str| printable(s).into_owned();
    let mut rows = Vec::new();
    for (x, late) in t.replies.iter().map(|x| (x, false)).chain(t.late.iter().map(|x| (x, true))) {
        if !style.display.shows(x.ok()) {
            continue;
        }
        let msg = if x.ok() { table::summarize(&x.data.value()) } else { x.statusmsg.clone() };
        let status = status_name(x.statuscode);
        rows.push(Row::new(&x.sender, if late { format!("{status} (late)") } else { status.to_string() }, &msg));
    }
    if style.display.shows(false) {
        for (n, why) in &t.malformed {
            rows.push(Row::new(n, "Malformed Reply", why));
        }
    }
    // The unanswered nodes are listed under the summary, capped, as `choria req` lists them.
    if !rows.is_empty() {
        write!(w, "{}", table::render(rows, None))?;
        writeln!(w)?;
    }
    let answered = t.replies.len() + t.late.len();
    let ok = t.replies.iter().chain(&t.late).filter(|x| x.ok()).count();
    let failed = answered - ok + t.malformed.len();
    let mut groups: BTreeMap<String, usize> = BTreeMap::new();
    for x in t.replies.iter().chain(&t.late).filter(|x| !x.ok()) {
        *groups.entry(format!("{}: {}", status_name(x.statuscode), clean(&x.statusmsg))).or_default() += 1;
    }
    for why in t.malformed.values() {
        *groups.entry(format!("Malformed Reply: {}", clean(why))).or_default() += 1;
    }
    if !groups.is_empty() {
        writeln!(w, "Failures:")?;
        for (why, n) in &groups {
            writeln!(w, "  {n:>5} × {why}")?;
        }
    }
    let opt = |n: usize, what: &str| if n == 0 { String::new() } else { format!(", {n} {what}") };
    writeln!(
        w,
        "Finished processing {} / {discovered} hosts in {:.2}s: {ok} ok, {failed} failed, {} no reply{}{}",
        answered + t.malformed.len(),
        elapsed.as_secs_f64(),
        t.no_reply.len(),
        opt(t.unknown.len(), "unknown"),
        opt(t.not_sent.len(), "not sent"),
    )?;
    let late: Vec<String> = t.late.iter().map(|x| x.sender.clone()).collect();
    write_nodes(w, &late, "Answered after their batch's wait", style.verbose)?;
    write_nodes(w, &t.no_reply, "No Responses from", style.verbose)?;
    let unknown = "Unknown (the request went out; whether they acted is not known)";
    write_nodes(w, &t.unknown, unknown, style.verbose)?;
    write_nodes(w, &t.not_sent, "Not sent", style.verbose)?;
    if t.stray > 0 || !t.unexpected.is_empty() {
        writeln!(
            w,
            "Ignored on the reply subject: {} unreadable message(s), {} reply(ies) from nodes not asked",
            t.stray,
            t.unexpected.len()
        )?;
    }
    Ok(())
}

/// A list of nodes the way `choria req` lists the ones that did not respond: a title with the
/// count, then the sorted names three a row in aligned columns; past [`LIST_CAP`] names only
/// the first are shown unless `verbose`.
fn write_nodes(w: &mut dyn Write, nodes: &[String], title: &str, verbose: bool) -> std::io::Result<()> {
    if nodes.is_empty() {
        return Ok(());
    }
    let mut names: Vec<String> = nodes.iter().map(|n| printable(n).into_owned()).collect();
    names.sort();
    if !verbose && names.len() > LIST_CAP {
        writeln!(w, "\n{title} (showing first {LIST_CAP}): {}\n", names.len())?;
        names.truncate(LIST_CAP);
    } else {
        writeln!(w, "\n{title}: {}\n", names.len())?;
    }
    let rows: Vec<Vec<String>> = names
        .chunks(3)
        .map(|c| {
            let cell = |i: usize| c.get(i).cloned().unwrap_or_default();
            vec![format!("    {}", cell(0)), cell(1), cell(2)]
        })
        .collect();
    for line in table::go_tabwriter(&rows) {
        writeln!(w, "{line}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_modes_as_go_choria() {
        assert_eq!(Display::from_ddl("failed"), Display::Failed);
        assert_eq!(Display::from_ddl(""), Display::Failed);
        assert_eq!(Display::from_ddl("ok"), Display::Ok);
        assert_eq!(Display::from_ddl("always"), Display::All);
        assert!(Display::Failed.shows(false) && !Display::Failed.shows(true));
        assert!(!Display::None.shows(false) && !Display::None.shows(true));
    }

    #[test]
    fn node_lists_are_aligned_and_capped() {
        let nodes: Vec<String> = (1..=4).map(|i| format!("n{i}.example.net")).collect();
        let mut out = Vec::new();
        write_nodes(&mut out, &nodes, "No Responses from", false).unwrap();
        let text = String::from_utf8(out).unwrap();
        let want = "\nNo Responses from: 4\n\n    n1.example.net    n2.example.net    n3.example.net    \n    n4.example.net                                        \n";
        assert_eq!(text, want);
        let many: Vec<String> = (0..250).map(|i| format!("n{i:03}")).collect();
        let mut out = Vec::new();
        write_nodes(&mut out, &many, "No Responses from", false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("\nNo Responses from (showing first 200): 250\n"), "{text}");
        assert!(text.contains("n199") && !text.contains("n200"), "{text}");
        let mut out = Vec::new();
        write_nodes(&mut out, &many, "No Responses from", true).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("n249"));
    }
}
