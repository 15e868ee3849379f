//! Choria Governors: fleet-wide concurrency limits kept in JetStream, compatible with
//! go-choria's `providers/governor/streams/governor.go` and `choria governor`.
//!
//! A governor `NAME` is the stream `GOVERNOR_NAME` on the subject
//! `<collective>.governor.NAME`, limits retention, file storage, at most CAPACITY messages
//! with discard-new, and a max age of EXPIRE. Each message is one lease: its body is who
//! holds it, its stream sequence is the lease id. Taking a lease is publishing into the
//! stream (a full stream refuses the message, and the taker tries again); releasing it is
//! deleting that message; a holder that dies loses its lease when the message ages out.

mod lease;

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use serde_json::{json, Value};

use super::client::Fleet;
use super::error::{ErrorKind, FleetError};
pub use crate::lifecycle::GovernorEvent;

pub use lease::{acquire, acquire_every, Lease, INTERVAL};

/// Every governor's stream name starts with this (go-choria `StreamName`).
pub const STREAM_PREFIX: &str = "GOVERNOR_";

/// JetStream's "stream not found".
const STREAM_NOT_FOUND: u64 = 10059;
/// JetStream's "no message found" (a get or delete of a sequence that is gone).
const NO_MESSAGE: u64 = 10037;
/// JetStream's "stream name already in use" (with another configuration).
const STREAM_EXISTS: u64 = 10058;

/// The stream of governor `name`.
pub fn stream_name(name: &str) -> String {
    format!("{STREAM_PREFIX}{name}")
}

/// The subject leases are published on (go-choria `util.GovernorSubject`).
pub fn subject(collective: &str, name: &str) -> String {
    format!("{collective}.governor.{name}")
}

/// A failure of a governor operation.
#[derive(Debug, thiserror::Error)]
pub enum GovernorError {
    /// No stream for this governor on the broker.
    #[error("unknown governor {name}: the broker has no stream {STREAM_PREFIX}{name} (create it with `fleetbook governor add`)")]
    Unknown { name: String },
    /// A name, capacity or lease id that cannot be right.
    #[error("invalid governor {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    /// No slot came free within the wait.
    #[error("no free slot on governor {name} within {waited_s:.1}s: all its leases are taken (`fleetbook governor view {name}` shows who holds them)")]
    WaitExpired { name: String, waited_s: f64 },
    /// The lease id names no lease (released, evicted, expired, or never taken).
    #[error("governor {name} has no lease {seq}")]
    NoLease { name: String, seq: u64 },
    /// Ctrl-C ended the wait for a lease.
    #[error("cancelled while waiting for a slot on governor {name}")]
    Cancelled { name: String },
    /// JetStream answered with an error.
    #[error("governor {name}: JetStream refused to {op}: {description} (error {code})")]
    Refused { name: String, op: &'static str, code: u64, description: String },
    /// The broker could not be asked.
    #[error(transparent)]
    Fleet(#[from] FleetError),
}

impl GovernorError {
    /// The broad class, as fleet errors have.
    pub fn kind(&self) -> ErrorKind {
        match self {
            GovernorError::Unknown { .. } | GovernorError::Invalid { .. } | GovernorError::NoLease { .. } => {
                ErrorKind::Invalid
            }
            GovernorError::WaitExpired { .. } => ErrorKind::Timeout,
            GovernorError::Cancelled { .. } => ErrorKind::Cancelled,
            GovernorError::Refused { .. } => ErrorKind::Denied,
            GovernorError::Fleet(e) => e.kind(),
        }
    }
}

type Result<T> = std::result::Result<T, GovernorError>;

/// [`Fleet::within`] for governor work: one overall deadline on a broker conversation.
async fn within<T>(fleet: &Fleet, during: &str, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    fleet.within(during, async { Ok(work.await) }).await?
}

/// Checks a governor name: one subject token that is also a stream name.
pub fn check_name(name: &str) -> Result<()> {
    let bad = name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control() || ".*>/\\".contains(c));
    if bad {
        return Err(GovernorError::Invalid {
            what: "name",
            reason: format!("{name:?}: use letters, digits, - and _ (no dots, spaces, wildcards or slashes)"),
        });
    }
    Ok(())
}

/// A governor's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How many leases at once (the stream's max messages).
    pub capacity: i64,
    /// When a lease that was never released expires (the stream's max age; zero: never).
    pub expire: Duration,
    /// Copies the broker keeps.
    pub replicas: usize,
}

