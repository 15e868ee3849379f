//! The runbook API registered into Rhai, one file per topic, each registering its own
//! functions with parameter names and a doc comment in the engine's metadata (the REPL shows
//! them). This file holds what the topics share: the result type and the error mapping.

pub(crate) mod control;
pub(crate) mod discover;
pub(crate) mod election;
pub(crate) mod metrics;
pub(crate) mod rollout;
pub(crate) mod watch;

use std::time::Duration;

use rhai::{Array, Dynamic, EvalAltResult, ImmutableString, Map};

pub(crate) use super::{runtime_error, Host};
use crate::fleet::FleetError;

/// Result type of API functions.
pub(crate) type Res<T> = Result<T, Box<EvalAltResult>>;

/// Maps a fleet error to a runtime error scripts can catch by `kind`; Ctrl-C stops the run.
pub(crate) fn fleet_error(host: &Host, e: FleetError) -> Box<EvalAltResult> {
    match e {
        FleetError::Cancelled => host.guardrail("interrupted (Ctrl-C)"),
        e if e.kind() == crate::fleet::ErrorKind::Connection => host.broker_lost(e.to_string()),
        e => runtime_error(e.kind().as_str(), e.to_string()),
    }
}

/// Rejects keys a function does not know, naming the valid ones.
pub(crate) fn check_keys(m: &Map, allowed: &[&str], what: &str) -> Res<()> {
    for k in m.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(runtime_error(
                "invalid",
                format!("{what}: unknown option '{k}'; valid options: {}", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

/// A string or a list of strings.
pub(crate) fn string_list(d: &Dynamic, what: &str) -> Res<Vec<String>> {
    if d.is_string() {
        return Ok(vec![d.to_string()]);
    }
    if let Some(a) = d.read_lock::<Array>() {
        return a
            .iter()
            .map(|x| {
                if x.is_string() {
                    Ok(x.to_string())
                } else {
                    Err(runtime_error("invalid", format!("{what}: expected strings, got {}", x.type_name())))
                }
            })
            .collect();
    }
    Err(runtime_error("invalid", format!("{what}: expected a string or an array of strings, got {}", d.type_name())))
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

/// `"30s"`, `"2m"` or a number of seconds.
pub(crate) fn duration(d: &Dynamic, what: &str) -> Res<Duration> {
    let bad = |r: String| runtime_error("invalid", format!("{what}: {r}"));
    if d.is_string() {
        return crate::config::parse_duration(&d.to_string()).map_err(bad);
    }
    let secs = if let Some(i) = d.clone().try_cast::<rhai::INT>() {
        i as f64
    } else if let Some(f) = d.clone().try_cast::<rhai::FLOAT>() {
        f
    } else {
        return Err(bad(format!("expected a duration like \"30s\" or seconds, got {}", d.type_name())));
    };
    crate::config::parse_seconds(secs).map_err(bad)
}

/// A non-negative integer option.
pub(crate) fn count(d: &Dynamic, what: &str) -> Res<usize> {
    match d.clone().try_cast::<rhai::INT>() {
        Some(i) if i >= 0 => Ok(i as usize),
        _ => Err(runtime_error("invalid", format!("{what}: expected a whole number >= 0, got {d}"))),
    }
}
