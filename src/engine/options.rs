//! The option maps runbook functions take (`rpc_batch(.., #{batch: 5, sleep: "2s"})`), read
//! one way everywhere: [`Options::new`] refuses a key the function does not know, naming the
//! valid ones, then each getter reads one key as one type. A getter gives `None` when the key
//! is absent; a value of the wrong type is an error of kind `invalid` naming `function.key`.
//!
//! Each function declares its keys once, as a `KEYS` const beside it; `check`'s lint reads
//! the same const, so the runtime and the lint cannot drift apart.

use std::time::Duration;

use rhai::{Array, Dynamic, FnPtr, Map};

use super::host::{runtime_error, Res};
use crate::rollout::policy::Amount;

/// An option map, its keys checked, read under the name of the function that took it.
#[derive(Clone, Copy)]
pub(crate) struct Options<'a> {
    map: &'a Map,
    what: &'a str,
    /// `(key, alias)`: the key may also be given under the alias (errors name the key).
    alias: Option<(&'a str, &'a str)>,
}

impl<'a> Options<'a> {
    /// Reads `map` as the options of `what` (`"rpc_batch"`, `"rpc_batch.wait_for"`),
    /// refusing any key not in `keys`.
    pub(crate) fn new(map: &'a Map, what: &'a str, keys: &[&str]) -> Res<Self> {
        for k in map.keys() {
            if !keys.contains(&k.as_str()) {
                return Err(runtime_error(
                    "invalid",
                    format!("{what}: unknown option '{k}'; valid options: {}", keys.join(", ")),
                ));
            }
        }
        Ok(Options { map, what, alias: None })
    }

    /// The same options with `alias` read as `key` when `key` itself is absent: `until` is a
    /// Rhai keyword, so `watch_events` also takes it as `stop_when`.
    pub(crate) fn with_alias(self, key: &'a str, alias: &'a str) -> Self {
        Options { alias: Some((key, alias)), ..self }
    }

    /// The same options, their errors named after `what` instead.
    pub(crate) fn named(self, what: &'a str) -> Self {
        Options { what, ..self }
    }

    /// How errors name `key`: `rpc_batch.sleep`.
    pub(crate) fn name(&self, key: &str) -> String {
        format!("{}.{key}", self.what)
    }

    /// The raw value of `key`, for options that take more than one shape.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Dynamic> {
        self.map.get(key).or_else(|| match self.alias {
            Some((k, alias)) if k == key => self.map.get(alias),
            _ => None,
        })
    }

    /// `key` as text, whatever its type (`collective`, `bucket`, ...).
    pub(crate) fn string(&self, key: &str) -> Option<String> {
        self.get(key).map(|v| v.to_string())
    }

    /// True only when `key` is given as `true`; anything else reads as false.
    pub(crate) fn bool(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| v.as_bool().unwrap_or(false))
    }

    /// A string or a list of strings.
    pub(crate) fn strings(&self, key: &str) -> Res<Option<Vec<String>>> {
        self.get(key).map(|v| string_list(v, &self.name(key))).transpose()
    }

    /// `"30s"`, `"2m"` or a number of seconds.
    pub(crate) fn duration(&self, key: &str) -> Res<Option<Duration>> {
        self.get(key).map(|v| duration(v, &self.name(key))).transpose()
    }

    /// A whole number >= 0.
    pub(crate) fn count(&self, key: &str) -> Res<Option<usize>> {
        self.get(key).map(|v| count(v, &self.name(key))).transpose()
    }

    /// A count or a percentage: `3`, `"3"`, `"10%"`.
    pub(crate) fn amount(&self, key: &str) -> Res<Option<Amount>> {
        self.get(key).map(|v| amount(v, &self.name(key))).transpose()
    }

    /// A closure; `example` shows one in the error.
    pub(crate) fn closure(&self, key: &str, example: &str) -> Res<Option<FnPtr>> {
        self.get(key)
            .map(|v| {
                v.clone().try_cast::<FnPtr>().ok_or_else(|| {
                    runtime_error("invalid", format!("{}: expected a closure like {example}", self.name(key)))
                })
            })
            .transpose()
    }

    /// A map; `example`, when given, shows one in the error.
    pub(crate) fn map(&self, key: &str, example: Option<&str>) -> Res<Option<Map>> {
        self.get(key)
            .map(|v| {
                v.read_lock::<Map>().map(|m| m.clone()).ok_or_else(|| {
                    let like = example.map(|e| format!(" like {e}")).unwrap_or_default();
                    runtime_error("invalid", format!("{}: expected a map{like}", self.name(key)))
                })
            })
            .transpose()
    }
}