/// A governor as the broker has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GovernorInfo {
    pub name: String,
    pub limits: Limits,
    /// The subject leases are taken on.
    pub subject: String,
    /// Leases held now.
    pub active: u64,
}

/// One lease, as `governor view` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseEntry {
    /// The lease id: the message's stream sequence.
    pub seq: u64,
    /// Who holds it: the message's body.
    pub who: String,
    /// How long it has been held.
    pub age: Duration,
}

fn js(fleet: &Fleet) -> jetstream::Context {
    jetstream::new(fleet.nats().clone())
}

fn info_of(name: &str, i: &stream::Info) -> GovernorInfo {
    GovernorInfo {
        name: name.to_string(),
        limits: Limits { capacity: i.config.max_messages, expire: i.config.max_age, replicas: i.config.num_replicas },
        subject: i.config.subjects.first().cloned().unwrap_or_default(),
        active: i.state.messages,
    }
}

/// Sends one JetStream API request; an `error` answer becomes [`GovernorError::Refused`]
/// (or [`GovernorError::Unknown`] / [`GovernorError::NoLease`] for those codes).
async fn api(fleet: &Fleet, name: &str, op: &'static str, subject: String, body: Value) -> Result<Value> {
    let v: Value = js(fleet).request(subject, &body).await.map_err(|e| FleetError::nats("JetStream API request", e))?;
    match v.get("error") {
        None => Ok(v),
        Some(e) => Err(refused(name, op, e, body.get("seq").and_then(Value::as_u64))),
    }
}

fn refused(name: &str, op: &'static str, e: &Value, seq: Option<u64>) -> GovernorError {
    let code = e.get("err_code").and_then(Value::as_u64).unwrap_or(0);
    let name = name.to_string();
    match (code, seq) {
        (STREAM_NOT_FOUND, _) => GovernorError::Unknown { name },
        (NO_MESSAGE, Some(seq)) => GovernorError::NoLease { name, seq },
        _ => {
            let description = e.get("description").and_then(Value::as_str).unwrap_or("unknown error").to_string();
            GovernorError::Refused { name, op, code, description }
        }
    }
}

/// The stream of governor `name`, or [`GovernorError::Unknown`].
async fn load(fleet: &Fleet, name: &str) -> Result<stream::Stream> {
    check_name(name)?;
    match js(fleet).get_stream(stream_name(name)).await {
        Ok(s) => Ok(s),
        Err(e) => match e.kind() {
            jetstream::context::GetStreamErrorKind::JetStream(j)
                if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                Err(GovernorError::Unknown { name: name.to_string() })
            }
            _ => Err(FleetError::nats("reading the governor stream", e).into()),
        },
    }
}

/// Applies `limits` to a stream configuration the way go-choria's `streamOpts` does: the
/// description, max age, max messages, the one subject, replicas, limits retention, file
/// storage, discard new, no duplicate window.
fn configure(mut c: stream::Config, name: &str, subject: String, l: &Limits) -> stream::Config {
    c.name = stream_name(name);
    c.description = Some(format!("Concurrency Governor {name}"));
    c.max_age = l.expire;
    c.max_messages = l.capacity;
    c.subjects = vec![subject];
    c.num_replicas = l.replicas;
    c.retention = stream::RetentionPolicy::Limits;
    c.storage = stream::StorageType::File;
    // A full governor refuses new leases instead of dropping old ones.
    c.discard = stream::DiscardPolicy::New;
    c.duplicate_window = Duration::ZERO;
    c
}

fn check_limits(l: &Limits) -> Result<()> {
    if l.capacity < 1 {
        return Err(GovernorError::Invalid { what: "capacity", reason: format!("{}: must be at least 1", l.capacity) });
    }
    if !(1..=5).contains(&l.replicas) {
        return Err(GovernorError::Invalid { what: "replicas", reason: format!("{}: must be 1 to 5", l.replicas) });
    }
    Ok(())
}

/// Loads governor `name`, creating it with `limits` when it does not exist (go-choria's
/// `LoadOrNewStream`: an existing governor is returned as it is, for the caller to compare).
/// Returns whether it was created.
pub async fn load_or_create(fleet: &Fleet, name: &str, limits: Limits) -> Result<(GovernorInfo, bool)> {
    check_limits(&limits)?;
    within(fleet, "creating the governor", load_or_create_now(fleet, name, limits)).await
}

