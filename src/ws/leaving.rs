//! How sockets learn that the server is going away. Each client socket
//! watches one of `WAVES` tokens, given out in turn, and a draining node
//! cancels them one wave at a time: in a cluster, its clients then reconnect
//! to the other nodes a batch at a time rather than all in the same instant.
//! Worker sockets watch a token of their own, cancelled only once their
//! workers had their time to deliver what they hold (`handover.rs`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How many batches a draining node closes its sockets in.
const WAVES: usize = 10;
/// The pause between two batches: a tenth of the sockets every 100 ms, so
/// all are told within a second.
const WAVE_GAP: Duration = Duration::from_millis(100);

#[derive(Clone)]
pub struct Leaving {
    /// Cancelled the moment draining starts.
    started: CancellationToken,
    waves: Arc<[CancellationToken]>,
    next: Arc<AtomicUsize>,
    workers: CancellationToken,
}

impl Default for Leaving {
    fn default() -> Leaving {
        Leaving {
            started: CancellationToken::new(),
            waves: (0..WAVES).map(|_| CancellationToken::new()).collect(),
            next: Arc::default(),
            workers: CancellationToken::new(),
        }
    }
}

impl Leaving {
    /// Whether the server has begun to shut down.
    pub fn is_cancelled(&self) -> bool {
        self.started.is_cancelled()
    }

    /// Resolves once the server has begun to shut down.
    pub async fn cancelled(&self) {
        self.started.cancelled().await;
    }

    /// What a new socket watches: cancelled when its wave's turn comes (at
    /// once, for a socket opened after draining began).
    pub fn for_socket(&self) -> CancellationToken {
        let wave = self.next.fetch_add(1, Ordering::Relaxed) % WAVES;
        self.waves[wave].clone()
    }

    /// What a new worker socket watches.
    pub fn for_worker(&self) -> CancellationToken {
        self.workers.clone()
    }

    /// Closes the worker sockets still open.
    pub fn release_workers(&self) {
        self.workers.cancel();
    }

    /// Tells every client socket, in waves when `spread` (a cluster, where clients
    /// have somewhere else to go), all at once otherwise.
    pub async fn drain(&self, spread: bool) {
        self.started.cancel();
        for (i, wave) in self.waves.iter().enumerate() {
            if spread && i > 0 {
                tokio::time::sleep(WAVE_GAP).await;
            }
            wave.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn sockets_are_told_in_waves_and_late_ones_at_once() {
        let leaving = Leaving::default();
        let sockets: Vec<CancellationToken> =
            (0..WAVES * 2).map(|_| leaving.for_socket()).collect();

        let drain = actix_rt::spawn({
            let leaving = leaving.clone();
            async move { leaving.drain(true).await }
        });
        tokio::time::sleep(WAVE_GAP / 2).await;

        assert!(leaving.is_cancelled());
        let told = sockets.iter().filter(|s| s.is_cancelled()).count();
        assert_eq!(told, 2, "only the first wave is told at first");
        drain.await.expect("drained");
        assert!(sockets.iter().all(CancellationToken::is_cancelled));
        assert!(
            leaving.for_socket().is_cancelled(),
            "a late socket is told at once"
        );
    }
}
