//! How a rollout ends: done, stopped by a guardrail, the gate or Ctrl-C, or cut short by the
//! broker. The texts are what operators read in errors and `rollout_stopped`.

use std::fmt;

use crate::fleet::{ErrorKind, FleetError};

/// Why a rollout stopped before its last batch. A stop cannot be caught by a runbook.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// The operator answered no.
    NotConfirmed { question: String },
    /// A confirmation was needed and there is no terminal (and no `--yes`).
    NoTerminal { question: String },
    /// Ctrl-C at a confirmation prompt.
    InterruptedAtPrompt { question: String },
    /// Ctrl-C between batches: `after` batches went out.
    Interrupted { after: usize, batches: usize },
    /// Ctrl-C during a batch's wait.
    InterruptedDuring { batch: usize, batches: usize, ok: usize, failed: usize, unknown: Vec<String> },
    /// A failure budget ran out.
    Threshold { batch: usize, batches: usize, why: String, failed: Vec<String> },
    /// The gate said stop (or no at its pause).
    Gate { batch: usize, batches: usize, failed: Vec<String> },
    /// Ctrl-C at the gate's pause.
    GatePauseInterrupted { batch: usize, batches: usize },
    /// The gate paused and there is nobody to ask.
    GatePauseNoTerminal { batch: usize, batches: usize },
    /// The run journal could not record the batch, so it was not sent (fail closed).
    Journal { batch: usize, batches: usize, why: String },
    /// The batch's governor leases could not be had (the wait ran out, or the governor is
    /// missing), so it was not sent.
    Governor { batch: usize, batches: usize, why: String },
    /// Resuming: a batch holds nodes whose request went out in an earlier attempt without a
    /// recorded result, and the action changes nodes (`--resend-unknown` sends it again).
    Unknown { batch: usize, batches: usize, label: String, nodes: Vec<String> },
    /// Resuming: the earlier attempts' failures already spend the failure budget.
    BudgetSpent { why: String, failed: Vec<String> },
}

impl Stop {
    /// Whether the stop came before anything was sent.
    pub fn nothing_sent(&self) -> bool {
        matches!(
            self,
            Stop::NotConfirmed { .. }
                | Stop::NoTerminal { .. }
                | Stop::InterruptedAtPrompt { .. }
                | Stop::Interrupted { after: 0, .. }
                | Stop::BudgetSpent { .. }
        )
    }
}

/// The failed nodes once each, grouped by why they failed (`node: why` lines): one line per
/// reason with its count, at most ten nodes named per reason.
fn failed_nodes(failed: &[String]) -> String {
    if failed.is_empty() {
        return "failed nodes: none".into();
    }
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for line in failed {
        let (node, why) = line.split_once(": ").unwrap_or((line.as_str(), "failed"));
        match groups.iter_mut().find(|(w, _)| *w == why) {
            Some((_, nodes)) => nodes.push(node),
            None => groups.push((why, vec![node])),
        }
    }
    let mut out = format!("failed nodes ({}):", failed.len());
    for (why, nodes) in groups {
        out.push_str(&format!("\n  {why} ({}): {}", nodes.len(), some_of(&nodes)));
    }
    out
}