/// `"30s"`, `"2m"` or a number of seconds; errors start with `what`.
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

/// A count or a percentage; errors start with `what`.
pub(crate) fn amount(d: &Dynamic, what: &str) -> Res<Amount> {
    let text = if d.is_string() {
        d.to_string()
    } else {
        d.clone().try_cast::<rhai::INT>().map(|i| i.to_string()).unwrap_or_default()
    };
    if text.starts_with('-') {
        return Err(runtime_error("invalid", format!("{what}: {d} is negative")));
    }
    Amount::parse(&text).map_err(|e| runtime_error("invalid", format!("{what}: {e}")))
}

fn count(d: &Dynamic, what: &str) -> Res<usize> {
    match d.clone().try_cast::<rhai::INT>() {
        Some(i) if i >= 0 => Ok(i as usize),
        _ => Err(runtime_error("invalid", format!("{what}: expected a whole number >= 0, got {d}"))),
    }
}

fn string_list(d: &Dynamic, what: &str) -> Res<Vec<String>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: [&str; 4] = ["sleep", "min", "nodes", "until"];

    fn map(pairs: &[(&str, Dynamic)]) -> Map {
        pairs.iter().map(|(k, v)| ((*k).into(), v.clone())).collect()
    }

    fn message<T>(r: Res<T>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => crate::engine::diag::runtime_parts(&e).0,
        }
    }

    #[test]
    fn unknown_keys_are_refused_naming_the_valid_ones() {
        let m = map(&[("slep", Dynamic::from(1_i64))]);
        let e = message(Options::new(&m, "f", &KEYS));
        assert_eq!(e, "f: unknown option 'slep'; valid options: sleep, min, nodes, until (invalid)");
    }

    #[test]
    fn getters_read_their_type_or_name_the_key() {
        let m = map(&[
            ("sleep", Dynamic::from("2s")),
            ("min", Dynamic::from(-1_i64)),
            ("nodes", Dynamic::from_array(vec![Dynamic::from("a"), Dynamic::from(1_i64)])),
        ]);
        let o = Options::new(&m, "f", &KEYS).unwrap();
        assert_eq!(o.duration("sleep").unwrap(), Some(Duration::from_secs(2)));
        assert_eq!(o.duration("until").unwrap(), None);
        assert_eq!(message(o.count("min")), "f.min: expected a whole number >= 0, got -1 (invalid)");
        assert_eq!(message(o.amount("min")), "f.min: -1 is negative (invalid)");
        assert_eq!(message(o.strings("nodes")), "f.nodes: expected strings, got i64 (invalid)");
        assert_eq!(message(o.closure("sleep", "|x| true")), "f.sleep: expected a closure like |x| true (invalid)");
        assert_eq!(message(o.map("sleep", None)), "f.sleep: expected a map (invalid)");
        assert_eq!(message(o.named("g").map("sleep", Some("#{}"))), "g.sleep: expected a map like #{} (invalid)");
    }

    #[test]
    fn an_alias_reads_as_its_key() {
        let m = map(&[("stop_when", Dynamic::from(1_i64))]);
        let o = Options::new(&m, "f", &["until", "stop_when"]).unwrap().with_alias("until", "stop_when");
        assert_eq!(message(o.closure("until", "|e| true")), "f.until: expected a closure like |e| true (invalid)");
    }
}
