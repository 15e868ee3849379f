//! Who owns the simulator's background tasks. Every task is spawned through a [`Spawner`]
//! and ends when the [`TaskOwner`] it came from is dropped, so no timer, delayed reply or
//! loop outlives the simulator that started it (one would otherwise keep publishing on a
//! connection the test or command believes closed).

use std::future::Future;

use tokio_util::sync::CancellationToken;

/// Owns a group of tasks: dropping it stops every one of them at its next `.await`.
pub(crate) struct TaskOwner {
    cancel: CancellationToken,
}

/// Spawns tasks into a [`TaskOwner`]'s group. Clones are cheap and own nothing, so tasks can
/// hold one (to spawn follow-up work) without keeping the group alive.
#[derive(Clone)]
pub(crate) struct Spawner {
    cancel: CancellationToken,
}

impl TaskOwner {
    /// An empty group.
    pub(crate) fn new() -> TaskOwner {
        TaskOwner { cancel: CancellationToken::new() }
    }

    /// A handle that spawns into this group.
    pub(crate) fn spawner(&self) -> Spawner {
        Spawner { cancel: self.cancel.clone() }
    }
}

impl Drop for TaskOwner {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Spawner {
    /// Runs `task` until it ends or the owner is dropped, whichever comes first. A task
    /// spawned after the owner is gone never runs.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let cancel = self.cancel.clone();
        // The handle is not needed: the token, not the handle, is what stops the task.
        drop(tokio::spawn(async move {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {}
                _ = task => {}
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// Sets its flag when dropped, which is when the task holding it is stopped.
    struct Dropped(Arc<AtomicBool>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    async fn until_set(flag: &AtomicBool, what: &str) {
        let wait = async {
            while !flag.load(Ordering::SeqCst) {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), wait).await.unwrap_or_else(|_| panic!("{what}"));
    }

    #[tokio::test]
    async fn dropping_the_owner_stops_its_tasks() {
        let owner = TaskOwner::new();
        let spawner = owner.spawner();
        let stopped = Arc::new(AtomicBool::new(false));
        let guard = Dropped(stopped.clone());
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        spawner.spawn(async move {
            let _guard = guard;
            let _ = started_tx.send(());
            std::future::pending::<()>().await;
        });
        started_rx.await.unwrap();
        assert!(!stopped.load(Ordering::SeqCst), "runs while owned");
        drop(owner);
        until_set(&stopped, "the task stops when its owner is dropped").await;

        // A late task is dropped unrun: wait for the drop, then look at what it did.
        let (ran, late_dropped) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let (r, guard) = (ran.clone(), Dropped(late_dropped.clone()));
        spawner.spawn(async move {
            let _guard = guard;
            r.store(true, Ordering::SeqCst);
        });
        until_set(&late_dropped, "the late task is dropped").await;
        assert!(!ran.load(Ordering::SeqCst), "nothing starts after the owner is gone");
    }
}
