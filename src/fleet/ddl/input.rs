//! One declared action input: its type, and how a given value is converted to that type and
//! checked against the input's rules.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use super::validation::Validation;

/// How deeply an input's arrays and maps may nest (the runbook side cuts deeper values off).
pub const MAX_DEPTH: usize = 64;

/// The type of an input: the names the DDL schema allows (`Hash` and `Array` as well as the
/// lowercase forms, as go-choria's own constants are spelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    /// Any text; numbers and booleans given are written out as text.
    String,
    /// A string from the input's `list`.
    List,
    /// `true`/`false`; the command line also takes yes/no, y/n and 1/0.
    Boolean,
    /// A whole number.
    Integer,
    /// A number, sent as a float.
    Float,
    /// A number, sent as an integer when it is whole (Go agents unmarshal `splay` into an
    /// int and reject `1.0`, choria-protocol.md §7).
    Number,
    /// A JSON object.
    #[serde(alias = "Hash")]
    Hash,
    /// A JSON array.
    #[serde(alias = "Array")]
    Array,
}

impl InputType {
    /// Every type, in the order error messages list them.
    pub const ALL: [InputType; 8] = [
        InputType::String,
        InputType::List,
        InputType::Boolean,
        InputType::Integer,
        InputType::Float,
        InputType::Number,
        InputType::Hash,
        InputType::Array,
    ];

    /// The type's name in a DDL.
    pub fn as_str(self) -> &'static str {
        match self {
            InputType::String => "string",
            InputType::List => "list",
            InputType::Boolean => "boolean",
            InputType::Integer => "integer",
            InputType::Float => "float",
            InputType::Number => "number",
            InputType::Hash => "hash",
            InputType::Array => "array",
        }
    }

    /// All names, comma-separated, for error messages.
    pub fn names() -> String {
        InputType::ALL.map(InputType::as_str).join(", ")
    }
}

impl fmt::Display for InputType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One declared input, checked when the DDL loaded.
#[derive(Debug, Clone)]
pub struct Input {
    /// The DDL's `type`.
    pub kind: InputType,
    /// Whether the input may be left out (then its `default`, if any, is sent).
    pub optional: bool,
    /// What string values must satisfy; `None` when the DDL asks for nothing.
    pub validation: Option<Validation>,
    /// The longest string allowed, in characters; 0 or `None` for no limit.
    pub maxlength: Option<u64>,
    /// The value an optional input left out takes.
    pub default: Option<Value>,
    /// Allowed values of a `list` input.
    pub list: Option<Vec<Value>>,
    /// What the input means.
    pub description: String,
}

impl Input {
    /// Converts a value to this input's type, accepting strings for numbers and booleans
    /// (the command-line form).
    pub(crate) fn coerce(&self, v: &Value) -> Result<Value, String> {
        let s = v.as_str();
        match self.kind {
            InputType::Integer => match (v, s) {
                (Value::Number(n), _) if n.is_i64() || n.is_u64() => Ok(v.clone()),
                (_, Some(s)) => {
                    s.trim().parse::<i64>().map(Value::from).map_err(|_| format!("{s:?} is not an integer"))
                }
                _ => Err(format!("expected an integer, got {v}")),
            },
            InputType::Number | InputType::Float => {
                let n = match (v, s) {
                    (Value::Number(n), _) => n.as_f64(),
                    (_, Some(s)) => s.trim().parse::<f64>().ok(),
                    _ => None,
                }
                .ok_or_else(|| format!("expected a number, got {v}"))?;
                if self.kind == InputType::Number && n.fract() == 0.0 && n.abs() < 9.0e15 {
                    Ok(Value::from(n as i64))
                } else {
                    Ok(Value::from(n))
                }
            }
            InputType::Boolean => match (v, s) {
                (Value::Bool(_), _) => Ok(v.clone()),
                (_, Some("true" | "yes" | "y" | "1")) => Ok(Value::Bool(true)),
                (_, Some("false" | "no" | "n" | "0")) => Ok(Value::Bool(false)),
                _ => Err(format!("expected a boolean, got {v}")),
            },
            InputType::Hash if v.is_object() => Ok(v.clone()),
            InputType::Hash => Err(format!("expected a map, got {v}")),
            InputType::Array if v.is_array() => Ok(v.clone()),
            InputType::Array => Err(format!("expected an array, got {v}")),
            // string and list take strings; other scalars are written out as text.
            InputType::String | InputType::List => match v {
                Value::String(_) => Ok(v.clone()),
                Value::Number(_) | Value::Bool(_) => Ok(Value::String(v.to_string())),
                _ => Err(format!("expected a string, got {v}")),
            },
        }
    }

    /// Applies the input's list, maxlength and validation rules to a converted value.
    pub(crate) fn check(&self, v: &Value) -> Result<(), String> {
        if let Some(list) = &self.list {
            if self.kind == InputType::List && !list.contains(v) {
                let allowed: Vec<String> = list.iter().map(|x| x.to_string()).collect();
                return Err(format!("{v} is not one of {}", allowed.join(", ")));
            }
        }
        let Some(s) = v.as_str() else { return Ok(()) };
        if let Some(max) = self.maxlength.filter(|m| *m > 0) {
            if s.chars().count() as u64 > max {
                return Err(format!("longer than {max} characters"));
            }
        }
        self.validation.as_ref().map_or(Ok(()), |v| v.check(s))
    }
}

/// Whether `v` nests arrays and maps more than `limit` levels deep; stops looking there.
pub(crate) fn too_deep(v: &Value, limit: usize) -> bool {
    let children: Box<dyn Iterator<Item = &Value>> = match v {
        Value::Array(a) => Box::new(a.iter()),
        Value::Object(o) => Box::new(o.values()),
        _ => return false,
    };
    limit == 0 || children.into_iter().any(|c| too_deep(c, limit - 1))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn inputs_nest_at_most_max_depth() {
        let nest = |n: usize| (0..n).fold(json!(1), |v, _| json!([v]));
        assert!(!too_deep(&nest(MAX_DEPTH), MAX_DEPTH));
        assert!(too_deep(&nest(MAX_DEPTH + 1), MAX_DEPTH));
        assert!(!too_deep(&json!({"a": [1, {"b": 2}]}), 3));
        assert!(too_deep(&json!({"a": [1, {"b": []}]}), 3));
    }

    #[test]
    fn type_names_are_what_serde_reads() {
        for t in InputType::ALL {
            assert_eq!(serde_json::from_value::<InputType>(json!(t.as_str())).unwrap(), t);
        }
        // The schema's capitalised spellings.
        assert_eq!(serde_json::from_value::<InputType>(json!("Hash")).unwrap(), InputType::Hash);
        assert_eq!(serde_json::from_value::<InputType>(json!("Array")).unwrap(), InputType::Array);
        assert!(serde_json::from_value::<InputType>(json!("STRING")).is_err());
    }

    #[test]
    fn whole_numbers_go_out_as_integers_only_for_number() {
        let input = |kind| Input {
            kind,
            optional: false,
            validation: None,
            maxlength: None,
            default: None,
            list: None,
            description: String::new(),
        };
        assert_eq!(input(InputType::Number).coerce(&json!("1")), Ok(json!(1)));
        assert_eq!(input(InputType::Float).coerce(&json!("1")), Ok(json!(1.0)));
        assert_eq!(input(InputType::Hash).coerce(&json!({"a": 1})), Ok(json!({"a": 1})));
        assert!(input(InputType::Hash).coerce(&json!("x")).is_err());
        assert_eq!(input(InputType::String).coerce(&json!(true)), Ok(json!("true")));
    }
}
