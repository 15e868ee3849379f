//! What a rollout has done so far, node by node: the one place that files replies, silent
//! and unknown nodes, late answers and missing lifecycle events, and reports each as a
//! `node_result` the moment it is known.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::fleet::rpc::{status_name, Arrival, BatchOutcome, NodeReply};
use crate::journal::replay::NodeRecord;
use crate::progress::{NodeStatus, Reads, Reporter, RunEvent};

/// Why a node failed: its status code when it answered, and the message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub statuscode: Option<u8>,
    pub statusmsg: String,
}

/// Node counts as `run_end` and the run totals give them: `failed` leaves out the silent and
/// the unknown, which have counts of their own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub ok: usize,
    pub failed: usize,
    pub no_reply: usize,
    pub unknown: usize,
}

/// Every node a rollout addressed ends in exactly one place here (a late node moves from
/// `no_reply` to `late`; a node without its lifecycle event is in `no_event`, its reply kept).
#[derive(Debug, Default)]
pub struct Tally {
    /// Replies that came within their batch's wait, in arrival order.
    pub replies: Vec<NodeReply>,
    /// Replies from nodes first reported silent: they acted, so they must not be retried.
    pub late: Vec<NodeReply>,
    /// Nodes whose reply did not decode, with the reason.
    pub malformed: BTreeMap<String, String>,
    pub no_reply: Vec<String>,
    /// Sent, but whether they acted is not known (Ctrl-C, a broken connection).
    pub unknown: Vec<String>,
    /// Answered OK, but the awaited lifecycle event never came: why.
    pub no_event: BTreeMap<String, String>,
    /// Planned, never sent (the rollout stopped first).
    pub not_sent: Vec<String>,
    /// Replies from nodes not asked (or a second reply): counted apart.
    pub unexpected: Vec<String>,
    /// Unreadable messages on the reply subject.
    pub stray: usize,
    /// Batches sent and judged.
    pub batches: usize,
}

/// The status of a reply that came in time.
fn status_of(r: &NodeReply) -> NodeStatus {
    if r.ok() {
        NodeStatus::Ok
    } else {
        NodeStatus::Failed
    }
}

/// The `node_result` event of a reply.
fn reply_event(r: &NodeReply, status: NodeStatus) -> RunEvent {
    RunEvent::NodeResult {
        node: r.sender.clone(),
        status,
        statuscode: Some(r.statuscode),
        statusmsg: Some(r.statusmsg.clone()),
        data: Some(r.data.clone()),
        resumed: false,
    }
}

fn bare_event(node: &str, status: NodeStatus, msg: Option<String>) -> RunEvent {
    RunEvent::NodeResult {
        node: node.to_string(),
        status,
        statuscode: None,
        statusmsg: msg,
        data: None,
        resumed: false,
    }
}

/// Reports a result the moment it arrives, during the wait. `reads`: the most a sink reads
/// ([`Reporter::reads`], asked once per batch).
pub(crate) fn on_arrival(reporter: &Reporter, reads: Reads, a: Arrival<'_>) {
    match a {
        Arrival::Reply(r) if reads == Reads::Details => reporter.emit(reply_event(r, status_of(r))),
        // No sink reads it (the plain lines): the tally has it for the summary.
        Arrival::Reply(_) if reads == Reads::Nothing => {}
        // Only counted (bars, lines): the status without copies of the message and data.
        Arrival::Reply(r) => reporter.emit(RunEvent::NodeResult {
            node: r.sender.clone(),
            status: status_of(r),
            statuscode: Some(r.statuscode),
            statusmsg: None,
            data: None,
            resumed: false,
        }),
        Arrival::Malformed { node, reason } => {
            reporter.emit(bare_event(node, NodeStatus::Malformed, Some(reason.to_string())))
        }
    }
}

impl Tally {
    /// Files a batch and returns its failure count (silent and unknown nodes count). Replies
    /// were reported as they arrived; silent and unknown nodes are reported now.
    /// The batch's replies move here (`out.replies` and `out.late` are left empty): copying
    /// 10,000 replies' data cost more than deciding them.
    pub(crate) fn absorb(&mut self, out: &mut BatchOutcome, reporter: &Reporter) -> usize {
        self.take_late(std::mem::take(&mut out.late), reporter);
        let mut failed = out.replies.iter().filter(|r| !r.ok()).count() + out.malformed.len();
        if self.replies.is_empty() {
            // The first (or only) batch: its vector is taken whole, not copied into a new
            // one (10,000 replies: a megabyte copied into freshly faulted pages).
            std::mem::swap(&mut self.replies, &mut out.replies);
        } else {
            self.replies.append(&mut out.replies);
        }
        self.malformed.extend(out.malformed.clone());
        for n in &out.no_reply {
            reporter.emit(bare_event(n, NodeStatus::NoReply, None));
            self.no_reply.push(n.clone());
            failed += 1;
        }
        for n in &out.unknown {
            let why = "the request went out, but the answer was not received (Ctrl-C or a broken connection)";
            reporter.emit(bare_event(n, NodeStatus::Unknown, Some(why.into())));
            self.unknown.push(n.clone());
            failed += 1;
        }
        self.unexpected.extend(out.unexpected.iter().cloned());
        self.stray += out.stray;
        failed
    }

