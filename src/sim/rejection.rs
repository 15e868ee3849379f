//! Why a simulated server drops a request without a word: the request schema, the security
//! provider's protocol, or the credentials. Counted in [`super::SimStats::rejected`] by their
//! text, which tests and `fleetbook.sim.stats` readers rely on.

use crate::fleet::security;

/// Why a server refuses a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Rejection {
    /// A v1 request id must be 32 characters.
    #[error("schema: requestid is not 32 characters")]
    RequestIdLength,
    /// Request id, caller, collective, agent and payload are required.
    #[error("schema: a required field is empty")]
    EmptyField,
    /// The TTL is under 30 s (v1) or 1 s (v2).
    #[error("schema: ttl below the minimum")]
    TtlTooShort,
    /// A secure server takes only its own protocol version.
    #[error("protocol version not accepted by this security provider")]
    WrongProtocol,
    /// The security provider refused the credentials, for the reason it gives.
    #[error("{0}")]
    Credentials(security::Rejection),
}

impl Rejection {
    /// A schema violation binds every server; the rest bind only servers that verify
    /// (provisioning-mode servers skip verification: DisableSecurityProviderVerify).
    pub(crate) fn binds_provisioning_mode(self) -> bool {
        matches!(self, Rejection::RequestIdLength | Rejection::EmptyField | Rejection::TtlTooShort)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_the_counted_reasons() {
        let all = [
            (Rejection::RequestIdLength, "schema: requestid is not 32 characters"),
            (Rejection::EmptyField, "schema: a required field is empty"),
            (Rejection::TtlTooShort, "schema: ttl below the minimum"),
            (Rejection::WrongProtocol, "protocol version not accepted by this security provider"),
            (Rejection::Credentials("unsigned"), "unsigned"),
        ];
        for (r, text) in all {
            assert_eq!(r.to_string(), text);
            // The old test was a prefix of the text; the type now says it.
            assert_eq!(r.binds_provisioning_mode(), text.starts_with("schema"), "{text}");
        }
    }
}
