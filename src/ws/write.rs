//! The writing half of a socket: an outbound queue bounded in bytes, drained
//! in order by one task straight into the TCP stream. A connection whose
//! queue would grow past its bound is a slow consumer: it is closed with
//! 1008, and whoever sends to it is never blocked.
//!
//! The bound counts what a socket holds, in the bytes its frames take on
//! the wire: a broadcast shared by a thousand members counts in full for
//! each of them, since each would keep it alive if it stopped reading.
//!
//! A broadcast to a thousand members is a thousand frames per event, so a
//! frame costs one send and one atomic add, and every frame waiting when the
//! task wakes is encoded into one buffer and written with one syscall. The
//! buffer is let go whenever it empties: an idle socket holds none.

use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
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

use super::admit::Slot;
use super::shared::{Abort, Shared};
use crate::metrics::{Connection, Open};

/// The reason a slow consumer hears (docs/protocol.md §4).
const SLOW_CONSUMER: &str = "slow consumer: too much waiting to be read";

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
    /// The server's close, or its answer to the client's.
    Close(Closing),
}

/// A close frame and who began the close.
pub(super) struct Closing {
    reason: CloseReason,
    /// The server closes, rather than answers the client's close: logged
    /// and counted.
    ours: bool,
}

impl Closing {
    pub(super) fn ours(code: CloseCode, reason: &str) -> Closing {
        Closing {
            reason: CloseReason {
                code,
                description: Some(reason.to_owned()),
            },
            ours: true,
        }
    }
}

/// An item in the queue and the bytes it counts for.
struct Queued {
    item: Outgoing,
    bytes: usize,
}

/// The sending half of a connection's outbound queue. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    tx: mpsc::UnboundedSender<Queued>,
    shared: Arc<Shared>,
    max_bytes: usize,
}

/// The queue was full, or the connection is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    Full,
    Closed,
}

/// Who a socket is, for the log line and the count of its close.
pub(super) struct Peer {
    pub(super) open: Open,
    /// Held for its drop: the node and the address get the place back.
    pub(super) _slot: Slot,
    /// The client address, as the log shows it.
    pub(super) address: String,
}

/// Starts the writer of `io`.
pub(super) fn start(
    io: Rc<TcpStream>,
    shared: Arc<Shared>,
    max_bytes: usize,
    leaving: CancellationToken,
    peer: Peer,
) -> Outbound {
    let (tx, rx) = mpsc::unbounded_channel();
    actix_web::rt::spawn(Writer {
        io,
        rx,
        shared: shared.clone(),
        codec: Codec::new(),
        buf: BytesMut::new(),
        state: State::Open,
        leaving: Box::pin(leaving.cancelled_owned()),
        grace: None,
        peer,
    });
    Outbound {
        tx,
        shared,
        max_bytes,
    }
}

impl Outbound {
    /// Queues a text frame. Shared bytes (a broadcast) are not copied. On
    /// `Full` the connection is already being closed with 1008; the caller
    /// only forgets it.
    pub fn text(&self, text: impl Into<ByteString>) -> Result<(), SendError> {
        let text = text.into();
        let bytes = frame_len(text.len());
        self.send(Outgoing::Text(text), bytes)
    }

    /// Queues several frames as one send.
    pub fn batch(&self, frames: Arc<[ByteString]>) -> Result<(), SendError> {
        let bytes = frames.iter().map(|f| frame_len(f.len())).sum();
        self.send(Outgoing::Batch(frames), bytes)
    }

    /// The bound of this socket's queue, in bytes: what one frame should
    /// stay well within.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    fn send(&self, item: Outgoing, bytes: usize) -> Result<(), SendError> {
        // What a finished writer left in the queue still counts; the socket
        // is gone, not slow.
        if self.tx.is_closed() {
            return Err(SendError::Closed);
        }
        if !self.reserve(bytes) {
            self.close_now(CloseCode::Policy, SLOW_CONSUMER);
            return Err(SendError::Full);
        }
        self.push(item, bytes)
    }

    /// Counts `bytes` as queued, unless they would take the queue past its
    /// bound. An empty queue takes anything: a lone frame larger than the
    /// bound (a join reply listing a crowd) is not a slow reader's fault.
    fn reserve(&self, bytes: usize) -> bool {
        let before = self.shared.queued.fetch_add(bytes, Ordering::AcqRel);
        if before > 0 && before + bytes > self.max_bytes {
            self.shared.queued.fetch_sub(bytes, Ordering::AcqRel);
            return false;
        }
        true
    }

    fn push(&self, item: Outgoing, bytes: usize) -> Result<(), SendError> {
        self.tx.send(Queued { item, bytes }).map_err(|_| {
            self.shared.queued.fetch_sub(bytes, Ordering::AcqRel);
            SendError::Closed
        })
    }

    /// Asks the client to show it is alive; a full queue already says it is
    /// not keeping up, so the ping is skipped.
    pub fn ping(&self) {
        let bytes = frame_len(0);
        if self.reserve(bytes) {
            let _ = self.push(Outgoing::Ping, bytes);
        }
    }

    /// Answers a ping, unless the queue is full.
    pub fn pong(&self, payload: Bytes) {
        let bytes = frame_len(payload.len());
        if self.reserve(bytes) {
            let _ = self.push(Outgoing::Pong(payload), bytes);
        }
    }

    /// Closes after the frames already queued have been written. The close
    /// is logged and counted as the server's.
    pub fn close(&self, code: CloseCode, reason: &str) {
        self.close_with(Closing::ours(code, reason));
    }

    /// Answers the client's close with 1000.
    pub fn bye(&self) {
        self.close_with(Closing {
            ours: false,
            ..Closing::ours(CloseCode::Normal, "bye")
        });
    }

    fn close_with(&self, closing: Closing) {
        // Never refused for its size: it is the last frame, and tiny.
        let bytes = frame_len(closing.reason.description.as_ref().map_or(0, String::len) + 2);
        self.shared.queued.fetch_add(bytes, Ordering::AcqRel);
        let _ = self.push(Outgoing::Close(closing), bytes);
    }

    /// Closes without writing what is still queued: the way out for a
    /// connection that stopped reading.
    pub fn close_now(&self, code: CloseCode, reason: &str) {
        self.shared.abort(Abort::Close(Closing::ours(code, reason)));
    }
}

