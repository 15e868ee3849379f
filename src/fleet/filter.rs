//! The Choria request filter (`protocol/filter.go`) and its command-line forms.

use serde::{Deserialize, Serialize};

use super::error::{FleetError, Result};

/// One fact comparison, as it travels on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactFilter {
    pub fact: String,
    pub operator: String,
    pub value: String,
}

/// The filter carried in every request. Go always sends all five arrays, so we do too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub fact: Vec<FactFilter>,
    #[serde(default)]
    pub cf_class: Vec<String>,
    #[serde(default)]
    pub agent: Vec<String>,
    #[serde(default)]
    pub identity: Vec<String>,
    #[serde(default)]
    pub compound: Vec<Vec<serde_json::Value>>,
}

/// The fact operators a Choria server understands.
pub const FACT_OPERATORS: [&str; 7] = ["==", "=~", "!=", "<=", ">=", "<", ">"];

impl Filter {
    /// A short description for progress lines: "all nodes" or the filter as JSON.
    pub fn describe(&self) -> String {
        if self.is_empty() {
            "all nodes".into()
        } else {
            serde_json::to_string(self).unwrap_or_default()
        }
    }

    /// True when no filter kind is set: every node matches.
    pub fn is_empty(&self) -> bool {
        self.fact.is_empty()
            && self.cf_class.is_empty()
            && self.agent.is_empty()
            && self.identity.is_empty()
            && self.compound.is_empty()
    }

    /// The identities when the filter is nothing but exact identities (`identityOptimize`):
    /// discovery can then skip the network.
    pub fn exact_identities_only(&self) -> Option<Vec<String>> {
        let only_identity = self.fact.is_empty()
            && self.cf_class.is_empty()
            && self.agent.is_empty()
            && self.compound.is_empty()
            && !self.identity.is_empty();
        if only_identity && !self.identity.iter().any(|i| is_regex(i)) {
            let mut ids = self.identity.clone();
            ids.sort();
            ids.dedup();
            Some(ids)
        } else {
            None
        }
    }

    /// Adds a fact filter in CLI form (`country=mt`, `cpus>=4`, `role=/web/`).
    pub fn add_fact(&mut self, spec: &str) -> Result<()> {
        self.fact.push(parse_fact(spec)?);
        Ok(())
    }

    /// Adds a combined (`-W`) filter as go-choria's `CombinedFilter` does: the text is split
    /// on spaces, and each word that parses as a fact filter (`country=mt`, `cpus>=4`) is
    /// one, every other word a class (`apache`, `/^role::/`). There is no identity or
    /// compound form.
    pub fn add_combined(&mut self, spec: &str) -> Result<()> {
        for word in spec.split(' ').filter(|w| !w.is_empty()) {
            match parse_combined_fact(word) {
                Some(ff) => {
                    if ff.operator == "=~" {
                        compile_slashed(&ff.value)?;
                    }
                    self.fact.push(ff)
                }
                None => self.cf_class.push(word.to_string()),
            }
        }
        Ok(())
    }

    /// Adds a compound (`-S`) expression; [`Filter::validate`] checks its syntax.
    pub fn add_compound(&mut self, expr: &str) {
        self.compound.push(vec![serde_json::json!({ "expr": expr })]);
    }

    /// Adds an agent to the agent filter unless it is there already.
    pub fn require_agent(&mut self, agent: &str) {
        if !self.agent.iter().any(|a| a == agent) {
            self.agent.push(agent.to_string());
        }
    }

    /// Checks every regular expression compiles and every compound expression parses, so a
    /// typo fails before sending instead of silently matching nothing.
    pub fn validate(&self) -> Result<()> {
        let lists = [&self.cf_class, &self.agent, &self.identity];
        for item in lists.into_iter().flatten() {
            if is_regex(item) {
                compile_slashed(item)?;
            }
        }
        for f in &self.fact {
            if !FACT_OPERATORS.contains(&f.operator.as_str()) {
                return Err(FleetError::Filter {
                    filter: f.fact.clone(),
                    reason: format!("unknown operator {}", f.operator),
                });
            }
            if f.operator == "=~" {
                compile_slashed(&f.value)?;
            }
        }
        for expr in self.compound.iter().flatten() {
            let Some(expr) = expr.get("expr").and_then(serde_json::Value::as_str) else {
                return Err(FleetError::Filter {
                    filter: expr.to_string(),
                    reason: "a compound filter needs an expr".into(),
                });
            };
            let parsed = super::compound::parse(expr)
                .map_err(|source| FleetError::FilterSyntax { filter: expr.to_string(), source })?;
            if let Some((pattern, source)) = super::compound::bad_literal_regex(&parsed) {
                return Err(FleetError::FilterPattern { filter: expr.to_string(), pattern, source });
            }
        }
        Ok(())
    }
}

