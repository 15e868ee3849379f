//! The confirmation a call needs before anything is sent: the Big Red Button (shutdown)
//! always, every mutating call in the REPL.

use super::{policy, ConfirmPolicy, Hooks, Stop};
use crate::progress::Reporter;
use crate::prompt::Answer;

/// Asks for the confirmation a call needs, if any: the Big Red Button (shutdown) always,
/// every mutating call in the REPL. `nodes`: how many nodes, when known.
pub fn confirm<H: Hooks>(
    policy: ConfirmPolicy,
    agent: &str,
    action: &str,
    nodes: Option<usize>,
    reporter: &Reporter,
    hooks: &mut H,
) -> Result<(), Stop> {
    let label = format!("{agent}#{action}");
    let count = nodes.map(|n| format!("{n} node(s)")).unwrap_or_else(|| "every matching node".into());
    let (question, yes_counts) = if policy::needs_confirmation(agent, action) {
        (format!("{label} will SHUT DOWN {count}; they stay down. Continue?"), policy.yes && !policy.every_mutation)
    } else if policy.every_mutation && !policy::is_read_only(agent, action) {
        (format!("Call {label} on {count}?"), policy.yes)
    } else {
        return Ok(());
    };
    if yes_counts {
        reporter.say(&format!("confirmed by --yes: {question}"));
        return Ok(());
    }
    match reporter.suspend(|| hooks.ask(&question)) {
        Answer::Yes => Ok(()),
        Answer::No => Err(Stop::NotConfirmed { question }),
        Answer::Interrupted => Err(Stop::InterruptedAtPrompt { question }),
        Answer::NoTerminal => Err(Stop::NoTerminal { question }),
    }
}
