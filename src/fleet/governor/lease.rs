//! Taking and giving back one lease, as go-choria's governor `Start` and its `Finisher` do.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{api, check_name, refused, stream_name, within, GovernorError, GovernorInfo, Result};
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
/// particular a publish whose acknowledgement does not come may still have taken a slot,
/// and trying again could fill the governor with leases nobody holds; such a lease expires
/// by the governor's max age.
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
    loop {
        if let Some(seq) = try_once(fleet, &gov, who, cancel).await? {
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

/// One campaign for a slot: publish `who` on the governor's subject and read the
/// JetStream acknowledgement. `Ok(None)`: the governor is full.
async fn try_once(fleet: &Fleet, gov: &GovernorInfo, who: &str, cancel: &CancellationToken) -> Result<Option<u64>> {
    let limit = fleet.options().connect_timeout;
    let request = fleet.nats().request(gov.subject.clone(), who.to_string().into());
    let reply = tokio::select! {
        _ = cancel.cancelled() => return Err(GovernorError::Cancelled { name: gov.name.clone() }),
        r = tokio::time::timeout(limit, request) => r,
    };
    let m = match reply {
        Err(_) => {
            let why = format!(
                "no acknowledgement within {}s (a slot may have been taken; it expires by the governor's max age)",
                limit.as_secs()
            );
            return Err(fleet.broker_lost("taking a governor lease", why).into());
        }
        Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
            return Err(GovernorError::Unknown { name: gov.name.clone() })
        }
        Ok(Err(e)) => return Err(FleetError::nats("governor lease request", e).into()),
        Ok(Ok(m)) => m,
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
        let (fleet, governor, seq) = (self.fleet.clone(), self.governor.clone(), self.seq);
        within(&fleet, "releasing the governor lease", delete(&fleet, &governor, seq)).await
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
                let _ = within(&fleet, "releasing the governor lease", delete(&fleet, &governor, seq)).await;
            });
        }
    }
}
