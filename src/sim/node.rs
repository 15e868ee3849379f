//! One simulated Choria server: its facts, classes and agents, its mode and state, and how
//! it matches a request filter (go-choria `Filter.MatchServerRequest`).

use rand::rngs::SmallRng;
use rand::Rng;
use serde_json::{json, Value};

use super::compound;
use crate::fleet::filter::{compile_slashed, is_regex, FactFilter, Filter};

/// Provisioning state of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A configured server in the normal collective.
    Normal,
    /// Waiting to be provisioned, in collective `provisioning`.
    Provisioning,
}

/// Whether the process is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Up,
    /// Between the shutdown and startup of a restart.
    Restarting,
    /// Shut down for good.
    Gone,
}

/// An injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Answers mutating actions with this status code (1 or 5).
    Failing(u8),
    /// Answers discovery, never RPC.
    Silent,
    /// Answers RPC after the configured delay.
    Slow,
    /// Accepts a restart or reprovision, shuts down, and never comes back.
    Stuck,
}

impl Fault {
    /// A short name for stats and logs.
    pub fn name(self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::Failing(_) => "failing",
            Fault::Silent => "silent",
            Fault::Slow => "slow",
            Fault::Stuck => "stuck",
        }
    }
}

/// A simulated server.
#[derive(Debug, Clone)]
pub struct Node {
    pub identity: String,
    pub facts: Value,
    pub classes: Vec<String>,
    pub agents: Vec<String>,
    pub mode: Mode,
    pub state: State,
    pub fault: Fault,
    /// Set by `configure` while in provisioning mode.
    pub configured: bool,
    pub version: String,
    /// Bumped on every state change, so stale timers can tell they are stale.
    pub epoch: u64,
}

const COUNTRIES: [&str; 5] = ["mt", "de", "us", "gb", "nl"];
const SITES: [&str; 4] = ["lon1", "fra1", "nyc1", "ams1"];
const ROLES: [&str; 4] = ["web", "db", "cache", "worker"];

impl Node {
    /// A node with seeded facts. `index` is 1-based.
    pub fn generate(index: usize, width: usize, domain: &str, version: &str, rng: &mut SmallRng) -> Node {
        let identity = format!("n{index:0width$}.{domain}");
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
            "hostname": identity.split('.').next().unwrap_or(&identity),
            "fqdn": identity,
        });
        let mut classes = vec!["profile::base".to_string(), format!("role::{role}")];
        match role {
            "web" => classes.push("apache".into()),
            "db" => classes.push("postgresql".into()),
            "cache" => classes.push("redis".into()),
            _ => {}
        }
        let mut agents: Vec<String> =
            ["choria_provision", "choria_util", "discovery", "rpcutil"].iter().map(|s| s.to_string()).collect();
        if rng.gen_bool(0.5) {
            agents.push("package".into());
            agents.sort();
        }
        Node {
            identity,
            facts,
            classes,
            agents,
            mode: Mode::Normal,
            state: State::Up,
            fault: Fault::None,
            configured: false,
            version: version.to_string(),
            epoch: 0,
        }
    }

    /// The lifecycle component this node publishes as.
    pub fn component(&self) -> &'static str {
        match self.mode {
            Mode::Normal => "server",
            Mode::Provisioning => "provision_mode_server",
        }
    }

    /// The collective it serves.
    pub fn collective<'a>(&self, normal: &'a str) -> &'a str {
        match self.mode {
            Mode::Normal => normal,
            Mode::Provisioning => "provisioning",
        }
    }

    /// Server-side filter matching: each non-empty kind must match.
    pub fn matches(&self, f: &Filter) -> bool {
        Matcher::new(f).matches(self)
    }

    /// A fact by gjson-like dotted path.
    pub fn fact(&self, path: &str) -> Option<&Value> {
        lookup(&self.facts, path)
    }
}

/// One filter entry, compiled.
enum Pattern {
    Exact(String),
    Re(regex::Regex),
}

impl Pattern {
    /// `None` for a broken regex, which matches nothing.
    fn new(s: &str) -> Option<Pattern> {
        if is_regex(s) {
            compile_slashed(s).ok().map(Pattern::Re)
        } else {
            Some(Pattern::Exact(s.to_string()))
        }
    }