async fn load_or_create_now(fleet: &Fleet, name: &str, limits: Limits) -> Result<(GovernorInfo, bool)> {
    match load(fleet, name).await {
        Ok(mut s) => {
            let i = s.info().await.map_err(|e| FleetError::nats("reading the governor stream", e))?;
            return Ok((info_of(name, i), false));
        }
        Err(GovernorError::Unknown { .. }) => {}
        Err(e) => return Err(e),
    }
    let subject = subject(&fleet.options().collective, name);
    let config = configure(stream::Config::default(), name, subject, &limits);
    let body = serde_json::to_value(&config).map_err(|e| FleetError::decode("stream configuration", e))?;
    match api(fleet, name, "create the governor", format!("STREAM.CREATE.{}", stream_name(name)), body).await {
        Ok(v) => Ok((info_from_reply(name, v)?, true)),
        // Someone else created it in between: theirs stands.
        Err(GovernorError::Refused { code: STREAM_EXISTS, .. }) => Ok((info(fleet, name).await?, false)),
        Err(e) => Err(e),
    }
}

fn info_from_reply(name: &str, v: Value) -> Result<GovernorInfo> {
    let i: stream::Info = serde_json::from_value(v).map_err(|e| FleetError::decode("stream info", e))?;
    Ok(info_of(name, &i))
}

/// Sets governor `name`'s limits (and its subject to this collective's), keeping the rest
/// of its configuration.
pub async fn update(fleet: &Fleet, name: &str, limits: Limits) -> Result<GovernorInfo> {
    check_limits(&limits)?;
    // Safe to repeat: the same limits applied again.
    fleet
        .again("updating the governor", || async {
            let mut s = load(fleet, name).await?;
            let current = s.info().await.map_err(|e| FleetError::nats("reading the governor stream", e))?;
            let subject = subject(&fleet.options().collective, name);
            let config = configure(current.config.clone(), name, subject, &limits);
            let body = serde_json::to_value(&config).map_err(|e| FleetError::decode("stream configuration", e))?;
            let v =
                api(fleet, name, "update the governor", format!("STREAM.UPDATE.{}", stream_name(name)), body).await?;
            info_from_reply(name, v)
        })
        .await
}

/// Governor `name` as the broker has it.
pub async fn info(fleet: &Fleet, name: &str) -> Result<GovernorInfo> {
    fleet
        .again("reading the governor", || async {
            let mut s = load(fleet, name).await?;
            let i = s.info().await.map_err(|e| FleetError::nats("reading the governor stream", e))?;
            Ok(info_of(name, i))
        })
        .await
}

/// The governors of `collective`, sorted: the streams that listen on
/// `<collective>.governor.*`, without their `GOVERNOR_` prefix (go-choria `List`).
pub async fn list(fleet: &Fleet, collective: &str) -> Result<Vec<String>> {
    fleet.again("listing the governors", || list_now(fleet, collective)).await
}

async fn list_now(fleet: &Fleet, collective: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    loop {
        let body = json!({ "offset": names.len(), "subject": subject(collective, "*") });
        let v = api(fleet, "*", "list the governors", "STREAM.NAMES".into(), body).await?;
        let page: Vec<String> = v
            .get("streams")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        let total = v.get("total").and_then(Value::as_u64).unwrap_or(0) as usize;
        let empty = page.is_empty();
        names.extend(page);
        if empty || names.len() >= total {
            break;
        }
    }
    let mut out: Vec<String> =
        names.into_iter().map(|n| n.strip_prefix(STREAM_PREFIX).map(str::to_string).unwrap_or(n)).collect();
    out.sort();
    Ok(out)
}

/// Governor `name` and its leases, oldest first (go-choria `governor view` reads them with
/// an ack-none consumer from the start until nothing is pending; so does this).
pub async fn view(fleet: &Fleet, name: &str) -> Result<(GovernorInfo, Vec<LeaseEntry>)> {
    fleet.again("reading the governor", || view_now(fleet, name)).await
}

async fn view_now(fleet: &Fleet, name: &str) -> Result<(GovernorInfo, Vec<LeaseEntry>)> {
    const READ: &str = "reading the governor's leases";
    let mut s = load(fleet, name).await?;
    let gov = info_of(name, s.info().await.map_err(|e| FleetError::nats("reading the governor stream", e))?);
    let mut leases = Vec::new();
    if gov.active == 0 {
        return Ok((gov, leases));
    }
    let config = consumer::pull::OrderedConfig { deliver_policy: consumer::DeliverPolicy::All, ..Default::default() };
    let c = s.create_consumer(config).await.map_err(|e| FleetError::nats(READ, e))?;
    let mut messages = c.messages().await.map_err(|e| FleetError::nats(READ, e))?;
    // Leases expire or are released while we read: a short silence ends the list.
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(2), messages.next()).await {
        let m = m.map_err(|e| FleetError::nats(READ, e))?;
        let Ok(i) = m.info() else { continue };
        let age = time::OffsetDateTime::now_utc() - i.published;
        leases.push(LeaseEntry {
            seq: i.stream_sequence,
            who: String::from_utf8_lossy(&m.payload).into_owned(),
            age: age.try_into().unwrap_or(Duration::ZERO),
        });
        if i.pending == 0 {
            break;
        }
    }
    Ok((gov, leases))
}

