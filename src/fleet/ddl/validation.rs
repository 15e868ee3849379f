//! An input's `validation`: a named validator or a Go (RE2) regular expression, decided as
//! go-choria's `validateStringValidation` does, and compiled once when the DDL loads.

/// What string values of an input must satisfy.
#[derive(Debug, Clone)]
pub enum Validation {
    /// No shell metacharacters.
    Shellsafe,
    /// `ipv4address`.
    Ipv4,
    /// `ipv6address`.
    Ipv6,
    /// `ipaddress`: either.
    Ip,
    /// A name go-choria does not know (it starts with a lowercase letter): go-choria warns and
    /// lets every value pass, and so do we.
    Unsupported(String),
    /// A regular expression, as written in the DDL, compiled when the DDL loads (a file) or
    /// on first use (the built-in DDLs, which a test compiles: compiling their ~50 regexes
    /// was a third of a short command's CPU).
    Regex { pattern: String, regex: std::sync::Arc<std::sync::OnceLock<Option<regex::Regex>>> },
}

impl Validation {
    /// Reads a DDL `validation`: `None` for an empty one, an error for a regex that does not
    /// compile.
    pub fn parse(text: &str) -> Result<Option<Validation>, regex::Error> {
        let v = Validation::parse_unchecked(text);
        if let Some(Validation::Regex { pattern, regex }) = &v {
            let compiled = go_regex(pattern)?;
            let _ = regex.set(Some(compiled));
        }
        Ok(v)
    }

    /// [`Validation::parse`] without compiling a regex now: for the built-in DDLs only.
    pub(crate) fn parse_unchecked(text: &str) -> Option<Validation> {
        Some(match text {
            "" => return None,
            "shellsafe" => Validation::Shellsafe,
            "ipv4address" => Validation::Ipv4,
            "ipv6address" => Validation::Ipv6,
            "ipaddress" => Validation::Ip,
            n if n.starts_with(|c: char| c.is_ascii_lowercase()) => Validation::Unsupported(n.to_string()),
            re => Validation::Regex { pattern: re.to_string(), regex: Default::default() },
        })
    }

    /// Checks a string value; the error says what is wrong with it.
    pub(crate) fn check(&self, s: &str) -> Result<(), String> {
        match self {
            Validation::Unsupported(_) => Ok(()),
            Validation::Shellsafe => match s.chars().find(|c| "`$;|&><".contains(*c)) {
                Some(c) => Err(format!("contains the shell-unsafe character {c:?}")),
                None => Ok(()),
            },
            Validation::Ipv4 => s.parse::<std::net::Ipv4Addr>().map(|_| ()).map_err(|_| "not an IPv4 address".into()),
            Validation::Ipv6 => s.parse::<std::net::Ipv6Addr>().map(|_| ()).map_err(|_| "not an IPv6 address".into()),
            Validation::Ip => s.parse::<std::net::IpAddr>().map(|_| ()).map_err(|_| "not an IP address".into()),
            Validation::Regex { pattern, regex } => match regex.get_or_init(|| go_regex(pattern).ok()) {
                Some(re) if re.is_match(s) => Ok(()),
                Some(_) => Err(format!("does not match the validation /{pattern}/")),
                None => Err(format!("the validation /{pattern}/ does not compile")),
            },
        }
    }
}

/// Compiles a DDL regex written for Go's RE2. Go reads a `{` that does not open a valid
/// repetition (`{2}`, `{2,}`, `{2,5}`) as a literal brace (go-choria's own choria_provision DDL
/// has `^{.+}$`); Rust's regex refuses it, so such braces are escaped first.
fn go_regex(re: &str) -> Result<regex::Regex, regex::Error> {
    let mut out = String::with_capacity(re.len() + 8);
    let mut chars = re.char_indices().peekable();
    let mut in_class = false;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                if let Some((_, n)) = chars.next() {
                    out.push(n);
                }
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // A `]` right after `[` or `[^` is a literal member, not the end.
                if let Some(&(_, '^')) = chars.peek() {
                    out.push('^');
                    chars.next();
                }
                if let Some(&(_, ']')) = chars.peek() {
                    out.push(']');
                    chars.next();
                }
                continue;
            }
            ']' if in_class => in_class = false,
            '{' if !in_class && !is_repetition(&re[i + 1..]) => {
                out.push_str("\\{");
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    regex::Regex::new(&out)
}

/// Whether `rest` (the text after a `{`) is `n}`, `n,}` or `n,m}`.
fn is_repetition(rest: &str) -> bool {
    let Some(end) = rest.find('}') else { return false };
    let body = &rest[..end];
    let (min, max) = body.split_once(',').unwrap_or((body, "0"));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    !min.is_empty() && digits(min) && digits(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_regexes_compile() {
        // go-choria's choria_provision DDL: a brace that is no repetition is a literal in RE2.
        let r = go_regex("^{.+}$").unwrap();
        assert!(r.is_match("{\"a\":1}") && !r.is_match("x"));
        assert!(go_regex("^a{2}$").unwrap().is_match("aa"));
        assert!(go_regex("^a{2,}$").unwrap().is_match("aaa"));
        assert!(go_regex("^[{]x\\{$").unwrap().is_match("{x{"));
        assert!(go_regex("^[]{]+$").unwrap().is_match("]{"));
        assert!(go_regex("^(unclosed").is_err());
    }

    #[test]
    fn named_validators_go_choria_does_not_know_pass() {
        assert!(matches!(Validation::parse("hostname"), Ok(Some(Validation::Unsupported(_)))));
        assert!(matches!(Validation::parse("^x$"), Ok(Some(Validation::Regex { .. }))));
    }

    #[test]
    fn validations_check_string_values() {
        let v = |text: &str| Validation::parse(text).unwrap().unwrap();
        assert!(Validation::parse("").unwrap().is_none());
        assert!(v("hostname").check("any thing; at all").is_ok());
        assert_eq!(v("shellsafe").check("a;b"), Err("contains the shell-unsafe character ';'".into()));
        assert!(v("ipv4address").check("10.0.0.1").is_ok() && v("ipv4address").check("::1").is_err());
        assert!(v("ipv6address").check("::1").is_ok() && v("ipaddress").check("x").is_err());
        assert_eq!(v("^a+$").check("b"), Err("does not match the validation /^a+$/".into()));
    }
}
