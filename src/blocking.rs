//! Blocking calls made from async code.

/// Runs `f`, which blocks (reading a file or stdin, `poll`), from async code. On a
/// multi-thread runtime the worker first hands its other tasks to another thread
/// (`block_in_place`). `req` against a broker runs on a current-thread runtime (main.rs),
/// where there is no thread to hand them to and `block_in_place` panics: there `f` just runs,
/// and the runtime's tasks wait for it. `req` makes these calls while it reads its options,
/// before it connects, so only the signal handlers wait. Outside a runtime `f` just runs.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::blocking;

    #[test]
    fn blocking_runs_on_either_runtime_and_outside_one() {
        assert_eq!(blocking(|| 1), 1);
        let one = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        assert_eq!(one.block_on(async { blocking(|| 2) }), 2);
        let many = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("runtime");
        assert_eq!(many.block_on(async { tokio::spawn(async { blocking(|| 3) }).await.expect("task") }), 3);
    }
}
