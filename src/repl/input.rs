//! Input rules of the REPL: when a line needs more (open brackets, strings or comments), and
//! which lines may be kept in the history file.

/// True while brackets, a string, a backtick string or a block comment are still open.
pub fn needs_more(src: &str) -> bool {
    let mut depth: i64 = 0;
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            '"' | '\'' => {
                let mut closed = false;
                while let Some(d) = chars.next() {
                    match d {
                        '\\' => {
                            chars.next();
                        }
                        '\n' => break,
                        d if d == c => {
                            closed = true;
                            break;
                        }
                        _ => {}
                    }
                }
                if !closed {
                    return c == '"' && !src.ends_with('\n');
                }
            }
            '`' if !chars.by_ref().any(|d| d == '`') => return true,
            '/' if chars.peek() == Some(&'/') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                let mut closed = false;
                for d in chars.by_ref() {
                    if prev == '*' && d == '/' {
                        closed = true;
                        break;
                    }
                    prev = d;
                }
                if !closed {
                    return true;
                }
            }
            _ => {}
        }
    }
    depth > 0
}

/// Lines that may hold a secret never reach the history file: a call of `secret(...)`, or any
/// word that names a secret (`token`, `password`, `key`, ... as in `#{ token: "..." }`).
pub fn keep_in_history(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    let mut words = l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| !w.is_empty());
    !(l.contains("secret(") || words.any(crate::redact::is_secret_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_brackets_and_strings_continue() {
        assert!(needs_more("let m = #{"));
        assert!(needs_more("fn f(x) {\n  x +"));
        assert!(!needs_more("fn f(x) {\n  x + 1\n}"));
        assert!(needs_more("let s = `multi"));
        assert!(!needs_more("let s = \"a ( [ {\";"));
        assert!(needs_more("/* open comment"));
        assert!(!needs_more("let x = 1; // a ( comment"));
        assert!(!needs_more("let c = '(';"));
    }

    #[test]
    fn secrets_stay_out_of_history() {
        assert!(!keep_in_history("let t = secret(\"FLEETBOOK_PROVISION_TOKEN\");"));
        assert!(!keep_in_history("rpc_batch(\"choria_provision\", \"restart\", #{ token: \"s3cret\" }, #{})"));
        assert!(!keep_in_history("rpc_batch(\"choria_provision\", \"configure\", #{ key: k }, #{})"));
        assert!(!keep_in_history("let PW = \"x\";"));
        assert!(keep_in_history("discover(#{ class: \"apache\" })"));
        assert!(keep_in_history("let keys = m.keys();"));
    }
}
