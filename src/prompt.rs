//! Yes/no questions on the terminal: the one parser of answers, read so that Ctrl-C ends a
//! prompt at once instead of waiting for Enter.

use crate::interrupt::Interrupt;

/// Asks a human a question.
pub trait Prompter: Send + Sync {
    /// The answer line, or `None` when nobody can be asked.
    fn ask(&self, question: &str) -> Option<String>;
}

/// Reads answers from the terminal; Ctrl-C at the prompt answers no at once.
pub struct TerminalPrompter {
    pub interrupt: Interrupt,
}

impl Prompter for TerminalPrompter {
    fn ask(&self, question: &str) -> Option<String> {
        match read_answer(question, &self.interrupt) {
            Reply::Line(l) => Some(l),
            // An interrupted prompt is a "no"; the caller sees the interrupt as well.
            Reply::Interrupted => Some(String::new()),
            Reply::NoTerminal => None,
        }
    }
}

/// An answer to a yes/no question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Yes,
    No,
    /// Ctrl-C at the prompt.
    Interrupted,
    /// Nobody to ask: stdin or stderr is not a terminal.
    NoTerminal,
}

impl Answer {
    /// Reads a prompter's answer: Ctrl-C (seen on `interrupt`) wins over whatever was typed.
    pub fn from_reply(reply: Option<&str>, interrupt: &Interrupt) -> Answer {
        match reply {
            _ if interrupt.requested() => Answer::Interrupted,
            Some(a) if is_yes(a) => Answer::Yes,
            Some(_) => Answer::No,
            None => Answer::NoTerminal,
        }
    }
}

/// Asks `question [y/N]` on the terminal; only `y` or `yes` is a yes.
pub fn ask_yes_no(question: &str, interrupt: &Interrupt) -> Answer {
    match read_answer(&format!("{question} [y/N]"), interrupt) {
        Reply::Line(l) if is_yes(&l) => Answer::Yes,
        Reply::Line(_) => Answer::No,
        Reply::Interrupted => Answer::Interrupted,
        Reply::NoTerminal => Answer::NoTerminal,
    }
}

/// The one yes/no parser: `y` or `yes` in any case; everything else is no.
pub fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

enum Reply {
    Line(String),
    Interrupted,
    NoTerminal,
}

/// Reads one line from the terminal without blocking Ctrl-C: the terminal is polled, and a
/// press ends the prompt at once instead of waiting for Enter.
fn read_answer(question: &str, interrupt: &Interrupt) -> Reply {
    use std::io::IsTerminal;
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Reply::NoTerminal;
    }
    interrupt.first_press_means(Some("the question is left unanswered"));
    let reply = read_line(question, interrupt);
    interrupt.first_press_means(None);
    reply
}

/// [`read_answer`] on a terminal.
fn read_line(question: &str, interrupt: &Interrupt) -> Reply {
    use std::io::Write;
    eprint!("{question} ");
    let _ = std::io::stderr().flush();
    let mut line = Vec::new();
    loop {
        if interrupt.requested() {
            eprintln!();
            return Reply::Interrupted;
        }
        let mut fds = libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd on the stack, for the duration of the call.
        let ready = unsafe { libc::poll(&mut fds, 1, 100) };
        if ready <= 0 {
            continue;
        }
        let mut buf = [0u8; 256];
        // SAFETY: reads at most buf.len() bytes into our own buffer.
        let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            // End of input (Ctrl-D): nobody answered yes.
            return Reply::Line(String::from_utf8_lossy(&line).trim().to_string());
        }
        line.extend_from_slice(&buf[..n as usize]);
        if line.contains(&b'\n') {
            let text = String::from_utf8_lossy(&line);
            return Reply::Line(text.lines().next().unwrap_or("").trim().to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_y_and_yes_are_yes() {
        for a in ["y", "Y", " yes ", "YES"] {
            assert!(is_yes(a), "{a}");
        }
        for a in ["", "n", "no", "yep", "ja", "y es"] {
            assert!(!is_yes(a), "{a}");
        }
        let i = Interrupt::new();
        assert_eq!(Answer::from_reply(Some("y"), &i), Answer::Yes);
        assert_eq!(Answer::from_reply(Some("nope"), &i), Answer::No);
        assert_eq!(Answer::from_reply(None, &i), Answer::NoTerminal);
        i.press();
        assert_eq!(Answer::from_reply(Some("y"), &i), Answer::Interrupted, "Ctrl-C wins");
    }
}
