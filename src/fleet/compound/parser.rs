//! Recursive descent over the tokens, with expr-lang's precedence (lowest first): `let`/`if`,
//! `|`, `?:`, `??`, `||`, `&&`, comparisons, `..`, `+ -`, `* / %`, `** ^`, prefix, postfix.
//! This file holds the parser's state and the operator levels; `operand` the operands the
//! operators combine.

mod operand;

use super::lexer::{Tok, Token};
use super::{BinOp, Expr, SyntaxError, UnaryOp, MAX_DEPTH};

type Res<T> = Result<T, SyntaxError>;

/// Binary levels from loosest to tightest (ternary and `??` sit between pipe and `||`).
const LEVELS: [&[(&str, BinOp)]; 7] = [
    &[("||", BinOp::Or), ("or", BinOp::Or)],
    &[("&&", BinOp::And), ("and", BinOp::And)],
    &[
        ("==", BinOp::Eq),
        ("!=", BinOp::Ne),
        ("<=", BinOp::Le),
        (">=", BinOp::Ge),
        ("<", BinOp::Lt),
        (">", BinOp::Gt),
        ("=~", BinOp::Matches),
        ("matches", BinOp::Matches),
        ("in", BinOp::In),
        ("contains", BinOp::Contains),
        ("startsWith", BinOp::StartsWith),
        ("endsWith", BinOp::EndsWith),
    ],
    &[("..", BinOp::Range)],
    &[("+", BinOp::Add), ("-", BinOp::Sub)],
    &[("*", BinOp::Mul), ("/", BinOp::Div), ("%", BinOp::Mod)],
    &[("**", BinOp::Pow), ("^", BinOp::Pow)],
];

/// Words that are operators, never names.
const KEYWORDS: [&str; 11] =
    ["and", "or", "not", "in", "matches", "contains", "startsWith", "endsWith", "let", "if", "else"];

