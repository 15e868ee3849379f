//! What comes back from an RPC: one node's reply, a batch's outcome (every addressed node in
//! exactly one place), and the status names the Choria console shows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{FleetError, Result};

/// One node's answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeReply {
    pub sender: String,
    pub statuscode: u8,
    pub statusmsg: String,
    pub data: Value,
}

impl NodeReply {
    /// Status 0 is success; every other code is a failure.
    pub fn ok(&self) -> bool {
        self.statuscode == 0
    }
}

/// The outcome of one batch (or one broadcast). Every addressed node ends in exactly one of
/// `replies`, `malformed`, `no_reply` and `unknown`.
#[derive(Debug, Clone, Default)]
pub struct BatchOutcome {
    /// The nodes addressed, in order.
    pub nodes: Vec<String>,
    /// Replies in arrival order.
    pub replies: Vec<NodeReply>,
    /// Addressed nodes whose reply did not decode, with the reason.
    pub malformed: BTreeMap<String, String>,
    /// Addressed nodes that did not answer in time.
    pub no_reply: Vec<String>,
    /// Addressed nodes whose fate we cannot know: the wait was cancelled (Ctrl-C), or the
    /// broker connection broke during it, so a reply may have been lost on the way.
    pub unknown: Vec<String>,
    /// Replies that arrived during this wait from nodes an earlier batch reported as
    /// `no_reply`: they acted after all.
    pub late: Vec<NodeReply>,
    /// Replies from nodes we did not address (or that answered twice): counted apart, never
    /// as node results.
    pub unexpected: Vec<String>,
    /// Messages on the reply subject that decode to no addressed node (garbage, forgeries):
    /// counted apart, never as node results.
    pub stray: usize,
    /// Set when the wait was cut short by Ctrl-C.
    pub interrupted: bool,
    /// Set when the broker was gone at the end of the wait; the run must end.
    pub broker_lost: Option<String>,
}

impl BatchOutcome {
    /// Nodes that answered with status 0, sorted.
    pub fn ok_nodes(&self) -> Vec<String> {
        let mut v: Vec<String> = self.replies.iter().filter(|r| r.ok()).map(|r| r.sender.clone()).collect();
        v.sort();
        v
    }

    /// Nodes that answered with a failure status, by identity.
    pub fn failed(&self) -> BTreeMap<String, (u8, String)> {
        self.replies
            .iter()
            .filter(|r| !r.ok())
            .map(|r| (r.sender.clone(), (r.statuscode, r.statusmsg.clone())))
            .collect()
    }
}

/// A node's result the moment it is known, for the caller to show while the wait goes on.
/// (Late replies are not shown here: they are taken between batches, from `late`.)
#[derive(Debug)]
pub enum Arrival<'a> {
    /// An addressed node answered.
    Reply(&'a NodeReply),
    /// An addressed node's only message did not decode (known at the end of the wait).
    Malformed { node: &'a str, reason: &'a str },
}

/// Parses a SimpleRPC reply body `{"action","statuscode","statusmsg","data"}`.
pub(crate) fn parse_body(sender: &str, body: &[u8]) -> Result<NodeReply> {
    let v: Value = serde_json::from_slice(body).map_err(|e| FleetError::decode("reply body", e))?;
    let code = v
        .get("statuscode")
        .and_then(Value::as_u64)
        .filter(|c| *c <= 5)
        .ok_or_else(|| FleetError::malformed("reply body", "statuscode missing or not 0-5"))?;
    Ok(NodeReply {
        sender: sender.to_string(),
        statuscode: code as u8,
        statusmsg: v.get("statusmsg").and_then(Value::as_str).unwrap_or("").to_string(),
        data: v.get("data").cloned().unwrap_or_else(|| Value::Object(Map::new())),
    })
}

/// Name of a status code as the Choria console shows it.
pub fn status_name(code: u8) -> &'static str {
    match code {
        0 => "OK",
        1 => "Request Aborted",
        2 => "Unknown Action",
        3 => "Missing Request Data",
        4 => "Invalid Request Data",
        _ => "Unknown Request Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_body_needs_a_status() {
        assert!(parse_body("n", br#"{"statuscode":0,"statusmsg":"OK","data":{"pong":1}}"#).unwrap().ok());
        assert!(parse_body("n", br#"{"statusmsg":"OK"}"#).is_err());
        assert!(parse_body("n", b"pong").is_err());
        assert_eq!(parse_body("n", br#"{"statuscode":1,"statusmsg":"no"}"#).unwrap().statuscode, 1);
    }
}
