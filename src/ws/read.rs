//! The reading half of a socket: a stream of whole messages, polled by the
//! connection's actor, that holds no buffer while the client is quiet.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use actix_codec::Decoder;
use actix_http::ws::{self, CloseCode, CloseReason, Codec, Item, ProtocolError};
use actix_web::rt::net::TcpStream;
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::Stream;
use tokio::time::Sleep;

use super::shared::{Abort, Shared};

/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 4096;

/// A whole message from the client.
#[derive(Debug)]
pub enum Frame {
    Text(ByteString),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    Close(Option<CloseReason>),
}

/// Why reading stopped. The stream ends after one of these.
#[derive(Debug)]
pub enum ReadError {
    /// A message over the socket's limit.
    TooLarge,
    /// A text message that is not UTF-8.
    NotUtf8,
    /// A message begun and not finished within the socket's time for one.
    Unfinished,
    Protocol(ProtocolError),
}

impl ReadError {
    /// How the socket closes for it.
    pub fn close(&self) -> (CloseCode, &'static str) {
        match self {
            ReadError::TooLarge => (CloseCode::Size, "frame over the hard size limit"),
            ReadError::NotUtf8 => (CloseCode::Invalid, "text frames must be UTF-8"),
            ReadError::Unfinished => (CloseCode::Policy, "message not finished in time"),
            ReadError::Protocol(_) => (CloseCode::Protocol, "protocol error"),
        }
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::TooLarge => f.write_str("message over the size limit"),
            ReadError::NotUtf8 => f.write_str("text message that is not UTF-8"),
            ReadError::Unfinished => f.write_str("message not finished in time"),
            ReadError::Protocol(err) => err.fmt(f),
        }
    }
}

pub struct Incoming {
    io: Rc<TcpStream>,
    buf: BytesMut,
    codec: Codec,
    /// A message arriving in continuation frames: whether it is text, and
    /// its bytes so far.
    partial: Option<(bool, BytesMut)>,
    max: usize,
    /// How long a message may take from its first byte to its last.
    timeout: Duration,
    /// Runs while a message is unfinished: one frame arriving in pieces, or
    /// one in continuation frames. Control frames between continuations do
    /// not put it off, so a message cannot be held open with pings.
    deadline: Option<Pin<Box<Sleep>>>,
    shared: Arc<Shared>,
    done: bool,
}

impl Incoming {
    pub(super) fn new(
        io: Rc<TcpStream>,
        early: BytesMut,
        shared: Arc<Shared>,
        max: usize,
        timeout: Duration,
    ) -> Self {
        Incoming {
            io,
            buf: early,
            codec: Codec::new().max_size(max),
            partial: None,
            max,
            timeout,
            deadline: None,
            shared,
            done: false,
        }
    }

    /// Whether a message has begun and not ended: the deadline runs.
    fn unfinished(&self) -> bool {
        self.partial.is_some() || !self.buf.is_empty()
    }