pub(crate) struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(src: &'a str, toks: Vec<Token>) -> Parser<'a> {
        Parser { src, toks, pos: 0, depth: 0 }
    }

    pub(crate) fn parse(mut self) -> Res<Expr> {
        if self.peek() == &Tok::Eof {
            return Err(self.error_here("empty expression"));
        }
        let e = self.expression()?;
        match self.peek() {
            Tok::Eof => Ok(e),
            Tok::Op(")") | Tok::Op("]") | Tok::Op("}") => {
                Err(self.error_here(format!("unbalanced {}", self.describe())))
            }
            Tok::Op("=") => Err(self.error_here("unexpected '=' (did you mean '=='?)")),
            _ => Err(self.error_here(format!("unexpected {} after a complete expression", self.describe()))),
        }
    }

    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn peek_at(&self, n: usize) -> &Tok {
        self.toks.get(self.pos + n).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn here(&self) -> usize {
        self.toks.get(self.pos).map_or(self.src.len(), |t| t.at)
    }

    fn describe(&self) -> String {
        match self.peek() {
            Tok::Eof => match self.pos.checked_sub(1).and_then(|p| self.toks.get(p)).map(|t| &t.tok) {
                Some(Tok::Op(o)) => format!("end of expression after '{o}'"),
                Some(Tok::Ident(w)) if KEYWORDS.contains(&w.as_str()) => format!("end of expression after '{w}'"),
                _ => "end of expression".into(),
            },
            Tok::Op(o) => format!("'{o}'"),
            Tok::Ident(w) => format!("'{w}'"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Num(n) => format!("number {n}"),
        }
    }

    fn error_here(&self, message: impl Into<String>) -> SyntaxError {
        SyntaxError::at(self.src, self.here(), message)
    }

    fn unexpected(&self) -> SyntaxError {
        let hint = if self.is("=") { " (did you mean '=='?)" } else { "" };
        self.error_here(format!("unexpected {}{hint}", self.describe()))
    }

    fn is(&self, s: &str) -> bool {
        match self.peek() {
            Tok::Op(o) => *o == s,
            Tok::Ident(w) => w == s,
            _ => false,
        }
    }

    fn eat(&mut self, s: &str) -> bool {
        let hit = self.is(s);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn expect(&mut self, s: &str, opened_at: Option<usize>) -> Res<()> {
        if self.eat(s) {
            return Ok(());
        }
        let mut e = self.error_here(format!("expected '{s}', found {}", self.describe()));
        if let (Some(at), Tok::Eof) = (opened_at, self.peek()) {
            e = SyntaxError::at(self.src, at, format!("unbalanced: this is never closed with '{s}'"));
        }
        Err(e)
    }

    /// Runs `f` one level deeper; past [`MAX_DEPTH`] it is an error, not a stack overflow.
    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Res<T>) -> Res<T> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error_here(format!("expression nested deeper than {MAX_DEPTH} levels")));
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    /// A whole expression: `let`, `if`, or a pipe.
    fn expression(&mut self) -> Res<Expr> {
        self.nested(|p| {
            if p.eat("let") {
                let name = p.name("a variable name after 'let'")?;
                p.expect("=", None)?;
                let value = p.expression()?;
                p.expect(";", None)?;
                let body = p.expression()?;
                return Ok(Expr::Let { name, value: Box::new(value), body: Box::new(body) });
            }
            if p.eat("if") {
                let cond = p.expression()?;
                let then = p.braced()?;
                if !p.eat("else") {
                    return Err(p.error_here(format!("expected 'else', found {}", p.describe())));
                }
                let otherwise = if p.eat("if") {
                    p.pos -= 1;
                    p.expression()?
                } else {
                    p.braced()?
                };
                return Ok(Expr::Cond { cond: Box::new(cond), then: Box::new(then), otherwise: Box::new(otherwise) });
            }
            p.pipe()
        })
    }

    fn name(&mut self, what: &str) -> Res<String> {
        match self.peek().clone() {
            Tok::Ident(w) if !KEYWORDS.contains(&w.as_str()) => {
                self.pos += 1;
                Ok(w)
            }
            _ => Err(self.error_here(format!("expected {what}, found {}", self.describe()))),
        }
    }

    fn braced(&mut self) -> Res<Expr> {
        let at = self.here();
        self.expect("{", None)?;
        let e = self.expression()?;
        self.expect("}", Some(at))?;
        Ok(e)
    }

    fn pipe(&mut self) -> Res<Expr> {
        let first = self.ternary()?;
        let mut rest = Vec::new();
        while self.eat("|") {
            rest.push((BinOp::Pipe, self.ternary()?));
        }
        Ok(flat(first, rest))
    }

    fn ternary(&mut self) -> Res<Expr> {
        let cond = self.coalesce()?;
        if !self.eat("?") {
            return Ok(cond);
        }
        let then = self.nested(|p| p.ternary())?;
        self.expect(":", None)?;
        let otherwise = self.nested(|p| p.ternary())?;
        Ok(Expr::Cond { cond: Box::new(cond), then: Box::new(then), otherwise: Box::new(otherwise) })
    }

    fn coalesce(&mut self) -> Res<Expr> {
        let first = self.binary(0)?;
        let mut rest = Vec::new();
        while self.eat("??") {
            rest.push((BinOp::Coalesce, self.binary(0)?));
        }
        Ok(flat(first, rest))
    }

    /// One level of left-associative operators, kept flat.
    fn binary(&mut self, level: usize) -> Res<Expr> {
        let Some(ops) = LEVELS.get(level) else { return self.unary() };
        let first = self.binary(level + 1)?;
        let mut rest = Vec::new();
        loop {
            let op = if level == 2 && self.is("not") {
                // `not in`, `not matches`, ... (expr's lexer joins them into one operator).
                let negated = match self.peek_at(1) {
                    Tok::Ident(w) => match w.as_str() {
                        "in" => Some(BinOp::NotIn),
                        "matches" => Some(BinOp::NotMatches),
                        "contains" => Some(BinOp::NotContains),
                        "startsWith" => Some(BinOp::NotStartsWith),
                        "endsWith" => Some(BinOp::NotEndsWith),
                        _ => None,
                    },
                    _ => None,
                };
                let Some(op) = negated else { break };
                self.pos += 2;
                op
            } else {
                let Some(&(_, op)) = ops.iter().find(|(s, _)| self.is(s)) else { break };
                self.pos += 1;
                op
            };
            rest.push((op, self.binary(level + 1)?));
        }
        Ok(flat(first, rest))
    }

    fn unary(&mut self) -> Res<Expr> {
        let op = if self.is("!") || self.is("not") {
            UnaryOp::Not
        } else if self.is("-") {
            UnaryOp::Neg
        } else if self.is("+") {
            UnaryOp::Plus
        } else {
            return self.postfix();
        };
        self.pos += 1;
        let expr = self.nested(|p| p.unary())?;
        Ok(Expr::Unary { op, expr: Box::new(expr) })
    }
}

fn flat(first: Expr, rest: Vec<(BinOp, Expr)>) -> Expr {
    if rest.is_empty() {
        first
    } else {
        Expr::Binary { first: Box::new(first), rest }
    }
}
