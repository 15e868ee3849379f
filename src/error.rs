//! The top-level error and the one place that maps outcomes to exit codes.

use crate::fleet::{ErrorKind, FleetError};
use crate::sim::broker::BrokerError;
use crate::sim::SimError;

/// Exit codes (DESIGN.md; the table is in docs/architecture.md): decided here and nowhere
/// else.
pub mod exit {
    /// Everything succeeded.
    pub const OK: i32 = 0;
    /// Failed, silent or unknown nodes; a runbook error; fleetbook's own failure.
    pub const FAILED: i32 = 1;
    /// Usage or configuration: flags, files, filters, agents, actions, inputs, the set-up.
    pub const USAGE: i32 = 2;
    /// A guardrail (threshold, gate, refusal, no terminal to confirm on) or Ctrl-C.
    pub const GUARDRAIL: i32 = 3;
    /// The broker cannot be reached or will not start, or was lost for longer than a wait.
    pub const UNREACHABLE: i32 = 4;
}

/// Anything that ends a command unsuccessfully. The wrapped errors are transparent: their
/// message is the message, and their cause is the `source()`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line or a file it names is wrong; the message says which and why.
    #[error("{message}")]
    Usage { message: String },
    /// The fleet layer failed; its kind decides the exit code.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// The embedded broker could not be found or started.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The simulated fleet failed.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// A metrics endpoint could not be scraped.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::http::ScrapeError),
    /// The command ran but some nodes failed or did not answer.
    #[error("{failed} of {total} node(s) did not succeed")]
    NodesFailed { failed: usize, total: usize },
    /// Nothing matched.
    #[error("no nodes matched the filter")]
    NoNodes,
    /// Ctrl-C ended the command.
    #[error("interrupted")]
    Interrupted,
    /// The broker went away for longer than a wait; what came back was reported.
    #[error("{reason}")]
    BrokerLost { reason: String },
    /// A runbook failed to compile or run; the text is already rendered with its location.
    #[error("{rendered}")]
    Runbook { rendered: String },
    /// A guardrail stopped the run.
    #[error("{}", stopped(reason))]
    Guardrail { reason: String },
    /// The run journal cannot be kept on this broker; nothing was sent.
    #[error("{reason}")]
    Journal { reason: String },
    /// `check` found problems in these files.
    #[error("check failed: {}", files.join(", "))]
    CheckFailed { files: Vec<String> },
    /// Standard output could not be written (a broken pipe is success; `main` decides).
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    /// fleetbook itself failed (a thread, the terminal): not the user's input.
    #[error("{message}")]
    Internal { message: String },
    /// A command fleetbook ran for the user (`governor run`) exited with this status, which
    /// becomes fleetbook's.
    #[error("{command} exited with status {code}")]
    Child { command: String, code: i32 },
}

/// A guardrail's reason, said once: "stopped: why", unless the reason says it already.
pub(crate) fn stopped(reason: &str) -> String {
    if reason.starts_with("stopped") {
        reason.to_string()
    } else {
        format!("stopped: {reason}")
    }
}

/// The exit code a fleet error ends a command with.
pub fn fleet_exit_code(e: &FleetError) -> i32 {
    match e.kind() {
        ErrorKind::Connection => exit::UNREACHABLE,
        ErrorKind::Invalid => exit::USAGE,
        ErrorKind::Cancelled | ErrorKind::Denied => exit::GUARDRAIL,
        _ => exit::FAILED,
    }
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage { .. } => exit::USAGE,
            Error::Fleet(e) => fleet_exit_code(e),
            // No nats-server to run is a set-up problem; one that will not start is a broker
            // we cannot have.
            Error::Broker(BrokerError::NotFound { .. }) => exit::USAGE,
            Error::Broker(_) => exit::UNREACHABLE,
            Error::Sim(_) | Error::BrokerLost { .. } | Error::Journal { .. } => exit::UNREACHABLE,
            Error::NodesFailed { .. } | Error::NoNodes => exit::FAILED,
            Error::Interrupted | Error::Guardrail { .. } => exit::GUARDRAIL,
            Error::Runbook { .. } | Error::CheckFailed { .. } => exit::FAILED,
            Error::Output(_) | Error::Metrics(_) | Error::Internal { .. } => exit::FAILED,
            Error::Child { code, .. } => *code,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn fleet_errors_pass_through_with_their_cause_and_exit_code() {
        let bad = crate::fleet::filter::compile_slashed("/(/").unwrap_err();
        let shown = bad.to_string();
        let e = Error::from(bad);
        assert_eq!(e.to_string(), shown);
        assert_eq!(e.exit_code(), exit::USAGE);
        assert!(e.source().is_some_and(|s| s.downcast_ref::<regex::Error>().is_some()));
        let lost = FleetError::BrokerLost { servers: "s".into(), during: "d".into(), reason: "r".into() };
        assert_eq!(Error::from(lost).exit_code(), exit::UNREACHABLE);
    }
}
