//! Lifecycle event subscriptions: `choria.lifecycle.event.>`, parsed and filtered.

use std::collections::HashSet;

use futures::{FutureExt, StreamExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::Fleet;
use super::error::{FleetError, Result};
use super::filter::{compile_slashed, is_regex};
use crate::lifecycle::{self, Event};

/// The subject `choria tool event` subscribes to.
pub const SUBJECT: &str = "choria.lifecycle.event.>";

/// Which events to keep (client side, as go-choria's viewer filters). Built with
/// [`EventFilter::new`], which checks the values and compiles the identity regexes once:
/// compiling them per event cost more than decoding the event.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Event types (`startup`, ...); empty keeps all.
    types: Vec<String>,
    /// Exact component.
    component: Option<String>,
    /// Identities, exact or `/regex/`, compiled; empty keeps all.
    identities: Vec<Identity>,
}

/// One identity entry of an [`EventFilter`].
#[derive(Debug, Clone)]
enum Identity {
    Exact(String),
    Re(regex::Regex),
}

impl EventFilter {
    /// Checks the filter's values (known types, valid regexes) and compiles it.
    pub fn new(types: Vec<String>, component: Option<String>, identities: Vec<String>) -> Result<EventFilter> {
        for t in &types {
            if !lifecycle::TYPES.contains(&t.as_str()) {
                return Err(FleetError::Filter {
                    filter: t.clone(),
                    reason: format!("unknown event type; valid types: {}", lifecycle::TYPES.join(", ")),
                });
            }
        }
        let identities = identities
            .into_iter()
            .map(|i| if is_regex(&i) { compile_slashed(&i).map(Identity::Re) } else { Ok(Identity::Exact(i)) })
            .collect::<Result<_>>()?;
        Ok(EventFilter { types, component, identities })
    }

    /// True when `e` passes the filter.
    pub fn matches(&self, e: &Event) -> bool {
        self.keeps(&lifecycle::Head { kind: &e.kind, component: &e.component, identity: &e.identity })
    }

    /// True when an event with this type, component and identity passes the filter.
    pub fn keeps(&self, h: &lifecycle::Head<'_>) -> bool {
        (self.types.is_empty() || self.types.iter().any(|t| t == h.kind))
            && self.component.as_ref().is_none_or(|c| c == h.component)
            && (self.identities.is_empty()
                || self.identities.iter().any(|i| match i {
                    Identity::Exact(s) => s == h.identity,
                    Identity::Re(r) => r.is_match(h.identity),
                }))
    }
}

/// One message from the lifecycle subject.
#[derive(Debug, Clone)]
pub struct Received {
    pub subject: String,
    pub raw: bytes::Bytes,
    /// The parsed event, or why it did not parse.
    pub event: std::result::Result<Event, String>,
}

fn received(m: async_nats::Message) -> Received {
    Received { subject: m.subject.as_str().to_owned(), event: lifecycle::parse(&m.payload), raw: m.payload }
}

/// A live subscription to lifecycle events.
pub struct Events {
    sub: async_nats::Subscriber,
    fleet: Fleet,
}

impl Fleet {
    /// Subscribes to every lifecycle event; returns once the subscription is in place, so
    /// nothing published after this call is missed.
    pub async fn lifecycle_events(&self) -> Result<Events> {
        let sub = self.nats().subscribe(SUBJECT).await.map_err(|e| FleetError::nats("subscribe", e))?;
        let deadline = Instant::now() + self.options().connect_timeout;
        self.flush_by(deadline, &CancellationToken::new(), "the event subscription").await?;
        Ok(Events { sub, fleet: self.clone() })
    }

    /// The URL of the broker we are connected to, as `choria tool event` shows it.
    pub fn connected_url(&self) -> String {
        let info = self.nats().server_info();
        format!("nats://{}:{}", info.host, info.port)
    }
}

impl Events {
    /// The next message, or `None` at the deadline. A connection closed for good is an error,
    /// never a quiet end of the stream.
    pub async fn next(&mut self, deadline: Option<Instant>, cancel: &CancellationToken) -> Result<Option<Received>> {
        Ok(self.next_message(deadline, cancel).await?.map(received))
    }

    async fn next_message(
        &mut self,
        deadline: Option<Instant>,
        cancel: &CancellationToken,
    ) -> Result<Option<async_nats::Message>> {
        // A message already queued is taken without a timer or a cancel registration (each
        // cost as much as decoding the event); Ctrl-C and the deadline are still checked first.
        if cancel.is_cancelled() {
            return Err(FleetError::Cancelled);
        }
        if deadline.is_none_or(|d| Instant::now() < d) {
            if let Some(Some(m)) = self.sub.next().now_or_never() {
                return Ok(Some(m));
            }
        }
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => Err(FleetError::Cancelled),
            // A deadline reached on a dead connection is a lost broker, not a quiet watch.
            _ = sleep => if self.fleet.connected() { Ok(None) } else { Err(self.fleet.lost("watching events")) },
            m = self.sub.next() => match m {
                Some(m) => Ok(Some(m)),
                None => Err(self.fleet.lost("watching events")),
            },
        }
    }

    /// The next message whose event passes `filter`, or that does not parse (`event` says
    /// why); `None` at the deadline. Events the filter refuses are skipped without being
    /// built, which is most of a busy subject's cost.
    pub async fn next_matching(
        &mut self,
        filter: &EventFilter,
        deadline: Option<Instant>,
        cancel: &CancellationToken,
    ) -> Result<Option<Received>> {
        loop {
            let Some(m) = self.next_message(deadline, cancel).await? else { return Ok(None) };
            if let Some(event) = lifecycle::parse_kept(&m.payload, &|h| filter.keeps(h)) {
                return Ok(Some(Received { subject: m.subject.as_str().to_owned(), event, raw: m.payload }));
            }
        }
    }

    /// Waits until each of `nodes` published an event of `kind` (and `component`, if given),
    /// or the deadline. Returns the nodes that did not.
    pub async fn wait_for(
        &mut self,
        kind: &str,
        component: Option<&str>,
        nodes: &[String],
        deadline: Instant,
        cancel: &CancellationToken,
    ) -> Result<Vec<String>> {
        let mut pending: HashSet<&str> = nodes.iter().map(String::as_str).collect();
        while !pending.is_empty() {
            let Some(r) = self.next(Some(deadline), cancel).await? else { break };
            if let Ok(e) = r.event {
                if e.kind == kind && component.is_none_or(|c| c == e.component) {
                    pending.remove(e.identity.as_str());
                }
            }
        }
        if !pending.is_empty() && !self.fleet.connected() {
            return Err(self.fleet.lost("waiting for events"));
        }
        let mut missing: Vec<String> = pending.into_iter().map(str::to_string).collect();
        missing.sort();
        Ok(missing)
    }
}