/// Evicts lease `seq` of governor `name`; returns who held it. Like go-choria's `Evict`: read
/// the message for its holder, then delete it (erasing it).
pub async fn evict(fleet: &Fleet, name: &str, seq: u64) -> Result<String> {
    within(fleet, "evicting the lease", async {
        check_name(name)?;
        let stream = stream_name(name);
        let got = api(fleet, name, "read the lease", format!("STREAM.MSG.GET.{stream}"), json!({ "seq": seq })).await?;
        let data = got.pointer("/message/data").and_then(Value::as_str).unwrap_or_default();
        use base64::Engine as _;
        let body = base64::engine::general_purpose::STANDARD.decode(data).unwrap_or_default();
        api(fleet, name, "evict the lease", format!("STREAM.MSG.DELETE.{stream}"), json!({ "seq": seq })).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    })
    .await
}

/// Deletes governor `name` and its leases (its stream; go-choria `governor delete`).
pub async fn delete(fleet: &Fleet, name: &str) -> Result<()> {
    within(fleet, "deleting the governor", async {
        check_name(name)?;
        api(fleet, name, "delete the governor", format!("STREAM.DELETE.{}", stream_name(name)), json!({})).await?;
        Ok(())
    })
    .await
}

/// The lifecycle component a runbook's `governor()` leases are announced as (`governor run`
/// uses go-choria's `CLI`).
pub const RUNBOOK_COMPONENT: &str = "fleetbook";

/// Publishes a governor lifecycle event (best effort: an event is news, not state).
pub async fn announce(fleet: &Fleet, identity: &str, component: &str, name: &str, seq: u64, kind: GovernorEvent) {
    let (subject, body) = crate::lifecycle::governor_event(identity, component, name, seq, kind);
    let _ = fleet.nats().publish(subject, body.to_string().into()).await;
    // Flushed, bounded: the process may exit right after (a wait that ran out).
    let _ = tokio::time::timeout(fleet.options().connect_timeout, fleet.nats().flush()).await;
}

/// Announces a runbook's lease on governor `name` as this client's identity, component
/// [`RUNBOOK_COMPONENT`].
pub async fn announce_runbook(fleet: &Fleet, name: &str, seq: u64, kind: GovernorEvent) {
    announce(fleet, &fleet.options().identity, RUNBOOK_COMPONENT, name, seq, kind).await;
}

/// Removes every lease of governor `name` (a purge, go-choria `Reset`); returns how many.
pub async fn reset(fleet: &Fleet, name: &str) -> Result<u64> {
    within(fleet, "resetting the governor", async {
        check_name(name)?;
        let v =
            api(fleet, name, "reset the governor", format!("STREAM.PURGE.{}", stream_name(name)), json!({})).await?;
        Ok(v.get("purged").and_then(Value::as_u64).unwrap_or(0))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_subjects_are_go_choria_s() {
        assert_eq!(stream_name("PUPPET"), "GOVERNOR_PUPPET");
        assert_eq!(subject("mcollective", "PUPPET"), "mcollective.governor.PUPPET");
        assert!(check_name("puppet-runs_1").is_ok());
        for bad in ["", "a.b", "a b", "a*", "a>", "a/b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn configuration_is_a_capped_stack() {
        let l = Limits { capacity: 10, expire: Duration::from_secs(60), replicas: 1 };
        let c = configure(stream::Config::default(), "X", subject("c", "X"), &l);
        assert_eq!(c.name, "GOVERNOR_X");
        assert_eq!(c.subjects, vec!["c.governor.X".to_string()]);
        assert_eq!((c.max_messages, c.max_age, c.num_replicas), (10, Duration::from_secs(60), 1));
        assert_eq!(c.discard, stream::DiscardPolicy::New);
        assert_eq!(c.storage, stream::StorageType::File);
        assert_eq!(c.description.as_deref(), Some("Concurrency Governor X"));
    }
}
