//! Discovery: broadcast ("mc", ask the `discovery` agent and collect who answers), or a
//! source of truth instead of the network: a node list ([`nodelist`], `--dm flatfile`) or an
//! inventory file ([`inventory`], written by [`inventory_writer`]); then, whatever the
//! source, an optional [`limit`].

pub mod inventory;
pub mod inventory_writer;
pub mod limit;
pub mod method;
pub mod nodelist;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::{ClientOptions, Fleet};
use super::error::{FleetError, Result};
use super::filter::Filter;
use super::protocol::{self, Payload, RequestSpec};

/// After the first reply, a windowed discovery ends once replies pause this long.
pub const WINDOW: Duration = Duration::from_millis(300);

/// Replies read in one go before discovery looks at Ctrl-C and its deadline again.
const RUN: usize = 256;

/// How long the round trip that ends a discovery may take ([`Fleet::broadcast_discovery`]).
const BARRIER: Duration = Duration::from_secs(2);

/// At most this many replies are taken after that round trip: on a runtime with workers the
/// connection keeps filling the subscription meanwhile, and a flood faster than discovery
/// reads must not keep it from ending.
const DRAIN_MAX: usize = 1 << 20;

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
    /// Where the nodes come from.
    pub source: Source,
    /// Keep only some of the nodes found.
    pub limit: Option<limit::Limit>,
}

/// Where discovery finds nodes (`--dm`).
#[derive(Debug, Clone, Default)]
pub enum Source {
    /// Ask the fleet (`--dm broadcast`, alias `mc`).
    #[default]
    Broadcast,
    /// A node list, in its order (`--nodes FILE`, `--dm flatfile`): only identity filters
    /// apply; nodes that are not in the fleet end up without a reply, never dropped.
    List(Arc<Vec<String>>),
    /// An inventory file (`--dm inventory`), its filters applied locally.
    Inventory(Arc<inventory::Inventory>),
}

impl DiscoveryOptions {
    /// Checks that the filter suits the source, before anything is sent.
    pub fn validate(&self) -> Result<()> {
        self.filter.validate()?;
        if let Source::List(_) = self.source {
            let f = &self.filter;
            if !(f.fact.is_empty() && f.cf_class.is_empty() && f.agent.is_empty() && f.compound.is_empty()) {
                return Err(FleetError::Source {
                    reason: "a node list (--nodes, --dm flatfile) takes only identity filters (-I)".into(),
                });
            }
        }
        Ok(())
    }
}

impl DiscoveryOptions {
    /// What is being discovered, for progress lines: the filter, and the source unless it
    /// is broadcast.
    pub fn describe(&self) -> String {
        match &self.source {
            Source::Broadcast => self.filter.describe(),
            Source::List(nodes) => format!("{} listed node(s) matching {}", nodes.len(), self.filter.describe()),
            Source::Inventory(_) => format!("{} in the inventory", self.filter.describe()),
        }
    }
}

