//! A docs/protocol.md §1 client for tests: requests with refs, and the events
//! that arrive in between kept in order.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use actix_codec::Framed;
use awc::ws::{Codec, Frame, Message};
use awc::BoxedSocket;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

use crate::helpers::TestApp;

pub struct ChatClient {
    socket: Framed<BoxedSocket, Codec>,
    next_ref: u64,
    /// Frames received while waiting for something else.
    pub events: VecDeque<Value>,
}

/// How a connection attempt or a socket ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    Refused(u16),
    Closed(Option<u16>),
}

impl ChatClient {
    /// Opens `/ws?name=<name>` (no name at all when `None`).
    pub async fn connect(app: &TestApp, name: Option<&str>) -> Result<ChatClient, Ended> {
        ChatClient::connect_with(app, name, None).await
    }

    pub async fn connect_with(
        app: &TestApp,
        name: Option<&str>,
        origin: Option<&str>,
    ) -> Result<ChatClient, Ended> {
        ChatClient::connect_full(app, name, origin, None).await
    }

    /// Opens `/ws` with a `Cookie` header, as a logged-in browser would.
    pub async fn connect_with_cookie(app: &TestApp, cookie: &str) -> Result<ChatClient, Ended> {
        ChatClient::connect_full(app, None, None, Some(cookie)).await
    }

    /// Opens `<ws_base>/ws?name=<name>` on any server, a cluster's load
    /// balancer among them.
    pub async fn connect_to(ws_base: &str, name: &str) -> Result<ChatClient, Ended> {
        ChatClient::connect_at(ws_base, Some(name), None, None).await
    }

    /// Opens `<ws_base>/ws` with a `Cookie` header on any server, as a
    /// logged-in client that is not a browser would (it sends no Origin).
    pub async fn connect_to_with_cookie(ws_base: &str, cookie: &str) -> Result<ChatClient, Ended> {
        ChatClient::connect_at(ws_base, None, None, Some(cookie)).await
    }

    async fn connect_full(
        app: &TestApp,
        name: Option<&str>,
        origin: Option<&str>,
        cookie: Option<&str>,
    ) -> Result<ChatClient, Ended> {
        ChatClient::connect_at(&app.ws, name, origin, cookie).await
    }

    async fn connect_at(
        ws_base: &str,
        name: Option<&str>,
        origin: Option<&str>,
        cookie: Option<&str>,
    ) -> Result<ChatClient, Ended> {
        let url = match name {
            Some(name) => format!("{ws_base}/ws?name={}", crate::crawl::urlencode(name)),
            None => format!("{ws_base}/ws"),
        };
        let mut request = awc::Client::new().ws(url).max_frame_size(8 << 20);
        if let Some(origin) = origin {
            request = request.origin(origin);
        }
        if let Some(cookie) = cookie {
            request = request.set_header(awc::http::header::COOKIE, cookie);
        }
        match request.connect().await {
            Ok((_, socket)) => Ok(ChatClient {
                socket,
                next_ref: 1,
                events: VecDeque::new(),
            }),
            Err(awc::error::WsClientError::InvalidResponseStatus(status)) => {
                Err(Ended::Refused(status.as_u16()))
            }
            Err(err) => panic!("connect: {err}"),
        }
    }

    pub async fn send_text(&mut self, text: String) {
        self.socket
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_text(frame.to_string()).await;
    }

    /// Sends a frame, or says that the socket ended: for a client whose
    /// server may be gone.
    pub async fn try_send(&mut self, frame: Value) -> Result<(), Ended> {
        self.socket
            .send(Message::Text(frame.to_string().into()))
            .await
            .map_err(|_| Ended::Closed(None))
    }

    /// The next frame, or how the socket ended.
    pub async fn next_frame(&mut self, within: Duration) -> Result<Value, Ended> {
        loop {
            let frame = tokio::time::timeout(within, self.socket.next())
                .await
                .expect("a frame in time");
            match frame {
                None => return Err(Ended::Closed(None)),
                Some(Err(_)) => return Err(Ended::Closed(None)),
                Some(Ok(Frame::Text(bytes))) => {
                    return Ok(serde_json::from_slice(&bytes).expect("json frame"))
                }
                Some(Ok(Frame::Close(reason))) => {
                    return Err(Ended::Closed(reason.map(|r| u16::from(r.code))))
                }
                Some(Ok(Frame::Ping(bytes))) => {
                    let _ = self.socket.send(Message::Pong(bytes)).await;
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next frame with this op; others are kept for later.
    pub async fn recv_op(&mut self, op: &str) -> Value {
        if let Some(i) = self.events.iter().position(|f| f["op"] == op) {
            return self.events.remove(i).expect("indexed");
        }
        loop {
            let frame = self
                .next_frame(Duration::from_secs(10))
                .await
                .unwrap_or_else(|ended| panic!("socket ended waiting for {op}: {ended:?}"));
            if frame["op"] == op {
                return frame;
            }
            self.events.push_back(frame);
        }
    }

    /// Sends a request with a fresh `ref` and returns its reply.
    pub async fn request(&mut self, mut frame: Value) -> Value {
        let reference = self.next_ref.to_string();
        self.next_ref += 1;
        frame["ref"] = json!(reference);
        self.send(frame).await;
        loop {
            if let Some(i) = self
                .events
                .iter()
                .position(|f| f["op"] == "reply" && f["ref"] == reference.as_str())
            {
                return self.events.remove(i).expect("indexed");
            }
            let frame = self
                .next_frame(Duration::from_secs(10))
                .await
                .unwrap_or_else(|ended| panic!("socket ended waiting for reply: {ended:?}"));
            self.events.push_back(frame);
        }
    }

    /// Joins a topic and returns the reply's body.
    pub async fn join(&mut self, topic: &str, since: Option<u64>) -> Value {
        let mut frame = json!({"op":"join","topic":topic});
        if let Some(since) = since {
            frame["since"] = json!(since);
        }
        let reply = self.request(frame).await;
        assert_eq!(reply["status"], "ok", "join {topic}: {reply}");
        reply["body"].clone()
    }

    /// Says something and returns the reply's body (`id`, `seq`).
    pub async fn say(&mut self, topic: &str, text: &str) -> Value {
        let reply = self
            .request(json!({"op":"say","topic":topic,"text":text}))
            .await;
        assert_eq!(reply["status"], "ok", "say: {reply}");
        reply["body"].clone()
    }

    pub async fn close(mut self) {
        let _ = self.socket.send(Message::Close(None)).await;
    }
}

/// A member list as a client keeps it, conn → user: start from a join
/// reply's `members`, then apply each `presence` diff, leaves before joins
/// (a diff may carry several changes at once).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MemberList(pub BTreeMap<String, String>);

impl MemberList {
    pub fn of(joined: &Value) -> MemberList {
        let mut list = MemberList::default();
        list.apply(&json!({"leaves": [], "joins": joined["members"]}));
        list
    }

    pub fn apply(&mut self, presence: &Value) {
        for leave in presence["leaves"].as_array().expect("leaves") {
            self.0.remove(leave["conn"].as_str().expect("conn"));
        }
        for join in presence["joins"].as_array().expect("joins") {
            let conn = join["conn"].as_str().expect("conn").to_owned();
            self.0
                .insert(conn, join["user"].as_str().expect("user").to_owned());
        }
    }

    pub fn user(&self, conn: &str) -> Option<&str> {
        self.0.get(conn).map(String::as_str)
    }

    /// Everyone's name, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.0.values().map(String::as_str).collect();
        names.sort();
        names
    }
}
