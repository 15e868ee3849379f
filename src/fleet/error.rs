//! Errors of the fleet layer, each with a kind that scripts and tests can match on.

use std::fmt;

/// The broad class of a fleet failure; stable names that runbooks see in `try/catch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Nothing arrived in time.
    Timeout,
    /// Nobody listens, or nothing matched.
    NoResponders,
    /// The broker or a node refused us.
    Denied,
    /// A message could not be decoded or failed a check.
    Decode,
    /// The broker could not be reached or the connection broke.
    Connection,
    /// The request itself is wrong (unknown agent or action, bad inputs).
    Invalid,
    /// The operation was cancelled (Ctrl-C).
    Cancelled,
}

impl ErrorKind {
    /// The name scripts see.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::NoResponders => "no_responders",
            ErrorKind::Denied => "denied",
            ErrorKind::Decode => "decode",
            ErrorKind::Connection => "connection",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure in the fleet layer.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The broker could not be reached.
    #[error("cannot connect to the broker at {servers}: {reason}")]
    Connect { servers: String, reason: String },
    /// The broker went away while we waited on it.
    #[error("lost the broker at {servers} during {during}: {reason}")]
    BrokerLost { servers: String, during: String, reason: String },
    /// A NATS operation failed on an established connection.
    #[error("NATS {operation} failed: {reason}")]
    Nats { operation: &'static str, reason: String },
    /// A message did not decode.
    #[error("malformed {what}: {reason}")]
    Decode { what: &'static str, reason: String },
    /// The agent has no DDL.
    #[error("unknown agent '{agent}'; known agents: {known}")]
    UnknownAgent { agent: String, known: String },
    /// The agent has no such action.
    #[error("unknown action '{action}' for agent '{agent}'; valid actions: {valid}")]
    UnknownAction { agent: String, action: String, valid: String },
    /// An input is wrong.
    #[error("invalid input '{input}' for {agent}#{action}: {reason}")]
    BadInput { agent: String, action: String, input: String, reason: String },
    /// A DDL file could not be loaded.
    #[error("cannot load DDL {path}: {reason}")]
    Ddl { path: String, reason: String },
    /// A filter could not be parsed.
    #[error("invalid filter {filter:?}: {reason}")]
    Filter { filter: String, reason: String },
    /// The broker answered, but has no such election bucket: a configuration problem.
    #[error(
        "election bucket {bucket} does not exist on the broker (check --bucket, and that Choria Streams is enabled)"
    )]
    NoBucket { bucket: String },
    /// Discovery found fewer nodes than required.
    #[error("discovery found {found} node(s), fewer than the required {min}")]
    TooFew { found: usize, min: usize },
    /// Credentials could not be used.
    #[error("{path}: {reason}")]
    Security { path: String, reason: String },
    /// The broker or a safety check refused the operation.
    #[error("{reason}")]
    Denied { reason: String },
    /// The wait was cancelled.
    #[error("cancelled")]
    Cancelled,
}

impl FleetError {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            FleetError::Connect { .. } | FleetError::Nats { .. } | FleetError::BrokerLost { .. } => {
                ErrorKind::Connection
            }
            FleetError::Decode { .. } => ErrorKind::Decode,
            FleetError::UnknownAgent { .. }
            | FleetError::UnknownAction { .. }
            | FleetError::BadInput { .. }
            | FleetError::Ddl { .. }
            | FleetError::Filter { .. }
            | FleetError::NoBucket { .. }
            | FleetError::Security { .. } => ErrorKind::Invalid,
            FleetError::TooFew { .. } => ErrorKind::NoResponders,
            FleetError::Cancelled => ErrorKind::Cancelled,
            FleetError::Denied { .. } => ErrorKind::Denied,
        }
    }

    pub(crate) fn nats(operation: &'static str, err: impl fmt::Display) -> Self {
        FleetError::Nats { operation, reason: err.to_string() }
    }

    pub(crate) fn decode(what: &'static str, err: impl fmt::Display) -> Self {
        FleetError::Decode { what, reason: err.to_string() }
    }
}

/// Result type of the fleet layer.
pub type Result<T, E = FleetError> = std::result::Result<T, E>;
