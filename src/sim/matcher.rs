//! Server-side filter matching (go-choria `Filter.MatchServerRequest`): a request's filter
//! compiled once, then applied to every node it reaches.

use serde_json::Value;

use super::compound;
use super::facts::{compare, fact_text};
use super::node::Node;
use crate::fleet::filter::{compile_slashed, is_regex, FactFilter, Filter};

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

/// A request filter compiled once and applied to many nodes: each non-empty kind must match;
/// identities OR, the rest AND.
pub(crate) struct Matcher {
    identity: Vec<Option<Pattern>>,
    agent: Vec<Option<Pattern>>,
    class: Vec<Option<Pattern>>,
    fact: Vec<(FactFilter, Option<regex::Regex>)>,
    /// Compound expressions, each parsed and its regexes compiled here, not per node.
    compound: Vec<compound::Program>,
}

impl Matcher {
    /// Compiles `f`.
    pub(crate) fn new(f: &Filter) -> Matcher {
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

    /// Without the filter's exact `agent` entries naming `agent`: a server checks that it runs
    /// the request's agent before the filter (`server::answer`), and a direct request names
    /// its agent in its filter, so matching it again was a second scan of each node's agents
    /// per reply.
    pub(crate) fn assuming_agent(mut self, agent: &str) -> Matcher {
        self.agent.retain(|p| !matches!(p, Some(Pattern::Exact(a)) if a == agent));
        self
    }

    /// True when node `n` is selected by the filter.
    pub(crate) fn matches(&self, n: &Node) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::filter::parse_fact;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;
    use serde_json::json;

    /// Compiles `f` for one node, as the test reads best.
    impl Node {
        fn matches(&self, f: &Filter) -> bool {
            Matcher::new(f).matches(self)
        }
    }

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
        // What the server checked itself is dropped; the rest still counts.
        assert!(!Matcher::new(&a).assuming_agent("rpcutil").matches(&n));
        assert!(Matcher::new(&a).assuming_agent("nope").matches(&n));
        let r = Filter { agent: vec!["/^rpc/".into()], ..Default::default() };
        assert_eq!(Matcher::new(&r).assuming_agent("rpcutil").agent.len(), 1, "a regex is kept");
        assert!(compare(&json!(true), "==", "true"));
        assert!(compare(&json!("10"), ">", "9"));
    }
}
