//! How a node's background work ends: one token tells every loop and
//! long-lived actor to stop, and one tracker knows which of them are still
//! running, so that shutdown can wait for them.
//!
//! Without it, work still running when the process returned from `serve`
//! was dropped with the runtime, and a database connection dropped
//! mid-query outside the runtime panics.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::TaskTracker;

/// Cloned into everything that runs in the background; every clone shares
/// the one token and the one tracker.
#[derive(Clone, Default)]
pub struct Lifecycle {
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Lifecycle {
    pub fn new() -> Lifecycle {
        Lifecycle::default()
    }

    /// Runs a background loop on the current arbiter until the node stops;
    /// the loop is dropped at its next await once it does.
    pub fn spawn<F>(&self, work: F)
    where
        F: Future<Output = ()> + 'static,
    {
        actix::spawn(
            self.tasks
                .track_future(self.stop.clone().run_until_cancelled_owned(work)),
        );
    }

    /// Runs `work` on the current arbiter to its end, however the node
    /// stops, and has shutdown wait for it: for work that must not be cut
    /// in half, and for actors, which stop in their own way.
    pub fn spawn_whole<F>(&self, work: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        actix::spawn(self.tasks.track_future(work))
    }

    /// Resolves once the node is told to stop.
    pub fn stopping(&self) -> WaitForCancellationFutureOwned {
        self.stop.clone().cancelled_owned()
    }

    /// Tells everything to stop and waits, for at most `grace`, until it
    /// has; false if something was still running when the grace ran out.
    pub async fn stop(&self, grace: Duration) -> bool {
        self.tasks.close();
        self.stop.cancel();
        tokio::time::timeout(grace, self.tasks.wait()).await.is_ok()
    }

    /// How many tracked tasks and actors are still running.
    pub fn running(&self) -> usize {
        self.tasks.len()
    }
}
