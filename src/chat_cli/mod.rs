//! `bazaar chat`: a terminal chat client for the rooms on `GET /ws`
//! (docs/protocol.md §1). It joins `chat:<room>` as a guest, prints the room's
//! history, messages and presence on stdout, sends each stdin line as `say`,
//! and understands `/who`, `/join ROOM` and `/quit`. A dropped connection is
//! re-opened with backoff and the room re-joined with `since`, so nothing is
//! missed. Direct conversations with other members, peer to peer, are in
//! direct.rs.
//!
//! One plain async loop: stdin is read on a std thread and forwarded through
//! a channel, so the actix system never blocks on the terminal; each direct
//! conversation runs as a task of its own and reports through a channel.

mod direct;
#[cfg(feature = "p2p")]
mod link;
mod stun;

pub use stun::StunServer;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use actix_codec::Framed;
use awc::ws::{CloseCode, CloseReason, Codec, Frame, Message};
use awc::BoxedSocket;
use chrono::{DateTime, Local};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use url::Url;

use crate::backoff::Backoff;
use crate::domain::topic::RoomName;
use crate::protocol::ErrorCode;
use direct::{Directs, Event, LinkOptions, Outbox};

/// The waits before reconnecting: 500 ms, doubling up to 10 s.
const RECONNECT: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
/// The largest frame accepted from the server (a join's history).
const MAX_FRAME: usize = 8 << 20;

const HELP: &str = "commands: /who (members), /join ROOM (change room), /quit (leave); \
    direct, peer to peer: /direct NAME (ask, then lines go to them), /room (lines go to the room), \
    /msg NAME TEXT, /accept NAME, /reject NAME, /close NAME; any other line is said in the room";

/// What `bazaar chat` was asked to do.
#[derive(Debug, Clone)]
pub struct ChatOptions {
    /// `http(s)://host[:port]` or `ws(s)://host[:port]`.
    pub server: Url,
    pub name: String,
    pub room: String,
    /// STUN servers for direct conversations behind NAT.
    pub stun: Vec<StunServer>,
}

/// The `/ws?name=` URL for a server given as http(s) or ws(s).
pub fn endpoint(server: &Url, name: &str) -> anyhow::Result<Url> {
    let scheme = match server.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        other => anyhow::bail!("--server must be an http(s):// or ws(s):// URL, not {other}://"),
    };
    let mut url = server.clone();
    url.set_scheme(scheme)
        .map_err(|()| anyhow::anyhow!("cannot use {server} as a WebSocket URL"))?;
    let path = format!("{}/ws", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_fragment(None);
    url.query_pairs_mut().clear().append_pair("name", name);
    Ok(url)
}