/// Whether a filter entry is a `/regex/`.
pub fn is_regex(s: &str) -> bool {
    s.len() >= 2 && s.starts_with('/') && s.ends_with('/')
}

/// Exact match, or `/regex/` match; a broken regex matches nothing.
pub fn matches_item(pattern: &str, value: &str) -> bool {
    if is_regex(pattern) {
        compile_slashed(pattern).is_ok_and(|r| r.is_match(value))
    } else {
        pattern == value
    }
}

/// Compiles `/re/` (or a bare regex) into a `Regex`.
pub fn compile_slashed(s: &str) -> Result<regex::Regex> {
    let inner = if is_regex(s) { &s[1..s.len() - 1] } else { s };
    regex::Regex::new(inner).map_err(|source| FleetError::FilterRegex { filter: s.to_string(), source })
}

/// Parses a fact filter as `ParseFactFilterString` does: `=` is `==`, `=<` is `<=`, `=>` is
/// `>=`, and a `/value/` forces `=~`.
pub fn parse_fact(spec: &str) -> Result<FactFilter> {
    // Longest operators first, so `<=` is not read as `<`.
    const FORMS: [(&str, &str); 11] = [
        ("==", "=="),
        ("=~", "=~"),
        ("!=", "!="),
        ("<=", "<="),
        (">=", ">="),
        ("=<", "<="),
        ("=>", ">="),
        ("<", "<"),
        (">", ">"),
        ("=", "=="),
        ("~", "=~"),
    ];
    let bad = |reason: &str| FleetError::Filter { filter: spec.to_string(), reason: reason.to_string() };
    let (pos, len, op) = FORMS
        .iter()
        .filter_map(|(form, op)| spec.find(form).map(|p| (p, form.len(), *op)))
        .min_by_key(|(p, l, _)| (*p, usize::MAX - l))
        .ok_or_else(|| bad("expected fact<op>value, with op one of = == != =~ < > <= >="))?;
    let name = spec[..pos].trim();
    let value = spec[pos + len..].trim();
    if name.is_empty() {
        return Err(bad("missing fact name"));
    }
    if value.is_empty() {
        return Err(bad("missing value"));
    }
    let op = if is_regex(value) { "=~" } else { op };
    let ff = FactFilter { fact: name.to_string(), operator: op.to_string(), value: value.to_string() };
    if op == "=~" {
        compile_slashed(value)?;
    }
    Ok(ff)
}