    /// Files a result an earlier attempt of the run journaled (`--resume`) and reports it,
    /// marked resumed. An unknown result is never filed: the node is sent again or the
    /// rollout stops before it.
    pub(crate) fn resumed(&mut self, node: &str, rec: &NodeRecord, reporter: &Reporter) {
        let msg = rec.statusmsg.clone().unwrap_or_default();
        let reply = |code: u8| NodeReply {
            sender: node.to_string(),
            statuscode: rec.statuscode.unwrap_or(code),
            statusmsg: msg.clone(),
            data: rec.data.clone().unwrap_or(serde_json::Value::Null).into(),
        };
        match rec.status {
            NodeStatus::Ok | NodeStatus::LateOk => self.replies.push(reply(0)),
            NodeStatus::Failed | NodeStatus::LateFailed => self.replies.push(reply(1)),
            NodeStatus::Malformed => {
                self.malformed.insert(node.to_string(), msg.trim_start_matches("malformed reply: ").to_string());
            }
            NodeStatus::NoReply => self.no_reply.push(node.to_string()),
            NodeStatus::NoEvent => {
                self.replies.push(reply(0));
                self.no_event.insert(node.to_string(), msg.clone());
            }
            NodeStatus::Unknown => return,
        }
        reporter.emit(RunEvent::NodeResult {
            node: node.to_string(),
            status: rec.status,
            statuscode: rec.statuscode,
            statusmsg: rec.statusmsg.clone(),
            data: rec.data.clone().map(Into::into),
            resumed: true,
        });
    }

    /// Nodes reported silent that answered after all: moved to `late`, reported, never
    /// counted twice. Replies from nodes not silent are ignored.
    pub(crate) fn take_late(&mut self, late: Vec<NodeReply>, reporter: &Reporter) {
        for r in late {
            if !self.no_reply.contains(&r.sender) {
                continue;
            }
            self.no_reply.retain(|n| *n != r.sender);
            let status = if r.ok() { NodeStatus::LateOk } else { NodeStatus::LateFailed };
            reporter.emit(reply_event(&r, status));
            self.late.push(r);
        }
    }

    /// Nodes that answered OK but did not publish the awaited event become failures.
    pub(crate) fn missed_event(&mut self, missing: Vec<String>, why: &str, reporter: &Reporter) -> usize {
        let n = missing.len();
        for node in missing {
            reporter.emit(bare_event(&node, NodeStatus::NoEvent, Some(why.to_string())));
            self.no_event.insert(node, why.to_string());
        }
        n
    }

    /// Nodes that succeeded (late ones included), sorted.
    pub fn ok_nodes(&self) -> Vec<String> {
        self.ok_names().into_iter().map(str::to_string).collect()
    }

    /// [`Tally::ok_nodes`] borrowed.
    pub fn ok_names(&self) -> Vec<&str> {
        let mut ok: Vec<&str> = self.ok_replies().map(|r| r.sender.as_str()).collect();
        ok.sort_unstable();
        ok
    }

    /// How many [`Tally::ok_nodes`] there are, without listing them.
    pub fn ok_count(&self) -> usize {
        self.ok_replies().count()
    }

    fn ok_replies(&self) -> impl Iterator<Item = &NodeReply> {
        self.replies.iter().chain(&self.late).filter(|r| r.ok() && !self.no_event.contains_key(&r.sender))
    }

    /// Failed nodes (silent ones aside) with why: failure replies (late ones included),
    /// malformed replies, unknown nodes and missing events.
    pub fn failures(&self) -> BTreeMap<String, Failure> {
        let mut f = BTreeMap::new();
        for r in self.replies.iter().chain(&self.late).filter(|r| !r.ok()) {
            f.insert(r.sender.clone(), Failure { statuscode: Some(r.statuscode), statusmsg: r.statusmsg.clone() });
        }
        for (n, why) in &self.malformed {
            f.insert(n.clone(), Failure { statuscode: None, statusmsg: format!("malformed reply: {why}") });
        }
        for n in &self.unknown {
            f.insert(n.clone(), Failure { statuscode: None, statusmsg: "unknown: no answer received".into() });
        }
        for (n, why) in &self.no_event {
            f.insert(n.clone(), Failure { statuscode: None, statusmsg: why.clone() });
        }
        f
    }

