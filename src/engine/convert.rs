//! Values between Rhai and JSON.

use rhai::{Array, Dynamic, Map};
use serde_json::Value;

use crate::redact::{is_secret_name, Secret, MASK};

/// How secrets come out of a conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// The clear value: only for the request that goes on the wire.
    Reveal,
    /// The mask: for everything shown, logged or serialised. Values under secret names
    /// (`token`, `password`, ...) are masked too, so a literal token never shows.
    Mask,
}

/// How deeply arrays and maps may nest in values sent to the fleet. serde_json (the simulator,
/// and this client reading replies) refuses JSON nested deeper than 128, and the request
/// envelope adds levels of its own; real inputs are a few levels deep.
pub const MAX_DEPTH: usize = crate::fleet::ddl::MAX_DEPTH;

/// What [`to_json`] puts where a value nests deeper than [`MAX_DEPTH`] + 1; the DDL check
/// refuses such inputs, so it is never sent.
pub const TOO_DEEP: &str = "<nested too deep>";

/// Rhai value → JSON. Functions and other opaque values become their type name. Arrays and
/// maps nested deeper than [`MAX_DEPTH`] + 1 are cut off with [`TOO_DEEP`], so the
/// conversion is bounded whatever the script built.
pub fn to_json(d: &Dynamic, secrets: Secrets) -> Value {
    to_json_at(d, secrets, 1)
}

fn to_json_at(d: &Dynamic, secrets: Secrets, level: usize) -> Value {
    if level > MAX_DEPTH + 1 && (d.is_array() || d.is_map()) {
        return Value::String(TOO_DEEP.into());
    }
    let next = |x: &Dynamic| to_json_at(x, secrets, level + 1);
    if d.is_unit() {
        Value::Null
    } else if let Ok(b) = d.as_bool() {
        Value::Bool(b)
    } else if let Ok(i) = d.as_int() {
        Value::from(i)
    } else if let Ok(f) = d.as_float() {
        serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)
    } else if d.is_string() {
        Value::String(d.clone().into_string().unwrap_or_default())
    } else if d.is_array() {
        let a = d.read_lock::<Array>().map(|a| a.iter().map(next).collect()).unwrap_or_default();
        Value::Array(a)
    } else if d.is_map() {
        let m = d
            .read_lock::<Map>()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let masked = secrets == Secrets::Mask && is_secret_name(k) && !v.is_unit() && !v.is_map();
                        (k.to_string(), if masked { Value::String(MASK.to_string()) } else { next(v) })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Value::Object(m)
    } else if let Some(s) = d.read_lock::<Secret>() {
        match secrets {
            Secrets::Reveal => Value::String(s.reveal().to_string()),
            Secrets::Mask => Value::String(MASK.to_string()),
        }
    } else if d.is_char() {
        Value::String(d.to_string())
    } else {
        Value::String(format!("<{}>", d.type_name()))
    }
}

/// A Rhai map → a JSON object.
pub fn map_to_json(m: &Map, secrets: Secrets) -> serde_json::Map<String, Value> {
    m.iter()
        .map(|(k, v)| {
            let masked = secrets == Secrets::Mask && is_secret_name(k) && !v.is_unit() && !v.is_map();
            (k.to_string(), if masked { Value::String(MASK.to_string()) } else { to_json(v, secrets) })
        })
        .collect()
}

/// JSON → Rhai value.
pub fn from_json(v: &Value) -> Dynamic {
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from(i),
            None => Dynamic::from(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Dynamic::from(s.clone()),
        Value::Array(a) => Dynamic::from_array(a.iter().map(from_json).collect()),
        Value::Object(o) => Dynamic::from_map(o.iter().map(|(k, v)| (k.as_str().into(), from_json(v))).collect()),
    }
}

/// A list of strings as a Rhai array.
pub fn strings(items: &[String]) -> Dynamic {
    Dynamic::from_array(items.iter().map(|s| Dynamic::from(s.clone())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_to_json_is_bounded() {
        let mut d = Dynamic::from(1_i64);
        for _ in 0..(MAX_DEPTH + 10) {
            d = Dynamic::from_array(vec![d]);
        }
        let v = to_json(&d, Secrets::Mask);
        let mut depth = 0;
        let mut cur = &v;
        while let Value::Array(a) = cur {
            depth += 1;
            cur = &a[0];
        }
        assert_eq!(depth, MAX_DEPTH + 1);
        assert_eq!(cur, &Value::String(TOO_DEEP.into()));
    }
}
