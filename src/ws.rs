//! The one WebSocket writer: a bounded outbound queue per connection, drained
//! in order straight into the connection's response body. A connection whose
//! queue overflows is a slow consumer: it is closed with 1008, and whoever
//! sends to it is never blocked.
//!
//! actix-ws does the handshake and reads frames; writing goes around its
//! `Session`. A broadcast to a thousand members is a thousand frames per
//! event, and the `Session` path costs a task wake-up, a channel hop and a
//! reservation future for each of them. Here a frame costs one `try_send`,
//! and every frame waiting when the connection polls its body is encoded
//! into one buffer and written with one syscall.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use actix_codec::Encoder;
use actix_http::ws::{Codec, Message};
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, MessageStream};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::task::AtomicWaker;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::metrics::Open;

/// The soft cap on a connection's queued sends.
pub const OUTBOUND_CAPACITY: usize = 256;

/// Bytes encoded per body chunk before the connection gets to write them.
const CHUNK: usize = 64 * 1024;

enum Outgoing {
    Text(ByteString),
    /// Several frames at once, shared by every member they go to.
    Batch(Arc<[ByteString]>),
    Ping,
    Pong(Bytes),
    Close(Option<CloseReason>),
}

/// A close that skips the queue.
#[derive(Default)]
struct Abort {
    reason: Mutex<Option<CloseReason>>,
    waker: AtomicWaker,
}

/// The sending half of a connection's outbound queue. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    tx: mpsc::Sender<Outgoing>,
    abort: Arc<Abort>,
}

/// The queue was full, or the connection is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    Full,
    Closed,
}

/// Upgrades `req` to a WebSocket: the response to return, the queue that
/// writes to the socket, and the stream of frames the client sends. When
/// `leaving` is cancelled the socket closes with 1001 (going away), after
/// what is already queued, so clients know to reconnect elsewhere or later.
/// `open` counts the connection for `/metrics` until the socket is gone.
pub fn upgrade(
    req: &HttpRequest,
    payload: web::Payload,
    capacity: usize,
    leaving: &CancellationToken,
    open: Open,
) -> Result<(HttpResponse, Outbound, MessageStream), actix_web::Error> {
    let (response, _session, stream) = actix_ws::handle(req, payload)?;
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let abort = Arc::new(Abort::default());
    let body_abort = abort.clone();
    let response = response.map_body(move |_, session_body| Writer {
        rx,
        abort: body_abort,
        codec: Codec::new(),
        buf: BytesMut::new(),
        closing: false,
        leaving: Box::pin(leaving.clone().cancelled_owned()),
        // Kept, never polled: when it drops with this body, actix-ws tells
        // the message stream that the connection is gone.
        _session_body: session_body,
        _open: open,
    });
    Ok((
        response.map_into_boxed_body(),
        Outbound { tx, abort },
        stream,
    ))
}

impl Outbound {
    /// Queues a text frame. Shared bytes (a broadcast) are not copied. On
    /// `Full` the connection is already being closed with 1008; the caller
    /// only forgets it.
    pub fn text(&self, text: impl Into<ByteString>) -> Result<(), SendError> {
        self.send(Outgoing::Text(text.into()))
    }

    /// Queues several frames as one send, so a burst costs a member one
    /// slot in its queue.
    pub fn batch(&self, frames: Arc<[ByteString]>) -> Result<(), SendError> {
        self.send(Outgoing::Batch(frames))
    }

    fn send(&self, item: Outgoing) -> Result<(), SendError> {
        self.tx.try_send(item).map_err(|e| match e {
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

    pub fn pong(&self, bytes: Bytes) {
        let _ = self.tx.try_send(Outgoing::Pong(bytes));
    }

    /// Closes after the frames already queued have been written.
    pub fn close(&self, code: CloseCode, reason: &str) {
        let item = Outgoing::Close(Some(close_reason(code, reason)));
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(item) {
            self.close_now(code, reason);
        }
    }

    /// Closes at once, dropping whatever is queued: the way out for a
    /// connection that stopped reading.
    pub fn close_now(&self, code: CloseCode, reason: &str) {
        if let Ok(mut slot) = self.abort.reason.lock() {
            slot.get_or_insert_with(|| close_reason(code, reason));
        }
        self.abort.waker.wake();
    }
}

fn close_reason(code: CloseCode, reason: &str) -> CloseReason {
    CloseReason {
        code,
        description: Some(reason.to_owned()),
    }
}

/// The response body of an upgraded connection: whatever is queued, encoded.
struct Writer {
    rx: mpsc::Receiver<Outgoing>,
    abort: Arc<Abort>,
    codec: Codec,
    buf: BytesMut,
    closing: bool,
    leaving: Pin<Box<WaitForCancellationFutureOwned>>,
    _session_body: BoxBody,
    /// The body lives exactly as long as the socket, whichever side ends
    /// it, so the connection counts as open until the body drops.
    _open: Open,
}

impl Writer {
    fn encode(&mut self, message: Message) {
        // Encoding into a buffer fails only for frames over the codec's
        // size limit, which applies to reading, not writing.
        let _ = self.codec.encode(message, &mut self.buf);
    }

    fn encode_item(&mut self, item: Outgoing) {
        match item {
            Outgoing::Text(text) => self.encode(Message::Text(text)),
            Outgoing::Batch(frames) => {
                for frame in frames.iter() {
                    self.encode(Message::Text(frame.clone()));
                }
            }
            Outgoing::Ping => self.encode(Message::Ping(Bytes::new())),
            Outgoing::Pong(bytes) => self.encode(Message::Pong(bytes)),
            Outgoing::Close(reason) => self.finish(reason),
        }
    }

    /// A close frame is the last thing written.
    fn finish(&mut self, reason: Option<CloseReason>) {
        self.encode(Message::Close(reason.map(fit_control_frame)));
        self.closing = true;
        self.rx.close();
    }
}

/// A close reason must fit a control frame (125 bytes, 2 of them the code);
/// browsers drop connections that send longer ones.
fn fit_control_frame(mut reason: CloseReason) -> CloseReason {
    if let Some(text) = reason.description.as_mut() {
        let mut end = text.len().min(123);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    reason
}

impl MessageBody for Writer {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        if !this.closing {
            this.abort.waker.register(cx.waker());
            let aborted = this.abort.reason.lock().ok().and_then(|mut r| r.take());
            if let Some(reason) = aborted {
                this.buf.clear();
                this.finish(Some(reason));
            }
        }
        while !this.closing && this.buf.len() < CHUNK {
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(item)) => this.encode_item(item),
                Poll::Ready(None) => this.closing = true,
                Poll::Pending => {
                    if this.leaving.as_mut().poll(cx).is_ready() {
                        this.finish(Some(close_reason(
                            CloseCode::Away,
                            "the server is shutting down",
                        )));
                    }
                    break;
                }
            }
        }
        if !this.buf.is_empty() {
            return Poll::Ready(Some(Ok(this.buf.split().freeze())));
        }
        if this.closing {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_fit_a_control_frame() {
        let long = "é".repeat(100);
        let fitted = fit_control_frame(close_reason(CloseCode::Policy, &long));
        let text = fitted.description.unwrap();
        assert!(text.len() <= 123);
        assert!(text.chars().all(|c| c == 'é'));
        let short = fit_control_frame(close_reason(CloseCode::Normal, "bye"));
        assert_eq!(short.description.as_deref(), Some("bye"));
    }
}