/// The first ten of `nodes`, comma-separated, and how many more there are.
pub(crate) fn some_of<S: AsRef<str>>(nodes: &[S]) -> String {
    let shown: Vec<&str> = nodes.iter().take(10).map(AsRef::as_ref).collect();
    match nodes.len().saturating_sub(10) {
        0 => shown.join(", "),
        n => format!("{} and {n} more", shown.join(", ")),
    }
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::NotConfirmed { question } => write!(f, "not confirmed: {question}"),
            Stop::NoTerminal { question } => write!(
                f,
                "cannot ask for confirmation (no terminal); pass --yes to confirm: {question}; nothing was sent"
            ),
            Stop::InterruptedAtPrompt { question } => write!(f, "interrupted (Ctrl-C) at: {question}"),
            Stop::Interrupted { after: 0, batches } => {
                write!(f, "interrupted (Ctrl-C) before batch 1/{batches}; nothing was sent")
            }
            Stop::Interrupted { after, batches } => {
                write!(f, "interrupted (Ctrl-C) after batch {after}/{batches}; later batches were not sent")
            }
            Stop::InterruptedDuring { batch, batches, ok, failed, unknown } => write!(
                f,
                "interrupted (Ctrl-C) during batch {batch}/{batches}: {ok} ok and {failed} failed so far; unknown (sent, no answer yet): {}; later batches were not sent",
                unknown.join(", ")
            ),
            Stop::Threshold { batch, batches, why, failed } => write!(
                f,
                "stopped after batch {batch}/{batches}: {why}; later batches were not sent; {}",
                failed_nodes(failed)
            ),
            Stop::Gate { batch, batches, failed } => write!(
                f,
                "stopped by the gate after batch {batch}/{batches}; later batches were not sent; {}",
                failed_nodes(failed)
            ),
            Stop::GatePauseInterrupted { batch, batches } => {
                write!(f, "interrupted (Ctrl-C) at the gate's pause after batch {batch}/{batches}")
            }
            Stop::GatePauseNoTerminal { batch, batches } => {
                write!(f, "the gate paused after batch {batch}/{batches} and there is no terminal to ask")
            }
            Stop::Governor { batch, batches, why } => {
                write!(f, "{why}; batch {batch}/{batches} and later ones were not sent")
            }
            Stop::Journal { batch, batches, why } => write!(
                f,
                "{why}; batch {batch}/{batches} and later ones were not sent (the journal must hold a batch before it goes out; --no-journal runs without one)"
            ),
            Stop::Unknown { batch, batches, label, nodes } => write!(
                f,
                "stopped before batch {batch}/{batches}: an earlier attempt sent {label} to {} but never recorded the result, so whether they acted is unknown: {}; check them, then resume with --resend-unknown to send it again",
                if nodes.len() == 1 { "1 node".to_string() } else { format!("{} nodes", nodes.len()) },
                nodes.join(", ")
            ),
            Stop::BudgetSpent { why, failed } => write!(
                f,
                "the run's earlier attempts already spent the failure budget ({why}); nothing was sent (--retry-failed calls the failed nodes again); {}",
                failed_nodes(failed)
            ),
        }
    }
}

/// How a rollout ended. `E` is the error type of the caller's hooks (a runbook's gate).
#[derive(Debug)]
pub enum End<E> {
    /// Every batch was sent and judged.
    Done,
    Stopped(Stop),
    /// The broker was gone at the end of a wait; the reason names the nodes in flight.
    BrokerLost(String),
    /// The fleet refused something that is not a lost connection (e.g. an invalid request).
    Failed(FleetError),
    /// A hook (the gate) failed; the rollout stopped there.
    Hook(E),
}

impl<E> End<E> {
    /// The end a fleet error brings: Ctrl-C is a stop after `after` batches, a lost
    /// connection is a lost broker, anything else a failure.
    pub(crate) fn from_fleet(e: FleetError, after: usize, batches: usize) -> End<E> {
        match e {
            FleetError::Cancelled => End::Stopped(Stop::Interrupted { after, batches }),
            e if e.kind() == ErrorKind::Connection => End::BrokerLost(e.to_string()),
            e => End::Failed(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_texts_say_what_was_and_was_not_sent() {
        let s = Stop::Interrupted { after: 1, batches: 3 };
        assert_eq!(s.to_string(), "interrupted (Ctrl-C) after batch 1/3; later batches were not sent");
        assert!(!s.nothing_sent());
        assert!(Stop::Interrupted { after: 0, batches: 3 }.nothing_sent());
        let t = Stop::Threshold { batch: 2, batches: 4, why: "too many".into(), failed: vec!["n1: no reply".into()] };
        assert!(t.to_string().ends_with("failed nodes (1):\n  no reply (1): n1"), "{t}");
        let many: Vec<String> =
            (1..=12).map(|i| format!("n{i}: Aborted (bad token)")).chain(["x: no reply".into()]).collect();
        let t = Stop::Threshold { batch: 2, batches: 4, why: "too many".into(), failed: many };
        let text = t.to_string();
        assert_eq!(text.lines().count(), 3, "one summary line and one per reason: {text}");
        assert!(text.contains("\n  Aborted (bad token) (12): n1, n2,") && text.contains("n10 and 2 more"), "{text}");
        let g = Stop::Gate { batch: 1, batches: 2, failed: Vec::new() };
        assert!(g.to_string().ends_with("failed nodes: none"), "{g}");
        let e: End<()> = End::from_fleet(FleetError::Cancelled, 2, 3);
        assert!(matches!(e, End::Stopped(Stop::Interrupted { after: 2, batches: 3 })));
    }
}
