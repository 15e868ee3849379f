//! Tokens of an expr-lang expression, as `expr/parser/lexer` reads them, with the byte
//! offset of each so errors can point at the character.

use super::SyntaxError;

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    /// An operator or punctuation, in its canonical spelling.
    Op(&'static str),
    Eof,
}

/// A token and where it starts (byte offset).
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) at: usize,
}

/// Operators, longest first so `&&` is not read as `&`.
const OPS: [&str; 33] = [
    "?.", "??", "..", ".", "&&", "||", "==", "!=", "<=", ">=", "=~", "**", "(", ")", "[", "]", "{", "}", ",", ":", "?",
    "!", "<", ">", "+", "-", "*", "/", "%", "^", "|", "=", ";",
];

/// Splits `src` into tokens. Every step consumes at least one character, so it always ends.
pub(crate) fn lex(src: &str) -> Result<Vec<Token>, SyntaxError> {
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        let rest = &src[at..];
        if c.is_whitespace() {
            i += 1;
        } else if rest.starts_with("//") {
            i += chars[i..].iter().take_while(|(_, ch)| *ch != '\n').count();
        } else if let Some(body) = rest.strip_prefix("/*") {
            let len = body.find("*/").ok_or_else(|| SyntaxError::at(src, at, "unclosed comment"))?;
            i += rest[..len + 4].chars().count();
        } else if c == '\'' || c == '"' || c == '`' {
            let (s, used) = string(src, &chars[i..], c)?;
            out.push(Token { tok: Tok::Str(s), at });
            i += used;
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(|(_, d)| d.is_ascii_digit())) {
            let used = number_len(&chars[i..]);
            let text: String = chars[i..i + used].iter().map(|(_, ch)| *ch).filter(|ch| *ch != '_').collect();
            let n = parse_number(&text).ok_or_else(|| SyntaxError::at(src, at, format!("bad number {text:?}")))?;
            if chars.get(i + used).is_some_and(|(_, ch)| ident_char(*ch)) {
                return Err(SyntaxError::at(src, at, "bad number syntax"));
            }
            out.push(Token { tok: Tok::Num(n), at });
            i += used;
        } else if ident_char(c) || c == '#' {
            let used = 1 + chars[i + 1..].iter().take_while(|(_, ch)| ident_char(*ch)).count();
            let word: String = chars[i..i + used].iter().map(|(_, ch)| *ch).collect();
            out.push(Token { tok: Tok::Ident(word), at });
            i += used;
        } else if let Some(op) = OPS.iter().find(|o| rest.starts_with(**o)) {
            out.push(Token { tok: Tok::Op(op), at });
            i += op.len();
        } else {
            return Err(SyntaxError::at(src, at, unexpected_char(c)));
        }
    }
    out.push(Token { tok: Tok::Eof, at: src.len() });
    Ok(out)
}

/// Letters (any script, as Go's `unicode.IsLetter`), digits, `_` and `$`.
fn ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

fn unexpected_char(c: char) -> String {
    let hint = match c {
        '&' => " (did you mean '&&'?)",
        '\u{2018}' | '\u{2019}' | '\u{201C}' | '\u{201D}' | '\u{00B4}' => " (a typographic quote; use ' or \")",
        '\u{2212}' | '\u{2013}' | '\u{2014}' => " (a typographic dash; use -)",
        _ => "",
    };
    format!("unexpected character {c:?} (U+{:04X}){hint}", c as u32)
}

/// A quoted string starting at `chars[0]`; returns its value and the characters used.
fn string(src: &str, chars: &[(usize, char)], quote: char) -> Result<(String, usize), SyntaxError> {
    let mut s = String::new();
    let mut i = 1;
    while let Some(&(at, c)) = chars.get(i) {
        if c == quote {
            return Ok((s, i + 1));
        }
        if c == '\\' && quote != '`' {
            let Some(&(_, e)) = chars.get(i + 1) else { break };
            match e {
                'n' => s.push('\n'),
                't' => s.push('\t'),
                'r' => s.push('\r'),
                '0' => s.push('\0'),
                'u' | 'x' | 'U' => {
                    // Keep the escape as written; only its syntax matters here.
                    s.push('\\');
                    s.push(e);
                }
                other if other == quote || other == '\\' || "abfv'\"".contains(other) => s.push(other),
                other => return Err(SyntaxError::at(src, at, format!("unknown escape sequence \\{other}"))),
            }
            i += 2;
            continue;
        }
        s.push(c);
        i += 1;
    }
    Err(SyntaxError::at(src, chars[0].0, "unterminated string"))
}

/// Length in characters of a number literal: hex/octal/binary prefixes, `_` separators,
/// a fraction (not when `..` follows, which is the range operator) and an exponent.
fn number_len(chars: &[(usize, char)]) -> usize {
    let at = |i: usize| chars.get(i).map(|(_, c)| *c);
    let mut i = 0;
    if at(0) == Some('0') && matches!(at(1), Some('x' | 'X' | 'o' | 'O' | 'b' | 'B')) {
        i = 2;
        while at(i).is_some_and(|c| c.is_ascii_hexdigit() || c == '_') {
            i += 1;
        }
        return i;
    }
    while at(i).is_some_and(|c| c.is_ascii_digit() || c == '_') {
        i += 1;
    }
    if at(i) == Some('.') && at(i + 1) != Some('.') {
        i += 1;
        while at(i).is_some_and(|c| c.is_ascii_digit() || c == '_') {
            i += 1;
        }
    }
    if matches!(at(i), Some('e' | 'E')) {
        let mut j = i + 1;
        if matches!(at(j), Some('+' | '-')) {
            j += 1;
        }
        if at(j).is_some_and(|c| c.is_ascii_digit()) {
            i = j;
            while at(i).is_some_and(|c| c.is_ascii_digit() || c == '_') {
                i += 1;
            }
        }
    }
    i
}

fn parse_number(text: &str) -> Option<f64> {
    let radix = |p: &str, r: u32| u64::from_str_radix(p, r).ok().map(|n| n as f64);
    match text.get(..2) {
        Some("0x" | "0X") => radix(&text[2..], 16),
        Some("0o" | "0O") => radix(&text[2..], 8),
        Some("0b" | "0B") => radix(&text[2..], 2),
        _ => text.parse().ok(),
    }
}
