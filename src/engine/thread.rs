//! The thread scripts run on: a plain thread (Rhai is synchronous) with a deep stack.
//!
//! Rhai clones, compares, prints and drops values recursively, and has no limit on how deeply
//! arrays and maps nest: `for i in 0..50000 { a = [a]; }` needs stack in proportion to the
//! depth. A tokio blocking thread has 2 MiB and aborted the whole process (not an error a
//! script can see) a few thousand levels down. The stack below is virtual memory, committed
//! only as far as it is used. Our own conversions (`convert`) stop at [`super::convert::MAX_DEPTH`].

use std::panic::AssertUnwindSafe;

/// Stack size of the script thread.
pub const SCRIPT_STACK: usize = 1 << 30;
/// Used when the system refuses [`SCRIPT_STACK`].
const FALLBACK_STACK: usize = 64 << 20;

/// Runs `f` on a new script thread and waits for it without blocking the runtime. A panic in
/// the script thread comes back as an error message.
pub async fn on_script_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job = std::sync::Arc::new(std::sync::Mutex::new(Some((f, tx))));
    let start = |stack: usize| {
        let job = job.clone();
        std::thread::Builder::new().name("script".into()).stack_size(stack).spawn(move || {
            if let Some((f, tx)) = crate::lock(&job).take() {
                let _ = tx.send(std::panic::catch_unwind(AssertUnwindSafe(f)));
            }
        })
    };
    // Where virtual memory is strictly accounted, a smaller stack still beats none.
    start(SCRIPT_STACK)
        .or_else(|_| start(FALLBACK_STACK))
        .map_err(|e| format!("cannot start the script thread: {e}"))?;
    match rx.await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(panic)) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(format!("panicked: {msg}"))
        }
        Err(_) => Err("the script thread ended without a result".into()),
    }
}
