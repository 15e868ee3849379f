//! Taking and giving back one lease, as go-choria's governor `Start` and its `Finisher` do.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{api, check_name, refused, stream_name, GovernorError, GovernorInfo, Result};
use crate::fleet::client::Fleet;
use crate::fleet::error::FleetError;

/// How long to wait between tries for a slot (go-choria's `DefaultInterval`).
pub const INTERVAL: Duration = Duration::from_millis(250);

/// JetStream's answer to a publish into a full discard-new stream ("maximum messages
/// exceeded"): go-choria treats exactly this as "try again".
const FULL: u64 = 10077;
/// JetStream's "message delete failed"; its description says why.
const DELETE_FAILED: u64 = 10057;

/// A lease on a governor slot. Give it back with [`Lease::release`]; dropping it releases it
/// too, best effort, in the background. A lease never released expires by the governor's
/// max age.
pub struct Lease {
    fleet: Fleet,
    governor: String,
    who: String,
    seq: u64,
    released: bool,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("governor", &self.governor)
            .field("who", &self.who)
            .field("seq", &self.seq)
            .finish()
    }
}

/// Takes a slot on governor `name` for `who` (the lease's body, shown by `governor view`),
/// trying every [`INTERVAL`] while the governor is full, for at most `max_wait`; `cancel`
/// (Ctrl-C) ends the wait.
///
/// As in go-choria, only a full governor is retried. Anything else ends the wait: in
/// particular a publish whose acknowledgement does not come on a connection that stayed up
/// may still have taken a slot, and trying again could fill the governor with leases nobody
/// holds; such a lease expires by the governor's max age. A try whose connection broke is
/// made again once the client is back, under the same message id, which JetStream stores
/// once (see `try_once`).
pub async fn acquire(
    fleet: &Fleet,
    name: &str,
    who: &str,
    max_wait: Duration,
    cancel: &CancellationToken,
) -> Result<Lease> {
    acquire_every(fleet, name, who, max_wait, INTERVAL, cancel).await
}

/// [`acquire`], trying every `interval` (`governor run --interval`).
pub async fn acquire_every(
    fleet: &Fleet,
    name: &str,
    who: &str,
    max_wait: Duration,
    interval: Duration,
    cancel: &CancellationToken,
) -> Result<Lease> {
    check_name(name)?;
    if who.is_empty() {
        return Err(GovernorError::Invalid { what: "lease holder", reason: "empty: say who takes the lease".into() });
    }
    let started = Instant::now();
    let deadline = started + max_wait;
    let cancelled = || GovernorError::Cancelled { name: name.to_string() };
    // One look first: the governor must exist, and its subject is where leases are taken.
    let gov = tokio::select! {
        _ = cancel.cancelled() => return Err(cancelled()),
        r = super::info(fleet, name) => r?,
    };
    // This lease's message id, the same in every try: only a stored message holds its id,
    // and only the last try is stored.
    let id = format!("fleetbook-lease-{:032x}", rand::random::<u128>());
    loop {
        if let Some(seq) = try_once(fleet, &gov, who, &id, cancel).await? {
            return Ok(Lease {
                fleet: fleet.clone(),
                governor: name.to_string(),
                who: who.to_string(),
                seq,
                released: false,
            });
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(GovernorError::WaitExpired { name: name.to_string(), waited_s: (now - started).as_secs_f64() });
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(cancelled()),
            _ = tokio::time::sleep_until((now + interval).min(deadline)) => {}
        }
    }
}

