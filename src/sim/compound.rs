//! A small evaluator for compound (`-S`) filters: the subset of expr-lang that Choria's
//! examples use: `with('apache')`, `fact('os.family') == 'Debian'`, `identity =~ 'web'`,
//! `&&`, `||`, `!`, `and`, `or`, `not`, parentheses and the comparison operators.
//! An expression it cannot read matches nothing, as a server does with a broken expression.

use serde_json::Value;

use super::node::{compare, fact_text, Node};
use crate::fleet::filter::matches_item;
use crate::fleet::filter::parse_fact;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn lex(src: &str) -> Option<Vec<Tok>> {
    const OPS: [&str; 12] = ["&&", "||", "==", "!=", "<=", ">=", "=~", "<", ">", "!", "(", ")"];
    let b = src.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i] as char;
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' {
            let end = src[i + 1..].find(c)? + i + 1;
            out.push(Tok::Str(src[i + 1..end].to_string()));
            i = end + 1;
        } else if c.is_ascii_digit() {
            let len = src[i..].find(|ch: char| !(ch.is_ascii_digit() || ch == '.')).unwrap_or(src.len() - i);
            out.push(Tok::Num(src[i..i + len].parse().ok()?));
            i += len;
        } else if c.is_ascii_alphabetic() || c == '_' {
            // ASCII only: `b[i] as char` of a UTF-8 lead byte can look alphabetic while the
            // character is not, which matched zero bytes and looped forever (found by fuzzing).
            let len = src[i..].find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_')).unwrap_or(src.len() - i);
            out.push(Tok::Ident(src[i..i + len].to_string()));
            i += len;
        } else if c == ',' {
            out.push(Tok::Comma);
            i += 1;
        } else {
            let op = OPS.iter().find(|o| src[i..].starts_with(**o))?;
            out.push(match *op {
                "(" => Tok::LParen,
                ")" => Tok::RParen,
                o => Tok::Op(o),
            });
            i += op.len();
        }
    }
    Some(out)
}

#[derive(Debug, Clone)]
enum Val {
    Bool(bool),
    Json(Value),
}

impl Val {
    fn truthy(&self) -> bool {
        match self {
            Val::Bool(b) => *b,
            Val::Json(v) => !(v.is_null() || v == &Value::Bool(false)),
        }
    }
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    node: &'a Node,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn eat_word(&mut self, op: &str, word: &str) -> bool {
        let hit = match self.peek() {
            Some(Tok::Op(o)) => *o == op,
            Some(Tok::Ident(w)) => w == word,
            _ => false,
        };
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn or(&mut self) -> Option<Val> {
        let mut v = self.and()?;
        while self.eat_word("||", "or") {
            let r = self.and()?;
            v = Val::Bool(v.truthy() || r.truthy());
        }
        Some(v)
    }

    fn and(&mut self) -> Option<Val> {
        let mut v = self.not()?;
        while self.eat_word("&&", "and") {
            let r = self.not()?;
            v = Val::Bool(v.truthy() && r.truthy());
        }
        Some(v)
    }

    fn not(&mut self) -> Option<Val> {
        if self.eat_word("!", "not") {
            return Some(Val::Bool(!self.not()?.truthy()));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Option<Val> {
        let left = self.primary()?;
        let op = match self.peek() {
            Some(Tok::Op(o)) if ["==", "!=", "<", ">", "<=", ">=", "=~"].contains(o) => *o,
            Some(Tok::Ident(w)) if w == "matches" => "=~",
            _ => return Some(left),
        };
        self.pos += 1;
        let right = self.primary()?;
        let want = match right {
            Val::Json(v) => fact_text(&v),
            Val::Bool(b) => b.to_string(),
        };
        let actual = match left {
            Val::Json(v) => v,
            Val::Bool(b) => Value::Bool(b),
        };
        let want = if op == "=~" { format!("/{want}/") } else { want };
        Some(Val::Bool(compare(&actual, op, &want)))
    }

    fn primary(&mut self) -> Option<Val> {
        let tok = self.peek()?.clone();
        self.pos += 1;
        match tok {
            Tok::LParen => {
                let v = self.or()?;
                (self.peek() == Some(&Tok::RParen)).then(|| self.pos += 1)?;
                Some(v)
            }
            Tok::Str(s) => Some(Val::Json(Value::String(s))),
            Tok::Num(n) => Some(Val::Json(serde_json::json!(n))),
            Tok::Ident(w) if w == "true" || w == "false" => Some(Val::Bool(w == "true")),
            Tok::Ident(w) if w == "identity" => Some(Val::Json(Value::String(self.node.identity.clone()))),
            Tok::Ident(f) if self.peek() == Some(&Tok::LParen) => {
                self.pos += 1;
                let arg = match self.peek()?.clone() {
                    Tok::Str(s) => s,
                    _ => return None,
                };
                self.pos += 1;
                (self.peek() == Some(&Tok::RParen)).then(|| self.pos += 1)?;
                self.call(&f, &arg)
            }
            _ => None,
        }
    }

    fn call(&self, f: &str, arg: &str) -> Option<Val> {
        let n = self.node;
        match f {
            "fact" => Some(Val::Json(n.fact(arg).cloned().unwrap_or(Value::Null))),
            "with" => {
                let hit = n.classes.iter().any(|c| matches_item(arg, c))
                    || n.agents.iter().any(|a| matches_item(arg, a))
                    || parse_fact(arg)
                        .is_ok_and(|ff| n.fact(&ff.fact).is_some_and(|v| compare(v, &ff.operator, &ff.value)));
                Some(Val::Bool(hit))
            }
            _ => None,
        }
    }
}

/// Evaluates `expr` against `node`; unreadable expressions are false.
pub fn eval(expr: &str, node: &Node) -> bool {
    let Some(toks) = lex(expr) else { return false };
    let mut p = Parser { toks, pos: 0, node };
    match p.or() {
        Some(v) if p.pos == p.toks.len() => v.truthy(),
        _ => false,
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
        n.facts = serde_json::json!({"country": "mt", "cpus": 8, "os": {"family": "Debian"}});
        n.classes = vec!["apache".into()];
        assert!(eval("with('apache') && fact('country') == 'mt'", &n));
        assert!(eval("with('apache') and not with('nginx')", &n));
        assert!(eval("fact('cpus') >= 4 && (fact('os.family') == 'RedHat' || fact('os.family') == 'Debian')", &n));
        assert!(eval("identity =~ '^n001'", &n));
        assert!(eval("with('country=mt')", &n));
        assert!(!eval("with('nginx') || fact('cpus') < 2", &n));
        assert!(!eval("with('apache' &&", &n));
        assert!(!eval("unknown('x')", &n));
    }
}
