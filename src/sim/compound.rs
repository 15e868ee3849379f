//! Evaluates compound (`-S`) filters against a simulated node, as go-choria's
//! `filter/compound` does: the expression is parsed by [`crate::fleet::compound`] (the same
//! parser the client validates with), then run with `with()`, `fact()`, `include()`,
//! `classes`, `agents`, `facts` and the simulator's own `identity`. The result must be the
//! boolean `true`; an expression that does not parse, fails at run time or uses what the
//! simulator does not evaluate (`let`, ranges, pipes, `semver`, ...) matches nothing, as a
//! server does with a broken expression. Evaluation never allocates more than the
//! expression and the node's facts hold, so a hostile expression costs nothing.

use std::collections::HashMap;

use regex::Regex;
use serde_json::Value;

use super::facts::compare;
use super::node::Node;
use crate::fleet::compound::{parse, BinOp, Expr, Step, UnaryOp};
use crate::fleet::filter::{matches_item, parse_fact};

/// Compiled regexes are capped, so a pattern from the network cannot take much memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A compound expression compiled once per request and applied to many nodes.
pub(crate) struct Program {
    expr: Option<Expr>,
    /// The literal patterns of `matches`, compiled up front (`None`: does not compile).
    regexes: HashMap<String, Option<Regex>>,
}

impl Program {
    /// Parses `src`; an unreadable expression gives a program that matches nothing.
    pub(crate) fn compile(src: &str) -> Program {
        let expr = parse(src).ok();
        let mut regexes = HashMap::new();
        if let Some(e) = &expr {
            literal_patterns(e, &mut |p| {
                regexes.entry(p.to_string()).or_insert_with(|| regex(p));
            });
        }
        Program { expr, regexes }
    }

    /// A program that matches nothing (a compound entry without an `expr`).
    pub(crate) fn never() -> Program {
        Program { expr: None, regexes: HashMap::new() }
    }

    /// True when the expression evaluates to `true` for `node`.
    pub(crate) fn matches(&self, node: &Node) -> bool {
        let Some(e) = &self.expr else { return false };
        Eval { node, prog: self }.eval(e) == Some(Value::Bool(true))
    }
}

/// Parses and evaluates `expr` against `node` in one go; unreadable expressions are false.
pub fn eval(expr: &str, node: &Node) -> bool {
    Program::compile(expr).matches(node)
}

fn regex(p: &str) -> Option<Regex> {
    regex::RegexBuilder::new(p).size_limit(REGEX_SIZE_LIMIT).build().ok()
}

/// Calls `f` with every string literal on the right of `matches` (depth is bounded by the parser).
fn literal_patterns(e: &Expr, f: &mut impl FnMut(&str)) {
    let mut each = |x: &Expr| literal_patterns(x, f);
    match e {
        Expr::Binary { first, rest } => {
            each(first);
            for (op, x) in rest {
                match (op, x) {
                    (BinOp::Matches | BinOp::NotMatches, Expr::Str(p)) => f(p),
                    _ => literal_patterns(x, f),
                }
            }
        }
        Expr::Unary { expr, .. } => each(expr),
        Expr::Cond { cond, then, otherwise } => {
            each(cond);
            each(then);
            each(otherwise);
        }
        Expr::Call { args, .. } | Expr::Array(args) => args.iter().for_each(each),
        _ => {}
    }
}

struct Eval<'a> {
    node: &'a Node,
    prog: &'a Program,
}

