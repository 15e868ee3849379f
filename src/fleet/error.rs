//! Errors of the fleet layer, each with a kind that scripts and tests can match on.
//!
//! Where a failure has an underlying error (an I/O error, a JSON or base64 error, the NATS
//! client's own), the variant keeps it as its `source()`, as nats.rs does, so a caller can
//! match on it or walk the chain. Where the cause is our own finding (a deadline passed, a
//! hash does not match), a `reason` text is the whole story and no error is invented for it.
//! The messages include the cause's text as they always have: the top level prints `{e}`
//! alone, and scripts and tests read those texts.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use x509_parser::error::{PEMError, X509Error};

use super::compound::SyntaxError;
use super::ddl::error::DdlError;

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
    #[error("cannot connect to the broker at {servers}: {source}")]
    Connect { servers: String, source: ConnectCause },
    /// The broker went away while we waited on it. There is no underlying error: a deadline
    /// passed, or the client gave up reconnecting, and `reason` says which.
    #[error("lost the broker at {servers} during {during}: {reason}")]
    BrokerLost { servers: String, during: String, reason: String },
    /// A NATS operation failed on an established connection; the source is the client's
    /// error, whose type depends on the operation.
    #[error("NATS {operation} failed: {source}")]
    Nats { operation: &'static str, source: Box<dyn std::error::Error + Send + Sync> },
    /// The broker answered, but the election bucket could not be opened (for another reason
    /// than its absence, which is [`FleetError::NoBucket`]).
    #[error(
        "NATS election bucket failed: cannot open KV bucket {bucket} (is Choria Streams enabled on the broker?): {source}"
    )]
    BucketUnavailable { bucket: String, source: async_nats::jetstream::context::KeyValueError },
    /// A message did not parse.
    #[error("malformed {what}: {source}")]
    Decode { what: &'static str, source: DecodeCause },
    /// A message parsed but failed a check (a hash, a header, a protocol name).
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    /// The agent has no DDL.
    #[error("unknown agent '{agent}'; known agents: {known}")]
    UnknownAgent { agent: String, known: String },
    /// The agent has no such action.
    #[error("unknown action '{action}' for agent '{agent}'; valid actions: {valid}")]
    UnknownAction { agent: String, action: String, valid: String },
    /// An input is wrong.
    #[error("invalid input '{input}' for {agent}#{action}: {reason}")]
    BadInput { agent: String, action: String, input: String, reason: String },
    /// A DDL file could not be loaded. (Boxed: the cause is large, and every fleet result
    /// would carry its size.)
    #[error("cannot load DDL {path}: {source}")]
    Ddl { path: String, source: Box<DdlError> },
    /// A discovery source (a node list, an inventory file) cannot be used as asked.
    #[error("{reason}")]
    Source { reason: String },
    /// A limit left no nodes to act on.
    #[error("no targets left after applying target limits of '{limit}' to {found} node(s)")]
    Limit { limit: String, found: usize },
    /// A filter is not valid.
    #[error("invalid filter {filter:?}: {reason}")]
    Filter { filter: String, reason: String },
    /// A `/regex/` of a filter does not compile.
    #[error("invalid filter {filter:?}: {source}")]
    FilterRegex { filter: String, source: regex::Error },
    /// A compound filter is not expr syntax; the message points at the column.
    #[error("invalid filter {filter:?}: {}", .source.render(.filter))]
    FilterSyntax { filter: String, source: SyntaxError },
    /// A compound filter matches against a literal pattern that is no regular expression: a
    /// server would silently match nothing with it.
    #[error("invalid filter {filter:?}: the pattern {pattern:?} is not a valid regular expression: {source}")]
    FilterPattern { filter: String, pattern: String, source: regex::Error },
    /// The broker answered, but has no such election bucket: a configuration problem.
    #[error(
        "election bucket {bucket} does not exist on the broker (check --bucket, and that Choria Streams is enabled)"
    )]
    NoBucket { bucket: String },
    /// The bucket has no such election: nobody ever campaigned under that name.
    #[error("there is no election {name} in bucket {bucket}: nobody ever campaigned under that name (`fleetbook election view` lists the elections)")]
    NoElection { name: String, bucket: String },
    /// Discovery found fewer nodes than required.
    #[error("discovery found {found} node(s), fewer than the required {min}")]
    TooFew { found: usize, min: usize },
    /// Credentials failed a check (expired, mismatched, incomplete).
    #[error("{path}: {reason}")]
    Security { path: String, reason: String },
    /// Credentials could not be read or parsed.
    #[error("{path}: {source}")]
    Credentials { path: String, source: CredentialError },
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
            FleetError::Connect { .. }
            | FleetError::Nats { .. }
            | FleetError::BucketUnavailable { .. }
            | FleetError::BrokerLost { .. } => ErrorKind::Connection,
            FleetError::Decode { .. } | FleetError::Malformed { .. } => ErrorKind::Decode,
            FleetError::UnknownAgent { .. }
            | FleetError::UnknownAction { .. }
            | FleetError::BadInput { .. }
            | FleetError::Ddl { .. }
            | FleetError::Filter { .. }
            | FleetError::Source { .. }
            | FleetError::FilterRegex { .. }
            | FleetError::FilterSyntax { .. }
            | FleetError::FilterPattern { .. }
            | FleetError::NoBucket { .. }
            | FleetError::NoElection { .. }
            | FleetError::Security { .. }
            | FleetError::Credentials { .. } => ErrorKind::Invalid,
            FleetError::TooFew { .. } | FleetError::Limit { .. } => ErrorKind::NoResponders,
            FleetError::Cancelled => ErrorKind::Cancelled,
            FleetError::Denied { .. } => ErrorKind::Denied,
        }
    }

    /// A NATS client operation failed; `err` is kept as the source.
    pub(crate) fn nats<E>(operation: &'static str, err: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        FleetError::Nats { operation, source: Box::new(err) }
    }

    /// `what` did not parse; `err` is kept as the source.
    pub(crate) fn decode(what: &'static str, err: impl Into<DecodeCause>) -> Self {
        FleetError::Decode { what, source: err.into() }
    }

    /// `what` parsed but failed a check, for the `reason` given.
    pub(crate) fn malformed(what: &'static str, reason: impl Into<String>) -> Self {
        FleetError::Malformed { what, reason: reason.into() }
    }
}