/// Runs the client until `/quit` or the end of stdin; returns the exit code
/// (0 on quit, 2 when the server refuses the connection).
pub async fn run(options: ChatOptions) -> anyhow::Result<i32> {
    let room = RoomName::parse(&options.room)
        .map_err(|e| anyhow::anyhow!("invalid room name {:?}: {e}", options.room))?;
    let url = endpoint(&options.server, &options.name)?;
    let mut lines = stdin_lines();
    let (directs, mut events) = Directs::new(LinkOptions {
        stun: options.stun.clone(),
    });
    let mut chat = Chat::new(room, directs);
    let mut failures = 0;
    let mut connected_before = false;
    loop {
        tracing::info!(server = %url, "connecting");
        let connecting = awc::Client::builder()
            .connector(crate::net::connector())
            .finish()
            .ws(url.as_str())
            .max_frame_size(MAX_FRAME)
            .connect()
            .await;
        match connecting {
            Ok((_, socket)) => {
                failures = 0;
                match chat
                    .session(socket, &mut lines, &mut events, connected_before)
                    .await
                {
                    Ended::Quit => return Ok(0),
                    Ended::Dropped => {
                        connected_before = true;
                        // This connection's id is gone: peers see it leave.
                        chat.directs
                            .end_all("the connection to the server was lost", false);
                    }
                }
            }
            Err(awc::error::WsClientError::InvalidResponseStatus(status))
                if matches!(status.as_u16(), 401 | 403) =>
            {
                let reason = if status.as_u16() == 401 {
                    "the server refused the name (guest names are 1-32 letters, digits, _ - . or space)"
                } else {
                    "the server refused this client's origin"
                };
                println!("! {reason} ({status})");
                return Ok(2);
            }
            Err(err) => tracing::warn!(error = %err, "could not connect"),
        }
        println!("* reconnecting…");
        failures += 1;
        let wait = RECONNECT.jittered(failures);
        let sleep = tokio::time::sleep(wait);
        tokio::pin!(sleep);
        // Stay responsive to /quit while waiting.
        loop {
            tokio::select! {
                () = &mut sleep => break,
                line = lines.recv() => match line.as_deref().map(str::trim) {
                    None | Some("/quit") => return Ok(0),
                    Some("") => {}
                    Some(_) => println!("! not connected; that line was not sent"),
                },
                // Conversations ended above; their tasks' last words.
                Some(_) = events.recv() => {}
            }
        }
    }
}

/// Lines typed on stdin; the channel closes at the end of stdin.
fn stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

enum Ended {
    Quit,
    Dropped,
}

/// What a reply answers.
enum Pending {
    Join {
        room: RoomName,
        resume: bool,
    },
    Leave,
    Say,
    /// Signal data for this connection.
    Signal(String),
}

struct Chat {
    room: RoomName,
    /// This connection's id in the current room.
    conn: Option<String>,
    /// The current room's members: conn → user.
    members: BTreeMap<String, String>,
    /// The highest message seq seen in the current room.
    seq: Option<u64>,
    next_ref: u64,
    pending: HashMap<String, Pending>,
    /// A room to leave once the reply that switched rooms is handled.
    leave_later: Option<String>,
    directs: Directs,
    /// Signals to send: (topic, connection, data).
    outbox: Vec<(String, String, Value)>,
}

type Socket = Framed<BoxedSocket, Codec>;

impl Chat {
    fn new(room: RoomName, directs: Directs) -> Chat {
        Chat {
            room,
            conn: None,
            members: BTreeMap::new(),
            seq: None,
            next_ref: 1,
            pending: HashMap::new(),
            leave_later: None,
            directs,
            outbox: Vec::new(),
        }
    }

    /// Queues signals for peers in the current room.
    fn queue(&mut self, outbox: Outbox) {
        let topic = self.topic();
        self.outbox.extend(
            outbox
                .into_iter()
                .map(|(to, data)| (topic.clone(), to, data)),
        );
    }

    /// Sends the queued signals; false when the socket is gone.
    async fn flush(&mut self, socket: &mut Socket) -> bool {
        for (topic, to, data) in std::mem::take(&mut self.outbox) {
            let signal = json!({"op": "signal", "topic": topic, "to": to, "data": data});
            if !self.request(socket, signal, Pending::Signal(to)).await {
                return false;
            }
        }
        true
    }

    fn topic(&self) -> String {
        format!("chat:{}", self.room)
    }

