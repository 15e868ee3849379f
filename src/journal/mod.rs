//! The run journal: every event of a run (`run`, batched `req`) is also written to the
//! JetStream stream `FLEETBOOK_RUNS`, on subjects `fleetbook.runs.<run-id>.<kind>`, in order,
//! each acknowledged by the broker. A batch is journaled (and acknowledged) before it is
//! published: if the journal cannot be written, the batch is not sent (fail closed). A
//! heartbeat (one kept per run, rolled up) says the run is alive. The events are the same
//! masked ones the JSONL output shows, so the journal never holds a secret.

pub mod id;
pub mod read;
pub mod replay;

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;
use tokio::sync::mpsc;

pub use id::RunId;

use crate::fleet::{Fleet, FleetError};
use crate::progress::{RunEvent, Sink, SinkError};

/// The stream's name.
pub const STREAM: &str = "FLEETBOOK_RUNS";
/// Every journal subject starts with this.
pub const PREFIX: &str = "fleetbook.runs";
/// How often a running run says it is alive, unless `FLEETBOOK_JOURNAL_HEARTBEAT` (seconds)
/// says otherwise. Each heartbeat carries its period, so readers judge staleness by it.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// The heartbeat period this process uses.
pub fn heartbeat_period() -> Duration {
    std::env::var("FLEETBOOK_JOURNAL_HEARTBEAT")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s >= 0.1 && *s <= 3600.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(HEARTBEAT)
}

/// The subject of one kind of event of one run.
pub fn subject(run: &str, kind: &str) -> String {
    format!("{PREFIX}.{run}.{kind}")
}

/// Who started a run, and where: the login name and the host name.
pub fn who() -> (String, String) {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| format!("uid {uid}"));
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let host = if rc == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "unknown".into()
    };
    (user, host)
}

/// Hex sha256 of a runbook's content: resuming refuses a runbook that changed.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The error when the journal cannot be opened: it says how to run without one.
pub fn open_error(e: FleetError) -> crate::error::Error {
    crate::error::Error::Journal {
        reason: format!(
            "cannot open the run journal (JetStream stream {STREAM}) on the broker: {e}; the journal needs JetStream (Choria Streams) enabled; --no-journal runs without it"
        ),
    }
}

/// Records a run's end. It waits for the journal's acknowledgement only while the broker is
/// connected: a run that ends because the broker is gone must not wait for it again (its
/// heartbeat stops, so it reads as interrupted). Blocks; call it from a plain thread.
pub fn end_run(reporter: &crate::progress::Reporter, fleet: Option<&Fleet>, end: RunEvent) {
    if fleet.is_some_and(Fleet::connected) {
        if let Err(e) = reporter.emit_durable(end) {
            reporter.say(&format!("warning: {}", e.why));
        }
    } else {
        reporter.emit(end);
    }
}

/// Claims attempt `attempt` of run `run` before a resume writes anything: one message on
/// `fleetbook.runs.<run>.claim`, published only if that subject's last message is still the
/// one the resume read with the run's journal (`after`, its stream sequence; 0: none). Two
/// operators resuming the same run at once read the same journal, so only one publish can
/// succeed. `Ok(false)`: someone else claimed it first.
pub async fn claim(fleet: &Fleet, run: &RunId, attempt: u32, by: &str, after: u64) -> Result<bool, FleetError> {
    let js = jetstream::new(fleet.nats().clone());
    let subject = subject(run.as_str(), "claim");
    let last = after;
    let mut headers = HeaderMap::new();
    // The server checks an expected sequence only when it is not 0; the message id covers
    // the first claim: two claims after the same one have the same id, and the stream keeps
    // only the first within its duplicate window.
    if last > 0 {
        headers.insert(async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, last.to_string().as_str());
    }
    headers.insert(async_nats::header::NATS_MESSAGE_ID, format!("{run}-claim-after-{last}").as_str());
    // Timed like every event: a fresh claim is a word from a run that is starting again, so
    // a resume that reads it after it was made sees that run as running.
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let body = serde_json::json!({"event": "claim", "time": time, "attempt": attempt, "by": by}).to_string();
    let ack = js.publish_with_headers(subject, headers, body.into()).await;
    let acked = match ack {
        Ok(ack) => ack.await,
        Err(e) => Err(e),
    };
    match acked {
        Ok(a) => Ok(!a.duplicate),
        Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => Ok(false),
        Err(e) => Err(FleetError::nats("claiming the run", e)),
    }
}

/// How the stream is made when it does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalOptions {
    /// `--journal-replicas`: copies the broker keeps.
    pub replicas: usize,
    /// How long runs are kept.
    pub max_age: Duration,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions { replicas: 1, max_age: Duration::from_secs(30 * 24 * 3600) }
    }
}