    fn matches(&self, v: &str) -> bool {
        match self {
            Pattern::Exact(s) => s == v,
            Pattern::Re(r) => r.is_match(v),
        }
    }
}

/// A request filter compiled once and applied to many nodes (go-choria
/// `Filter.MatchServerRequest`): each non-empty kind must match; identities OR, the rest AND.
pub struct Matcher {
    identity: Vec<Option<Pattern>>,
    agent: Vec<Option<Pattern>>,
    class: Vec<Option<Pattern>>,
    fact: Vec<(FactFilter, Option<regex::Regex>)>,
    compound: Vec<compound::Program>,
}

impl Matcher {
    pub fn new(f: &Filter) -> Matcher {
        let pats = |v: &[String]| v.iter().map(|p| Pattern::new(p)).collect();
        Matcher {
            identity: pats(&f.identity),
            agent: pats(&f.agent),
            class: pats(&f.cf_class),
            fact: f
                .fact
                .iter()
                .map(|ff| (ff.clone(), (ff.operator == "=~").then(|| compile_slashed(&ff.value).ok()).flatten()))
                .collect(),
            compound: f
                .compound
                .iter()
                .flatten()
                .map(|e| {
                    e.get("expr")
                        .and_then(Value::as_str)
                        .map_or_else(compound::Program::never, compound::Program::compile)
                })
                .collect(),
        }
    }

    pub fn matches(&self, n: &Node) -> bool {
        let any = |p: &Option<Pattern>, v: &[String]| p.as_ref().is_some_and(|p| v.iter().any(|x| p.matches(x)));
        (self.identity.is_empty() || self.identity.iter().any(|p| p.as_ref().is_some_and(|p| p.matches(&n.identity))))
            && self.agent.iter().all(|p| any(p, &n.agents))
            && self.class.iter().all(|p| any(p, &n.classes))
            && self.fact.iter().all(|(ff, re)| match n.fact(&ff.fact) {
                None => false,
                Some(v) => match re {
                    Some(re) => re.is_match(&fact_text(v)),
                    None if ff.operator == "=~" => false,
                    None => compare(v, &ff.operator, &ff.value),
                },
            })
            && self.compound.iter().all(|p| p.matches(n))
    }
}

fn lookup<'a>(facts: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(facts, |v, part| v.get(part))
}

/// Text form of a fact value as Go's gjson `String()` gives it.
pub fn fact_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One fact comparison, as go-choria's `filter/facts` does it: numeric when both sides are
/// numbers, otherwise text.
pub fn compare(actual: &Value, op: &str, want: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::filter::parse_fact;
    use rand::SeedableRng;

    fn node() -> Node {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut n = Node::generate(7, 3, "example.net", "0.29.4", &mut rng);
        n.facts = json!({"country": "mt", "cpus": 8, "os": {"family": "Debian"}, "virtual": true});
        n.classes = vec!["apache".into(), "role::web".into()];
        n
    }

    #[test]
    fn filters_match_like_a_server() {
        let n = node();
        assert_eq!(n.identity, "n007.example.net");
        let mut f = Filter::default();
        assert!(n.matches(&f));
        f.fact.push(parse_fact("country=mt").unwrap());
        f.fact.push(parse_fact("cpus>=4").unwrap());
        f.fact.push(parse_fact("os.family=/^Deb/").unwrap());
        assert!(n.matches(&f));
        f.fact.push(parse_fact("cpus>8").unwrap());
        assert!(!n.matches(&f));
        let mut c = Filter { cf_class: vec!["apache".into(), "/^role::/".into()], ..Default::default() };
        assert!(n.matches(&c));
        c.cf_class.push("postgresql".into());
        assert!(!n.matches(&c));
        let i = Filter { identity: vec!["other".into(), "/^n00[0-9]/".into()], ..Default::default() };
        assert!(n.matches(&i));
        let a = Filter { agent: vec!["rpcutil".into(), "nope".into()], ..Default::default() };
        assert!(!n.matches(&a));
        assert!(compare(&json!(true), "==", "true"));
        assert!(compare(&json!("10"), ">", "9"));
    }
}
