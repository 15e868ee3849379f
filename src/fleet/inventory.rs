//! What one node says about itself, as `choria inventory` asks it: `rpcutil#inventory`, then
//! `rpcutil#daemon_stats`. The `inventory` command and the runbook's `inventory(identity)`
//! both come here, so they cannot drift.

use std::time::Duration;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::error::Result;
use super::filter::Filter;
use super::{Fleet, FleetError};

/// A node's inventory and its server's statistics.
#[derive(Debug, Clone)]
pub struct NodeInventory {
    pub identity: String,
    /// The `rpcutil#inventory` reply: version, agents, classes, facts, collectives, ...
    pub inventory: Map<String, Value>,
    /// The `rpcutil#daemon_stats` reply (start time, PID, config file, message counters);
    /// `None` when the node did not give it.
    pub daemon_stats: Option<Map<String, Value>>,
}

impl NodeInventory {
    /// One JSON object: the inventory's fields, `identity`, and the statistics under `stats`
    /// (null when the node did not give them).
    pub fn to_json(&self) -> Value {
        let mut m = self.inventory.clone();
        m.insert("identity".into(), Value::String(self.identity.clone()));
        m.insert("stats".into(), self.daemon_stats.clone().map(Value::Object).unwrap_or(Value::Null));
        Value::Object(m)
    }
}

/// How asking one node for its inventory ended.
#[derive(Debug, Clone)]
pub enum InventoryOutcome {
    /// It answered.
    Answered(NodeInventory),
    /// It refused the inventory request.
    Refused { statuscode: u8, statusmsg: String },
    /// It did not answer within `waited`.
    NoReply { waited: Duration },
    /// The broker went away during the wait.
    BrokerLost(String),
    /// Ctrl-C.
    Interrupted,
}

/// One action's reply from `identity`: `Ok(data)`, or how the request ended otherwise.
async fn ask(
    fleet: &Fleet,
    identity: &str,
    action: &str,
    collective: Option<&str>,
    cancel: &CancellationToken,
) -> Result<std::result::Result<Map<String, Value>, InventoryOutcome>> {
    let mut session = fleet.rpc_session("rpcutil", action, &Map::new(), collective, None, Filter::default()).await?;
    let out = session.send_batch(&[identity.to_string()], cancel, &mut |_| {}).await?;
    if let Some(reason) = out.broker_lost {
        return Ok(Err(InventoryOutcome::BrokerLost(reason)));
    }
    if out.interrupted {
        return Ok(Err(InventoryOutcome::Interrupted));
    }
    if let Some(reason) = out.malformed.get(identity) {
        return Err(FleetError::Malformed { what: "rpcutil reply", reason: reason.clone() });
    }
    let Some(reply) = out.replies.into_iter().next() else {
        return Ok(Err(InventoryOutcome::NoReply { waited: session.timeout() }));
    };
    if !reply.ok() {
        return Ok(Err(InventoryOutcome::Refused { statuscode: reply.statuscode, statusmsg: reply.statusmsg }));
    }
    match reply.data.into_value() {
        Value::Object(m) => Ok(Ok(m)),
        other => {
            Err(FleetError::Malformed { what: "rpcutil reply", reason: format!("data is not an object: {other}") })
        }
    }
}

impl Fleet {
    /// Asks `identity` (in `collective`, else the main one) for its inventory and then its
    /// server statistics. A node that answers the first but not the second still gives its
    /// inventory, without statistics.
    pub async fn inventory(
        &self,
        identity: &str,
        collective: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<InventoryOutcome> {
        let inventory = match ask(self, identity, "inventory", collective, cancel).await? {
            Ok(m) => m,
            Err(end) => return Ok(end),
        };
        let daemon_stats = match ask(self, identity, "daemon_stats", collective, cancel).await? {
            Ok(m) => Some(m),
            Err(InventoryOutcome::Refused { .. } | InventoryOutcome::NoReply { .. }) => None,
            Err(end) => return Ok(end),
        };
        Ok(InventoryOutcome::Answered(NodeInventory { identity: identity.to_string(), inventory, daemon_stats }))
    }
}
