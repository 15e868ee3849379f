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

/// Rhai value → JSON. Functions and other opaque values become their type name.
pub fn to_json(d: &Dynamic, secrets: Secrets) -> Value {
    if d.is_unit() {
        Value::Null
    } else if let Some(b) = d.clone().try_cast::<bool>() {
        Value::Bool(b)
    } else if let Some(i) = d.clone().try_cast::<rhai::INT>() {
        Value::from(i)
    } else if let Some(f) = d.clone().try_cast::<rhai::FLOAT>() {
        serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)
    } else if d.is_string() {
        Value::String(d.clone().into_string().unwrap_or_default())
    } else if d.is_array() {
        let a = d.read_lock::<Array>().map(|a| a.iter().map(|x| to_json(x, secrets)).collect()).unwrap_or_default();
        Value::Array(a)
    } else if d.is_map() {
        let m = d.read_lock::<Map>().map(|m| map_to_json(&m, secrets)).unwrap_or_default();
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
