//! What a simulated server says about itself: facts, classes and agents drawn from the seed,
//! facts read by dotted path and compared as go-choria's `filter/facts` does.

use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::Rng;
use serde_json::{json, Value};

use crate::fleet::filter::compile_slashed;

const COUNTRIES: [&str; 5] = ["mt", "de", "us", "gb", "nl"];
const SITES: [&str; 4] = ["lon1", "fra1", "nyc1", "ams1"];
const ROLES: [&str; 4] = ["web", "db", "cache", "worker"];

/// A node's facts, classes and agents.
pub(crate) struct Profile {
    /// Facts as a JSON tree.
    pub(crate) facts: Value,
    /// Puppet-style classes.
    pub(crate) classes: Vec<String>,
    /// Agents it runs, sorted.
    pub(crate) agents: Arc<[String]>,
}

impl Profile {
    /// A profile for `identity` drawn from `rng`. The order of the draws is part of what a
    /// seed means: changing it changes every seeded fleet.
    pub(crate) fn generate(identity: &str, rng: &mut SmallRng) -> Profile {
        let role = ROLES[rng.gen_range(0..ROLES.len())];
        let (family, release) = if rng.gen_bool(0.7) { ("Debian", "12") } else { ("RedHat", "9") };
        let cpus = [2, 4, 8, 16][rng.gen_range(0..4)];
        let memory = [4, 8, 16, 32, 64][rng.gen_range(0..5)];
        let facts = json!({
            "country": COUNTRIES[rng.gen_range(0..COUNTRIES.len())],
            "site": SITES[rng.gen_range(0..SITES.len())],
            "role": role,
            "environment": if rng.gen_bool(0.8) { "production" } else { "staging" },
            "os": {"family": family, "release": release},
            "cpus": cpus,
            "memory_gb": memory,
            "hostname": identity.split('.').next().unwrap_or(identity),
            "fqdn": identity,
        });
        let mut classes = vec!["profile::base".to_string(), format!("role::{role}")];
        match role {
            "web" => classes.push("apache".into()),
            "db" => classes.push("postgresql".into()),
            "cache" => classes.push("redis".into()),
            _ => {}
        }
        // Two lists, each made once and shared by every node that has it.
        static AGENTS: std::sync::LazyLock<[Arc<[String]>; 2]> = std::sync::LazyLock::new(|| {
            let base = ["choria_provision", "choria_util", "discovery", "executor", "rpcutil", "scout"];
            let mut with_package: Vec<String> = base.iter().map(|s| s.to_string()).collect();
            with_package.push("package".into());
            with_package.sort();
            [base.iter().map(|s| s.to_string()).collect(), with_package.into()]
        });
        let agents = AGENTS[usize::from(rng.gen_bool(0.5))].clone();
        Profile { facts, classes, agents }
    }
}

/// A fact by gjson-like dotted path.
pub(crate) fn lookup<'a>(facts: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(facts, |v, part| v.get(part))
}

/// Text form of a fact value as Go's gjson `String()` gives it.
pub(crate) fn fact_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One fact comparison, as go-choria's `filter/facts` does it: numeric when both sides are
/// numbers, otherwise text.
pub(crate) fn compare(actual: &Value, op: &str, want: &str) -> bool {
    let text = fact_text(actual);
    let num = |s: &str| s.trim().parse::<f64>().ok();
    match op {
        "==" => match (actual.as_f64(), num(want)) {
            (Some(a), Some(b)) => a == b,
            _ => text == want || (actual.is_boolean() && text.eq_ignore_ascii_case(want)),
        },
        "!=" => !compare(actual, "==", want),
        "=~" => compile_slashed(want).is_ok_and(|r| r.is_match(&text)),
        "<" | ">" | "<=" | ">=" => {
            let ord = match (num(&text), num(want)) {
                (Some(a), Some(b)) => a.partial_cmp(&b),
                _ => Some(text.as_str().cmp(want)),
            };
            let Some(ord) = ord else { return false };
            match op {
                "<" => ord.is_lt(),
                ">" => ord.is_gt(),
                "<=" => ord.is_le(),
                _ => ord.is_ge(),
            }
        }
        _ => false,
    }
}
