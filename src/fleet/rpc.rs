//! SimpleRPC requests: direct requests to discovered nodes in batches, or one broadcast.
//!
//! As go-choria's batched mode does, one request id and one reply subject serve every batch;
//! each batch gets a fresh transport (new `time`) and waits for its own nodes only.

// Each reply is looked up in four or five sets of identities; SipHash was a measurable part
// of the client's CPU per node (issue 15). foldhash is seeded per process.
use foldhash::{HashSet, HashSetExt};
use std::collections::VecDeque;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use serde_json::{Map, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::Fleet;
use super::error::{FleetError, Result};
use super::filter::Filter;
use super::protocol::{self, Payload, RequestSpec};
use super::reply::parse_body;
pub use super::reply::{ok_nodes, status_name, Arrival, BatchOutcome, Data, NodeReply};

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
    /// Replies as the opener task opened them, in arrival order, a few hundred at a time.
    opened: tokio::sync::mpsc::Receiver<Vec<Opened>>,
    /// Taken when it has ended (the reply queue closed), to see whether it panicked.
    opener: Option<tokio::task::JoinHandle<()>>,
    /// Nodes whose reply was taken (or reported), so a second reply is never counted.
    answered: HashSet<String>,
    /// Nodes reported `no_reply` by an earlier batch; a reply from one is late, not stray.
    silent: HashSet<String>,
    /// The rest of the chunk being sorted: the head of the reply queue (a batch that is done
    /// leaves the rest for the next batch or [`RpcSession::drain_late`], as before).
    ahead: VecDeque<Opened>,
}

impl Drop for RpcSession {
    fn drop(&mut self) {
        // Its subscription goes with it.
        if let Some(opener) = &self.opener {
            opener.abort();
        }
    }
}

/// The opener hands over at most this many replies at once (what is already queued).
const CHUNK: usize = 256;
/// Chunks the opener may be ahead of the sorting; then it stops taking messages and the
/// subscription's own limit applies, as it did before there was an opener.
const CHUNKS_AHEAD: usize = 1024;

/// One message from the reply subject, opened: what it says, or why it cannot be read (and
/// the message, whose sender header then counts). A reply that opens lets its message go at
/// once: a long queue of opened replies does not hold every raw message too.
type Opened = std::result::Result<NodeReply, Box<(FleetError, bytes::Bytes)>>;

/// Opens one reply: the transport (hash or signature checked), our request id, the body.
/// Depends on nothing but the message, the request id and the opener's buffers, so any
/// thread can do it.
fn open(payload: bytes::Bytes, request_id: &str, scratch: &mut protocol::Scratch) -> Opened {
    let reply = protocol::with_reply(&payload, scratch, |r| {
        if r.request_id != request_id {
            return Err(FleetError::malformed("reply", format!("request id {} is not ours", r.request_id)));
        }
        parse_body(r.sender.into_owned(), r.body)
    });
    reply.map_err(|e| Box::new((e, payload)))
}