    /// The node counts for totals and `run_end`.
    pub fn counts(&self) -> Counts {
        let unknown = self.unknown.len();
        Counts { ok: self.ok_count(), failed: self.failures().len() - unknown, no_reply: self.no_reply.len(), unknown }
    }

    /// Every node that did not succeed: failures plus the silent.
    pub fn failure_count(&self) -> usize {
        self.failures().len() + self.no_reply.len()
    }

    /// `node: why` for every node that did not succeed, for stop messages.
    pub fn failed_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .failures()
            .into_iter()
            .map(|(n, f)| match f.statuscode {
                Some(c) => format!("{n}: {} ({})", status_name(c), f.statusmsg),
                None => format!("{n}: {}", f.statusmsg),
            })
            .collect();
        lines.extend(self.no_reply.iter().map(|n| format!("{n}: no reply")));
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reply(n: &str, code: u8) -> NodeReply {
        NodeReply { sender: n.into(), statuscode: code, statusmsg: "m".into(), data: json!({}).into() }
    }

    /// Keeps what it is given.
    struct Kept(std::sync::Mutex<Vec<RunEvent>>, Reads);

    impl crate::progress::Sink for Kept {
        fn event(&self, e: &RunEvent) {
            self.0.lock().expect("lock").push(e.clone());
        }
        fn reads(&self) -> Reads {
            self.1
        }
    }

    /// A reply's `node_result` carries its message and data when a sink reads them (JSONL,
    /// the journal), only its status when the most a sink does is count it (bars), and is
    /// not sent when no sink reads it (the plain lines).
    #[test]
    fn replies_are_copied_into_events_only_for_sinks_that_read_them() {
        let r = reply("a", 1);
        for most in [Reads::Nothing, Reads::Status, Reads::Details] {
            let least = std::sync::Arc::new(Kept(Default::default(), Reads::Nothing));
            let sinks: Vec<std::sync::Arc<dyn crate::progress::Sink>> =
                vec![least.clone(), std::sync::Arc::new(Kept(Default::default(), most))];
            let reporter = Reporter::with_sinks(false, sinks);
            assert_eq!(reporter.reads(), most);
            on_arrival(&reporter, reporter.reads(), Arrival::Reply(&r));
            let seen = least.0.lock().expect("lock").clone();
            if most == Reads::Nothing {
                assert!(seen.is_empty(), "{seen:?}");
                continue;
            }
            let [RunEvent::NodeResult { node, status, statuscode, statusmsg, data, .. }] = &seen[..] else {
                panic!("one node_result: {seen:?}")
            };
            assert_eq!((node.as_str(), *status, *statuscode), ("a", NodeStatus::Failed, Some(1)));
            assert_eq!(statusmsg.is_some(), most == Reads::Details);
            assert_eq!(data.is_some(), most == Reads::Details);
        }
        assert_eq!(crate::progress::Sink::reads(&crate::progress::text::Lines::new()), Reads::Nothing);
    }

    /// `discovered` always has the count; the names only when a sink reads them.
    #[test]
    fn discovered_names_the_nodes_only_for_sinks_that_read_them() {
        let nodes = vec!["a".to_string(), "b".to_string()];
        for reads in [Reads::Nothing, Reads::Status, Reads::Details] {
            let kept = std::sync::Arc::new(Kept(Default::default(), reads));
            let reporter = Reporter::with_sinks(false, vec![kept.clone()]);
            reporter.discovered(&nodes);
            let seen = kept.0.lock().expect("lock").clone();
            let [RunEvent::Discovered { count, nodes: named }] = &seen[..] else { panic!("one discovered: {seen:?}") };
            assert_eq!(*count, 2);
            assert_eq!(named.len(), if reads == Reads::Details { 2 } else { 0 });
        }
    }

    #[test]
    fn a_late_node_moves_once_and_counts_once() {
        let r = Reporter::with_sinks(false, Vec::new());
        let mut t = Tally::default();
        let mut out =
            BatchOutcome { replies: vec![reply("a", 0)], no_reply: vec!["b".into(), "c".into()], ..Default::default() };
        assert_eq!(t.absorb(&mut out, &r), 2);
        assert!(out.replies.is_empty(), "the replies moved");
        t.take_late(vec![reply("b", 0), reply("x", 0)], &r);
        t.take_late(vec![reply("b", 0)], &r);
        assert_eq!(t.ok_nodes(), vec!["a".to_string(), "b".to_string()]);
        assert_eq!((t.no_reply.clone(), t.late.len()), (vec!["c".to_string()], 1));
        assert_eq!(t.failure_count(), 1);
        t.missed_event(vec!["a".into()], "no startup event within 60s", &r);
        assert_eq!(t.ok_nodes(), vec!["b".to_string()]);
        assert_eq!(t.failed_lines(), vec!["a: no startup event within 60s".to_string(), "c: no reply".to_string()]);
    }
}