impl Eval<'_> {
    fn eval(&self, e: &Expr) -> Option<Value> {
        Some(match e {
            Expr::Nil => Value::Null,
            Expr::Bool(b) => Value::Bool(*b),
            Expr::Num(n) => num(*n)?,
            Expr::Str(s) => Value::String(s.clone()),
            Expr::Var(v) => self.var(v),
            Expr::Array(items) => Value::Array(items.iter().map(|x| self.eval(x)).collect::<Option<_>>()?),
            Expr::Map(entries) => {
                let mut m = serde_json::Map::new();
                for (k, v) in entries {
                    let key = match self.eval(k)? {
                        Value::String(s) => s,
                        Value::Number(n) => n.to_string(),
                        _ => return None,
                    };
                    m.insert(key, self.eval(v)?);
                }
                Value::Object(m)
            }
            Expr::Call { name, args } => self.call(name, args)?,
            Expr::Path { base, steps } => {
                let mut v = self.eval(base)?;
                for s in steps {
                    v = self.step(v, s)?;
                }
                v
            }
            Expr::Unary { op, expr } => match (op, self.eval(expr)?) {
                (UnaryOp::Not, Value::Bool(b)) => Value::Bool(!b),
                (UnaryOp::Neg, Value::Number(n)) => num(-n.as_f64()?)?,
                (UnaryOp::Plus, v @ Value::Number(_)) => v,
                _ => return None,
            },
            Expr::Binary { first, rest } => {
                let mut acc = self.eval(first)?;
                for (op, x) in rest {
                    acc = self.binary(*op, acc, x)?;
                }
                acc
            }
            Expr::Cond { cond, then, otherwise } => match self.eval(cond)? {
                Value::Bool(true) => self.eval(then)?,
                Value::Bool(false) => self.eval(otherwise)?,
                _ => return None,
            },
            // Not evaluated by the simulator: no match.
            Expr::Let { .. } => return None,
        })
    }

    fn var(&self, v: &str) -> Value {
        let n = self.node;
        let strings = |l: &[String]| Value::Array(l.iter().cloned().map(Value::String).collect());
        match v {
            "identity" => Value::String(n.identity.clone()),
            "classes" => strings(&n.classes),
            "agents" => strings(&n.agents),
            "facts" => n.facts.clone(),
            // expr.AllowUndefinedVariables: unknown names are nil.
            _ => Value::Null,
        }
    }

    fn call(&self, name: &str, args: &[Expr]) -> Option<Value> {
        let args: Vec<Value> = args.iter().map(|a| self.eval(a)).collect::<Option<_>>()?;
        let n = self.node;
        match (name, args.as_slice()) {
            ("fact", [Value::String(path)]) => Some(n.fact(path).cloned().unwrap_or(Value::Null)),
            ("with", [Value::String(q)]) => {
                // go-choria tries a fact filter first, then classes, then agents.
                let hit = match parse_fact(q) {
                    Ok(ff) => n.fact(&ff.fact).is_some_and(|v| compare(v, &ff.operator, &ff.value)),
                    Err(_) => {
                        n.classes.iter().any(|c| matches_item(q, c)) || n.agents.iter().any(|a| matches_item(q, a))
                    }
                };
                Some(Value::Bool(hit))
            }
            ("include", [Value::Array(hay), needle]) => Some(Value::Bool(hay.iter().any(|h| equal(h, needle)))),
            _ => None,
        }
    }

    fn step(&self, v: Value, s: &Step) -> Option<Value> {
        match (s, v) {
            (Step::Field { optional: true, .. }, Value::Null) => Some(Value::Null),
            (Step::Field { name, .. }, Value::Object(mut m)) => Some(m.remove(name).unwrap_or(Value::Null)),
            (Step::Index(i), v) => match (v, self.eval(i)?) {
                (Value::Object(mut m), Value::String(k)) => Some(m.remove(&k).unwrap_or(Value::Null)),
                (Value::Array(mut a), Value::Number(n)) => {
                    let i = n.as_f64()?;
                    let len = a.len() as f64;
                    let i = if i < 0.0 { i + len } else { i };
                    (i >= 0.0 && i < len && i.fract() == 0.0).then(|| a.swap_remove(i as usize))
                }
                _ => None,
            },
            _ => None,
        }
    }

    fn binary(&self, op: BinOp, left: Value, right: &Expr) -> Option<Value> {
        let bool_of = |v: Value| match v {
            Value::Bool(b) => Some(b),
            _ => None,
        };
        // The logical operators short-circuit, as in expr.
        match op {
            BinOp::And => {
                return Some(Value::Bool(bool_of(left)? && bool_of(self.eval(right)?)?));
            }
            BinOp::Or => {
                return Some(Value::Bool(bool_of(left)? || bool_of(self.eval(right)?)?));
            }
            BinOp::Coalesce if !left.is_null() => return Some(left),
            BinOp::Coalesce => return self.eval(right),
            _ => {}
        }
        let r = self.eval(right)?;
        let b = Value::Bool;
        let text = |v: &Value| v.as_str().map(str::to_string);
        Some(match op {
            BinOp::Eq => b(equal(&left, &r)),
            BinOp::Ne => b(!equal(&left, &r)),
            BinOp::Lt | BinOp::Gt | BinOp::Le | BinOp::Ge => {
                let ord = match (&left, &r) {
                    (Value::Number(a), Value::Number(c)) => a.as_f64()?.partial_cmp(&c.as_f64()?)?,
                    (Value::String(a), Value::String(c)) => a.cmp(c),
                    _ => return None,
                };
                b(match op {
                    BinOp::Lt => ord.is_lt(),
                    BinOp::Gt => ord.is_gt(),
                    BinOp::Le => ord.is_le(),
                    _ => ord.is_ge(),
                })
            }
            BinOp::Matches | BinOp::NotMatches => {
                let (s, p) = (text(&left)?, text(&r)?);
                let hit = match self.prog.regexes.get(&p) {
                    Some(re) => re.as_ref()?.is_match(&s),
                    None => regex(&p)?.is_match(&s),
                };
                b(hit == (op == BinOp::Matches))
            }
            BinOp::In | BinOp::NotIn => {
                let hit = match &r {
                    Value::Array(a) => a.iter().any(|x| equal(x, &left)),
                    Value::Object(m) => m.contains_key(left.as_str()?),
                    _ => return None,
                };
                b(hit == (op == BinOp::In))
            }
            BinOp::Contains | BinOp::NotContains => b(text(&left)?.contains(&text(&r)?) == (op == BinOp::Contains)),
            BinOp::StartsWith | BinOp::NotStartsWith => {
                b(text(&left)?.starts_with(&text(&r)?) == (op == BinOp::StartsWith))
            }
            BinOp::EndsWith | BinOp::NotEndsWith => b(text(&left)?.ends_with(&text(&r)?) == (op == BinOp::EndsWith)),
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Pow => {
                let (x, y) = (left.as_f64()?, r.as_f64()?);
                num(match op {
                    BinOp::Add => x + y,
                    BinOp::Sub => x - y,
                    BinOp::Mul => x * y,
                    BinOp::Div => x / y,
                    BinOp::Mod => x % y,
                    _ => x.powf(y),
                })?
            }
            // Ranges and pipes build collections: not evaluated here.
            _ => return None,
        })
    }
}

