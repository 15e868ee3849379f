//! Ctrl-C as two levels: the first asks to stop at the next safe point (after the current
//! batch), the second aborts now, cancelling the waits in native calls. The REPL resets it
//! after each line, in place, so every holder of a clone sees the fresh state.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Inner {
    /// The REPL: the first Ctrl-C already cancels the running call.
    immediate: std::sync::atomic::AtomicBool,
    presses: AtomicUsize,
    tokens: Mutex<(CancellationToken, CancellationToken)>,
    /// What the first Ctrl-C does here, when it is not the batch commands' "next safe point".
    first: Mutex<Option<&'static str>>,
}

/// What the first Ctrl-C does unless a command says otherwise: `run` and `req` finish the
/// batch in flight.
pub const NEXT_SAFE_POINT: &str = "stopping at the next safe point (Ctrl-C again to abort now)";

/// Shared interrupt state; cheap to clone.
#[derive(Clone, Default)]
pub struct Interrupt {
    inner: Arc<Inner>,
}

impl Interrupt {
    pub fn new() -> Self {
        Self::default()
    }

    fn tokens(&self) -> (CancellationToken, CancellationToken) {
        crate::lock(&self.inner.tokens).clone()
    }

    /// Records one Ctrl-C; returns how many so far.
    pub fn press(&self) -> usize {
        let n = self.inner.presses.fetch_add(1, Ordering::SeqCst) + 1;
        let (soft, hard) = self.tokens();
        soft.cancel();
        if n >= 2 || self.inner.immediate.load(Ordering::SeqCst) {
            hard.cancel();
        }
        n
    }

    /// Says what the first Ctrl-C does in this command (`sim`, `events`: "stopping"); the
    /// message printed when it comes. Reset with [`Interrupt::first_press_means`] again.
    pub fn first_press_means(&self, what: Option<&'static str>) {
        *crate::lock(&self.inner.first) = what;
    }

    /// The line printed at the first Ctrl-C.
    pub fn first_press_message(&self) -> &'static str {
        crate::lock(&self.inner.first).unwrap_or(NEXT_SAFE_POINT)
    }

    /// Makes the first Ctrl-C cancel waits at once (the REPL's behaviour).
    pub fn set_immediate(&self, on: bool) {
        self.inner.immediate.store(on, Ordering::SeqCst);
    }

    /// True when the first Ctrl-C already cancels waits (the REPL).
    pub fn immediate(&self) -> bool {
        self.inner.immediate.load(Ordering::SeqCst)
    }

    /// Both levels at once: the REPL cancels the running call on the first Ctrl-C.
    pub fn abort_now(&self) {
        self.inner.presses.fetch_add(2, Ordering::SeqCst);
        let (soft, hard) = self.tokens();
        soft.cancel();
        hard.cancel();
    }

    /// Cancelled at the first Ctrl-C: stop at the next safe point.
    pub fn soft(&self) -> CancellationToken {
        self.tokens().0
    }

    /// Cancelled at the second Ctrl-C: abort waits now.
    pub fn hard(&self) -> CancellationToken {
        self.tokens().1
    }

    /// True once a stop was asked for.
    pub fn requested(&self) -> bool {
        self.tokens().0.is_cancelled()
    }

    /// Forgets earlier presses, for every clone.
    pub fn reset(&self) {
        self.inner.presses.store(0, Ordering::SeqCst);
        *crate::lock(&self.inner.tokens) = (CancellationToken::new(), CancellationToken::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_levels_and_reset() {
        let i = Interrupt::new();
        let c = i.clone();
        assert_eq!(i.press(), 1);
        assert!(c.requested() && !c.hard().is_cancelled());
        i.press();
        assert!(c.hard().is_cancelled());
        i.reset();
        assert!(!c.requested() && !c.hard().is_cancelled());
        c.abort_now();
        assert!(i.hard().is_cancelled());
    }
}