/// Why a connection to the broker could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectCause {
    /// A server URL does not parse (`url` is shown with any password redacted).
    #[error("bad server URL {url}: {source}")]
    BadUrl { url: String, source: std::io::Error },
    /// The NATS credentials file could not be read.
    #[error("cannot read credentials file {}: {source}", .path.display())]
    Credentials { path: PathBuf, source: std::io::Error },
    /// The NATS client could not connect (refused, TLS, authorisation, ...).
    #[error(transparent)]
    Nats(#[from] async_nats::ConnectError),
    /// The whole handshake took longer than `limit`.
    #[error("no answer within {}s", .limit.as_secs())]
    Timeout { limit: Duration },
}

/// Why a message did not parse.
#[derive(Debug, thiserror::Error)]
pub enum DecodeCause {
    /// Not the JSON expected.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A field that should hold base64 does not.
    #[error("base64: {0}")]
    Base64(#[from] base64::DecodeError),
}

/// Why a credentials file could not be used. The private key and the seed are secrets: for
/// them only the kind of I/O failure is shown, never anything read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The certificate file could not be read.
    #[error("cannot read the certificate: {0}")]
    ReadCertificate(#[source] std::io::Error),
    /// The certificate file holds no PEM block.
    #[error("not a PEM certificate: {0}")]
    NotPem(#[source] x509_parser::nom::Err<PEMError>),
    /// The PEM block holds no x509 certificate.
    #[error("not an x509 certificate: {0}")]
    NotX509(#[source] x509_parser::nom::Err<X509Error>),
    /// The private key file could not be read.
    #[error("cannot read the private key: {}", .0.kind())]
    ReadKey(#[source] std::io::Error),
    /// The JWT file could not be read.
    #[error("cannot read the JWT: {0}")]
    ReadJwt(#[source] std::io::Error),
    /// The seed file could not be read.
    #[error("cannot read the seed: {}", .0.kind())]
    ReadSeed(#[source] std::io::Error),
}

/// Result type of the fleet layer.
pub type Result<T, E = FleetError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::io;

    use super::*;

    fn io_error() -> io::Error {
        io::Error::new(io::ErrorKind::NotFound, "no such file")
    }

    #[test]
    fn wrapped_causes_are_the_source_and_keep_the_message() {
        let json = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        let e = FleetError::decode("reply", json);
        assert_eq!(e.kind(), ErrorKind::Decode);
        assert!(e.to_string().starts_with("malformed reply: EOF while parsing"), "{e}");
        let source = e.source().expect("a decode error has a source");
        assert!(source.to_string().starts_with("EOF while parsing"), "{source}");

        let b64 = base64::DecodeError::InvalidLength(3);
        let e = FleetError::decode("secure reply", b64.clone());
        assert_eq!(e.to_string(), format!("malformed secure reply: base64: {b64}"));
        assert!(matches!(e.source().and_then(|s| s.source()), Some(s) if s.to_string() == b64.to_string()));

        let e = FleetError::nats("subscribe", io_error());
        assert_eq!(e.kind(), ErrorKind::Connection);
        assert_eq!(e.to_string(), "NATS subscribe failed: no such file");
        assert!(e.source().is_some_and(|s| s.downcast_ref::<io::Error>().is_some()));

        let e = FleetError::Connect {
            servers: "nats://h:4222".into(),
            source: ConnectCause::BadUrl { url: "nats://h:x".into(), source: io_error() },
        };
        assert_eq!(e.kind(), ErrorKind::Connection);
        assert_eq!(
            e.to_string(),
            "cannot connect to the broker at nats://h:4222: bad server URL nats://h:x: no such file"
        );
        let cause = e.source().expect("a connect error has a source");
        assert!(cause.source().is_some_and(|s| s.downcast_ref::<io::Error>().is_some()));

        let timeout = ConnectCause::Timeout { limit: Duration::from_secs(11) };
        let e = FleetError::Connect { servers: "nats://h:4222".into(), source: timeout };
        assert_eq!(e.to_string(), "cannot connect to the broker at nats://h:4222: no answer within 11s");
        assert!(e.source().is_some());
    }

    #[test]
    fn secrets_show_only_the_kind_of_io_failure() {
        let e = FleetError::Credentials { path: "/k.pem".into(), source: CredentialError::ReadKey(io_error()) };
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert_eq!(e.to_string(), "/k.pem: cannot read the private key: entity not found");
        assert!(e.source().and_then(|s| s.source()).is_some_and(|s| s.downcast_ref::<io::Error>().is_some()));
        let e = FleetError::Credentials { path: "/c.pem".into(), source: CredentialError::ReadCertificate(io_error()) };
        assert_eq!(e.to_string(), "/c.pem: cannot read the certificate: no such file");
    }

    #[test]
    fn filter_causes_are_kept() {
        let e = super::super::filter::compile_slashed("/(/").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        let Some(re) = e.source().and_then(|s| s.downcast_ref::<regex::Error>()) else { panic!("{e:?}") };
        assert_eq!(e.to_string(), format!("invalid filter \"/(/\": {re}"));

        let expr = "with('a') &&& x";
        let syntax = super::super::compound::parse(expr).unwrap_err();
        let e = FleetError::FilterSyntax { filter: expr.into(), source: syntax.clone() };
        assert_eq!(e.to_string(), format!("invalid filter {expr:?}: {}", syntax.render(expr)));
        assert!(e.source().is_some_and(|s| s.downcast_ref::<SyntaxError>() == Some(&syntax)));
    }

    #[test]
    fn our_own_findings_carry_no_source() {
        let e = FleetError::malformed("transport", "no reply header");
        assert_eq!(e.kind(), ErrorKind::Decode);
        assert_eq!(e.to_string(), "malformed transport: no reply header");
        assert!(e.source().is_none());
        let e = FleetError::BrokerLost { servers: "s".into(), during: "discovery".into(), reason: "gone".into() };
        assert_eq!(e.kind(), ErrorKind::Connection);
        assert!(e.source().is_none());
        let e = FleetError::Security { path: "/c.pem".into(), reason: "the certificate has no common name".into() };
        assert_eq!((e.kind(), e.source().is_none()), (ErrorKind::Invalid, true));
    }
}