/// Binds the journal stream, creating it on first use.
pub async fn stream(fleet: &Fleet, o: &JournalOptions) -> Result<stream::Stream, FleetError> {
    let js = jetstream::new(fleet.nats().clone());
    let config = stream::Config {
        name: STREAM.into(),
        subjects: vec![format!("{PREFIX}.>")],
        max_age: o.max_age,
        num_replicas: o.replicas,
        storage: stream::StorageType::File,
        // Heartbeats replace each other (Nats-Rollup: sub).
        allow_rollup: true,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    fleet
        .within("opening the run journal", async {
            js.get_or_create_stream(config).await.map_err(|e| FleetError::nats("creating the run journal stream", e))
        })
        .await
}

/// One message for the writer: one event's JSON line, or (once the writer grouped them)
/// several events of one kind, a line each.
struct Msg {
    kind: String,
    payload: Vec<u8>,
    rollup: bool,
    ack: Option<std::sync::mpsc::Sender<Result<(), SinkError>>>,
}

impl Msg {
    /// Takes `next` into this message when both are plain events of the same kind and the
    /// lines fit in `limit` bytes; gives it back otherwise. A durable event, one that waits
    /// for its acknowledgement, or a heartbeat (rolled up) always travels alone.
    fn group(&mut self, next: Msg, limit: usize) -> Option<Msg> {
        let plain = |m: &Msg| m.ack.is_none() && !m.rollup;
        if !plain(self)
            || !plain(&next)
            || self.kind != next.kind
            || self.payload.len() + 1 + next.payload.len() > limit
        {
            return Some(next);
        }
        self.payload.push(b'\n');
        self.payload.extend_from_slice(&next.payload);
        None
    }
}

/// The journal as a sink of run events.
pub struct Journal {
    run: RunId,
    tx: mpsc::UnboundedSender<Msg>,
    fleet: Fleet,
    /// How long a write may wait for the broker's acknowledgement, retries included.
    wait: Duration,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Journal {
    /// Opens the journal of a run's `attempt` (1 for a new run; a resume appends the next
    /// attempt under the same id, after claiming it): the stream exists when this returns. A
    /// new run claims its first attempt, so every later claim follows one.
    pub async fn open(fleet: &Fleet, run: RunId, attempt: u32, o: &JournalOptions) -> Result<Journal, FleetError> {
        let bound = stream(fleet, o).await?;
        // A stream made beforehand may cap each message's size: grouped events stay under it.
        let max_message = bound.cached_info().config.max_message_size;
        if attempt == 1 {
            let (user, host) = who();
            claim(fleet, &run, 1, &format!("{user}@{host}"), 0).await?;
        }
        let js = jetstream::new(fleet.nats().clone());
        let (tx, rx) = mpsc::unbounded_channel();
        let wait = fleet.options().connect_timeout * 6;
        // Message ids are unique per attempt, so a resume within the duplicate window is kept.
        let ids = format!("{run}-{attempt}");
        // Headers, subject and the protocol line take a little of the broker's limit and the
        // stream's.
        let mut limit = GROUP_BYTES.min(fleet.nats().server_info().max_payload.saturating_sub(4096));
        if let Ok(max @ 1..) = usize::try_from(max_message) {
            limit = limit.min(max.saturating_sub(1024));
        }
        let limit = limit.max(1);
        let writer = tokio::spawn(write(js, fleet.clone(), run.clone(), ids, rx, wait, limit));
        let beat = tokio::spawn(heartbeat(tx.clone()));
        Ok(Journal { run, tx, fleet: fleet.clone(), wait, tasks: vec![writer, beat] })
    }

    /// The run's id.
    pub fn run_id(&self) -> &RunId {
        &self.run
    }

    fn send(&self, e: &RunEvent, ack: Option<std::sync::mpsc::Sender<Result<(), SinkError>>>) -> bool {
        let Some((kind, line)) = crate::progress::jsonl::line(e) else { return false };
        self.tx.send(Msg { kind, payload: line.into_bytes(), rollup: false, ack }).is_ok()
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Sink for Journal {
    fn event(&self, e: &RunEvent) {
        self.send(e, None);
    }

    fn keeps(&self) -> bool {
        true
    }

    /// Waits until the broker acknowledged this event and everything before it. Call it from
    /// a plain thread (the driver's), never from a task: it blocks.
    fn event_durable(&self, e: &RunEvent) -> Result<(), SinkError> {
        let (ack, done) = std::sync::mpsc::channel();
        if !self.send(e, Some(ack)) {
            return Err(SinkError { lost: false, why: "the run journal is closed".into() });
        }
        // The writer retries for `wait`; a little more here so its answer is the one seen.
        match done.recv_timeout(self.wait + Duration::from_secs(5)) {
            Ok(r) => r,
            Err(_) => Err(SinkError {
                lost: !self.fleet.connected(),
                why: format!("the run journal was not acknowledged within {}s", self.wait.as_secs()),
            }),
        }
    }
}

/// How many messages are published before their acknowledgements are awaited.
const WINDOW: usize = 256;

/// At most this many bytes of events share one message (less when the broker's payload
/// limit is lower).
pub const GROUP_BYTES: usize = 64 * 1024;

/// Publishes every event in order, each acknowledged. Events of one kind that wait for the
/// writer together (a batch's node results as they arrive) share a message, one JSON line
/// each, up to [`GROUP_BYTES`]: the broker stores and acknowledges one message per group, not
/// per node (issue 15: one file-stored, acknowledged message per node result was most of the
/// journal's cost, in the broker and in the client). Up to [`WINDOW`] waiting messages are
/// published back to back and their acknowledgements awaited in order afterwards (one round
/// trip per window, not per message); a durable event is always the last of its window and
/// alone in its message, so its answer covers everything before it. A message whose
/// acknowledgement fails is published again (deduplicated by its message id) until the
/// broker answers or `wait` passes; only then can it land after messages published later.
async fn write(
    js: jetstream::Context,
    fleet: Fleet,
    run: RunId,
    ids: String,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    wait: Duration,
    limit: usize,
) {
    let mut seq: u64 = 0;
    // The first write that failed: the journal has a gap, so no batch may be sent after it.
    let mut failed: Option<String> = None;
    while let Some(first) = rx.recv().await {
        let mut window = vec![first];
        while window.len() < WINDOW && window.last().is_some_and(|m| m.ack.is_none()) {
            match rx.try_recv() {
                Ok(m) => {
                    let last = window.last_mut().expect("the window holds its first message");
                    if let Some(apart) = last.group(m, limit) {
                        window.push(apart);
                    }
                }
                Err(_) => break,
            }
        }
        let mut sent = Vec::with_capacity(window.len());
        for mut m in window {
            seq += 1;
            // Subject and payload are shared buffers: a retry reuses them without a copy.
            let subject = async_nats::Subject::from(subject(run.as_str(), &m.kind));
            let payload = bytes::Bytes::from(std::mem::take(&mut m.payload));
            let ack = match fleet.link().closed() {
                None => {
                    js.publish_with_headers(subject.clone(), headers(&ids, seq, m.rollup), payload.clone()).await.ok()
                }
                Some(_) => None,
            };
            sent.push((m, subject, payload, seq, ack));
        }
        for (m, subject, payload, seq, ack) in sent {
            let acked = match ack {
                Some(ack) => matches!(tokio::time::timeout(wait, ack).await, Ok(Ok(_))),
                None => false,
            };
            let outcome = match acked {
                true => Ok(()),
                false => publish(&js, &fleet, &subject, &headers(&ids, seq, m.rollup), &payload, wait).await,
            };
            let result = match outcome {
                Ok(()) => match &failed {
                    // An earlier event is missing from the journal: nothing more may be sent.
                    Some(why) => Err(SinkError { lost: false, why: why.clone() }),
                    None => Ok(()),
                },
                Err(last) => {
                    let why = format!("the run journal could not record {} ({last})", m.kind);
                    // A missed heartbeat leaves no gap in the run's record; anything else does.
                    if m.kind != "heartbeat" {
                        failed.get_or_insert(why.clone());
                    }
                    Err(SinkError { lost: !fleet.connected(), why })
                }
            };
            if let Some(ack) = m.ack {
                let _ = ack.send(result);
            }
        }
    }
}

/// A journal message's headers: its id (`<run>-<attempt>-<seq>`, so a retry is deduplicated) and,
/// for a heartbeat, the roll-up that replaces the run's previous one.
fn headers(ids: &str, seq: u64, rollup: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, format!("{ids}-{seq}").as_str());
    if rollup {
        headers.insert("Nats-Rollup", "sub");
    }
    headers
}

/// Publishes one message until the broker acknowledges it: a refusal (a full stream, a limit)
/// ends at once, a lost connection or a missing acknowledgement is retried until `wait`
/// passes or the client gives up reconnecting. The error says why.
async fn publish(
    js: &jetstream::Context,
    fleet: &Fleet,
    subject: &async_nats::Subject,
    headers: &HeaderMap,
    payload: &bytes::Bytes,
    wait: Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut last = format!("no acknowledgement within {}s", wait.as_secs());
    loop {
        if let Some(why) = fleet.link().closed() {
            return Err(why);
        }
        let attempt = async {
            let ack = js.publish_with_headers(subject.clone(), headers.clone(), payload.clone()).await?;
            ack.await.map(|_| ())
        };
        match tokio::time::timeout_at(deadline, attempt).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => {
                use async_nats::jetstream::context::PublishErrorKind as K;
                last = e.to_string();
                // The broker refused: trying again cannot help. A lost connection or a
                // missing ack may: the broker may come back.
                let transient = matches!(e.kind(), K::TimedOut | K::BrokenPipe | K::MaxAckPending);
                if !transient && fleet.connected() {
                    return Err(last);
                }
            }
            Err(_) => return Err(last),
        }
        if tokio::time::Instant::now() + Duration::from_millis(250) >= deadline {
            return Err(last);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Says the run is alive every period (and how long a period is, so readers can judge
/// silence); the stream keeps the latest one per run. Progress is read from the node results.
async fn heartbeat(tx: mpsc::UnboundedSender<Msg>) {
    let period = heartbeat_period();
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let body = serde_json::json!({"event": "heartbeat", "time": time, "period_s": period.as_secs_f64()});
        let msg = Msg { kind: "heartbeat".into(), payload: body.to_string().into_bytes(), rollup: true, ack: None };
        if tx.send(msg).is_err() {
            return;
        }
    }
}