    /// One connection: (re)join, then relay stdin and events until it ends.
    async fn session(
        &mut self,
        mut socket: Socket,
        lines: &mut mpsc::UnboundedReceiver<String>,
        events: &mut mpsc::UnboundedReceiver<(u64, Event)>,
        resume: bool,
    ) -> Ended {
        self.pending.clear();
        self.leave_later = None;
        let mut join = json!({"op": "join", "topic": self.topic()});
        if let Some(seq) = self.seq {
            join["since"] = json!(seq);
        }
        let pending = Pending::Join {
            room: self.room.clone(),
            resume,
        };
        if !self.request(&mut socket, join, pending).await {
            return Ended::Dropped;
        }
        loop {
            tokio::select! {
                frame = socket.next() => match frame {
                    Some(Ok(Frame::Text(bytes))) => match serde_json::from_slice::<Value>(&bytes) {
                        Ok(value) => {
                            self.on_frame(&value);
                            if !self.flush(&mut socket).await {
                                return Ended::Dropped;
                            }
                            if let Some(old) = self.leave_later.take() {
                                let leave = json!({"op": "leave", "topic": old});
                                if !self.request(&mut socket, leave, Pending::Leave).await {
                                    return Ended::Dropped;
                                }
                            }
                        }
                        Err(err) => tracing::warn!(error = %err, "the server sent a frame that is not JSON"),
                    },
                    Some(Ok(Frame::Ping(bytes))) => {
                        if socket.send(Message::Pong(bytes)).await.is_err() {
                            return Ended::Dropped;
                        }
                    }
                    Some(Ok(Frame::Close(reason))) => {
                        tracing::info!(?reason, "the server closed the connection");
                        return Ended::Dropped;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(err)) => {
                        tracing::warn!(error = %err, "connection failed");
                        return Ended::Dropped;
                    }
                    None => return Ended::Dropped,
                },
                line = lines.recv() => {
                    let Some(line) = line else {
                        self.quit(&mut socket).await;
                        return Ended::Quit;
                    };
                    if let Some(ended) = self.on_line(&mut socket, &line).await {
                        return ended;
                    }
                    if !self.flush(&mut socket).await {
                        return Ended::Dropped;
                    }
                }
                Some((link, event)) = events.recv() => {
                    let outbox = self.directs.on_event(link, event);
                    self.queue(outbox);
                    if !self.flush(&mut socket).await {
                        return Ended::Dropped;
                    }
                }
            }
        }
    }