fn num(n: f64) -> Option<Value> {
    serde_json::Number::from_f64(n).map(Value::Number)
}

/// expr's equality: numbers by value (gjson's float64 equals an int literal), else exact.
fn equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn evaluates_the_common_forms() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let mut n = Node::generate(1, 3, "example.net", "1", &mut rng);
        n.facts = serde_json::json!({"country": "mt", "cpus": 8, "os": {"family": "Debian"}, "nics": ["eth0"]});
        n.classes = vec!["apache".into()];
        assert!(eval("with('apache') && fact('country') == 'mt'", &n));
        assert!(eval("with('apache') and not with('nginx')", &n));
        assert!(eval("fact('cpus') >= 4 && (fact('os.family') == 'RedHat' || fact('os.family') == 'Debian')", &n));
        assert!(eval("identity =~ '^n001'", &n));
        assert!(eval("identity matches '^n00[12]' && identity not matches 'web'", &n));
        assert!(eval("with('country=mt')", &n));
        assert!(eval("'apache' in classes && 'nginx' not in classes", &n));
        assert!(eval("include(fact('nics'), 'eth0') && facts.os.family startsWith 'Deb'", &n));
        assert!(eval("fact('cpus') * 2 == 16 ? true : false", &n));
        assert!(eval("fact('missing') ?? 'x' == 'x'", &n));
        assert!(!eval("with('nginx') || fact('cpus') < 2", &n));
        assert!(!eval("with('apache' &&", &n));
        assert!(!eval("unknown('x')", &n));
        // Not a boolean, or a type error at run time: no match, as on a server.
        assert!(!eval("fact('country')", &n));
        assert!(!eval("fact('country') > 3", &n));
    }

    #[test]
    fn hostile_expressions_match_nothing_and_return() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let n = Node::generate(1, 3, "example.net", "1", &mut rng);
        for src in [
            "€".to_string(),
            "with(\u{201C}apache\u{201D})".into(),
            "fact('cpus') > \u{2212}1".into(),
            format!("{}true", "!".repeat(10_000)),
            format!("{}true{}", "(".repeat(100_000), ")".repeat(100_000)),
            vec!["identity matches 'zzz'"; 20_000].join(" || "),
            "1..1000000000000 | len() > 0".into(),
            format!("identity matches '{}'", "(a{1000}){1000}"),
        ] {
            assert!(!eval(&src, &n), "{}", &src[..src.len().min(40)]);
        }
    }
}