/// The opener: takes every message off the reply subscription and opens it, on a runtime
/// worker, while the session publishes or sorts (issue 15: at 50,000 nodes opening ran on
/// one thread after publishing ended, ~140 ms alone on one core with the other idle). It
/// keeps the order, and ends when the subscription ends (the client closed) or the session
/// is dropped.
async fn open_replies(mut sub: async_nats::Subscriber, request_id: String, to: tokio::sync::mpsc::Sender<Vec<Opened>>) {
    let mut scratch = protocol::Scratch::default();
    while let Some(m) = sub.next().await {
        let mut chunk = vec![open(m.payload, &request_id, &mut scratch)];
        while chunk.len() < CHUNK {
            match sub.next().now_or_never() {
                Some(Some(m)) => chunk.push(open(m.payload, &request_id, &mut scratch)),
                _ => break,
            }
        }
        if to.send(chunk).await.is_err() {
            return;
        }
    }
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
        let deadline = Instant::now() + self.options().connect_timeout;
        self.flush_by(deadline, &CancellationToken::new(), "the reply subscription").await?;
        let (to, opened) = tokio::sync::mpsc::channel(CHUNKS_AHEAD);
        let opener = tokio::spawn(open_replies(sub, request_id.clone(), to));
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
            opened,
            opener: Some(opener),
            answered: HashSet::new(),
            silent: HashSet::new(),
            ahead: VecDeque::new(),
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
    /// `on` sees each reply as it arrives. A hard cancel (`cancel`) ends the wait early with
    /// the unanswered nodes `unknown`; an error means nothing of this batch was sent.
    pub async fn send_batch(
        &mut self,
        nodes: &[String],
        cancel: &CancellationToken,
        on: &mut (dyn FnMut(Arrival<'_>) + Send),
    ) -> Result<BatchOutcome> {
        let start = Instant::now();
        let deadline = start + self.timeout;
        let fleet = self.fleet.clone();
        // Never queue a batch on a dead connection: it would go out whenever (if ever) the
        // broker comes back, long after we reported its nodes.
        fleet.await_connected(deadline, cancel, "sending a batch").await?;
        let msg = self.transport();
        let disconnects = fleet.link().disconnects();
        let mut sent = 0;
        // One deadline and one cancel for the whole batch: a timer per publish cost more than
        // the publish. The same encoded request goes to every node.
        let publish_all = async {
            for node in nodes {
                let subject = protocol::node_subject(&self.collective, node);
                fleet.nats().publish(subject, msg.clone()).await.map_err(|e| FleetError::nats("publish", e))?;
                sent += 1;
            }
            fleet.nats().flush().await.map_err(|e| FleetError::nats("flush", e))
        };
        let failure = tokio::select! {
            _ = cancel.cancelled() => Some(FleetError::Cancelled),
            _ = tokio::time::sleep_until(deadline) => Some(fleet.lost("sending a batch")),
            r = publish_all => r.err(),
        };
        match failure {
            None => self.collect(nodes, false, start, disconnects, cancel, on).await,
            Some(e) if sent == 0 => Err(e),
            // Part of the batch may be on its way: its nodes are unknown, not unsent.
            Some(e) => {
                let mut out = BatchOutcome { unknown: nodes.to_vec(), ..Default::default() };
                out.interrupted = matches!(e, FleetError::Cancelled);
                out.broker_lost = (!out.interrupted).then(|| e.to_string());
                self.answered.extend(nodes.iter().cloned());
                Ok(out)
            }
        }
    }

    /// Publishes one broadcast request and collects replies for the whole timeout.
    pub async fn broadcast(
        &mut self,
        cancel: &CancellationToken,
        on: &mut (dyn FnMut(Arrival<'_>) + Send),
    ) -> Result<BatchOutcome> {
        let start = Instant::now();
        let deadline = start + self.timeout;
        let fleet = self.fleet.clone();
        fleet.await_connected(deadline, cancel, "sending the request").await?;
        let disconnects = fleet.link().disconnects();
        let msg = self.transport();
        let subject = protocol::broadcast_subject(&self.collective, &self.agent);
        fleet.publish_by(subject, msg, deadline, cancel, "sending the request").await?;
        fleet.flush_by(deadline, cancel, "sending the request").await?;
        self.collect(&[], true, start, disconnects, cancel, on).await
    }

    /// Takes replies that already arrived (between batches) without waiting: late answers
    /// from silent nodes are recorded, everything else is stray.
    pub fn drain_late(&mut self) -> BatchOutcome {
        let mut out = BatchOutcome::default();
        loop {
            if self.ahead.is_empty() {
                match self.opened.try_recv() {
                    Ok(chunk) => self.ahead.extend(chunk),
                    Err(_) => break,
                }
            }
            while let Some(opened) = self.ahead.pop_front() {
                // Nothing is addressed now: only late replies count, the rest is stray.
                self.take(opened, &HashSet::new(), &mut HashSet::new(), false, &mut out, &mut |_| {});
            }
        }
        out
    }

    async fn collect(
        &mut self,
        nodes: &[String],
        broadcast: bool,
        start: Instant,
        disconnects: u64,
        cancel: &CancellationToken,
        on: &mut (dyn FnMut(Arrival<'_>) + Send),
    ) -> Result<BatchOutcome> {
        let mut out = BatchOutcome::default();
        // Grown once, not doubled (and copied or rehashed) a dozen times over a large batch.
        out.replies.reserve(nodes.len());
        self.answered.reserve(nodes.len());
        let wanted: HashSet<&str> = nodes.iter().map(String::as_str).collect();
        let mut pending: HashSet<&str> = wanted.clone();
        let deadline = start + self.timeout;
        // One timer and one cancel future for the whole wait, not one per message.
        let sleep = tokio::time::sleep_until(deadline);
        let cancelled = cancel.cancelled();
        tokio::pin!(sleep, cancelled);
        'wait: while broadcast || !pending.is_empty() {
            if self.ahead.is_empty() {
                let chunk = tokio::select! {
                    biased;
                    c = self.opened.recv() => match c {
                        Some(c) => c,
                        // The client closed (the broker is gone for good), unless the opener
                        // panicked: that is a bug, and it goes on as one.
                        None => {
                            // Its sender goes before a panic is stored: wait for the end.
                            if let Some(opener) = self.opener.take() {
                                if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(1), opener).await {
                                    if e.is_panic() {
                                        std::panic::resume_unwind(e.into_panic());
                                    }
                                }
                            }
                            out.broker_lost = Some(self.fleet.lost("the wait for replies").to_string());
                            break;
                        }
                    },
                    _ = &mut cancelled => { out.interrupted = true; break }
                    _ = &mut sleep => break,
                };
                // A chunk is what was queued (a few hundred at most): a long queue still
                // yields to the deadline and Ctrl-C between chunks.
                self.ahead.extend(chunk);
            }
            while let Some(opened) = self.ahead.pop_front() {
                self.take(opened, &wanted, &mut pending, broadcast, &mut out, on);
                if !broadcast && pending.is_empty() {
                    break 'wait;
                }
            }
            if cancel.is_cancelled() {
                out.interrupted = true;
                break;
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        // A node whose only message was malformed: that is its result.
        let mut rest: Vec<String> =
            pending.into_iter().filter(|n| !out.malformed.contains_key(*n)).map(str::to_string).collect();
        rest.sort();
        for (node, reason) in &out.malformed {
            self.answered.insert(node.clone());
            on(Arrival::Malformed { node, reason });
        }
        let fleet = &self.fleet;
        if out.broker_lost.is_none() && !fleet.connected() {
            out.broker_lost = Some(fleet.lost("the wait for replies").to_string());
        }
        let link_broke = fleet.link().disconnects() != disconnects;
        if out.interrupted || out.broker_lost.is_some() || link_broke {
            // Their replies may have been lost with the connection, or never waited for.
            self.answered.extend(rest.iter().cloned());
            out.unknown = rest;
        } else {
            self.silent.extend(rest.iter().cloned());
            out.no_reply = rest;
        }
        Ok(out)
    }

    /// Sorts one opened message from the reply subject into `out`.
    fn take(
        &mut self,
        opened: Opened,
        wanted: &HashSet<&str>,
        pending: &mut HashSet<&str>,
        broadcast: bool,
        out: &mut BatchOutcome,
        on: &mut (dyn FnMut(Arrival<'_>) + Send),
    ) {
        let reply = match opened {
            Ok(r) => r,
            Err(unopened) => {
                let (e, payload) = *unopened;
                // A message that does not open names its sender only in a header anyone can
                // write: it never decides a node's fate while a real reply may still come.
                match protocol::transport_sender(&payload).filter(|s| wanted.contains(s.as_str()) || broadcast) {
                    Some(s) if !self.answered.contains(&s) => {
                        out.malformed.entry(s).or_insert_with(|| e.to_string());
                    }
                    _ => out.stray += 1,
                }
                return;
            }
        };
        let sender = reply.sender.as_str();
        // (Usually empty: no need to hash the sender for it.)
        if !self.silent.is_empty() && self.silent.remove(sender) {
            self.answered.insert(reply.sender.clone());
            out.late.push(reply);
            return;
        }
        // A reply counts when it was addressed (a node of this batch, or any for a broadcast)
        // and is its node's first. The common case, a node of this batch still pending, takes
        // one lookup to leave `pending` and one to enter `answered`.
        let first = match pending.take(sender) {
            Some(node) => {
                let first = self.answered.insert(reply.sender.clone());
                if !first {
                    // Answered in an earlier batch of this session: this one is unexpected.
                    pending.insert(node);
                }
                first
            }
            None => (broadcast || wanted.contains(sender)) && self.answered.insert(reply.sender.clone()),
        };
        if !first {
            out.unexpected.push(reply.sender);
            return;
        }
        if !out.malformed.is_empty() {
            out.malformed.remove(sender);
        }
        on(Arrival::Reply(&reply));
        out.replies.push(reply);
    }
}