    /// Handles one typed line; `Some` when the session ends.
    async fn on_line(&mut self, socket: &mut Socket, line: &str) -> Option<Ended> {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            return None;
        }
        let Some(command) = line.strip_prefix('/') else {
            if let Some(peer) = self.directs.focus.clone() {
                self.directs.say(&peer, line);
                return None;
            }
            let say = json!({"op": "say", "topic": self.topic(), "text": line});
            return (!self.request(socket, say, Pending::Say).await).then_some(Ended::Dropped);
        };
        // Names may hold spaces: a direct command's name is the rest of the line.
        let (verb, rest) = command.split_once(' ').unwrap_or((command, ""));
        let name = rest.trim();
        match verb {
            "direct" | "accept" | "reject" | "close" if !name.is_empty() => {
                let outbox = match verb {
                    "direct" => self
                        .directs
                        .direct(&self.members, self.conn.as_deref(), name),
                    "accept" => self.directs.accept(name),
                    "reject" => self.directs.reject(name),
                    _ => self.directs.close(name),
                };
                self.queue(outbox);
                return None;
            }
            "msg" if !name.is_empty() => {
                self.direct_message(name);
                return None;
            }
            "room" if name.is_empty() => {
                self.directs.room(self.room.as_str());
                return None;
            }
            _ => {}
        }
        let mut words = command.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("quit"), None, _) => {
                self.quit(socket).await;
                Some(Ended::Quit)
            }
            (Some("who"), None, _) => {
                // Before the join reply there is no member list to show.
                if self.conn.is_some() {
                    self.print_members();
                } else {
                    println!("* still joining #{}", self.room);
                }
                None
            }
            (Some("join"), Some(room), None) => {
                let room = match RoomName::parse(room) {
                    Ok(room) => room,
                    Err(err) => {
                        println!("! invalid room name {room:?}: {err}");
                        return None;
                    }
                };
                if room == self.room {
                    println!("* already in #{room}");
                    return None;
                }
                let join = json!({"op": "join", "topic": format!("chat:{room}")});
                let pending = Pending::Join {
                    room,
                    resume: false,
                };
                (!self.request(socket, join, pending).await).then_some(Ended::Dropped)
            }
            _ => {
                println!("* {HELP}");
                None
            }
        }
    }

    /// `/msg NAME TEXT`: the longest name of a conversation that starts the
    /// line is the name.
    fn direct_message(&mut self, rest: &str) {
        let found = self.directs.names().into_iter().find_map(|name| {
            let text = rest.strip_prefix(name.as_str())?.strip_prefix(' ')?.trim();
            Some((name, text.to_owned()))
        });
        match found {
            Some((_, text)) if text.is_empty() => println!("! /msg NAME TEXT: the text is missing"),
            Some((name, text)) => {
                if let Some(conn) = self.directs.conn_of(&name) {
                    self.directs.say(&conn, &text);
                }
            }
            None => println!("! no direct conversation with that name; /direct NAME asks for one"),
        }
    }

    /// Says goodbye to every peer, then closes the socket.
    async fn quit(&mut self, socket: &mut Socket) {
        let outbox = self.directs.end_all("you quit", true);
        self.queue(outbox);
        if self.flush(socket).await {
            close(socket).await;
        }
    }

    /// Sends a request with a fresh ref; false when the socket is gone.
    async fn request(&mut self, socket: &mut Socket, mut frame: Value, pending: Pending) -> bool {
        let reference = self.next_ref.to_string();
        self.next_ref += 1;
        frame["ref"] = json!(reference);
        self.pending.insert(reference, pending);
        match socket.send(Message::Text(frame.to_string().into())).await {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(error = %err, "could not send");
                false
            }
        }
    }

    /// Leaves first, then joins (docs/protocol.md §1): a connection in both was
    /// renamed. A diff can repeat what this client already knows (it may
    /// have joined partway through the changes a diff sums up), so only
    /// real changes are printed.
    fn on_presence(&mut self, frame: &Value) {
        let list = |name: &str| -> Vec<(String, String)> {
            let members = frame[name].as_array().into_iter().flatten();
            members
                .filter_map(|m| {
                    Some((
                        m["conn"].as_str()?.to_owned(),
                        m["user"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        };
        let (leaves, joins) = (list("leaves"), list("joins"));
        // What each connection the diff names was before it.
        let changed: BTreeMap<String, Option<String>> = leaves
            .iter()
            .chain(&joins)
            .filter(|(conn, _)| self.conn.as_deref() != Some(conn.as_str()))
            .map(|(conn, _)| (conn.clone(), self.members.get(conn).cloned()))
            .collect();
        for (conn, _) in leaves {
            self.members.remove(&conn);
        }
        for (conn, user) in joins {
            self.members.insert(conn, user);
        }
        for (conn, before) in changed {
            match (before, self.members.get(&conn)) {
                (Some(user), None) => {
                    println!("* {user} left");
                    let outbox = self.directs.on_left(&conn);
                    self.queue(outbox);
                }
                (None, Some(user)) => println!("* {user} joined"),
                (Some(old), Some(now)) if old != *now => {
                    println!("* {old} is now {now}");
                    let now = now.clone();
                    self.directs.on_renamed(&conn, &now);
                }
                _ => {}
            }
        }
    }

    fn on_frame(&mut self, frame: &Value) {
        let topic = self.topic();
        match frame["op"].as_str() {
            Some("reply") => self.on_reply(frame),
            Some("message") if frame["topic"] == topic.as_str() => self.print_message(frame),
            Some("presence") if frame["topic"] == topic.as_str() => self.on_presence(frame),
            Some("signal") if frame["topic"] == topic.as_str() => self.on_signal(frame),
            Some("error") => print_error(frame),
            _ => {}
        }
    }

    fn on_signal(&mut self, frame: &Value) {
        let Some(from) = frame["from"].as_str() else {
            return;
        };
        // Only a member can signal: the server relays within the room.
        let Some(user) = self.members.get(from).cloned() else {
            return;
        };
        let outbox = self
            .directs
            .on_signal(self.conn.as_deref(), from, &user, &frame["data"]);
        self.queue(outbox);
    }

    fn on_reply(&mut self, frame: &Value) {
        let Some(pending) = frame["ref"].as_str().and_then(|r| self.pending.remove(r)) else {
            return;
        };
        let body = &frame["body"];
        if frame["status"] != "ok" {
            match pending {
                Pending::Join { room, .. } => {
                    print!("! could not join #{room}: ");
                    print_error(body);
                }
                // The peer left between its last presence and this signal.
                Pending::Signal(conn) if body["code"] == ErrorCode::NotInTopic.as_str() => {
                    let outbox = self.directs.on_left(&conn);
                    self.queue(outbox);
                }
                Pending::Say | Pending::Leave | Pending::Signal(_) => print_error(body),
            }
            return;
        }
        let Pending::Join { room, resume } = pending else {
            return;
        };
        if room != self.room {
            // Switched rooms: leave the old one now that the new one is joined.
            // Direct conversations were with members of the old one.
            let outbox = self.directs.end_all("you left the room", true);
            self.queue(outbox);
            let old = std::mem::replace(&mut self.room, room);
            self.leave_later = Some(format!("chat:{old}"));
            self.seq = None;
        }
        self.conn = body["conn"].as_str().map(str::to_owned);
        self.members = body["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| {
                Some((
                    m["conn"].as_str()?.to_owned(),
                    m["user"].as_str()?.to_owned(),
                ))
            })
            .collect();
        if resume {
            println!("* reconnected");
        } else {
            println!("* joined #{}", self.room);
        }
        let history = body["history"].as_array().cloned().unwrap_or_default();
        for message in &history {
            self.print_message(message);
        }
        if body["truncated"] == true {
            println!("* (some messages were missed while disconnected)");
        }
        if let Some(seq) = body["seq"].as_u64() {
            if body["truncated"] != true {
                self.seq = Some(self.seq.map_or(seq, |s| s.max(seq)));
            }
        }
        if !resume {
            self.print_members();
        }
    }

    fn print_message(&mut self, message: &Value) {
        if let Some(seq) = message["seq"].as_u64() {
            if self.seq.is_some_and(|s| seq <= s) {
                return; // already shown
            }
            self.seq = Some(seq);
        }
        let user = message["user"].as_str().unwrap_or("?");
        let text = message["text"].as_str().unwrap_or("");
        let at = message["at"].as_str().unwrap_or("");
        let time = DateTime::parse_from_rfc3339(at)
            .map(|t| t.with_timezone(&Local).format("%H:%M:%S").to_string())
            .unwrap_or_else(|_| at.to_owned());
        println!("[{time}] {user}: {text}");
    }

    fn print_members(&self) {
        let mut users: Vec<String> = self
            .members
            .iter()
            .map(|(conn, user)| {
                if self.conn.as_deref() == Some(conn) {
                    format!("{user} (you)")
                } else if self.directs.is_open(conn) {
                    format!("{user} (direct)")
                } else {
                    user.clone()
                }
            })
            .collect();
        users.sort();
        println!("* in #{}: {}", self.room, users.join(", "));
    }
}

fn print_error(body: &Value) {
    let code = body["code"].as_str().unwrap_or("error");
    let message = body["message"].as_str().unwrap_or("");
    println!("! {code}: {message}");
}

/// A normal close; the process ends right after, so errors do not matter.
async fn close(socket: &mut Socket) {
    let reason = CloseReason::from(CloseCode::Normal);
    let sent = tokio::time::timeout(
        Duration::from_secs(2),
        socket.send(Message::Close(Some(reason))),
    )
    .await;
    if !matches!(sent, Ok(Ok(()))) {
        tracing::debug!("could not send the close frame");
    }
}