/// One campaign for a slot: publish `who` on the governor's subject, with message id `id`,
/// and read the JetStream acknowledgement. `Ok(None)`: the governor is full.
///
/// When the connection breaks or comes back while the acknowledgement is due, the
/// acknowledgement may be lost with the old connection although the lease was stored (a
/// broker killed just after storing it). The same message again, once connected, is safe:
/// within the stream's duplicate window (two minutes, or the governor's max age if shorter)
/// JetStream stores a message id once and answers a copy with the first one's sequence
/// (`"duplicate": true`), full governor or not.
async fn try_once(
    fleet: &Fleet,
    gov: &GovernorInfo,
    who: &str,
    id: &str,
    cancel: &CancellationToken,
) -> Result<Option<u64>> {
    const DURING: &str = "taking a governor lease";
    let limit = fleet.options().connect_timeout;
    // One try, on a live connection (`Fleet::again` waits for one: a try queued during a break
    // could wait out its timeout before the client is back), made again under the same id when
    // the connection breaks or comes back while its acknowledgement is due.
    let attempt = || async {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id);
        let request = fleet.nats().request_with_headers(gov.subject.clone(), headers, who.to_string().into());
        match tokio::time::timeout(limit, request).await {
            Err(_) => {
                let why = format!(
                    "no acknowledgement within {}s (a slot may have been taken; it expires by the governor's max age)",
                    limit.as_secs()
                );
                Err(fleet.broker_lost(DURING, why).into())
            }
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                Err(GovernorError::Unknown { name: gov.name.clone() })
            }
            Ok(Err(e)) => Err(FleetError::nats("governor lease request", e).into()),
            Ok(Ok(m)) => Ok(m),
        }
    };
    let m = tokio::select! {
        _ = cancel.cancelled() => return Err(GovernorError::Cancelled { name: gov.name.clone() }),
        r = fleet.again(DURING, attempt) => r?,
    };
    let ack: Value =
        serde_json::from_slice(&m.payload).map_err(|e| FleetError::decode("governor acknowledgement", e))?;
    if let Some(e) = ack.get("error") {
        if e.get("err_code").and_then(Value::as_u64) == Some(FULL) {
            return Ok(None);
        }
        return Err(refused(&gov.name, "take a lease", e, None));
    }
    match ack.get("seq").and_then(Value::as_u64) {
        Some(seq) if seq > 0 => Ok(Some(seq)),
        _ => Err(FleetError::malformed("governor acknowledgement", "no sequence").into()),
    }
}

/// Deletes lease `seq` without erasing it, as go-choria's finisher does
/// (`DeleteStreamMessage(stream, seq, true)`). `Ok(false)`: it was gone already (expired or
/// evicted).
async fn delete(fleet: &Fleet, governor: &str, seq: u64) -> Result<bool> {
    let subject = format!("STREAM.MSG.DELETE.{}", stream_name(governor));
    match api(fleet, governor, "release the lease", subject, json!({ "seq": seq, "no_erase": true })).await {
        Ok(_) => Ok(true),
        // A delete of a sequence that is gone is refused as 10057 "no message found".
        Err(GovernorError::NoLease { .. }) => Ok(false),
        Err(GovernorError::Refused { code: DELETE_FAILED, description, .. }) if description.contains("no message") => {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Deletes lease `seq`, again after a reconnect (see [`Fleet::again`]). A lease that is gone
/// when asked again counts as given back: the first delete may have been done.
async fn give_back(fleet: &Fleet, governor: &str, seq: u64) -> Result<bool> {
    let mut tries = 0;
    fleet
        .again("releasing the governor lease", || {
            tries += 1;
            let again = tries > 1;
            async move { delete(fleet, governor, seq).await.map(|deleted| deleted || again) }
        })
        .await
}

impl Lease {
    /// The lease id: its message's stream sequence, as `governor view` shows it.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The governor it is on.
    pub fn governor(&self) -> &str {
        &self.governor
    }

    /// Who holds it.
    pub fn who(&self) -> &str {
        &self.who
    }

    /// Gives the slot back. `Ok(false)`: the lease was gone already (it expired or was
    /// evicted), so someone else may have had the slot for a while.
    pub async fn release(mut self) -> Result<bool> {
        self.released = true;
        give_back(&self.fleet, &self.governor, self.seq).await
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // Best effort: a runtime that is shutting down may not run this; the governor's max
        // age frees the slot then.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (fleet, governor, seq) = (self.fleet.clone(), self.governor.clone(), self.seq);
            rt.spawn(async move {
                let _ = give_back(&fleet, &governor, seq).await;
            });
        }
    }
}