impl Source {
    /// The method's name, as `--dm` spells it.
    pub fn method(&self) -> &'static str {
        match self {
            Source::Broadcast => "broadcast",
            Source::List(_) => "flatfile",
            Source::Inventory(_) => "inventory",
        }
    }
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
    /// With a limit: how many nodes were found before it kept `nodes`.
    pub before_limit: Option<usize>,
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
        if let Some(found) = discover_local(opts, self.options()) {
            return found;
        }
        let found = self.broadcast_discovery(opts, cancel).await?;
        limited(opts, found, self.options().limit_method)
    }

    async fn broadcast_discovery(&self, opts: &DiscoveryOptions, cancel: &CancellationToken) -> Result<Discovered> {
        opts.validate()?;
        if let Some(nodes) = opts.filter.exact_identities_only() {
            return Ok(Discovered { nodes, from_filter: true, ..Default::default() });
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
        let msg = self.discovery_request(collective, &filter, &request_id, &reply_to);
        let subject = protocol::broadcast_subject(collective, "discovery");
        self.publish_by(subject, msg, hard_deadline, cancel, "discovery").await?;
        self.flush_by(hard_deadline, cancel, "discovery").await?;

        let mut deadline = hard_deadline;
        // Names as they come, sorted and deduplicated once at the end: a sorted set kept up
        // to date per reply cost more than reading the reply (issue 15).
        let mut found = Vec::new();
        let mut malformed = 0;
        let mut interrupted = false;
        // One timer for the whole wait: the first reply brings it forward to the window's
        // end; later replies only move `deadline`, and the timer, when it fires early, is set
        // to where the window has got to (a timer per reply cost more than reading the reply).
        let sleep = tokio::time::sleep_until(deadline);
        let cancelled = cancel.cancelled();
        tokio::pin!(sleep, cancelled);
        let mut take = |m: async_nats::Message| match protocol::transport_sender(&m.payload) {
            Some(id) => found.push(id),
            None => malformed += 1,
        };
        loop {
            tokio::select! {
                _ = &mut cancelled => { interrupted = true; break }
                _ = &mut sleep => {
                    if sleep.deadline() < deadline {
                        sleep.as_mut().reset(deadline);
                        continue;
                    }
                    // Our clock says the time is up, but replies that came in time may still
                    // wait unread: a process starved of CPU (a loaded machine, valgrind) saw
                    // its timer fire with thousands of replies queued, and ended discovery
                    // without them. A ping's answer comes after everything the broker sent
                    // before it, so once it is back those replies are in the subscription. (A
                    // lost connection is reported below, without waiting here.)
                    if self.connected() {
                        tokio::select! {
                            _ = &mut cancelled => { interrupted = true; break }
                            _ = tokio::time::timeout(BARRIER, nats.flush()) => {}
                        }
                    }
                    let mut more = 0;
                    while more < DRAIN_MAX {
                        let Some(Some(m)) = sub.next().now_or_never() else { break };
                        take(m);
                        more += 1;
                    }
                    // They arrived within the window: it goes on from now.
                    if more > 0 && opts.window && Instant::now() < hard_deadline {
                        deadline = (Instant::now() + WINDOW).min(hard_deadline);
                        sleep.as_mut().reset(deadline);
                        continue;
                    }
                    break;
                }
                m = sub.next() => match m {
                    None => return Err(self.lost("discovery")),
                    Some(m) => {
                        // This reply and those queued behind it (a few hundred at most, so
                        // Ctrl-C and the deadline are still looked at between runs): one
                        // clock reading and one timer check for the run, not one per reply.
                        let mut next = Some(m);
                        let mut taken = 0;
                        while let Some(m) = next.take() {
                            take(m);
                            taken += 1;
                            if taken < RUN {
                                // A closed subscription shows at the next `select!`.
                                next = sub.next().now_or_never().flatten();
                            }
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
        found.sort_unstable();
        found.dedup();
        Ok(Discovered { nodes: found, malformed, interrupted, ..Default::default() })
    }
}

impl Fleet {
    /// A broadcast request to the `discovery` agent, sent now.
    fn discovery_request(&self, collective: &str, filter: &Filter, request_id: &str, reply_to: &str) -> bytes::Bytes {
        let o = self.options();
        let spec = RequestSpec {
            request_id,
            sender: &o.identity,
            caller: &o.caller_id,
            collective,
            agent: "discovery",
            ttl: o.ttl,
            filter,
            reply_to,
            payload: Payload::Discovery,
            security: o.security.clone(),
        };
        protocol::encode_request(o.protocol, &spec, chrono::Utc::now())
    }

    /// Waits until every one of `nodes` answers a discovery ping in `collective`, or `limit`
    /// passes, or `cancel`; returns the nodes that did not answer. After the client
    /// reconnected to a broker, the servers reconnect at their own pace: a batch sent before
    /// they are back is lost on them. Each missing node is pinged on its own subject, the one
    /// a batch's direct requests use (a server takes a request there for any agent, the
    /// discovery agent too: go-choria `server/processor.go`), so only those servers are asked,
    /// not the whole collective. The ping is asked again every [`PRESENCE_REASK`] of the
    /// nodes still missing, as a server that was still away missed the earlier one. It never
    /// fails: a broker that is gone again shows as nodes that did not answer, and sending the
    /// batch reports it.
    pub async fn await_present(
        &self,
        nodes: &[String],
        collective: &str,
        limit: Duration,
        cancel: &CancellationToken,
    ) -> Vec<String> {
        let mut missing: BTreeSet<&str> = nodes.iter().map(String::as_str).collect();
        let deadline = Instant::now() + limit;
        let o = self.options();
        let request_id = o.protocol.new_request_id();
        let reply_to = protocol::reply_subject(collective, &o.caller_id, &request_id);
        let mut sub = None;
        let cancelled = cancel.cancelled();
        tokio::pin!(cancelled);
        'ask: while !missing.is_empty() && Instant::now() < deadline && self.link().closed().is_none() {
            let next_ask = (Instant::now() + PRESENCE_REASK).min(deadline);
            if self.connected() {
                if sub.is_none() {
                    sub = self.nats().subscribe(reply_to.clone()).await.ok();
                    // Subscribed before asking, or the first answers are lost.
                    let _ = self.flush_by(next_ask, cancel, "the presence check").await;
                }
                // One request, fresh each round, to each node still missing.
                let msg = self.discovery_request(collective, &Filter::default(), &request_id, &reply_to);
                for node in &missing {
                    let subject = protocol::node_subject(collective, node);
                    if self.publish_by(subject, msg.clone(), next_ask, cancel, "the presence check").await.is_err() {
                        break;
                    }
                }
            }
            loop {
                let m = async {
                    match sub.as_mut() {
                        Some(s) => s.next().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = &mut cancelled => break 'ask,
                    _ = tokio::time::sleep_until(next_ask) => break,
                    m = m => match m {
                        Some(m) => {
                            if let Some(id) = protocol::transport_sender(&m.payload) {
                                missing.remove(id.as_str());
                            }
                            if missing.is_empty() {
                                break;
                            }
                        }
                        // The client closed: nothing more will answer.
                        None => break 'ask,
                    },
                }
            }
        }
        // (The subscription ends with `sub`.)
        missing.into_iter().map(str::to_string).collect()
    }
}

/// How often [`Fleet::await_present`] asks again.
pub const PRESENCE_REASK: Duration = Duration::from_secs(1);

/// Discovery that needs no network, from a node list or an inventory file (searched in the
/// client's main collective unless `opts` names one), with the limit applied; `None` for
/// broadcast discovery.
pub fn discover_local(opts: &DiscoveryOptions, client: &ClientOptions) -> Option<Result<Discovered>> {
    let found = match &opts.source {
        Source::Broadcast => return None,
        Source::List(nodes) => Ok(from_list(nodes, &opts.filter)),
        Source::Inventory(inv) => {
            let mut filter = opts.filter.clone();
            if let Some(agent) = &opts.rpc_agent {
                filter.require_agent(agent);
            }
            let collective = opts.collective.as_deref().unwrap_or(&client.collective);
            inv.select(&filter, collective).map_err(|reason| FleetError::Source { reason })
        }
    };
    Some(
        opts.validate()
            .and(found)
            .and_then(|nodes| limited(opts, Discovered { nodes, ..Default::default() }, client.limit_method)),
    )
}

/// `found` with the limit of `opts` applied, `configured` the method when the limit names
/// none (an interrupted discovery is left as it is).
fn limited(opts: &DiscoveryOptions, mut found: Discovered, configured: limit::LimitMethod) -> Result<Discovered> {
    if let (Some(limit), false) = (&opts.limit, found.interrupted) {
        let before = found.nodes.len();
        found.nodes = limit
            .apply(&found.nodes, configured)
            .map_err(|found| FleetError::Limit { limit: limit.size.to_string(), found })?;
        found.before_limit = Some(before);
    }
    Ok(found)
}

/// The nodes of a list its identity filters keep (the only kind a list takes, as in
/// go-choria's flatfile discovery), in the list's order. Each pattern is compiled once; a
/// broken one was refused by [`DiscoveryOptions::validate`].
fn from_list(nodes: &[String], filter: &Filter) -> Vec<String> {
    if filter.identity.is_empty() {
        return nodes.to_vec();
    }
    enum Pattern<'a> {
        Exact(&'a str),
        Re(regex::Regex),
    }
    let patterns: Vec<Pattern> = filter
        .identity
        .iter()
        .filter_map(|p| match super::filter::is_regex(p) {
            true => super::filter::compile_slashed(p).ok().map(Pattern::Re),
            false => Some(Pattern::Exact(p)),
        })
        .collect();
    let matches = |n: &str| {
        patterns.iter().any(|p| match p {
            Pattern::Re(re) => re.is_match(n),
            Pattern::Exact(exact) => *exact == n,
        })
    };
    nodes.iter().filter(|n| matches(n)).cloned().collect()
}
