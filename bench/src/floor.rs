//! `bench floor`: a bare numbered broadcaster, the least any chat server does
//! for `bench chat` (a join reply, a numbered fan-out of each `say` and its
//! reply), alone or as one of several processes sharing rooms through Redis.
//! It stores nothing, checks nothing and keeps no presence.
//!
//! Run behind the same nginx as a cluster and measured with the same `bench
//! chat`, it shows what this machine can do at all: a latency target the
//! floor misses is out of reach of any server here, Bazaar included
//! (`scripts/bench-cluster floor`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;

use actix_codec::Framed;
use actix_http::ws::{hash_key, Codec, Frame, Message};
use anyhow::{bail, Context};
use bytestring::ByteString;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

#[derive(Debug, Clone, Args)]
pub struct FloorBench {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    bind: SocketAddr,
    /// Share rooms with the other floor processes on this Redis
    /// (redis://host:port): each `say` is numbered and published there in
    /// one step, as Bazaar's bus does, and every process fans it out.
    #[arg(long)]
    redis: Option<String>,
}

/// What a member's writer sends: frames shared by every member.
type Outbox = mpsc::UnboundedSender<Message>;

#[derive(Default)]
struct Room {
    members: Vec<Outbox>,
    /// The last seq given out here, when no Redis numbers the room.
    seq: u64,
}

type Rooms = Rc<RefCell<HashMap<String, Room>>>;

/// Numbers a message and publishes it in one step, so every process fans
/// out one order (the same technique as Bazaar's bus).
const NUMBER: &str = "local n = redis.call('INCR', KEYS[1]) \
    redis.call('PUBLISH', KEYS[2], ARGV[1] .. '\\t' .. n .. '\\t' .. ARGV[2]) \
    return n";

const CHANNELS: &str = "floor:room:*";

/// A request's head is read whole before the upgrade; nothing asks more.
const MAX_HEAD: usize = 8 * 1024;

pub async fn run(bench: FloorBench) -> anyhow::Result<()> {
    let rooms = Rooms::default();
    let redis = match &bench.redis {
        Some(url) => Some(subscribe(url, rooms.clone()).await?),
        None => None,
    };
    let listener = TcpListener::bind(bench.bind)
        .await
        .with_context(|| format!("could not listen on {}", bench.bind))?;
    println!(
        "floor broadcaster on {}{}",
        listener.local_addr()?,
        bench
            .redis
            .as_deref()
            .map_or(String::new(), |r| format!(", rooms shared through {r}"))
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let rooms = rooms.clone();
        let redis = redis.clone();
        actix_web::rt::spawn(async move {
            if let Err(err) = serve(stream, rooms, redis).await {
                eprintln!("floor: a connection ended: {err:#}");
            }
        });
    }
}

/// Subscribes to every room's channel and fans out what arrives; returns
/// the connection that numbers and publishes.
async fn subscribe(url: &str, rooms: Rooms) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(url).context("a bad Redis URL")?;
    let publisher = client
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("could not reach Redis at {url}"))?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.psubscribe(CHANNELS).await?;
    actix_web::rt::spawn(async move {
        let mut messages = pubsub.into_on_message();
        while let Some(msg) = messages.next().await {
            let Ok(payload) = msg.get_payload::<String>() else {
                continue;
            };
            let mut parts = payload.splitn(3, '\t');
            if let (Some(topic), Some(seq), Some(text)) = (parts.next(), parts.next(), parts.next())
            {
                fan_out(&rooms, topic, &message_frame(topic, seq, text));
            }
        }
        eprintln!("floor: the Redis subscription ended");
    });
    Ok(publisher)
}

