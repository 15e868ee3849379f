//! The plain-lines sink, for when stderr is not a terminal: each line timestamped, control
//! characters escaped (node names and messages come from the network).

use std::sync::Mutex;

use super::{Context, RunEvent, Sink};
use crate::lock;

/// Timestamped lines on stderr.
pub struct Lines {
    context: Mutex<Context>,
}

impl Lines {
    /// A sink with no rollout in progress.
    pub fn new() -> Lines {
        Lines { context: Mutex::new(Context::default()) }
    }
}

impl Default for Lines {
    fn default() -> Self {
        Lines::new()
    }
}

impl Sink for Lines {
    /// The lines show batch summaries, not replies in time.
    fn reads(&self) -> super::Reads {
        super::Reads::Nothing
    }

    fn event(&self, e: &RunEvent) {
        let lines = lock(&self.context).lines(e);
        for l in lines {
            self.say(&l);
        }
    }

    fn say(&self, line: &str) {
        let line = crate::redact::printable_lines(line);
        eprintln!("{} {line}", chrono::Local::now().format("%H:%M:%S"));
    }
}
