//! The handshake, and the moment a socket leaves the HTTP connection.

use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_codec::Framed;
use actix_http::body::{BodySize, BoxBody, MessageBody};
use actix_http::h1::{self, Message};
use actix_http::{ConnectionType, Request, Response, StatusCode};
use actix_service::{fn_factory, fn_service, IntoServiceFactory, Service, ServiceFactory};
use actix_web::dev::{AppConfig, ServiceResponse};
use actix_web::rt::net::TcpStream;
use actix_web::{HttpRequest, HttpResponse};
use bytes::BytesMut;
use futures_util::SinkExt;
use tokio_util::sync::CancellationToken;

use super::admit::{Refusal, Sockets};
use super::leaving::Leaving;
use super::read::Incoming;
use super::shared::Shared;
use super::write::{self, Outbound, Peer};
use crate::metrics::{Connection, Open};
use crate::protocol::{self, ErrorCode};

/// The limits of one socket.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes queued for the client before it counts as a slow consumer.
    pub max_queued_bytes: usize,
    /// The largest message read, continuations included; above it the
    /// stream yields [`ReadError::TooLarge`].
    pub max_message: usize,
    /// How long a message may take from its first byte to its last; past
    /// it the stream yields [`ReadError::Unfinished`].
    pub message_timeout: Duration,
}

/// What a socket opens into: the node's state, and who asks.
pub struct Door<'a> {
    /// Closes the socket with 1001 when the server shuts down (in its
    /// wave); once it has begun, no socket opens.
    pub leaving: &'a Leaving,
    /// The node's count of sockets, and its caps.
    pub sockets: &'a Arc<Sockets>,
    /// The client address (through trusted proxies); `None` only for a
    /// request with no peer.
    pub client: Option<IpAddr>,
}

/// Answers a WebSocket handshake. When the response reaches the client the
/// socket opens, with `limits`, and `start` gets its two halves. `open`
/// counts it for `/metrics` until the socket is gone, and so does its slot
/// in the node's caps: a client socket counts for its address too.
pub fn accept(
    req: &HttpRequest,
    limits: Limits,
    door: Door<'_>,
    open: Open,
    start: impl FnOnce(Outbound, Incoming) + 'static,
) -> HttpResponse {
    let mut handshake = match actix_http::ws::handshake(req.head()) {
        Ok(handshake) => handshake,
        Err(err) => {
            // actix-http's answer, with its headers (the version a 426
            // asks for), and a body in the API's error shape.
            let standard = Response::<BoxBody>::from(&err);
            let mut refusal = HttpResponse::build(standard.status());
            for (name, value) in standard.headers() {
                refusal.insert_header((name.clone(), value.clone()));
            }
            return refusal.json(
                protocol::Refusal::new(ErrorCode::BadHandshake, err.to_string()).http_body(),
            );
        }
    };
    // A node handing over takes no new socket: the load balancer tries
    // another node on a 503, and a client connecting directly retries.
    if door.leaving.is_cancelled() {
        return HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(
                protocol::Refusal::new(
                    ErrorCode::Draining,
                    "this node is going away; connect again",
                )
                .http_body(),
            );
    }
    // Worker sockets hold the worker token, and a machine running several
    // workers shows one address: only the node's cap is theirs.
    let counted = match open.kind() {
        Connection::Client => door.client,
        Connection::Worker => None,
    };
    let slot = match door.sockets.admit(counted) {
        Ok(slot) => slot,
        Err(refusal) => return refused(refusal, door.sockets, &open),
    };
    let leaving = match open.kind() {
        Connection::Client => door.leaving.for_socket(),
        Connection::Worker => door.leaving.for_worker(),
    };
    let peer = Peer {
        open,
        _slot: slot,
        address: door
            .client
            .map_or_else(|| "unknown".to_owned(), |a| a.to_string()),
    };
    let mut response = HttpResponse::from(handshake.finish()).map_into_boxed_body();
    response
        .extensions_mut()
        .insert(Handoff(Box::new(move |socket: Socket| {
            let (out, incoming) = socket.open(limits, leaving, peer);
            start(out, incoming);
        })));
    response
}

