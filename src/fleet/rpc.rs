//! SimpleRPC requests: direct requests to discovered nodes in batches, or one broadcast.
//!
//! As go-choria's batched mode does, one request id and one reply subject serve every batch;
//! each batch gets a fresh transport (new `time`) and waits for its own nodes only.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::Fleet;
use super::error::{FleetError, Result};
use super::filter::Filter;
use super::protocol::{self, Payload, RequestSpec};

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

/// The outcome of one batch (or one broadcast).
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
    /// Replies from nodes we did not address in this batch (late or stray).
    pub unexpected: Vec<String>,
    pub elapsed: Duration,
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

/// An RPC in progress: validated inputs, one request id, one reply subscription.
pub struct RpcSession {
    fleet: Fleet,
    pub agent: String,
    pub action: String,
    pub collective: String,
    pub request_id: String,
    reply_to: String,
    body: String,
    filter: Filter,
    timeout: Duration,
    sub: async_nats::Subscriber,
    answered: HashSet<String>,
}

/// How long to wait for a batch: discovery timeout + the agent's DDL timeout.
pub fn default_timeout(fleet: &Fleet, agent: &str) -> Result<Duration> {
    let ddl = fleet.ddl().agent(agent)?;
    Ok(fleet.options().discovery_timeout + Duration::from_secs(ddl.metadata.timeout))
}

impl Fleet {
    /// Checks agent, action and inputs against the DDL and opens the reply subscription.
    /// Nothing is sent yet.
    pub async fn rpc_session(
        &self,
        agent: &str,
        action: &str,
        inputs: &Map<String, Value>,
        collective: Option<&str>,
        timeout: Option<Duration>,
        filter: Filter,
    ) -> Result<RpcSession> {
        let data = self.ddl().validate(agent, action, inputs)?;
        filter.validate()?;
        let timeout = match timeout {
            Some(t) => t,
            None => default_timeout(self, agent)?,
        };
        let o = self.options();
        let collective = collective.unwrap_or(&o.collective).to_string();
        let request_id = o.protocol.new_request_id();
        let reply_to = protocol::reply_subject(&collective, &o.caller_id, &request_id);
        let body = serde_json::json!({"agent": agent, "action": action, "data": data}).to_string();
        let mut filter = filter;
        // A direct request carries the agent in its filter (`SetType(direct_request)`).
        filter.require_agent(agent);
        let sub = self.nats().subscribe(reply_to.clone()).await.map_err(|e| FleetError::nats("subscribe", e))?;
        self.nats().flush().await.map_err(|e| FleetError::nats("flush", e))?;
        Ok(RpcSession {
            fleet: self.clone(),
            agent: agent.to_string(),
            action: action.to_string(),
            collective,
            request_id,
            reply_to,
            body,
            filter,
            timeout,
            sub,
            answered: HashSet::new(),
        })
    }
}