/// go-choria's `ParseFactFilterString` (`filter/facts/facts.go`), which `-W` uses to tell a
/// fact from a class: the operators are found left to right as its regex
/// `<=|>=|=>|=<|<|>|!=|=~|={1,2}` finds them, the rightmost is the one, both sides must be
/// non-empty and must not start (left) or end (right) with an operator character; `None`
/// when the word is no fact filter.
pub fn parse_combined_fact(word: &str) -> Option<FactFilter> {
    const ALTERNATIVES: [&str; 9] = ["<=", ">=", "=>", "=<", "<", ">", "!=", "=~", "=="];
    let mut last = None;
    let mut i = 0;
    while i < word.len() {
        let rest = &word[i..];
        // `={1,2}` is greedy: `==` before `=`; the listed order is the regex's.
        let len = ALTERNATIVES
            .iter()
            .find(|a| rest.starts_with(*a))
            .map(|a| a.len())
            .or_else(|| rest.starts_with('=').then_some(1));
        match len {
            Some(l) => {
                last = Some((i, l));
                i += l;
            }
            None => i += rest.chars().next().map_or(1, char::len_utf8),
        }
    }
    let (at, len) = last?;
    let op = &word[at..at + len];
    let left = word[..at].trim();
    let right = word[at + len..].trim();
    // go checks the first and last character against the operator regex, which matches
    // `<`, `>` and `=` alone (not `!` or `~`).
    let single = |c: Option<char>| matches!(c, Some('<' | '>' | '='));
    if left.is_empty() || right.is_empty() || single(left.chars().next()) || single(right.chars().last()) {
        return None;
    }
    let op = match op {
        "=" => "==",
        "=<" => "<=",
        "=>" => ">=",
        other => other,
    };
    let op = if is_regex(right) { "=~" } else { op };
    Some(FactFilter { fact: left.to_string(), operator: op.to_string(), value: right.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_fact_forms() {
        let f = parse_fact("country=mt").unwrap();
        assert_eq!((f.fact.as_str(), f.operator.as_str(), f.value.as_str()), ("country", "==", "mt"));
        assert_eq!(parse_fact("cpus>=4").unwrap().operator, ">=");
        assert_eq!(parse_fact("cpus=>4").unwrap().operator, ">=");
        assert_eq!(parse_fact("cpus=<4").unwrap().operator, "<=");
        assert_eq!(parse_fact("cpus<4").unwrap().operator, "<");
        assert_eq!(parse_fact("role!=db").unwrap().operator, "!=");
        let r = parse_fact("role=/^web/").unwrap();
        assert_eq!((r.operator.as_str(), r.value.as_str()), ("=~", "/^web/"));
        assert_eq!(parse_fact("os.family==Debian").unwrap().fact, "os.family");
        assert!(parse_fact("country").is_err());
        assert!(parse_fact("=mt").is_err());
        assert!(parse_fact("role=/[/").is_err());
    }

    /// go-choria's `filter_test.go` cases, and the edges of its operator search.
    #[test]
    fn combined_filters_parse_as_go_choria_does() {
        let mut f = Filter::default();
        for w in ["foo", "/bar/", "baz", "country=mt", ""] {
            f.add_combined(w).unwrap();
        }
        assert_eq!(f.cf_class, ["foo", "/bar/", "baz"]);
        assert_eq!(f.fact, [FactFilter { fact: "country".into(), operator: "==".into(), value: "mt".into() }]);
        let mut g = Filter::default();
        g.add_combined("apache  cpus>=4 role=/^web/").unwrap();
        assert_eq!(g.cf_class, ["apache"]);
        assert_eq!(
            g.fact.iter().map(|f| (f.fact.as_str(), f.operator.as_str(), f.value.as_str())).collect::<Vec<_>>(),
            [("cpus", ">=", "4"), ("role", "=~", "/^web/")]
        );
        let p = |w: &str| parse_combined_fact(w).map(|f| (f.fact, f.operator, f.value));
        let t = |a: &str, b: &str, c: &str| Some((a.to_string(), b.to_string(), c.to_string()));
        assert_eq!(p("foo=bar"), t("foo", "==", "bar"));
        assert_eq!(p("foo==bar"), t("foo", "==", "bar"));
        assert_eq!(p("foo=~bar"), t("foo", "=~", "bar"));
        assert_eq!(p("foo=<1"), t("foo", "<=", "1"));
        assert_eq!(p("foo=>1"), t("foo", ">=", "1"));
        assert_eq!(p("foo!=1"), t("foo", "!=", "1"));
        assert_eq!(p("a=b=c"), t("a=b", "==", "c"), "the rightmost operator");
        assert_eq!(p("role::web"), None);
        assert_eq!(p("=mt"), None);
        assert_eq!(p("mt="), None);
        assert_eq!(p("a~b"), None, "a lone ~ is no operator for go-choria");
        let mut bad = Filter::default();
        assert!(bad.add_combined("role=/[/").is_err());
    }

    #[test]
    fn identity_shortcut_only_for_plain_identities() {
        let mut f = Filter { identity: vec!["b".into(), "a".into()], ..Default::default() };
        assert_eq!(f.exact_identities_only(), Some(vec!["a".into(), "b".into()]));
        f.identity.push("/web/".into());
        assert_eq!(f.exact_identities_only(), None);
        let g = Filter { identity: vec!["a".into()], cf_class: vec!["apache".into()], ..Default::default() };
        assert_eq!(g.exact_identities_only(), None);
    }

    #[test]
    fn wire_form_has_all_five_arrays() {
        let v = serde_json::to_value(Filter::default()).unwrap();
        for k in ["fact", "cf_class", "agent", "identity", "compound"] {
            assert!(v[k].as_array().unwrap().is_empty(), "{k}");
        }
    }
}
