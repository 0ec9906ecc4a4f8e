//! The one WebSocket writer: a bounded outbound queue per connection, drained
//! in order by a single task. A connection whose queue overflows is a slow
//! consumer: it is closed with 1008, and whoever sends to it is never blocked.

use actix_ws::{CloseCode, CloseReason, Session};
use bytestring::ByteString;
use tokio::sync::mpsc;

/// The soft cap on a connection's queued frames.
pub const OUTBOUND_CAPACITY: usize = 256;

enum Outgoing {
    Text(ByteString),
    Ping,
    Pong(bytes::Bytes),
    Close(Option<CloseReason>),
}

/// The sending half of a connection's outbound queue. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    tx: mpsc::Sender<Outgoing>,
    session: Session,
}

/// The queue was full, or the connection is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    Full,
    Closed,
}

impl Outbound {
    /// Starts the writer for `session` on the current arbiter.
    pub fn spawn(session: Session, capacity: usize) -> Outbound {
        let (tx, mut rx) = mpsc::channel(capacity);
        let mut writer = session.clone();
        actix_web::rt::spawn(async move {
            while let Some(frame) = rx.recv().await {
                let sent = match frame {
                    Outgoing::Text(text) => writer.text(text).await,
                    Outgoing::Ping => writer.ping(b"").await,
                    Outgoing::Pong(bytes) => writer.pong(&bytes).await,
                    Outgoing::Close(reason) => {
                        let _ = writer.close(reason).await;
                        return;
                    }
                };
                if sent.is_err() {
                    return;
                }
            }
        });
        Outbound { tx, session }
    }

    /// Queues a text frame. Shared bytes (a broadcast) are not copied. On
    /// `Full` the connection is already being closed with 1008; the caller
    /// only forgets it.
    pub fn text(&self, text: impl Into<ByteString>) -> Result<(), SendError> {
        self.tx
            .try_send(Outgoing::Text(text.into()))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    self.close_now(
                        CloseCode::Policy,
                        "slow consumer: too many frames waiting to be read",
                    );
                    SendError::Full
                }
                mpsc::error::TrySendError::Closed(_) => SendError::Closed,
            })
    }

    /// Asks the client to show it is alive; a full queue already says it is
    /// not keeping up, so the ping is skipped.
    pub fn ping(&self) {
        let _ = self.tx.try_send(Outgoing::Ping);
    }

    pub fn pong(&self, bytes: bytes::Bytes) {
        let _ = self.tx.try_send(Outgoing::Pong(bytes));
    }

    /// Closes after the frames already queued have been written.
    pub fn close(&self, code: CloseCode, reason: &str) {
        let reason = Some(CloseReason {
            code,
            description: Some(reason.to_owned()),
        });
        if let Err(mpsc::error::TrySendError::Full(_)) =
            self.tx.try_send(Outgoing::Close(reason.clone()))
        {
            self.close_now(
                code,
                reason.and_then(|r| r.description).as_deref().unwrap_or(""),
            );
        }
    }

    /// Closes at once, dropping whatever is queued: the way out for a
    /// connection that stopped reading.
    pub fn close_now(&self, code: CloseCode, reason: &str) {
        let session = self.session.clone();
        let reason = CloseReason {
            code,
            description: Some(reason.to_owned()),
        };
        actix_web::rt::spawn(async move {
            let _ = session.close(Some(reason)).await;
        });
    }
}