impl RpcSession {
    /// The fleet this session talks to.
    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// The per-batch wait.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn transport(&self) -> bytes::Bytes {
        let o = self.fleet.options();
        let spec = RequestSpec {
            request_id: &self.request_id,
            sender: &o.identity,
            caller: &o.caller_id,
            collective: &self.collective,
            agent: &self.agent,
            ttl: o.ttl,
            filter: &self.filter,
            reply_to: &self.reply_to,
            payload: Payload::Rpc(&self.body),
            security: o.security.clone(),
        };
        protocol::encode_request(o.protocol, &spec, chrono::Utc::now())
    }

    /// Sends a direct request to each of `nodes` and waits until all answered or the timeout.
    pub async fn send_batch(&mut self, nodes: &[String], cancel: &CancellationToken) -> Result<BatchOutcome> {
        let start = Instant::now();
        let msg = self.transport();
        let nats = self.fleet.nats().clone();
        for node in nodes {
            nats.publish(protocol::node_subject(&self.collective, node), msg.clone())
                .await
                .map_err(|e| FleetError::nats("publish", e))?;
        }
        nats.flush().await.map_err(|e| FleetError::nats("flush", e))?;
        self.collect(nodes, Some(nodes.len()), start, cancel).await
    }

    /// Publishes one broadcast request and collects replies for the whole timeout.
    pub async fn broadcast(&mut self, cancel: &CancellationToken) -> Result<BatchOutcome> {
        let start = Instant::now();
        let msg = self.transport();
        let nats = self.fleet.nats().clone();
        nats.publish(protocol::broadcast_subject(&self.collective, &self.agent), msg)
            .await
            .map_err(|e| FleetError::nats("publish", e))?;
        nats.flush().await.map_err(|e| FleetError::nats("flush", e))?;
        self.collect(&[], None, start, cancel).await
    }

    async fn collect(
        &mut self,
        nodes: &[String],
        expect: Option<usize>,
        start: Instant,
        cancel: &CancellationToken,
    ) -> Result<BatchOutcome> {
        let mut out = BatchOutcome { nodes: nodes.to_vec(), ..Default::default() };
        let wanted: HashSet<&str> = nodes.iter().map(String::as_str).collect();
        let mut pending: HashSet<&str> = wanted.clone();
        let deadline = start + self.timeout;
        while expect.is_none() || !pending.is_empty() {
            let m = tokio::select! {
                _ = cancel.cancelled() => return Err(FleetError::Cancelled),
                _ = tokio::time::sleep_until(deadline) => break,
                m = self.sub.next() => match m { Some(m) => m, None => break },
            };
            let reply = protocol::decode_reply(&m.payload).and_then(|r| {
                if r.request_id != self.request_id {
                    return Err(FleetError::decode("reply", format!("request id {} is not ours", r.request_id)));
                }
                parse_body(&r.sender, &r.body)
            });
            // Only a reply that failed to open needs the transport header to say who sent it.
            let sender = match &reply {
                Ok(r) => r.sender.clone(),
                Err(e) => match protocol::transport_sender(&m.payload) {
                    Some(s) => s,
                    None => {
                        out.malformed.insert(format!("<unknown sender #{}>", out.malformed.len() + 1), e.to_string());
                        continue;
                    }
                },
            };
            let addressed = expect.is_none() || wanted.contains(sender.as_str());
            if !addressed || self.answered.contains(&sender) {
                out.unexpected.push(sender);
                continue;
            }
            pending.remove(sender.as_str());
            self.answered.insert(sender.clone());
            match reply {
                Ok(r) => out.replies.push(r),
                Err(e) => {
                    out.malformed.insert(sender, e.to_string());
                }
            }
        }
        let mut silent: Vec<String> = pending.into_iter().map(str::to_string).collect();
        silent.sort();
        out.no_reply = silent;
        out.elapsed = start.elapsed();
        Ok(out)
    }
}

/// Parses a SimpleRPC reply body `{"action","statuscode","statusmsg","data"}`.
fn parse_body(sender: &str, body: &[u8]) -> Result<NodeReply> {
    let v: Value = serde_json::from_slice(body).map_err(|e| FleetError::decode("reply body", e))?;
    let code = v
        .get("statuscode")
        .and_then(Value::as_u64)
        .filter(|c| *c <= 5)
        .ok_or_else(|| FleetError::decode("reply body", "statuscode missing or not 0-5"))?;
    Ok(NodeReply {
        sender: sender.to_string(),
        statuscode: code as u8,
        statusmsg: v.get("statusmsg").and_then(Value::as_str).unwrap_or("").to_string(),
        data: v.get("data").cloned().unwrap_or_else(|| Value::Object(Map::new())),
    })
}

/// Splits `nodes` into batches of the given sizes; the last size repeats.
pub fn plan_batches(nodes: &[String], sizes: &[usize]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = nodes;
    let mut i = 0;
    while !rest.is_empty() {
        let size = sizes.get(i).or(sizes.last()).copied().unwrap_or(rest.len()).max(1);
        let n = size.min(rest.len());
        out.push(rest[..n].to_vec());
        rest = &rest[n..];
        i += 1;
    }
    out
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
    fn batches_follow_sizes_and_repeat_the_last() {
        let nodes: Vec<String> = (0..10).map(|i| format!("n{i}")).collect();
        let b = plan_batches(&nodes, &[1, 3]);
        let sizes: Vec<usize> = b.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1, 3, 3, 3]);
        assert_eq!(b[0], vec!["n0"]);
        assert_eq!(plan_batches(&nodes, &[]).len(), 1);
        assert!(plan_batches(&[], &[2]).is_empty());
    }

    #[test]
    fn reply_body_needs_a_status() {
        assert!(parse_body("n", br#"{"statuscode":0,"statusmsg":"OK","data":{"pong":1}}"#).unwrap().ok());
        assert!(parse_body("n", br#"{"statusmsg":"OK"}"#).is_err());
        assert!(parse_body("n", b"pong").is_err());
        assert_eq!(parse_body("n", br#"{"statuscode":1,"statusmsg":"no"}"#).unwrap().statuscode, 1);
    }
}
