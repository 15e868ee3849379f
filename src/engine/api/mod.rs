//! The runbook API registered into Rhai, one file per topic, each registering its own
//! functions with parameter names and a doc comment in the engine's metadata (the REPL shows
//! them). `engine::build` calls each topic's `register`. This file holds what the topics
//! share: the fleet-error mapping and the check that no secret mask goes to the fleet.

pub(crate) mod control;
pub(crate) mod discover;
pub(crate) mod election;
pub(crate) mod governor;
pub(crate) mod inventory;
pub(crate) mod metrics;
pub(crate) mod rollout;
pub(crate) mod topology;
pub(crate) mod watch;

use rhai::{Dynamic, EvalAltResult, ImmutableString, Map};

pub(crate) use super::host::{runtime_error, Host, Res};
pub(crate) use super::options::Options;
use crate::fleet::FleetError;

/// Maps a fleet error to a runtime error scripts can catch by `kind`; Ctrl-C stops the run.
pub(crate) fn fleet_error(host: &Host, e: FleetError) -> Box<EvalAltResult> {
    match e {
        FleetError::Cancelled => host.guardrail("interrupted (Ctrl-C)"),
        e if e.kind() == crate::fleet::ErrorKind::Connection => host.broker_lost(e.to_string()),
        e => runtime_error(e.kind().as_str(), e.to_string()),
    }
}

/// Refuses text that holds the secret mask: a secret joined with text (`"Bearer " + token`,
/// `` `x=${token}` ``) prints as `[secret]`, which is fine to show but must never go to the
/// fleet in place of the value.
pub(crate) fn refuse_masked_text(d: &Dynamic, what: &str) -> Res<()> {
    let bad = || {
        runtime_error(
            "invalid",
            format!(
                "{what}: a value contains \"{}\": a secret was joined with text (+ or interpolation), which would send the mask instead of the value; pass the secret itself",
                crate::redact::MASK
            ),
        )
    };
    if let Some(s) = d.read_lock::<ImmutableString>() {
        if s.contains(crate::redact::MASK) {
            return Err(bad());
        }
    } else if let Some(a) = d.read_lock::<rhai::Array>() {
        for x in a.iter() {
            refuse_masked_text(x, what)?;
        }
    } else if let Some(m) = d.read_lock::<Map>() {
        for x in m.values() {
            refuse_masked_text(x, what)?;
        }
    }
    Ok(())
}
