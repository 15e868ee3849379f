//! A resumed rollout (`--resume`): which of its planned nodes an earlier attempt of the run
//! already finished (filed from the journal, never called again), which are sent now, and
//! which stop it because their result is unknown.
//!
//! The rules: a node that succeeded is done. A failed or silent node is done too (its failure
//! counts against the budget) unless `--retry-failed`. A node whose request went out without
//! a recorded result is unknown: a read-only action is sent again; a mutating one stops the
//! rollout before that node's batch unless `--resend-unknown`. Every other node is sent.

use super::{policy, Rollout, Tally};
use crate::journal::replay::CallRecord;
use crate::progress::{NodeStatus, Reporter, RunEvent};

/// What the journal says this rollout already did, and how to treat it.
#[derive(Debug, Clone, PartialEq)]
pub struct Resumed {
    pub call: CallRecord,
    pub retry_failed: bool,
    pub resend_unknown: bool,
}

impl Resumed {
    /// What is left of the pause after the last batch an earlier attempt finished: the pause
    /// counts from that batch's end, so a quick resume still keeps the nodes' settling time.
    pub(crate) fn sleep_left(&self, sleep: std::time::Duration) -> std::time::Duration {
        let Some(ended) = self.call.last_batch_end.as_deref() else { return sleep };
        let Ok(ended) = chrono::DateTime::parse_from_rfc3339(ended) else { return sleep };
        let since = (chrono::Utc::now() - ended.with_timezone(&chrono::Utc)).to_std().unwrap_or_default();
        sleep.saturating_sub(since)
    }
}

/// Per batch of the plan (same numbering): the nodes to send, and the unknown nodes that
/// stop the rollout before the batch. Not resuming, the nodes to send are the plan's own
/// batches, borrowed (10,000 names are not copied to be sent).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Split<'a> {
    pub(crate) send: std::borrow::Cow<'a, [Vec<String>]>,
    pub(crate) blocked: Vec<Vec<String>>,
}

impl Split<'_> {
    /// Nothing to send and nothing blocked: the earlier attempts finished this rollout.
    pub(crate) fn finished(&self) -> bool {
        self.send.iter().chain(&self.blocked).all(Vec::is_empty)
    }

    /// The first batch that holds blocked nodes comes before (or with) the first to send.
    pub(crate) fn blocked_first(&self) -> Option<usize> {
        let first = |v: &[Vec<String>]| v.iter().position(|b| !b.is_empty());
        match (first(&self.blocked), first(&self.send)) {
            (Some(b), Some(s)) if b <= s => Some(b),
            (Some(b), None) => Some(b),
            _ => None,
        }
    }

    /// Files the blocked nodes of batches `from..` as unknown, as the journal has them.
    pub(crate) fn file_blocked(&self, from: usize, tally: &mut Tally, reporter: &Reporter) {
        for n in self.blocked.iter().skip(from).flatten() {
            let why = "unknown since an earlier attempt: sent, no result recorded; not sent again";
            reporter.emit(RunEvent::NodeResult {
                node: n.clone(),
                status: NodeStatus::Unknown,
                statuscode: None,
                statusmsg: Some(why.into()),
                data: None,
                resumed: true,
            });
            tally.unknown.push(n.clone());
        }
    }
}

/// Splits the plan; nodes the journal finished are filed into `tally` (reported as resumed).
pub(crate) fn split<'a>(r: &'a Rollout, tally: &mut Tally, reporter: &Reporter) -> Split<'a> {
    let Some(res) = &r.resume else {
        return Split { send: (&r.batches[..]).into(), blocked: vec![Vec::new(); r.batches.len()] };
    };
    let unknown = res.call.unknown();
    let resend = res.resend_unknown || policy::is_read_only(&r.agent, &r.action);
    let (mut send_all, mut blocked_all) = (Vec::new(), Vec::new());
    for batch in &r.batches {
        let (mut send, mut blocked) = (Vec::new(), Vec::new());
        for n in batch {
            match res.call.results.get(n) {
                _ if unknown.contains(n) => match resend {
                    true => send.push(n.clone()),
                    false => blocked.push(n.clone()),
                },
                Some(rec) if rec.is_ok() || !res.retry_failed => tally.resumed(n, rec, reporter),
                _ => send.push(n.clone()),
            }
        }
        send_all.push(send);
        blocked_all.push(blocked);
    }
    Split { send: send_all.into(), blocked: blocked_all }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::replay::NodeRecord;
    use crate::rollout::{ConfirmPolicy, Thresholds};

    fn rec(status: NodeStatus) -> NodeRecord {
        NodeRecord { status, statuscode: None, statusmsg: None, data: None }
    }

    fn rollout(action: &str, resume: Resumed) -> Rollout {
        let b = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Rollout {
            call: 1,
            groups: Vec::new(),
            counts: Vec::new(),
            agent: if action == "ping" { "rpcutil" } else { "choria_provision" }.into(),
            action: action.into(),
            inputs: Default::default(),
            shown: serde_json::Value::Null,
            collective: None,
            timeout: None,
            filter: Default::default(),
            batches: vec![b(&["a", "b"]), b(&["c", "d"]), b(&["e"])],
            sleep: std::time::Duration::ZERO,
            thresholds: Thresholds::default(),
            wait_for: None,
            governor: None,
            plan_only: false,
            confirm: ConfirmPolicy::default(),
            resume: Some(resume),
        }
    }

    #[test]
    fn finished_nodes_are_filed_failed_ones_only_retried_when_asked_unknown_ones_block() {
        let mut call = CallRecord::default();
        call.results.insert("a".into(), rec(NodeStatus::Ok));
        call.results.insert("b".into(), rec(NodeStatus::NoReply));
        call.sent.extend(["a", "b", "c"].map(String::from));
        let reporter = Reporter::with_sinks(false, Vec::new());
        let res = Resumed { call, retry_failed: false, resend_unknown: false };
        let mut t = Tally::default();
        let r = rollout("restart", res.clone());
        let s = split(&r, &mut t, &reporter);
        assert_eq!(s.send, vec![Vec::<String>::new(), vec!["d".to_string()], vec!["e".to_string()]]);
        assert_eq!(s.blocked[1], vec!["c".to_string()]);
        assert_eq!(s.blocked_first(), Some(1));
        assert_eq!((t.ok_nodes(), t.no_reply.clone()), (vec!["a".to_string()], vec!["b".to_string()]));

        let retry = Resumed { retry_failed: true, resend_unknown: true, ..res.clone() };
        let mut t = Tally::default();
        let r = rollout("restart", retry);
        let s = split(&r, &mut t, &reporter);
        assert_eq!(s.send[0], vec!["b".to_string()]);
        assert_eq!(s.send[1], vec!["c".to_string(), "d".to_string()]);
        assert_eq!(s.blocked_first(), None);
        // A read-only action is simply sent again.
        let r = rollout("ping", res);
        let s = split(&r, &mut Tally::default(), &reporter);
        assert_eq!((s.send[1].len(), s.blocked_first()), (2, None));
    }
}
