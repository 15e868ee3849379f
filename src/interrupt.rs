//! Ctrl-C as two levels: the first asks to stop at the next safe point (after the current
//! batch), the second aborts now, cancelling the waits in native calls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

/// Shared interrupt state; cheap to clone.
#[derive(Clone, Default)]
pub struct Interrupt {
    presses: Arc<AtomicUsize>,
    soft: CancellationToken,
    hard: CancellationToken,
}

impl Interrupt {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one Ctrl-C; returns how many so far.
    pub fn press(&self) -> usize {
        let n = self.presses.fetch_add(1, Ordering::SeqCst) + 1;
        self.soft.cancel();
        if n >= 2 {
            self.hard.cancel();
        }
        n
    }

    /// Cancelled at the first Ctrl-C: stop at the next safe point.
    pub fn soft(&self) -> &CancellationToken {
        &self.soft
    }

    /// Cancelled at the second Ctrl-C: abort waits now.
    pub fn hard(&self) -> &CancellationToken {
        &self.hard
    }

    /// True once a stop was asked for.
    pub fn requested(&self) -> bool {
        self.soft.is_cancelled()
    }

    /// Forgets earlier presses (the REPL does this after returning to the prompt).
    pub fn reset(&mut self) {
        *self = Interrupt::new();
    }
}
