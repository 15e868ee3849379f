//! Lifecycle event subscriptions: `choria.lifecycle.event.>`, parsed and filtered.

use std::collections::HashSet;
use std::pin::Pin;

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

    /// False when the subject alone shows that the filter refuses the event: go-choria
    /// publishes each event on `choria.lifecycle.event.<type>.<component>` (`lifecycle/basic.go`,
    /// `Target`; its tally subscribes by component the same way), so an event on another type's
    /// or component's subject is not parsed at all. Subjects of any other shape say nothing.
    pub fn may_keep_subject(&self, subject: &str) -> bool {
        match subject.strip_prefix("choria.lifecycle.event.").and_then(|r| r.split_once('.')) {
            Some((kind, component)) if !component.contains('.') => self.keeps_kind(kind, component),
            _ => true,
        }
    }

    /// True when the filter's types and component take an event of this type and component.
    fn keeps_kind(&self, kind: &str, component: &str) -> bool {
        (self.types.is_empty() || self.types.iter().any(|t| t == kind))
            && self.component.as_ref().is_none_or(|c| c == component)
    }

    /// True when an event with this type, component and identity passes the filter.
    pub fn keeps(&self, h: &lifecycle::Head<'_>) -> bool {
        self.keeps_kind(h.kind, h.component)
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
    /// The last deadline's timer, kept while the deadline stays the same: registering a timer
    /// each time the subscription ran dry cost as much as the event itself (issue 15).
    timer: Option<(Instant, Pin<Box<tokio::time::Sleep>>)>,
}

impl Fleet {
    /// Subscribes to every lifecycle event; returns once the subscription is in place, so
    /// nothing published after this call is missed.
    pub async fn lifecycle_events(&self) -> Result<Events> {
        let sub = self.nats().subscribe(SUBJECT).await.map_err(|e| FleetError::nats("subscribe", e))?;
        let deadline = Instant::now() + self.options().connect_timeout;
        self.flush_by(deadline, &CancellationToken::new(), "the event subscription").await?;
        Ok(Events { sub, fleet: self.clone(), timer: None })
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
        self.next_where(deadline, cancel, |m| Some(received(m))).await
    }

    /// The next message whose event passes `filter`, or that does not parse (`event` says
    /// why); `None` at the deadline. Events the filter refuses are skipped without being
    /// built, which is most of a busy subject's cost; those whose subject already shows it
    /// (another type or component) without being read (so one that would not parse is
    /// skipped too, as every caller skips what does not parse).
    pub async fn next_matching(
        &mut self,
        filter: &EventFilter,
        deadline: Option<Instant>,
        cancel: &CancellationToken,
    ) -> Result<Option<Received>> {
        self.next_where(deadline, cancel, |m| {
            if !filter.may_keep_subject(m.subject.as_str()) {
                return None;
            }
            let event = lifecycle::parse_kept(&m.payload, &|h| filter.keeps(h))?;
            Some(Received { subject: m.subject.as_str().to_owned(), event, raw: m.payload })
        })
        .await
    }

    /// The first message `take` makes something of; `None` at the deadline.
    async fn next_where(
        &mut self,
        deadline: Option<Instant>,
        cancel: &CancellationToken,
        mut take: impl FnMut(async_nats::Message) -> Option<Received>,
    ) -> Result<Option<Received>> {
        // Messages already queued are taken without waiting on anything; Ctrl-C and the
        // deadline are still checked before each.
        loop {
            if cancel.is_cancelled() {
                return Err(FleetError::Cancelled);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            match self.sub.next().now_or_never() {
                Some(Some(m)) => {
                    if let Some(r) = take(m) {
                        return Ok(Some(r));
                    }
                }
                Some(None) => return Err(self.fleet.lost("watching events")),
                None => break,
            }
        }
        // Then one wait for the rest of this call: one cancel registration, and the timer
        // kept across calls with the same deadline.
        let mut timer = match (deadline, self.timer.take()) {
            (Some(d), Some((at, t))) if at == d => Some((d, t)),
            (Some(d), _) => Some((d, Box::pin(tokio::time::sleep_until(d)))),
            (None, _) => None,
        };
        let cancelled = cancel.cancelled();
        tokio::pin!(cancelled);
        let result = loop {
            let sleep = async {
                match timer.as_mut() {
                    Some((_, t)) => t.as_mut().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                m = self.sub.next() => match m {
                    Some(m) => {
                        if let Some(r) = take(m) {
                            break Ok(Some(r));
                        }
                        // A busy subject keeps this branch ready: the deadline and Ctrl-C
                        // are checked here too, or they would wait for a quiet moment.
                        if cancel.is_cancelled() {
                            break Err(FleetError::Cancelled);
                        }
                        if deadline.is_some_and(|d| Instant::now() >= d) {
                            break Ok(None);
                        }
                    }
                    None => break Err(self.fleet.lost("watching events")),
                },
                _ = &mut cancelled => break Err(FleetError::Cancelled),
                // A deadline reached on a dead connection is a lost broker, not a quiet watch.
                _ = sleep => break if self.fleet.connected() { Ok(None) } else { Err(self.fleet.lost("watching events")) },
            }
        };
        self.timer = timer;
        result
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_judged_by_type_and_component() {
        let f = EventFilter::new(vec!["startup".into(), "alive".into()], Some("server".into()), vec!["n1".into()])
            .expect("filter");
        assert!(f.may_keep_subject("choria.lifecycle.event.startup.server"));
        assert!(f.may_keep_subject("choria.lifecycle.event.alive.server"));
        assert!(!f.may_keep_subject("choria.lifecycle.event.shutdown.server"));
        assert!(!f.may_keep_subject("choria.lifecycle.event.startup.provision_mode_server"));
        // Shapes it does not know say nothing: the event decides.
        for s in ["choria.lifecycle.event.startup", "choria.lifecycle.event.x.server.more", "other.subject"] {
            assert!(f.may_keep_subject(s), "{s}");
        }
        let all = EventFilter::new(Vec::new(), None, Vec::new()).expect("filter");
        assert!(all.may_keep_subject("choria.lifecycle.event.upgraded.anything"));
        let by_component = EventFilter::new(Vec::new(), Some("server".into()), Vec::new()).expect("filter");
        assert!(by_component.may_keep_subject("choria.lifecycle.event.governor.server"));
        assert!(!by_component.may_keep_subject("choria.lifecycle.event.governor.other"));
    }
}
