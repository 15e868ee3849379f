//! Why a simulated agent answers an action with an error: the status code and message a
//! go-choria server sends. The texts are exactly the server's, and what clients, runbooks
//! and tests read.

use serde_json::Value;

/// An action's refusal, as a non-zero status code and its message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum Refusal {
    /// An injected fault ([`super::node::Fault::Failing`]) answering with `code`.
    #[error("simulated failure of {agent}#{action} on {identity}")]
    Injected {
        /// 1 (aborted) or 5 (unknown error).
        code: u8,
        /// The agent asked.
        agent: String,
        /// The action asked.
        action: String,
        /// The failing node.
        identity: String,
    },
    /// The agent has no such action (or the node no such agent).
    #[error("Unknown action {action} for agent {agent}")]
    UnknownAction {
        /// The agent asked.
        agent: String,
        /// The action it does not have.
        action: String,
    },
    /// The RPC body is not JSON of the expected shape.
    #[error("Could not process request: invalid JSON body")]
    InvalidBody,
    /// The provisioning token does not match.
    #[error("Incorrect provision token supplied")]
    BadToken,
    /// `restart` outside provisioning mode needs a token to be set.
    #[error("Cannot restart a server that is not in provisioning mode or with no token set")]
    RestartNotAllowed,
    /// `restart` in provisioning mode before `configure`.
    #[error("Configuration /etc/choria/server.conf enables provisioning, restart cannot continue")]
    NotConfigured,
    /// `splay` is not an integer (Go unmarshals it into an int).
    #[error("Could not parse request data: splay {0} is not an integer")]
    BadSplay(Value),
    /// `reprovision` in provisioning mode.
    #[error("Server is already in provisioning mode, cannot enable provisioning mode again")]
    AlreadyProvisioning,
    /// `shutdown` outside provisioning mode needs a token to be set.
    #[error("Cannot shutdown a server that is not in provisioning mode or with no token set")]
    ShutdownNotAllowed,
    /// `configure` outside provisioning mode.
    #[error("Cannot reconfigure a server that is not in provisioning mode")]
    ReconfigureNotAllowed,
    /// `configure` without a configuration.
    #[error("Did not receive any configuration to write, cannot write a empty configuration file")]
    EmptyConfiguration,
    /// A provisioning-only action outside provisioning mode.
    #[error("Cannot perform this action on a server that is not in provisioning mode")]
    NotProvisioning,
    /// Scout `maintenance`, `resume` or `trigger` given check names some of which could not
    /// be transitioned: aborted, but the reply still carries the lists
    /// (`scout/agent/scout/util.go`, `transitionSelectedChecks`).
    #[error("Some checks could not be transitioned to {transition}")]
    ChecksNotTransitioned {
        /// The machine transition asked for.
        transition: String,
        /// The `transitioned`, `failed` and `skipped` lists.
        data: Value,
    },
    /// An action the simulator does not implement.
    #[error("{action} is not simulated")]
    NotSimulated {
        /// The action.
        action: String,
    },
}

impl Refusal {
    /// The SimpleRPC status code: 1 aborted, 2 unknown action, 4 invalid data, 5 unknown error.
    pub(crate) fn statuscode(&self) -> u8 {
        match self {
            Refusal::Injected { code, .. } => *code,
            Refusal::UnknownAction { .. } => 2,
            Refusal::InvalidBody | Refusal::BadSplay(_) => 4,
            Refusal::NotSimulated { .. } => 5,
            Refusal::BadToken
            | Refusal::RestartNotAllowed
            | Refusal::NotConfigured
            | Refusal::AlreadyProvisioning
            | Refusal::ShutdownNotAllowed
            | Refusal::ReconfigureNotAllowed
            | Refusal::EmptyConfiguration
            | Refusal::NotProvisioning
            | Refusal::ChecksNotTransitioned { .. } => 1,
        }
    }

    /// The reply data a refusal still carries (go-choria sets `reply.Data` before aborting).
    pub(crate) fn data(&self) -> Option<&Value> {
        match self {
            Refusal::ChecksNotTransitioned { data, .. } => Some(data),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts and codes of go-choria, which the variants must keep word for word.
    #[test]
    fn texts_and_codes_are_the_servers() {
        let s = |v: &str| v.to_string();
        let all = [
            (
                Refusal::Injected { code: 5, agent: s("package"), action: s("update"), identity: s("n1") },
                5,
                "simulated failure of package#update on n1",
            ),
            (
                Refusal::UnknownAction { agent: s("rpcutil"), action: s("nope") },
                2,
                "Unknown action nope for agent rpcutil",
            ),
            (Refusal::InvalidBody, 4, "Could not process request: invalid JSON body"),
            (Refusal::BadToken, 1, "Incorrect provision token supplied"),
            (Refusal::BadSplay(Value::from(1.5)), 4, "Could not parse request data: splay 1.5 is not an integer"),
            (Refusal::BadSplay(Value::from("3")), 4, "Could not parse request data: splay \"3\" is not an integer"),
            (Refusal::NotSimulated { action: s("jwt") }, 5, "jwt is not simulated"),
            (
                Refusal::EmptyConfiguration,
                1,
                "Did not receive any configuration to write, cannot write a empty configuration file",
            ),
        ];
        for (r, code, text) in all {
            assert_eq!((r.statuscode(), r.to_string().as_str()), (code, text));
        }
    }
}
