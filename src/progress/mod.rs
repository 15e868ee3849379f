//! What a run shows. Producers (the rollout driver, the runbook API, the commands) send typed
//! [`RunEvent`]s and human lines to a [`Reporter`]; it hands them to its sinks: progress bars
//! on a terminal ([`bars`]), timestamped lines otherwise ([`text`]), JSONL on stdout with
//! `--output json` ([`jsonl`]). A new sink is one file implementing [`Sink`], added where the
//! reporter is built. Secrets are masked where they are made (`crate::redact`), never here.

pub mod bars;
pub mod event;
pub mod jsonl;
pub mod table;
pub mod text;

use std::sync::{Arc, RwLock};

pub use event::{GateVerdict, NodeStatus, RunEvent, RunStatus};

/// A consumer of run events.
pub trait Sink: Send + Sync {
    /// Takes one event.
    fn event(&self, e: &RunEvent);
    /// Takes one line meant for a person (`print`, warnings); machine sinks ignore it.
    fn say(&self, _line: &str) {}
    /// Runs `f` (a prompt) with this sink's drawing out of the way; false when the sink does
    /// not draw on the terminal.
    fn suspend(&self, _f: &mut dyn FnMut()) -> bool {
        false
    }
    /// Takes one event and returns once it is safely kept (the journal: acknowledged by the
    /// broker). Sinks that keep nothing take it as any event.
    fn event_durable(&self, e: &RunEvent) -> Result<(), SinkError> {
        self.event(e);
        Ok(())
    }
    /// Whether this sink keeps events (the journal): a durable event reaches it first, so
    /// whatever the output shows of it is already kept.
    fn keeps(&self) -> bool {
        false
    }
    /// How much this sink reads of what people at most count: a reply that came in time
    /// (late ones every sink reads whole) and the names of the discovered nodes.
    fn reads(&self) -> Reads {
        Reads::Details
    }
}

/// How much a sink reads of the events people at most count ([`Sink::reads`]); ordered, so
/// the most any sink reads decides what is sent to all (issue 15: a copy per node for
/// sinks that drop it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reads {
    /// Nothing of them (the plain lines: batch summaries and late replies only).
    Nothing,
    /// A reply's status, to count it (progress bars).
    Status,
    /// A reply's message and data, the discovered nodes' names (JSONL, the journal).
    Details,
}

/// A sink could not keep an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkError {
    /// Set when the broker connection is gone (the run ends as "broker lost").
    pub lost: bool,
    pub why: String,
}

/// A cheap-clone handle on the run's sinks.
#[derive(Clone)]
pub struct Reporter {
    inner: Arc<Inner>,
}

struct Inner {
    json: bool,
    sinks: RwLock<Vec<Arc<dyn Sink>>>,
}

impl Reporter {
    /// `json`: JSONL events on stdout. `bars`: progress bars on stderr (only sensible when
    /// stderr is a terminal); otherwise plain timestamped lines.
    pub fn new(json: bool, bars: bool) -> Reporter {
        let human: Arc<dyn Sink> = if bars { Arc::new(bars::Bars::new()) } else { Arc::new(text::Lines::new()) };
        let mut sinks = vec![human];
        if json {
            sinks.push(Arc::new(jsonl::Jsonl));
        }
        Reporter::with_sinks(json, sinks)
    }

    /// A reporter over the given sinks; `json` says whether one of them writes JSONL.
    pub fn with_sinks(json: bool, sinks: Vec<Arc<dyn Sink>>) -> Reporter {
        Reporter { inner: Arc::new(Inner { json, sinks: RwLock::new(sinks) }) }
    }

    /// Adds a sink that sees every event from now on (the journal, once connected).
    pub fn add(&self, sink: Arc<dyn Sink>) {
        self.inner.sinks.write().unwrap_or_else(|p| p.into_inner()).push(sink);
    }