    /// Starts the deadline of an unfinished message, or stops it when
    /// there is none; `true` once it has passed.
    fn late(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.unfinished() {
            self.deadline = None;
            return false;
        }
        let timeout = self.timeout;
        self.deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)))
            .as_mut()
            .poll(cx)
            .is_ready()
    }

    /// The client is gone: the writer need not finish its queue.
    fn gone(&mut self) -> Poll<Option<Result<Frame, ReadError>>> {
        self.done = true;
        self.shared.abort(Abort::Gone);
        Poll::Ready(None)
    }

    fn fail(&mut self, err: ReadError) -> Poll<Option<Result<Frame, ReadError>>> {
        self.done = true;
        Poll::Ready(Some(Err(err)))
    }

    /// A frame as a message, once it is whole.
    fn assemble(&mut self, frame: ws::Frame) -> Option<Result<Frame, ReadError>> {
        let whole = match frame {
            ws::Frame::Text(bytes) => return Some(text(bytes)),
            ws::Frame::Binary(bytes) => return Some(Ok(Frame::Binary(bytes))),
            ws::Frame::Ping(bytes) => return Some(Ok(Frame::Ping(bytes))),
            ws::Frame::Pong(bytes) => return Some(Ok(Frame::Pong(bytes))),
            ws::Frame::Close(reason) => return Some(Ok(Frame::Close(reason))),
            // The codec refuses continuations out of order; only the
            // total size is left to check.
            ws::Frame::Continuation(item) => match item {
                Item::FirstText(bytes) => {
                    self.partial = Some((true, BytesMut::from(&bytes[..])));
                    false
                }
                Item::FirstBinary(bytes) => {
                    self.partial = Some((false, BytesMut::from(&bytes[..])));
                    false
                }
                Item::Continue(bytes) => {
                    self.extend(&bytes);
                    false
                }
                Item::Last(bytes) => {
                    self.extend(&bytes);
                    true
                }
            },
        };
        let size = self.partial.as_ref().map_or(0, |(_, bytes)| bytes.len());
        if size > self.max {
            return Some(Err(ReadError::TooLarge));
        }
        if !whole {
            return None;
        }
        let (is_text, bytes) = self.partial.take()?;
        Some(if is_text {
            text(bytes.freeze())
        } else {
            Ok(Frame::Binary(bytes.freeze()))
        })
    }

    fn extend(&mut self, bytes: &[u8]) {
        if let Some((_, partial)) = self.partial.as_mut() {
            partial.extend_from_slice(bytes);
        }
    }
}

/// The payload length a frame header at the start of `buf` declares, once
/// the header's length field has arrived (RFC 6455 §5.2).
fn declared_length(buf: &[u8]) -> Option<u64> {
    let short = buf.get(1)? & 0x7f;
    match short {
        126 => Some(u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]))),
        127 => Some(u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?)),
        n => Some(u64::from(n)),
    }
}

fn text(bytes: Bytes) -> Result<Frame, ReadError> {
    ByteString::try_from(bytes)
        .map(Frame::Text)
        .map_err(|_| ReadError::NotUtf8)
}

impl Stream for Incoming {
    type Item = Result<Frame, ReadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            this.shared.reader.register(cx.waker());
            if this.shared.written() {
                this.done = true;
                return Poll::Ready(None);
            }
            match this.codec.decode(&mut this.buf) {
                Ok(Some(frame)) => {
                    let message = this.assemble(frame);
                    // A frame came whole outside a fragmented message: the
                    // next bytes begin a new message, with its own time.
                    if this.partial.is_none() {
                        this.deadline = None;
                    }
                    match message {
                        Some(Err(err)) => return this.fail(err),
                        Some(message) => return Poll::Ready(Some(message)),
                        None => continue,
                    }
                }
                // The codec checks a frame's size only once all of it is
                // here; a client declaring a gigabyte would have it buffered.
                Ok(None) if declared_length(&this.buf).is_some_and(|n| n > this.max as u64) => {
                    return this.fail(ReadError::TooLarge)
                }
                Ok(None) => {}
                Err(ProtocolError::Overflow) => return this.fail(ReadError::TooLarge),
                Err(err) => return this.fail(ReadError::Protocol(err)),
            }
            if this.late(cx) {
                return this.fail(ReadError::Unfinished);
            }
            if this.buf.is_empty() && this.buf.capacity() > 0 {
                this.buf = BytesMut::new();
            }
            if ready!(this.io.poll_read_ready(cx)).is_err() {
                return this.gone();
            }
            this.buf.reserve(READ_CHUNK);
            match this.io.try_read_buf(&mut this.buf) {
                Ok(0) => return this.gone(),
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return this.gone(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_lengths_are_read_from_every_header_form() {
        assert_eq!(declared_length(&[0x81]), None);
        assert_eq!(declared_length(&[0x81, 0x85]), Some(5));
        assert_eq!(declared_length(&[0x81, 0xfe, 0x01]), None);
        assert_eq!(declared_length(&[0x81, 0xfe, 0x01, 0x00]), Some(256));
        let mut long = vec![0x81, 0xff];
        long.extend_from_slice(&(1u64 << 30).to_be_bytes());
        assert_eq!(declared_length(&long[..9]), None);
        assert_eq!(declared_length(&long), Some(1 << 30));
    }
}