/// The bytes a server frame with `payload` bytes takes on the wire: the
/// payload and its header, unmasked (RFC 6455 §5.2).
fn frame_len(payload: usize) -> usize {
    let header = match payload {
        0..=125 => 2,
        126..=0xffff => 4,
        _ => 10,
    };
    payload + header
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
    rx: mpsc::UnboundedReceiver<Queued>,
    shared: Arc<Shared>,
    codec: Codec,
    buf: BytesMut,
    state: State,
    leaving: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Runs from the moment the socket starts closing.
    grace: Option<Pin<Box<Sleep>>>,
    /// The writer lives exactly as long as the socket, whichever side ends
    /// it, so the connection counts as open, and holds its slot, until the
    /// writer is done.
    peer: Peer,
}

impl Writer {
    fn encode(&mut self, message: Message) {
        // Encoding into a buffer fails only for frames over the codec's
        // size limit, which applies to reading, not writing.
        let _ = self.codec.encode(message, &mut self.buf);
    }

    fn encode_item(&mut self, Queued { item, bytes }: Queued) {
        self.shared.queued.fetch_sub(bytes, Ordering::AcqRel);
        match item {
            Outgoing::Text(text) => self.encode(Message::Text(text)),
            Outgoing::Batch(frames) => {
                for frame in frames.iter() {
                    self.encode(Message::Text(frame.clone()));
                }
            }
            Outgoing::Ping => self.encode(Message::Ping(Bytes::new())),
            Outgoing::Pong(bytes) => self.encode(Message::Pong(bytes)),
            Outgoing::Close(closing) => self.finish(closing),
        }
    }

    /// A close frame is the last thing written. Frames already encoded go
    /// before it, so the client never sees half a frame.
    fn finish(&mut self, closing: Closing) {
        if closing.ours {
            self.log_close(&closing.reason);
        }
        self.encode(Message::Close(Some(fit_control_frame(closing.reason))));
        self.rx.close();
        self.closing();
    }

    /// Every close the server begins passes here, whatever its cause: one
    /// line at info and one count, so that no socket ends unexplained.
    fn log_close(&self, reason: &CloseReason) {
        let code = u16::from(reason.code);
        let kind = match self.peer.open.kind() {
            Connection::Client => "client",
            Connection::Worker => "worker",
        };
        tracing::info!(
            code,
            reason = reason.description.as_deref().unwrap_or_default(),
            kind,
            peer = %self.peer.address,
            "closing a socket"
        );
        self.peer.open.closed(code);
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
                        self.finish(Closing::ours(
                            CloseCode::Away,
                            "the server is shutting down",
                        ));
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
                Some(Abort::Close(closing)) => this.finish(closing),
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
        let fitted = fit_control_frame(Closing::ours(CloseCode::Policy, &long).reason);
        let text = fitted.description.unwrap();
        assert!(text.len() <= 123);
        assert!(text.chars().all(|c| c == 'é'));
        let short = fit_control_frame(Closing::ours(CloseCode::Normal, "bye").reason);
        assert_eq!(short.description.as_deref(), Some("bye"));
    }

    #[test]
    fn frames_count_with_their_headers() {
        let mut encoded = BytesMut::new();
        for payload in [0, 125, 126, 0xffff, 0x10000] {
            encoded.clear();
            let text = ByteString::from("x".repeat(payload));
            Codec::new()
                .encode(Message::Text(text), &mut encoded)
                .unwrap();
            assert_eq!(frame_len(payload), encoded.len(), "{payload}");
        }
    }
}
