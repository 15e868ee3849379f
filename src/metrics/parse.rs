//! The Prometheus text exposition format, version 0.0.4, parsed as strictly as
//! prometheus/common's `expfmt` text parser: invalid input is an error naming the line and
//! the reason, never a partial result.

use std::collections::{BTreeMap, HashMap};

use super::{Family, Kind, Sample, Scrape};

/// Why the input is not valid, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    pub line: usize,
    pub reason: String,
}

struct FamilyState {
    index: usize,
    typed: bool,
    has_help: bool,
    has_samples: bool,
}

struct Parser {
    scrape: Scrape,
    by_name: HashMap<String, FamilyState>,
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn is_label_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Parses a Go float (`strconv.ParseFloat`): decimals, exponents, `NaN`, `+Inf`, `-Inf`.
fn parse_float(s: &str) -> Option<f64> {
    let t = s.strip_prefix('+').unwrap_or(s);
    let lower = t.to_ascii_lowercase();
    let neg = lower.starts_with('-');
    let body = lower.trim_start_matches('-');
    match body {
        "inf" | "infinity" => return Some(if neg { f64::NEG_INFINITY } else { f64::INFINITY }),
        "nan" if !neg && !s.starts_with('+') => return Some(f64::NAN),
        _ => {}
    }
    if !body.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | '+' | '-')) || body.is_empty() {
        return None;
    }
    s.parse::<f64>().ok()
}

/// A cursor over one line.
struct Line<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Line<'a> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_blank(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.pos += 1;
        }
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.bump();
        }
        &self.s[start..self.pos]
    }

    fn token(&mut self) -> &'a str {
        self.take_while(|c| c != ' ' && c != '\t')
    }

    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }
}

/// Parses a whole exposition. The input must end with a newline, as `expfmt` requires.
pub fn parse(text: &str) -> Result<Scrape, ParseError> {
    let mut p = Parser { scrape: Scrape::default(), by_name: HashMap::new() };
    if text.is_empty() {
        return Ok(p.scrape);
    }
    // Lines are read in order, so the first problem is the one reported; a last line
    // without its newline is an error once it has been read (expfmt: unexpected end of input).
    let segments: Vec<&str> = text.split('\n').collect();
    let last = segments.len() - 1;
    for (i, raw) in segments.iter().enumerate() {
        let err = |reason: String| ParseError { line: i + 1, reason };
        if i == last {
            if !raw.is_empty() {
                p.line(raw).map_err(err)?;
                return Err(err("unexpected end of input stream (no final newline)".into()));
            }
            break;
        }
        p.line(raw).map_err(err)?;
    }
    // Like expfmt, families that only had HELP or TYPE lines are dropped.
    let with_samples: std::collections::HashSet<String> = p.scrape.samples.iter().map(|s| s.family.clone()).collect();
    p.scrape.families.retain(|f| with_samples.contains(&f.name));
    Ok(p.scrape)
}

impl Parser {
    fn line(&mut self, raw: &str) -> Result<(), String> {
        let mut l = Line { s: raw, pos: 0 };
        l.skip_blank();
        match l.peek() {
            None => Ok(()),
            Some('#') => {
                l.bump();
                self.comment(&mut l)
            }
            Some(_) => self.sample(&mut l),
        }
    }

    fn family_state(&mut self, name: &str) -> &mut FamilyState {
        if !self.by_name.contains_key(name) {
            let index = self.scrape.families.len();
            self.scrape.families.push(Family { name: name.to_string(), kind: Kind::Untyped, help: None });
            self.by_name
                .insert(name.to_string(), FamilyState { index, typed: false, has_help: false, has_samples: false });
        }
        // Just inserted or already present.
        self.by_name.get_mut(name).expect("family state exists")
    }

    fn comment(&mut self, l: &mut Line) -> Result<(), String> {
        l.skip_blank();
        let keyword = l.token();
        if keyword != "HELP" && keyword != "TYPE" {
            return Ok(()); // any other comment
        }
        l.skip_blank();
        if l.at_end() {
            return Ok(()); // `# HELP` alone is not an error
        }
        let name = l.take_while(|c| !matches!(c, ' ' | '\t'));
        if !name.starts_with(is_name_start) || !name.chars().all(is_name_char) {
            return Err(format!("invalid metric name {name:?} in {keyword} comment"));
        }
        l.skip_blank();
        if l.at_end() {
            // A name with nothing after it is ignored, as expfmt does.
            self.family_state(name);
            return Ok(());
        }
        if keyword == "HELP" {
            let help = unescape_help(l.rest())?;
            let st = self.family_state(name);
            if st.has_help {
                return Err(format!("second HELP line for metric name {name:?}"));
            }
            st.has_help = true;
            let idx = st.index;
            self.scrape.families[idx].help = Some(help);
            return Ok(());
        }
        let t = l.token();
        let kind = Kind::parse(t).ok_or_else(|| {
            format!("unknown metric type {t:?} (expected counter, gauge, histogram, summary or untyped)")
        })?;
        l.skip_blank();
        if !l.at_end() {
            return Err(format!("unexpected text after TYPE: {:?}", l.rest()));
        }
        let st = self.family_state(name);
        if st.typed || st.has_samples {
            return Err(format!("second TYPE line for metric name {name:?}, or TYPE reported after samples"));
        }
        st.typed = true;
        let idx = st.index;
        self.scrape.families[idx].kind = kind;
        Ok(())
    }