/// The answer to a socket over a cap: 503 sends it to another node (a
/// load balancer retries there), 429 tells a client it holds too many.
fn refused(refusal: Refusal, sockets: &Sockets, open: &Open) -> HttpResponse {
    open.refused(refusal);
    let caps = sockets.caps();
    match refusal {
        Refusal::NodeFull => HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "5"))
            .json(
                protocol::Refusal::new(
                    ErrorCode::ServerFull,
                    format!(
                        "this node holds as many sockets as it takes ({}); try again later",
                        caps.node
                    ),
                )
                .http_body(),
            ),
        Refusal::AddressFull => HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", "5"))
            .json(
                protocol::Refusal::new(
                    ErrorCode::TooManySockets,
                    format!(
                        "your address holds as many sockets as it may ({}); close one first",
                        caps.per_address
                    ),
                )
                .http_body(),
            ),
    }
}

/// What a handler's 101 carries to [`handover`]: who takes the socket.
struct Handoff(Box<dyn FnOnce(Socket)>);

/// A TCP stream past its handshake, with whatever the client sent after it.
struct Socket {
    io: TcpStream,
    early: BytesMut,
}

/// The upgrade service of actix-http's HTTP/1 dispatcher, which gets every
/// request asking for a protocol switch. It runs the request through the
/// application built by `app`, so that routing, middleware and handlers are
/// the same as for any other request. A 101 that came from [`accept`] takes
/// the socket away; any other answer is written and the connection closes.
pub fn handover<F, I, A, B>(
    app: F,
) -> impl ServiceFactory<
    (Request, Framed<TcpStream, h1::Codec>),
    Config = (),
    Response = (),
    Error = actix_web::Error,
    InitError = (),
>
where
    F: Fn() -> I + 'static,
    I: IntoServiceFactory<A, Request>,
    A: ServiceFactory<
            Request,
            Config = AppConfig,
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    A::Service: 'static,
    B: MessageBody + 'static,
{
    fn_factory(move || {
        let factory = app().into_factory();
        async move {
            let app = Rc::new(factory.new_service(AppConfig::default()).await?);
            Ok(fn_service(move |(req, framed)| {
                hand_over(app.clone(), req, framed)
            }))
        }
    })
}

async fn hand_over<S, B>(
    app: Rc<S>,
    req: Request,
    mut framed: Framed<TcpStream, h1::Codec>,
) -> Result<(), actix_web::Error>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let mut response: Response<BoxBody> = match app.call(req).await {
        Ok(response) => response.map_into_boxed_body().into_parts().1.into(),
        Err(err) => err.error_response().into(),
    };
    let handoff = response.extensions_mut().remove::<Handoff>();
    match handoff {
        Some(Handoff(start)) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
            framed
                .send(Message::Item((response.drop_body(), BodySize::None)))
                .await?;
            let parts = framed.into_parts();
            // The dispatcher's 8 KiB read buffer goes; a frame the client
            // sent right behind its handshake does not.
            let early = BytesMut::from(&parts.read_buf[..]);
            start(Socket {
                io: parts.io,
                early,
            });
        }
        _ => {
            // Mostly a refusal (a wrong origin, token or name), but any
            // request that asked to switch protocols lands here, so the body
            // is streamed: it may be long, or never end.
            response
                .head_mut()
                .set_connection_type(ConnectionType::Close);
            let (head, body) = response.into_parts();
            framed.send(Message::Item((head, body.size()))).await?;
            let mut body = std::pin::pin!(body);
            while let Some(chunk) = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await {
                match chunk {
                    Ok(chunk) => framed.send(Message::Chunk(Some(chunk))).await?,
                    // The head is out; all that is left is to hang up.
                    Err(_) => return Ok(()),
                }
            }
            framed.send(Message::Chunk(None)).await?;
        }
    }
    Ok(())
}

impl Socket {
    fn open(self, limits: Limits, leaving: CancellationToken, peer: Peer) -> (Outbound, Incoming) {
        let io = Rc::new(self.io);
        let shared = Arc::new(Shared::default());
        let out = write::start(
            io.clone(),
            shared.clone(),
            limits.max_queued_bytes,
            leaving,
            peer,
        );
        let incoming = Incoming::new(
            io,
            self.early,
            shared,
            limits.max_message,
            limits.message_timeout,
        );
        (out, incoming)
    }
}
