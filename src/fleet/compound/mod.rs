//! Compound (`-S`) filters: Choria's expr-lang expressions. One parser serves the client,
//! which rejects what is certainly not expr syntax before sending, and the simulator, which
//! evaluates the tree. It is a superset reader: every form expr-lang parses that Choria users
//! write (`with('apache') && fact('os.family') == 'Debian'`, `'x' in classes`, `matches`,
//! ternaries, pipes, `let`) is accepted, plus `=~` which the simulator has always read.
//! Nesting is bounded, so no input can exhaust the stack, and the lexer always advances.

mod lexer;
mod parser;

/// How deep expressions may nest (parentheses, unary operators, brackets, branches).
pub const MAX_DEPTH: usize = 64;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Nil,
    Bool(bool),
    Num(f64),
    Str(String),
    /// A variable (`identity`, `classes`, `facts`, the `#` of predicates, ...).
    Var(String),
    Array(Vec<Expr>),
    Map(Vec<(Expr, Expr)>),
    /// A function call by name: `with('apache')`.
    Call {
        name: String,
        args: Vec<Expr>,
    },
    /// Member access, indexing, slicing and method calls after a base, left to right.
    Path {
        base: Box<Expr>,
        steps: Vec<Step>,
    },
    Unary {
        op: UnaryOp,
        expr: Box<Expr>,
    },
    /// Operators of one precedence level, applied left to right: `first op1 e1 op2 e2 ...`.
    /// Kept flat, so a long `||` list does not make the tree deep.
    Binary {
        first: Box<Expr>,
        rest: Vec<(BinOp, Expr)>,
    },
    Cond {
        cond: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
    Let {
        name: String,
        value: Box<Expr>,
        body: Box<Expr>,
    },
}

/// One step of a [`Expr::Path`].
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// `.name` or `?.name`.
    Field { name: String, optional: bool },
    /// `[expr]`.
    Index(Expr),
    /// `[from:to]`, either side optional.
    Slice(Option<Expr>, Option<Expr>),
    /// `(args)` after a member: a method call.
    Call(Vec<Expr>),
}

/// Prefix operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Not,
    Neg,
    Plus,
}

/// Infix operators; the `Not*` forms are expr-lang's `not in`, `not matches`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Pipe,
    Coalesce,
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    /// `matches`, or the simulator's historical `=~`.
    Matches,
    NotMatches,
    In,
    NotIn,
    Contains,
    NotContains,
    StartsWith,
    NotStartsWith,
    EndsWith,
    NotEndsWith,
    Range,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
}

/// Why an expression is not valid, and where (1-based character column).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syntax error at column {column}: {message}")]
pub struct SyntaxError {
    pub column: usize,
    pub message: String,
}

impl SyntaxError {
    /// An error at byte offset `at` of `src`.
    pub(crate) fn at(src: &str, at: usize, message: impl Into<String>) -> SyntaxError {
        let at = at.min(src.len());
        let column = src.get(..at).map_or(at, |s| s.chars().count()) + 1;
        SyntaxError { column, message: message.into() }
    }

    /// The message, then the expression with a caret under the column.
    pub fn render(&self, src: &str) -> String {
        let line: String = src.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        format!("{self}\n    {line}\n    {}^", " ".repeat(self.column - 1))
    }
}

/// The first literal `matches` pattern in `e` that is not a valid regular expression, with
/// the compiler's error: a server would silently match nothing with it.
pub fn bad_literal_regex(e: &Expr) -> Option<(String, regex::Error)> {
    let check = |pat: &str| regex::Regex::new(pat).err().map(|err| (pat.to_string(), err));
    match e {
        Expr::Binary { first, rest } => {
            let mut left: &Expr = first;
            for (op, right) in rest {
                if matches!(op, BinOp::Matches | BinOp::NotMatches) {
                    if let Expr::Str(pat) = right {
                        if let Some(bad) = check(pat) {
                            return Some(bad);
                        }
                    }
                }
                if let Some(bad) = bad_literal_regex(left) {
                    return Some(bad);
                }
                left = right;
            }
            bad_literal_regex(left)
        }
        Expr::Unary { expr, .. } => bad_literal_regex(expr),
        Expr::Cond { cond, then, otherwise } => {
            bad_literal_regex(cond).or_else(|| bad_literal_regex(then)).or_else(|| bad_literal_regex(otherwise))
        }
        Expr::Let { value, body, .. } => bad_literal_regex(value).or_else(|| bad_literal_regex(body)),
        Expr::Call { args, .. } | Expr::Array(args) => args.iter().find_map(bad_literal_regex),
        _ => None,
    }
}

/// Parses a compound expression.
pub fn parse(src: &str) -> Result<Expr, SyntaxError> {
    parser::Parser::new(src, lexer::lex(src)?).parse()
}

#[cfg(test)]
mod tests;
