//! How long a socket has said nothing. Both kinds of socket close one that
//! stays silent past its limit, with 1001, and each sets the limit by its
//! protocol: the client socket is pinged every `ws.ping_every` and may be
//! silent for `ws.idle_timeout`; a worker sends heartbeats, and three
//! missed ones end it.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Silence {
    heard: Instant,
    limit: Duration,
}

impl Silence {
    pub fn new(limit: Duration) -> Silence {
        Silence {
            heard: Instant::now(),
            limit,
        }
    }

    /// Something arrived: a frame of any kind, a pong, a close.
    pub fn heard(&mut self) {
        self.heard = Instant::now();
    }

    /// Whether the socket has been silent for longer than its limit.
    pub fn too_long(&self) -> bool {
        self.heard.elapsed() > self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_is_silent_too_long_only_past_its_limit_since_it_was_heard() {
        let mut silence = Silence::new(Duration::from_millis(500));
        assert!(!silence.too_long());
        std::thread::sleep(Duration::from_millis(520));
        assert!(silence.too_long());
        silence.heard();
        assert!(!silence.too_long());
    }
}