/// Upgrades the connection, then serves the member until it goes.
async fn serve(
    mut stream: TcpStream,
    rooms: Rooms,
    redis: Option<redis::aio::MultiplexedConnection>,
) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    if !upgrade(&mut stream).await? {
        return Ok(());
    }
    let (mut sink, mut frames) = Framed::new(stream, Codec::new()).split();
    let (outbox, mut queued) = mpsc::unbounded_channel::<Message>();
    // The writer sends whatever queued meanwhile in one write, as Bazaar's do.
    actix_web::rt::spawn(async move {
        while let Some(first) = queued.recv().await {
            if sink.feed(first).await.is_err() {
                return;
            }
            while let Ok(next) = queued.try_recv() {
                if sink.feed(next).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(frame) = frames.next().await {
        let text = match frame? {
            Frame::Text(text) => text,
            Frame::Ping(data) => {
                let _ = outbox.send(Message::Pong(data));
                continue;
            }
            Frame::Close(_) => break,
            _ => continue,
        };
        let Ok(request) = serde_json::from_slice::<serde_json::Value>(&text) else {
            continue;
        };
        let topic = request["topic"].as_str().unwrap_or_default().to_owned();
        // Echoed as JSON, whatever it holds.
        let reference = request["ref"].to_string();
        match request["op"].as_str() {
            Some("join") => {
                rooms
                    .borrow_mut()
                    .entry(topic)
                    .or_default()
                    .members
                    .push(outbox.clone());
                reply(&outbox, &reference, "{}");
            }
            Some("say") => {
                let text = request["text"].to_string();
                let seq = match &redis {
                    Some(publisher) => {
                        // EVAL with the script's text, as Bazaar's bus sends it.
                        redis::cmd("EVAL")
                            .arg(NUMBER)
                            .arg(2)
                            .arg(format!("floor:seq:{topic}"))
                            .arg(format!("floor:room:{topic}"))
                            .arg(&topic)
                            .arg(&text)
                            .query_async::<u64>(&mut publisher.clone())
                            .await?
                    }
                    None => {
                        let seq = {
                            let mut rooms = rooms.borrow_mut();
                            let room = rooms.entry(topic.clone()).or_default();
                            room.seq += 1;
                            room.seq
                        };
                        fan_out(
                            &rooms,
                            &topic,
                            &message_frame(&topic, &seq.to_string(), &text),
                        );
                        seq
                    }
                };
                reply(
                    &outbox,
                    &reference,
                    &format!(r#"{{"id":{seq},"seq":{seq}}}"#),
                );
            }
            _ => reply_error(&outbox, &reference),
        }
    }
    Ok(())
}

/// Answers the WebSocket handshake: reads the request's head and accepts
/// its key. False when the peer closed without a word.
async fn upgrade(stream: &mut TcpStream) -> anyhow::Result<bool> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 && head.is_empty() {
            // A probe that only checked something listens.
            return Ok(false);
        }
        if n == 0 {
            bail!("closed before its request ended");
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_HEAD {
            bail!("a request head over {MAX_HEAD} bytes");
        }
    }
    let head = String::from_utf8_lossy(&head);
    let key = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-key"))
        .map(|(_, value)| value.trim().to_owned())
        .context("not a WebSocket upgrade")?;
    let accept = hash_key(key.as_bytes());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        std::str::from_utf8(&accept)?
    );
    stream.write_all(response.as_bytes()).await?;
    Ok(true)
}

fn message_frame(topic: &str, seq: &str, text: &str) -> ByteString {
    format!(
        r#"{{"op":"message","topic":"{topic}","id":{seq},"seq":{seq},"user":"floor","text":{text},"at":"-"}}"#
    )
    .into()
}

/// Sends one frame, encoded once, to every member of the room.
fn fan_out(rooms: &Rooms, topic: &str, frame: &ByteString) {
    if let Some(room) = rooms.borrow_mut().get_mut(topic) {
        // A member that left is dropped at the first frame it misses.
        room.members
            .retain(|member| member.send(Message::Text(frame.clone())).is_ok());
    }
}

fn reply(outbox: &Outbox, reference: &str, body: &str) {
    let frame = format!(r#"{{"op":"reply","ref":{reference},"status":"ok","body":{body}}}"#);
    let _ = outbox.send(Message::Text(frame.into()));
}

fn reply_error(outbox: &Outbox, reference: &str) {
    let frame = format!(
        r#"{{"op":"reply","ref":{reference},"status":"error","body":{{"code":"unknown_op","message":"the floor broadcaster knows join and say"}}}}"#
    );
    let _ = outbox.send(Message::Text(frame.into()));
}