    /// The family a sample name belongs to: itself, or a summary/histogram it is part of.
    fn family_of(&self, name: &str) -> (String, Kind) {
        if let Some(st) = self.by_name.get(name) {
            return (name.to_string(), self.scrape.families[st.index].kind);
        }
        for (suffix, kinds) in [
            ("_sum", &[Kind::Summary, Kind::Histogram][..]),
            ("_count", &[Kind::Summary, Kind::Histogram]),
            ("_bucket", &[Kind::Histogram]),
        ] {
            if let Some(base) = name.strip_suffix(suffix) {
                if let Some(st) = self.by_name.get(base) {
                    let kind = self.scrape.families[st.index].kind;
                    if kinds.contains(&kind) {
                        return (base.to_string(), kind);
                    }
                }
            }
        }
        (name.to_string(), Kind::Untyped)
    }

    fn sample(&mut self, l: &mut Line) -> Result<(), String> {
        let name = l.take_while(is_name_char);
        if name.is_empty() || !name.starts_with(is_name_start) {
            return Err(format!("invalid metric name at {:?}", l.rest()));
        }
        let (family, kind) = self.family_of(name);
        l.skip_blank();
        let labels = if l.peek() == Some('{') {
            l.bump();
            labels(l)?
        } else {
            BTreeMap::new()
        };
        match kind {
            Kind::Summary if name == family => check_float_label(&labels, "quantile")?,
            Kind::Histogram if name.ends_with("_bucket") && name != family => check_float_label(&labels, "le")?,
            _ => {}
        }
        l.skip_blank();
        let v = l.token();
        if v.is_empty() {
            return Err("missing sample value".into());
        }
        let value = parse_float(v).ok_or_else(|| format!("expected a float as value, got {v:?}"))?;
        l.skip_blank();
        let timestamp_ms = match l.token() {
            "" => None,
            t => Some(
                t.parse::<i64>().map_err(|_| format!("expected an integer timestamp in milliseconds, got {t:?}"))?,
            ),
        };
        l.skip_blank();
        if !l.at_end() {
            return Err(format!("unexpected text after the sample: {:?}", l.rest()));
        }
        self.family_state(&family).has_samples = true;
        self.scrape.samples.push(Sample { name: name.to_string(), family, kind, labels, value, timestamp_ms });
        Ok(())
    }
}

fn check_float_label(labels: &BTreeMap<String, String>, key: &str) -> Result<(), String> {
    match labels.get(key) {
        Some(v) if parse_float(v).is_none() => Err(format!("expected a float as {key} label value, got {v:?}")),
        _ => Ok(()),
    }
}

/// Reads `name="value",...}` after the opening brace.
fn labels(l: &mut Line) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    loop {
        l.skip_blank();
        if l.peek() == Some('}') {
            l.bump();
            return Ok(out);
        }
        let name = l.take_while(is_label_char);
        if name.is_empty() || !name.starts_with(is_label_start) {
            return Err(format!("invalid label name at {:?}", l.rest()));
        }
        if name == "__name__" {
            return Err("label name \"__name__\" is reserved".into());
        }
        l.skip_blank();
        if l.bump() != Some('=') {
            return Err(format!("expected '=' after label name {name:?}"));
        }
        l.skip_blank();
        if l.bump() != Some('"') {
            return Err(format!("expected '\"' to start the value of label {name:?}"));
        }
        let value = label_value(l)?;
        if out.insert(name.to_string(), value).is_some() {
            return Err(format!("duplicate label name {name:?}"));
        }
        l.skip_blank();
        match l.bump() {
            Some(',') => continue,
            Some('}') => return Ok(out),
            other => return Err(format!("expected ',' or '}}' after label value, got {other:?}")),
        }
    }
}

/// A quoted label value: `\\`, `\"` and `\n` are the only escapes.
fn label_value(l: &mut Line) -> Result<String, String> {
    let mut v = String::new();
    loop {
        match l.bump() {
            None => return Err("label value not terminated (a raw newline is not allowed)".into()),
            Some('"') => return Ok(v),
            Some('\\') => match l.bump() {
                Some('\\') => v.push('\\'),
                Some('"') => v.push('"'),
                Some('n') => v.push('\n'),
                other => {
                    return Err(format!(
                        "invalid escape sequence '\\{}' in label value",
                        other.map(String::from).unwrap_or_default()
                    ))
                }
            },
            Some(c) => v.push(c),
        }
    }
}

/// HELP text: `\\` and `\n` are the only escapes.
fn unescape_help(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            other => {
                return Err(format!(
                    "invalid escape sequence '\\{}' in HELP",
                    other.map(String::from).unwrap_or_default()
                ))
            }
        }
    }
    Ok(out)
}
