//! What the two halves of a socket tell each other.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use futures_util::task::AtomicWaker;

use super::write::Closing;

/// Shared by a socket's reader, writer and every [`super::Outbound`].
#[derive(Default)]
pub(super) struct Shared {
    /// Set by a sender that must not wait for the queue (a slow consumer),
    /// or by the reader when the client is gone.
    abort: Mutex<Option<Abort>>,
    pub(super) writer: AtomicWaker,
    /// The writer is done; the reader ends too, so its actor stops.
    written: AtomicBool,
    pub(super) reader: AtomicWaker,
    /// Bytes queued and not yet taken by the writer.
    pub(super) queued: AtomicUsize,
}

pub(super) enum Abort {
    Close(Closing),
    Gone,
}

impl Shared {
    /// The first abort wins: a close already asked for is not replaced.
    pub(super) fn abort(&self, abort: Abort) {
        if let Ok(mut slot) = self.abort.lock() {
            slot.get_or_insert(abort);
        }
        self.writer.wake();
    }

    pub(super) fn take_abort(&self) -> Option<Abort> {
        self.abort.lock().ok().and_then(|mut slot| slot.take())
    }

    pub(super) fn written(&self) -> bool {
        self.written.load(Ordering::Acquire)
    }

    pub(super) fn finish_writing(&self) {
        self.written.store(true, Ordering::Release);
        self.reader.wake();
    }
}