    fn sinks(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<dyn Sink>>> {
        self.inner.sinks.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the sink list, for calls that may block for long (a durable write, a
    /// prompt): no lock is held meanwhile.
    fn sinks_owned(&self) -> Vec<Arc<dyn Sink>> {
        self.sinks().clone()
    }

    /// Bars when stderr is a terminal, plain lines otherwise.
    pub fn for_terminal(json: bool) -> Reporter {
        use std::io::IsTerminal;
        Reporter::new(json, std::io::stderr().is_terminal())
    }

    /// Whether JSONL events are written.
    pub fn json(&self) -> bool {
        self.inner.json
    }

    /// The most any sink reads ([`Sink::reads`]): below [`Reads::Details`], a reply's
    /// `node_result` goes out without copies of its message and data and `discovered`
    /// without the node names; at [`Reads::Nothing`], a reply in time has no event.
    pub fn reads(&self) -> Reads {
        self.sinks().iter().map(|s| s.reads()).max().unwrap_or(Reads::Nothing)
    }

    /// Reports the end of discovery: the names are copied into the event only when a sink
    /// reads them (10,000 names copied and freed again for a progress line, issue 15).
    pub fn discovered(&self, nodes: &[String]) {
        let named = if self.reads() == Reads::Details { nodes.to_vec() } else { Vec::new() };
        self.emit(RunEvent::Discovered { count: nodes.len(), nodes: named });
    }

    /// Hands one event to every sink.
    pub fn emit(&self, e: RunEvent) {
        for s in self.sinks().iter() {
            s.event(&e);
        }
    }

    /// Hands one event to every sink and returns once every sink kept it: the write-ahead of
    /// a batch. Blocks; call it from a plain thread. The first failure is returned.
    pub fn emit_durable(&self, e: RunEvent) -> Result<(), SinkError> {
        let mut first = Ok(());
        let mut sinks = self.sinks_owned();
        // Keeping sinks first: an event the output shows is already in the journal.
        sinks.sort_by_key(|s| !s.keeps());
        for s in sinks {
            let r = s.event_durable(&e);
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    /// A line for a person, on stderr (above the bars when they are shown).
    pub fn say(&self, line: &str) {
        for s in self.sinks().iter() {
            s.say(line);
        }
    }

    /// Runs `f` (a prompt) with the bars out of the way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        let mut f = Some(f);
        let mut out = None;
        for s in self.sinks_owned() {
            let mut once = || {
                if let Some(f) = f.take() {
                    out = Some(f());
                }
            };
            if s.suspend(&mut once) {
                break;
            }
        }
        match (out, f) {
            (Some(r), _) => r,
            (None, Some(f)) => f(),
            // A sink took the closure but did not call it: call sites never get here.
            (None, None) => unreachable!("a sink's suspend swallowed the prompt"),
        }
    }
}

/// The state the human sinks keep between events, to word their lines.
#[derive(Debug, Default)]
pub(crate) struct Context {
    /// The agent of the rollout in progress.
    pub(crate) agent: String,
    /// The label and node count of the rollout in progress.
    pub(crate) label: String,
    pub(crate) nodes: usize,
    pub(crate) batches: usize,
}

impl Context {
    /// Remembers what later lines need; returns the lines this event shows a person.
    pub(crate) fn lines(&mut self, e: &RunEvent) -> Vec<String> {
        match e {
            RunEvent::RolloutStart { agent, action, nodes, batches, .. } => {
                self.agent = agent.clone();
                self.label = format!("{agent}#{action}");
                self.nodes = *nodes;
                self.batches = *batches;
                Vec::new()
            }
            RunEvent::Discovered { count, .. } => vec![format!("discovered {count} node(s)")],
            RunEvent::BatchStart { batch, batches, nodes, groups, dry_run: false, .. } if *batches > 1 => {
                let by = groups.as_ref().map(|g| format!(" ({})", event::group_counts(g))).unwrap_or_default();
                vec![format!("batch {batch}/{batches}: {} node(s){by}", nodes.len())]
            }
            RunEvent::NodeResult { node, status: NodeStatus::LateOk | NodeStatus::LateFailed, statusmsg, .. } => {
                vec![format!("{node} answered late: {}", statusmsg.as_deref().unwrap_or(""))]
            }
            RunEvent::BatchEnd { batch, batches, ok, failed, no_reply, unknown } => vec![format!(
                "{} batch {batch}/{batches}: {ok} ok, {failed} failed, {no_reply} no reply{}",
                self.agent,
                if *unknown == 0 { String::new() } else { format!(", {unknown} unknown") }
            )],
            RunEvent::Gate { batch, decision: GateVerdict::Pause } => {
                vec![format!("gate paused the rollout after batch {batch}/{}", self.batches)]
            }
            RunEvent::RolloutStopped { failed, .. } => failed.iter().map(|l| format!("failed {l}")).collect(),
            RunEvent::GovernorWait { governor, leases, .. } => {
                vec![format!("waiting for {leases} lease(s) on governor {governor}")]
            }
            RunEvent::Governor { governor, leases, waited_ms, .. } if *waited_ms >= 1000 => {
                vec![format!("got {leases} lease(s) on governor {governor} after {:.1}s", *waited_ms as f64 / 1000.0)]
            }
            _ => Vec::new(),
        }
    }
}
