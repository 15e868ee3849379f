//! Text that came from the network, made safe to print on a terminal.

/// `s` with every control character (ANSI escapes, newlines, carriage returns, bells)
/// shown as an escape (`\u{1b}`), so a hostile identity or message cannot clear the screen
/// or forge lines.
pub fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(super::printable("web1"), "web1");
        assert_eq!(super::printable("a\u{1b}[2Jb\nc"), "a\\u{1b}[2Jb\\nc");
    }
}
