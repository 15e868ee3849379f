//! The operands of the grammar: literals, names and calls, parentheses, array and map
//! literals, and the postfix steps (`.name`, `?.name`, `[i]`, `[a:b]`, `(args)`) after them.

use super::{Parser, Res, KEYWORDS};
use crate::fleet::compound::lexer::Tok;
use crate::fleet::compound::{Expr, Step, SyntaxError};

impl Parser<'_> {
    /// An operand and the member accesses, indexes, slices and method calls after it.
    pub(super) fn postfix(&mut self) -> Res<Expr> {
        let base = self.primary()?;
        let mut steps = Vec::new();
        loop {
            if self.is(".") || self.is("?.") {
                let optional = self.is("?.");
                self.pos += 1;
                if optional && self.is("[") {
                    steps.push(self.index()?);
                    continue;
                }
                match self.peek().clone() {
                    Tok::Ident(name) => {
                        self.pos += 1;
                        steps.push(Step::Field { name, optional });
                    }
                    _ => return Err(self.error_here(format!("expected a member name, found {}", self.describe()))),
                }
            } else if self.is("[") {
                steps.push(self.index()?);
            } else if self.is("(") && !steps.is_empty() {
                steps.push(Step::Call(self.arguments()?));
            } else {
                break;
            }
        }
        Ok(if steps.is_empty() { base } else { Expr::Path { base: Box::new(base), steps } })
    }

    /// `[expr]` or `[from:to]`.
    fn index(&mut self) -> Res<Step> {
        let at = self.here();
        self.expect("[", None)?;
        self.nested(|p| {
            let from = if p.is(":") { None } else { Some(p.expression()?) };
            let step = if p.eat(":") {
                let to = if p.is("]") { None } else { Some(p.expression()?) };
                Step::Slice(from, to)
            } else {
                match from {
                    Some(e) => Step::Index(e),
                    None => return Err(p.unexpected()),
                }
            };
            p.expect("]", Some(at))?;
            Ok(step)
        })
    }

    /// `(a, b, ...)`; a trailing comma is allowed, as in expr.
    fn arguments(&mut self) -> Res<Vec<Expr>> {
        self.list("(", ")", |p| p.expression())
    }

    fn list<T>(&mut self, open: &str, close: &str, mut item: impl FnMut(&mut Self) -> Res<T>) -> Res<Vec<T>> {
        let at = self.here();
        self.expect(open, None)?;
        let mut out = Vec::new();
        while !self.eat(close) {
            if self.peek() == &Tok::Eof {
                return Err(SyntaxError::at(self.src, at, format!("unbalanced: '{open}' is never closed")));
            }
            out.push(self.nested(&mut item)?);
            if !self.eat(",") {
                if self.peek() == &Tok::Eof {
                    return Err(SyntaxError::at(self.src, at, format!("unbalanced: '{open}' is never closed")));
                }
                self.expect(close, Some(at))?;
                break;
            }
        }
        Ok(out)
    }

    fn primary(&mut self) -> Res<Expr> {
        let tok = self.peek().clone();
        match tok {
            Tok::Num(n) => {
                self.pos += 1;
                Ok(Expr::Num(n))
            }
            Tok::Str(s) => {
                self.pos += 1;
                Ok(Expr::Str(s))
            }
            Tok::Op("(") => {
                let at = self.here();
                self.pos += 1;
                if self.is(")") {
                    return Err(self.error_here("empty parentheses"));
                }
                let e = self.expression()?;
                if self.peek() == &Tok::Eof {
                    return Err(SyntaxError::at(self.src, at, "unbalanced: '(' is never closed"));
                }
                self.expect(")", Some(at))?;
                Ok(e)
            }
            Tok::Op("[") => Ok(Expr::Array(self.list("[", "]", |p| p.expression())?)),
            Tok::Op("{") => Ok(Expr::Map(self.list("{", "}", |p| p.entry())?)),
            Tok::Ident(w) => match w.as_str() {
                "true" | "false" => {
                    self.pos += 1;
                    Ok(Expr::Bool(w == "true"))
                }
                "nil" => {
                    self.pos += 1;
                    Ok(Expr::Nil)
                }
                k if KEYWORDS.contains(&k) => Err(self.unexpected()),
                _ => {
                    self.pos += 1;
                    if self.is("(") {
                        let args = self.arguments()?;
                        Ok(Expr::Call { name: w, args })
                    } else {
                        Ok(Expr::Var(w))
                    }
                }
            },
            _ => Err(self.unexpected()),
        }
    }

    /// A map entry: `key: value` with a name, string, number or `(expr)` as key.
    fn entry(&mut self) -> Res<(Expr, Expr)> {
        let key = match self.peek().clone() {
            Tok::Ident(w) => {
                self.pos += 1;
                Expr::Str(w)
            }
            Tok::Str(_) | Tok::Num(_) | Tok::Op("(") => self.primary()?,
            _ => return Err(self.error_here(format!("expected a map key, found {}", self.describe()))),
        };
        self.expect(":", None)?;
        Ok((key, self.expression()?))
    }
}
