//! The seed every demo price derives from, shared by all requests.

use std::sync::atomic::{AtomicU64, Ordering};

/// Shared state of the demo stores: the seed all prices derive from.
/// Register it as `web::Data<DemoState>`.
#[derive(Debug)]
pub struct DemoState {
    seed: AtomicU64,
}

impl DemoState {
    pub fn new(seed: u64) -> Self {
        Self {
            seed: AtomicU64::new(seed),
        }
    }

    pub fn seed(&self) -> u64 {
        // Relaxed is enough: the seed is a single independent value.
        self.seed.load(Ordering::Relaxed)
    }

    /// Changes every store's prices and stock from the next request on.
    pub fn set_seed(&self, seed: u64) {
        self.seed.store(seed, Ordering::Relaxed);
    }
}
