//! Literal values that will surely be refused at run time, found before: option values of the
//! wrong kind (`batch: "lots"`, `sleep: "soon"`) and DDL inputs of the wrong type
//! (`splay: "soon"`). Each value is checked by the very parser the runtime uses.

use rhai::{Dynamic, Expr, Position};

use super::{map_value, Finding};
use crate::engine::options::{amount, duration};
use crate::fleet::ddl::DdlRegistry;

/// How an option's value is read at run time.
#[derive(Clone, Copy)]
enum Kind {
    /// "2s", "500ms" or seconds.
    Duration,
    /// A count or "N%".
    Amount,
    /// An amount, or a ramp (an array of amounts).
    Ramp,
    /// A whole number, not negative.
    Count,
    Bool,
    /// A lifecycle event type.
    Event,
}

/// The options whose literal values are checked: (function, option key path, kind).
const CHECKED: [(&str, &str, Kind); 15] = [
    ("rpc_batch", "batch", Kind::Ramp),
    ("rpc_batch", "sleep", Kind::Duration),
    ("rpc_batch", "timeout", Kind::Duration),
    ("rpc_batch", "max_failures", Kind::Amount),
    ("rpc_batch", "max_batch_failures", Kind::Amount),
    ("rpc_batch", "governor_wait", Kind::Duration),
    ("rpc_batch", "wait_for.timeout", Kind::Duration),
    ("rpc_batch", "wait_for.event", Kind::Event),
    ("rpc_batch", "filter.timeout", Kind::Duration),
    ("rpc_batch", "filter.min", Kind::Count),
    ("discover", "timeout", Kind::Duration),
    ("discover", "min", Kind::Count),
    ("discover", "window", Kind::Bool),
    ("metrics", "timeout", Kind::Duration),
    ("governor", "max_wait", Kind::Duration),
];

/// Which argument holds the option map, by function and argument count.
fn options_arg(function: &str, args: usize) -> Option<usize> {
    match (function, args) {
        ("rpc_batch", 4) => Some(3),
        ("discover", 1) => Some(0),
        ("metrics", 2) | ("governor", 2) => Some(1),
        _ => None,
    }
}

/// The message of a runtime error, without its kind.
fn message(e: &rhai::EvalAltResult) -> String {
    let (msg, _) = crate::engine::diag::runtime_parts(e);
    msg.trim_end_matches(" (invalid)").to_string()
}

fn check(kind: Kind, v: &Dynamic, what: &str) -> Result<(), String> {
    let whole = |v: &Dynamic| v.as_int().ok().filter(|n| *n >= 0);
    match kind {
        Kind::Duration => duration(v, what).map(drop).map_err(|e| message(&e)),
        Kind::Amount => amount(v, what).map(drop).map_err(|e| message(&e)),
        Kind::Ramp => match v.read_lock::<rhai::Array>() {
            Some(a) if a.is_empty() => Err(format!("{what}: an empty ramp")),
            Some(a) => a.iter().try_for_each(|x| amount(x, what).map(drop)).map_err(|e| message(&e)),
            None => amount(v, what).map(drop).map_err(|e| message(&e)),
        },
        Kind::Count => whole(v).map(drop).ok_or_else(|| format!("{what}: expected a whole number, not {v}")),
        Kind::Bool => v.as_bool().map(drop).map_err(|_| format!("{what}: expected true or false, not {v}")),
        Kind::Event => match v.clone().into_immutable_string() {
            Ok(s) if crate::lifecycle::TYPES.contains(&s.as_str()) => Ok(()),
            _ => Err(format!("{what}: unknown event {v}; valid: {}", crate::lifecycle::TYPES.join(", "))),
        },
    }
}

/// The literal value at `path` (`a.b`) of a literal map, and where it is.
fn literal_at(map: &Expr, path: &str) -> Option<(Dynamic, Position)> {
    let (first, rest) = path.split_once('.').map_or((path, None), |(a, b)| (a, Some(b)));
    let v = map_value(map, first)?;
    match rest {
        Some(rest) => literal_at(&v, rest),
        None => v.get_literal_value(None).map(|d| (d, v.position())),
    }
}

/// Checks the literal option values of one call.
pub(super) fn options(function: &str, args: &[Expr], call: Position, out: &mut Vec<Finding>) {
    let Some(map) = options_arg(function, args.len()).and_then(|i| args.get(i)) else { return };
    for (f, path, kind) in CHECKED {
        if f != function {
            continue;
        }
        let Some((value, pos)) = literal_at(map, path) else { continue };
        let what = format!("{function}.{path}");
        if let Err(message) = check(kind, &value, &what) {
            let pos = if pos.is_none() { call } else { pos };
            out.push(Finding { pos, message });
        }
    }
}

/// Checks the literal inputs of an `rpc_batch` with a literal agent and action, each by its
/// DDL type, as the runtime will.
pub(super) fn inputs(agent: &str, action: &str, map: &Expr, ddl: &DdlRegistry, out: &mut Vec<Finding>) {
    let Ok(act) = ddl.agent(agent).and_then(|a| a.action(action)) else { return };
    for (name, spec) in &act.input {
        let Some((value, pos)) = literal_at(map, name) else { continue };
        // A secret() or a variable is not a literal: only literals are judged.
        let Ok(json) = serde_json::to_value(&value) else { continue };
        let checked = spec.coerce(&json).and_then(|v| spec.check(&v));
        if let Err(reason) = checked {
            out.push(Finding { pos, message: format!("invalid input '{name}' for {agent}#{action}: {reason}") });
        }
    }
}
