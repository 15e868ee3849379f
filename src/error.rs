//! The top-level error and the one place that maps outcomes to exit codes.

use crate::fleet::{ErrorKind, FleetError};
use crate::sim::broker::BrokerError;
use crate::sim::SimError;

/// Exit codes (DESIGN.md): decided here and nowhere else.
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILED: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const GUARDRAIL: i32 = 3;
    pub const UNREACHABLE: i32 = 4;
}

/// Anything that ends a command unsuccessfully.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{message}")]
    Usage { message: String },
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::http::ScrapeError),
    /// The command ran but some nodes failed or did not answer.
    #[error("{failed} of {total} node(s) did not succeed")]
    NodesFailed { failed: usize, total: usize },
    /// Nothing matched.
    #[error("no nodes matched the filter")]
    NoNodes,
    #[error("interrupted")]
    Interrupted,
    /// The broker went away for longer than a wait; what came back was reported.
    #[error("{reason}")]
    BrokerLost { reason: String },
    /// A runbook failed to compile or run; the text is already rendered with its location.
    #[error("{rendered}")]
    Runbook { rendered: String },
    /// A guardrail stopped the run.
    #[error("stopped: {reason}")]
    Guardrail { reason: String },
    /// `check` found problems in these files.
    #[error("check failed: {}", files.join(", "))]
    CheckFailed { files: Vec<String> },
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    /// fleetbook itself failed (a thread, the terminal): not the user's input.
    #[error("{message}")]
    Internal { message: String },
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage { .. } => exit::USAGE,
            Error::Fleet(e) => match e.kind() {
                ErrorKind::Connection => exit::UNREACHABLE,
                ErrorKind::Invalid => exit::USAGE,
                ErrorKind::Cancelled | ErrorKind::Denied => exit::GUARDRAIL,
                _ => exit::FAILED,
            },
            // No nats-server to run is a set-up problem; one that will not start is a broker
            // we cannot have.
            Error::Broker(BrokerError::NotFound { .. }) => exit::USAGE,
            Error::Broker(_) => exit::UNREACHABLE,
            Error::Sim(_) | Error::BrokerLost { .. } => exit::UNREACHABLE,
            Error::NodesFailed { .. } | Error::NoNodes => exit::FAILED,
            Error::Interrupted | Error::Guardrail { .. } => exit::GUARDRAIL,
            Error::Runbook { .. } | Error::CheckFailed { .. } => exit::FAILED,
            Error::Output(_) | Error::Metrics(_) | Error::Internal { .. } => exit::FAILED,
        }
    }
}
