//! Broadcast ("mc") discovery: ask the `discovery` agent, collect who answers.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::Fleet;
use super::error::{FleetError, Result};
use super::filter::Filter;
use super::protocol::{self, Payload, RequestSpec};

/// After the first reply, a windowed discovery ends once replies pause this long.
pub const WINDOW: Duration = Duration::from_millis(300);

/// What to discover.
#[derive(Debug, Clone, Default)]
pub struct DiscoveryOptions {
    pub filter: Filter,
    /// Collective to search (`-T`); the main collective when `None`.
    pub collective: Option<String>,
    /// Overall wait; the client's discovery timeout when `None`.
    pub timeout: Option<Duration>,
    /// End early once replies pause for 300 ms.
    pub window: bool,
    /// The agent the nodes must run: added to the network filter, as the RPC client and
    /// `choria discover` (rpcutil) do, but ignored by the identity-only shortcut.
    pub rpc_agent: Option<String>,
}

/// The outcome of a discovery.
#[derive(Debug, Clone, Default)]
pub struct Discovered {
    /// Identities that answered, sorted.
    pub nodes: Vec<String>,
    /// Messages on the reply subject that named no sender.
    pub malformed: usize,
    /// True when the identity-only shortcut answered without the network.
    pub from_filter: bool,
    /// True when Ctrl-C ended the wait: `nodes` is what answered until then.
    pub interrupted: bool,
}

impl Fleet {
    /// Discovers the nodes matching `opts`; Ctrl-C (`cancel`) is an error, so a partial
    /// result is never acted on.
    pub async fn discover(&self, opts: &DiscoveryOptions, cancel: &CancellationToken) -> Result<Discovered> {
        let found = self.discover_until(opts, cancel).await?;
        if found.interrupted {
            return Err(FleetError::Cancelled);
        }
        Ok(found)
    }

    /// Discovers the nodes matching `opts`; Ctrl-C (`cancel`) ends the wait and returns what
    /// answered so far, marked `interrupted` (for listing, never for acting).
    pub async fn discover_until(&self, opts: &DiscoveryOptions, cancel: &CancellationToken) -> Result<Discovered> {
        opts.filter.validate()?;
        if let Some(nodes) = opts.filter.exact_identities_only() {
            return Ok(Discovered { nodes, malformed: 0, from_filter: true, interrupted: false });
        }
        let mut filter = opts.filter.clone();
        if let Some(agent) = &opts.rpc_agent {
            filter.require_agent(agent);
        }
        let o = self.options();
        let collective = opts.collective.as_deref().unwrap_or(&o.collective);
        let timeout = opts.timeout.unwrap_or(o.discovery_timeout);
        let request_id = o.protocol.new_request_id();
        let reply_to = protocol::reply_subject(collective, &o.caller_id, &request_id);
        let nats = self.nats();
        let hard_deadline = Instant::now() + timeout;
        self.await_connected(hard_deadline, cancel, "discovery").await?;
        let disconnects = self.link().disconnects();
        let mut sub = nats.subscribe(reply_to.clone()).await.map_err(|e| FleetError::nats("subscribe", e))?;
        // Subscribe first, then publish: otherwise the fastest replies are lost.
        self.flush_by(hard_deadline, cancel, "discovery").await?;
        let spec = RequestSpec {
            request_id: &request_id,
            sender: &o.identity,
            caller: &o.caller_id,
            collective,
            agent: "discovery",
            ttl: o.ttl,
            filter: &filter,
            reply_to: &reply_to,
            payload: Payload::Discovery,
            security: o.security.clone(),
        };
        let msg = protocol::encode_request(o.protocol, &spec, chrono::Utc::now());
        let subject = protocol::broadcast_subject(collective, "discovery");
        self.publish_by(subject, msg, hard_deadline, cancel, "discovery").await?;
        self.flush_by(hard_deadline, cancel, "discovery").await?;

        let mut deadline = hard_deadline;
        let mut found = BTreeSet::new();
        let mut malformed = 0;
        let mut interrupted = false;
        // One timer for the whole wait: the first reply brings it forward to the window's
        // end; later replies only move `deadline`, and the timer, when it fires early, is set
        // to where the window has got to (a timer per reply cost more than reading the reply).
        let sleep = tokio::time::sleep_until(deadline);
        let cancelled = cancel.cancelled();
        tokio::pin!(sleep, cancelled);
        loop {
            tokio::select! {
                _ = &mut cancelled => { interrupted = true; break }
                _ = &mut sleep => match sleep.deadline() < deadline {
                    true => sleep.as_mut().reset(deadline),
                    false => break,
                },
                m = sub.next() => match m {
                    None => return Err(self.lost("discovery")),
                    Some(m) => {
                        match protocol::transport_sender(&m.payload) {
                            Some(id) => { found.insert(id); }
                            None => malformed += 1,
                        }
                        if opts.window {
                            deadline = (Instant::now() + WINDOW).min(hard_deadline);
                            if deadline < sleep.deadline() {
                                sleep.as_mut().reset(deadline);
                            }
                        }
                    }
                },
            }
        }
        let _ = sub.unsubscribe().await;
        // A discovery that lost the connection may have lost answers: acting on the nodes it
        // did find would silently skip the rest.
        if !self.connected() {
            return Err(self.lost("discovery"));
        }
        if self.link().disconnects() != disconnects {
            let why = "the connection broke and came back; answers may be missing, so the result is not used";
            return Err(self.broker_lost("discovery", why.into()));
        }
        Ok(Discovered { nodes: found.into_iter().collect(), malformed, from_filter: false, interrupted })
    }
}
