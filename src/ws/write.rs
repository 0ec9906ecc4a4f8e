//! The writing half of a socket: a bounded outbound queue, drained in order
//! by one task straight into the TCP stream. A connection whose queue
//! overflows is a slow consumer: it is closed with 1008, and whoever sends
//! to it is never blocked.
//!
//! A broadcast to a thousand members is a thousand frames per event, so a
//! frame costs one `try_send`, and every frame waiting when the task wakes
//! is encoded into one buffer and written with one syscall. The buffer is
//! let go whenever it empties: an idle socket holds none.

use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_codec::Encoder;
use actix_http::ws::{CloseCode, CloseReason, Codec, Message};
use actix_web::rt::net::TcpStream;
use bytes::{Buf, Bytes, BytesMut};
use bytestring::ByteString;
use tokio::sync::mpsc;
use tokio::time::Sleep;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::shared::{Abort, Shared};
use crate::metrics::Open;

/// The soft cap on a connection's queued sends.
pub const OUTBOUND_CAPACITY: usize = 256;

/// Bytes encoded before they are written.
const CHUNK: usize = 64 * 1024;

/// How long a closing socket gets to take its last frames and answer the
/// close. A client that reads nothing for this long is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// Bytes of a closing client's input read and thrown away at a time.
const DISCARD: usize = 512;

enum Outgoing {
    Text(ByteString),
    /// Several frames at once, shared by every member they go to.
    Batch(Arc<[ByteString]>),
    Ping,
    Pong(Bytes),
    Close(Option<CloseReason>),
}

/// The sending half of a connection's outbound queue. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    tx: mpsc::Sender<Outgoing>,
    shared: Arc<Shared>,
}

/// The queue was full, or the connection is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    Full,
    Closed,
}

/// Starts the writer of `io`.
pub(super) fn start(
    io: Rc<TcpStream>,
    shared: Arc<Shared>,
    capacity: usize,
    leaving: CancellationToken,
    open: Open,
) -> Outbound {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    actix_web::rt::spawn(Writer {
        io,
        rx,
        shared: shared.clone(),
        codec: Codec::new(),
        buf: BytesMut::new(),
        state: State::Open,
        leaving: Box::pin(leaving.cancelled_owned()),
        grace: None,
        _open: open,
    });
    Outbound { tx, shared }
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

    /// Closes without writing what is still queued: the way out for a
    /// connection that stopped reading.
    pub fn close_now(&self, code: CloseCode, reason: &str) {
        self.shared.abort(Abort::Close(close_reason(code, reason)));
    }
}

fn close_reason(code: CloseCode, reason: &str) -> CloseReason {
    CloseReason {
        code,
        description: Some(reason.to_owned()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Writing whatever is queued.
    Open,
    /// The close frame is encoded; what is buffered is written, no more.
    Closing,
    /// All is written and the write side shut: the client's last bytes are
    /// read and dropped, so that closing the socket does not reset it
    /// before the client has read the close.
    Lingering,
}

/// The task that writes a socket's queue.
struct Writer {
    io: Rc<TcpStream>,
    rx: mpsc::Receiver<Outgoing>,
    shared: Arc<Shared>,
    codec: Codec,
    buf: BytesMut,
    state: State,
    leaving: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Runs from the moment the socket starts closing.
    grace: Option<Pin<Box<Sleep>>>,
    /// The writer lives exactly as long as the socket, whichever side ends
    /// it, so the connection counts as open until the writer is done.
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

    /// A close frame is the last thing written. Frames already encoded go
    /// before it, so the client never sees half a frame.
    fn finish(&mut self, reason: Option<CloseReason>) {
        self.encode(Message::Close(reason.map(fit_control_frame)));
        self.rx.close();
        self.closing();
    }

    /// Writes what is buffered and nothing more, within the grace.
    fn closing(&mut self) {
        self.state = State::Closing;
        self.grace = Some(Box::pin(tokio::time::sleep(CLOSE_GRACE)));
    }

    /// Encodes what is queued, up to a chunk.
    fn fill(&mut self, cx: &mut Context<'_>) {
        while self.state == State::Open && self.buf.len() < CHUNK {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(item)) => self.encode_item(item),
                // Every sender is gone: the session ended without a close.
                Poll::Ready(None) => self.closing(),
                Poll::Pending => {
                    if self.leaving.as_mut().poll(cx).is_ready() {
                        self.finish(Some(close_reason(
                            CloseCode::Away,
                            "the server is shutting down",
                        )));
                    }
                    break;
                }
            }
        }
    }

    /// Writes the buffer. `Ready(Err)` means the socket is dead.
    fn flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.buf.is_empty() {
            std::task::ready!(self.io.poll_write_ready(cx))?;
            match self.io.try_write(&self.buf) {
                Ok(n) => self.buf.advance(n),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
        // Let go of the memory: an idle socket holds no buffer.
        self.buf = BytesMut::new();
        Poll::Ready(Ok(()))
    }

    /// Reads and drops the client's input until it closes too.
    fn linger(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut scratch = [0u8; DISCARD];
        loop {
            if std::task::ready!(self.io.poll_read_ready(cx)).is_err() {
                return Poll::Ready(());
            }
            match self.io.try_read(&mut scratch) {
                Ok(0) => return Poll::Ready(()),
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Poll::Ready(()),
            }
        }
    }

    fn grace_over(&mut self, cx: &mut Context<'_>) -> bool {
        self.grace
            .as_mut()
            .is_some_and(|grace| grace.as_mut().poll(cx).is_ready())
    }

    fn done(&mut self) -> Poll<()> {
        self.shared.finish_writing();
        Poll::Ready(())
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

impl Future for Writer {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.state == State::Open {
            this.shared.writer.register(cx.waker());
            match this.shared.take_abort() {
                Some(Abort::Gone) => return this.done(),
                Some(Abort::Close(reason)) => this.finish(Some(reason)),
                None => {}
            }
        }
        if this.state != State::Lingering {
            loop {
                this.fill(cx);
                if this.buf.is_empty() && this.state == State::Open {
                    return Poll::Pending;
                }
                match this.flush(cx) {
                    Poll::Ready(Ok(())) if this.state == State::Open => continue,
                    Poll::Ready(Ok(())) => break,
                    Poll::Ready(Err(_)) => return this.done(),
                    Poll::Pending if this.grace_over(cx) => return this.done(),
                    Poll::Pending => return Poll::Pending,
                }
            }
            // Everything is written, the close frame last: the reader stops
            // and the client hears the end of the stream.
            this.shared.finish_writing();
            let _ = socket2::SockRef::from(&*this.io).shutdown(Shutdown::Write);
            this.state = State::Lingering;
        }
        if this.linger(cx).is_ready() || this.grace_over(cx) {
            return this.done();
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
