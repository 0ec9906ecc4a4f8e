//! The limits every WebSocket lives under (docs/protocol.md §4-5), driven
//! over raw sockets: the outbound queue's bound in bytes, the node's and an
//! address's caps on sockets, the time a message may take to arrive, and
//! the rate limit on every frame a client sends. Every close the server
//! begins is logged and counted.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use actix_http::ws::{OpCode, Parser};
use bytes::BytesMut;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::chat_client::ChatClient;
use crate::helpers::{spawn_app, AppOptions, Backend, TestApp};

/// A server with these settings, and no rate limit unless they set one.
async fn app_with(env: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![
        ("BAZAAR_WS__RATE".to_owned(), "100000".to_owned()),
        ("BAZAAR_WS__BURST".to_owned(), "100000".to_owned()),
    ];
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    spawn_app(
        Backend::Sqlite,
        AppOptions {
            env: vars,
            ..Default::default()
        },
    )
    .await
}

/// How to open a raw socket.
#[derive(Default)]
struct Open<'a> {
    /// The guest name; `/ws/worker` with the worker token when `None`.
    name: Option<&'a str>,
    worker_token: Option<&'a str>,
    /// The local address to connect from (127.0.0.x).
    from: Option<Ipv4Addr>,
    /// A small receive buffer, so that a client that stops reading is
    /// seen by the server at once rather than after the kernel's buffers.
    small_receive_buffer: bool,
    headers: &'a [(&'a str, &'a str)],
}

/// What came back from a WebSocket frame read.
#[derive(Debug, PartialEq)]
enum Got {
    Text(Value),
    Pong,
    Closed(u16, String),
}

/// A WebSocket opened by hand: masked frames out, raw frames in.
struct Raw {
    tcp: TcpStream,
    received: BytesMut,
}

/// A refused handshake: its status and JSON body.
#[derive(Debug)]
struct Refused {
    status: u16,
    body: Value,
}

impl Raw {
    async fn open(app: &TestApp, how: Open<'_>) -> Result<Raw, Refused> {
        let addr: std::net::SocketAddr = app
            .base
            .trim_start_matches("http://")
            .parse()
            .expect("server address");
        let socket = TcpSocket::new_v4().expect("socket");
        if let Some(ip) = how.from {
            socket
                .bind(std::net::SocketAddr::from((ip, 0)))
                .expect("bind");
        }
        if how.small_receive_buffer {
            socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        }
        let mut tcp = socket.connect(addr).await.expect("connect");
        let path = match (how.name, how.worker_token) {
            (Some(name), _) => format!("/ws?name={name}"),
            (None, _) => "/ws/worker".to_owned(),
        };
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n"
        );
        if let Some(token) = how.worker_token {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        for (name, value) in how.headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        tcp.write_all(request.as_bytes()).await.expect("handshake");
        let mut raw = Raw {
            tcp,
            received: BytesMut::new(),
        };
        let end = loop {
            if let Some(end) = raw.received.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            assert!(
                raw.read_more().await,
                "the server hung up during the handshake"
            );
        };
        let head = String::from_utf8_lossy(&raw.received[..end]).into_owned();
        let status: u16 = head[9..12].parse().expect("a status");
        let _ = raw.received.split_to(end + 4);
        if status == 101 {
            return Ok(raw);
        }
        // A refusal: the body, then the server hangs up.
        while raw.read_more().await {}
        let body = serde_json::from_slice(&raw.received).unwrap_or(Value::Null);
        Err(Refused { status, body })
    }

    async fn client(app: &TestApp, name: &str) -> Result<Raw, Refused> {
        Raw::open(
            app,
            Open {
                name: Some(name),
                ..Open::default()
            },
        )
        .await
    }

    /// Reads what is there; `false` once the server has hung up.
    async fn read_more(&mut self) -> bool {
        let n = tokio::time::timeout(
            Duration::from_secs(10),
            self.tcp.read_buf(&mut self.received),
        )
        .await
        .expect("the server answers in time");
        matches!(n, Ok(n) if n > 0)
    }

    async fn write(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) {
        let mut frame = BytesMut::new();
        Parser::write_message(&mut frame, payload, opcode, fin, true);
        self.tcp.write_all(&frame).await.expect("write");
    }

    async fn send(&mut self, frame: Value) {
        self.write(OpCode::Text, true, frame.to_string().as_bytes())
            .await;
    }

    /// The next text frame, pong or close.
    async fn next(&mut self) -> Got {
        loop {
            match Parser::parse(&mut self.received, false, 8 << 20).expect("a valid server frame") {
                Some((_, OpCode::Text, payload)) => {
                    let payload = payload.unwrap_or_default();
                    return Got::Text(serde_json::from_slice(&payload).expect("json"));
                }
                Some((_, OpCode::Pong, _)) => return Got::Pong,
                Some((_, OpCode::Close, payload)) => {
                    let payload = payload.expect("a close code");
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    let reason = String::from_utf8_lossy(&payload[2..]).into_owned();
                    return Got::Closed(code, reason);
                }
                Some(_) => {}
                None => assert!(
                    self.read_more().await,
                    "the server hung up without a close frame"
                ),
            }
        }
    }

    /// Frames up to the reply to `reference`.
    async fn until_reply(&mut self, reference: &str) -> Value {
        loop {
            match self.next().await {
                Got::Text(frame) if frame["op"] == "reply" && frame["ref"] == reference => {
                    return frame
                }
                Got::Closed(code, reason) => panic!("closed {code} {reason}"),
                _ => {}
            }
        }
    }

    /// Frames until the close; its code and reason.
    async fn until_closed(&mut self) -> (u16, String) {
        loop {
            if let Got::Closed(code, reason) = self.next().await {
                return (code, reason);
            }
        }
    }

    async fn close(mut self) {
        self.write(OpCode::Close, true, &1000u16.to_be_bytes())
            .await;
        let _ = self.until_closed().await;
    }
}

/// `/metrics`, as text.
async fn metrics(app: &TestApp) -> String {
    let mut resp = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("GET /metrics");
    let body = resp.body().limit(4 << 20).await.expect("body");
    String::from_utf8_lossy(&body).into_owned()
}

/// The closes with `code` counted in `/metrics`.
async fn closes(app: &TestApp, code: u16) -> u64 {
    let wanted = format!("bazaar_ws_closes_total{{code=\"{code}\"}} ");
    metrics(app)
        .await
        .lines()
        .find_map(|line| line.strip_prefix(&wanted)?.parse().ok())
        .unwrap_or(0)
}

/// Retries opening a socket until it is let in, for up to five seconds: a
/// socket's slot is given back once its close has been written.
async fn open_eventually(app: &TestApp, how: impl Fn() -> Open<'static>) -> Raw {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Raw::open(app, how()).await {
            Ok(raw) => return raw,
            Err(refused) => assert!(Instant::now() < deadline, "still refused: {refused:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn a_client_that_stops_reading_is_closed_by_bytes_queued_while_others_get_everything() {
    // Arrange: a 64 KiB bound, and messages of 60,000 characters: 140 of
    // them are 8.4 MB, past the bound and what the kernel's buffers hold
    // (up to 4 MiB on the server's side), in fewer frames than the old
    // bound of 256 frames.
    let app = app_with(&[
        ("BAZAAR_WS__MAX_QUEUED_BYTES", "65536"),
        ("BAZAAR_CHAT__MAX_TEXT", "60000"),
    ])
    .await;
    let topic = "chat:flood";
    let mut stalled = Raw::open(
        &app,
        Open {
            name: Some("stalled"),
            small_receive_buffer: true,
            ..Open::default()
        },
    )
    .await
    .expect("stalled");
    stalled
        .send(json!({"op":"join","topic":topic,"ref":"j"}))
        .await;
    assert_eq!(stalled.until_reply("j").await["status"], "ok");
    let mut reader = ChatClient::connect(&app, Some("reader"))
        .await
        .expect("reader");
    reader.join(topic, None).await;
    let mut sender = ChatClient::connect(&app, Some("sender"))
        .await
        .expect("sender");
    sender.join(topic, None).await;

    // Act: the stalled client reads nothing while the long messages go out.
    let mut seqs = Vec::new();
    for i in 0..140 {
        let text = format!("{i:03} {}", "x".repeat(59_990));
        sender.say(topic, &text).await;
        let message = reader.recv_op("message").await;
        assert_eq!(message["text"], text);
        seqs.push(message["seq"].as_u64().expect("seq"));
        sender.events.clear();
    }
    let (code, reason) = stalled.until_closed().await;

    // Assert: closed as a slow consumer, counted and logged; the reader
    // got every message, and the room goes on.
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.starts_with("slow consumer"), "{reason}");
    assert_eq!(seqs, (1..=140).collect::<Vec<_>>());
    assert_eq!(closes(&app, 1008).await, 1);
    let log = app.log();
    assert!(
        log.lines().any(|l| l.contains("closing a socket")
            && l.contains("code=1008")
            && l.contains("slow consumer")),
        "{log}"
    );
    sender.say(topic, "still here").await;
    assert_eq!(reader.recv_op("message").await["text"], "still here");
}

#[actix_web::test]
async fn a_resume_of_many_long_messages_comes_in_replies_that_fit_the_queue() {
    // Arrange: 60 messages of 4,000 characters (240 KB) in a room, and a
    // 64 KiB bound on a socket's queue.
    let app = app_with(&[
        ("BAZAAR_WS__MAX_QUEUED_BYTES", "65536"),
        ("BAZAAR_CHAT__MAX_TEXT", "4000"),
    ])
    .await;
    let topic = "chat:long";
    let mut sender = ChatClient::connect(&app, Some("sender"))
        .await
        .expect("sender");
    sender.join(topic, None).await;
    for i in 0..60 {
        sender
            .say(topic, &format!("{i:02} {}", "y".repeat(3995)))
            .await;
    }

    // Act: a client that saw nothing resumes from 0, then from each reply's
    // last message while the reply says it was cut short.
    let mut resumer = Raw::client(&app, "resumer").await.expect("resumer");
    let mut since = 0;
    let mut seqs = Vec::new();
    let mut replies = 0;
    loop {
        let reference = format!("r{replies}");
        resumer
            .send(json!({"op":"join","topic":topic,"since":since,"ref":reference}))
            .await;
        let reply = resumer.until_reply(&reference).await;
        replies += 1;
        let body = &reply["body"];
        let size = reply.to_string().len();
        assert!(size <= 65536, "a reply of {size} bytes");
        for message in body["history"].as_array().expect("history") {
            seqs.push(message["seq"].as_u64().expect("seq"));
        }
        if body["truncated"] != true {
            break;
        }
        since = *seqs.last().expect("a truncated reply holds messages");
        assert!(replies < 60, "no progress");
    }

    // Assert: every message, in order, over several replies; still open.
    assert_eq!(seqs, (1..=60).collect::<Vec<_>>());
    assert!(replies >= 4, "{replies} replies");
    resumer.send(json!({"op":"ping","ref":"p"})).await;
    assert_eq!(resumer.until_reply("p").await["status"], "ok");
}

#[actix_web::test]
async fn every_close_the_server_begins_is_logged_and_counted_by_code() {
    // Arrange: a small hard frame limit, and a quick rate limit.
    let app = spawn_app(
        Backend::Sqlite,
        AppOptions {
            env: vec![
                ("BAZAAR_WS__HARD_FRAME_LIMIT".into(), "4096".into()),
                ("BAZAAR_WS__RATE".into(), "5".into()),
                ("BAZAAR_WS__BURST".into(), "5".into()),
                ("BAZAAR_WS__RATE_GRACE".into(), "300ms".into()),
            ],
            ..Default::default()
        },
    )
    .await;
    let mut not_utf8 = Raw::client(&app, "bytes").await.expect("open");
    let mut too_big = Raw::client(&app, "big").await.expect("open");
    let mut flooder = Raw::client(&app, "flood").await.expect("open");
    let polite = Raw::client(&app, "polite").await.expect("open");

    // Act: text that is not UTF-8, a frame over the limit, a flood, and a
    // client that says goodbye itself.
    not_utf8.write(OpCode::Text, true, &[0xff, 0xfe]).await;
    let invalid = not_utf8.until_closed().await;
    too_big.write(OpCode::Text, true, &[b' '; 5000]).await;
    let size = too_big.until_closed().await;
    let flooded = loop {
        flooder.send(json!({"op":"ping"})).await;
        match tokio::time::timeout(Duration::from_millis(5), flooder.next()).await {
            Ok(Got::Closed(code, reason)) => break (code, reason),
            _ => continue,
        }
    };
    polite.close().await;

    // Assert: each close's code reached the client, and the log and the
    // count have it; the client's own close is neither.
    assert_eq!(invalid.0, 1007);
    assert_eq!(size.0, 1009);
    assert_eq!(flooded, (1008, "rate limit exceeded".to_owned()));
    for code in [1007, 1008, 1009] {
        assert_eq!(closes(&app, code).await, 1, "{code}");
    }
    assert_eq!(closes(&app, 1000).await, 0);
    let log = app.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("closing a socket"))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    for (code, reason) in [
        (1007, "text frames must be UTF-8"),
        (1009, "frame over the hard size limit"),
        (1008, "rate limit exceeded"),
    ] {
        assert!(
            lines.iter().any(|l| l.contains(&format!("code={code}"))
                && l.contains(reason)
                && l.contains("client")
                && l.contains("127.0.0.1")),
            "{code}: {lines:#?}"
        );
    }
}

#[actix_web::test]
async fn a_full_node_refuses_sockets_of_either_kind_with_503_until_one_closes() {
    // Arrange: room for three sockets, two clients and a worker in them.
    let app = app_with(&[("BAZAAR_SERVER__MAX_CONNECTIONS", "3")]).await;
    let first = Raw::client(&app, "one").await.expect("one");
    let _second = Raw::client(&app, "two").await.expect("two");
    let token = app.worker_token.clone();
    let _worker = Raw::open(
        &app,
        Open {
            worker_token: Some(&token),
            ..Open::default()
        },
    )
    .await
    .expect("worker");

    // Act
    let client = Raw::client(&app, "three").await.err().expect("refused");
    let worker = Raw::open(
        &app,
        Open {
            worker_token: Some(&token),
            ..Open::default()
        },
    )
    .await
    .err()
    .expect("refused");
    let counted = metrics(&app).await;
    first.close().await;
    let after = open_eventually(&app, || Open {
        name: Some("three"),
        ..Open::default()
    })
    .await;

    // Assert
    for refused in [&client, &worker] {
        assert_eq!(refused.status, 503, "{refused:?}");
        assert_eq!(refused.body["error"]["code"], "server_full", "{refused:?}");
    }
    assert!(
        counted.contains("bazaar_ws_refusals_total{reason=\"node_full\"} 2\n"),
        "{counted}"
    );
    after.close().await;
}

#[actix_web::test]
async fn an_address_at_its_cap_gets_429_while_other_addresses_and_workers_get_in() {
    // Arrange: two sockets per address, the first two from 127.0.0.1.
    let app = app_with(&[("BAZAAR_SERVER__MAX_CONNECTIONS_PER_ADDRESS", "2")]).await;
    let _one = Raw::client(&app, "one").await.expect("one");
    let _two = Raw::client(&app, "two").await.expect("two");

    // Act
    let third = Raw::client(&app, "three").await.err().expect("refused");
    let elsewhere = Raw::open(
        &app,
        Open {
            name: Some("elsewhere"),
            from: Some(Ipv4Addr::new(127, 0, 0, 2)),
            ..Open::default()
        },
    )
    .await;
    let token = app.worker_token.clone();
    let worker = Raw::open(
        &app,
        Open {
            worker_token: Some(&token),
            ..Open::default()
        },
    )
    .await;

    // Assert
    assert_eq!(third.status, 429, "{third:?}");
    assert_eq!(third.body["error"]["code"], "too_many_sockets");
    let message = third.body["error"]["message"].as_str().expect("message");
    assert!(message.contains('2'), "{message}");
    assert!(elsewhere.is_ok(), "{:?}", elsewhere.err());
    assert!(worker.is_ok(), "{:?}", worker.err());
}

#[actix_web::test]
async fn behind_a_trusted_proxy_the_cap_counts_each_client_not_the_proxy() {
    // Arrange: the proxy on loopback, one socket per client.
    let app = app_with(&[
        ("BAZAAR_SERVER__TRUSTED_PROXIES", "127.0.0.1"),
        ("BAZAAR_SERVER__MAX_CONNECTIONS_PER_ADDRESS", "1"),
    ])
    .await;
    let via_proxy = |client: &'static str| Open {
        name: Some("relayed"),
        headers: match client {
            "a" => &[("X-Forwarded-For", "203.0.113.10")],
            _ => &[("X-Forwarded-For", "203.0.113.20")],
        },
        ..Open::default()
    };

    // Act
    let a = Raw::open(&app, via_proxy("a")).await;
    let a_again = Raw::open(&app, via_proxy("a")).await;
    let b = Raw::open(&app, via_proxy("b")).await;

    // Assert
    assert!(a.is_ok(), "{:?}", a.err());
    assert_eq!(a_again.err().expect("refused").status, 429);
    assert!(b.is_ok(), "{:?}", b.err());
}

#[actix_web::test]
async fn an_address_gets_its_place_back_however_its_socket_ends() {
    // Arrange: one socket per address.
    let app = app_with(&[
        ("BAZAAR_SERVER__MAX_CONNECTIONS_PER_ADDRESS", "1"),
        ("BAZAAR_WS__IDLE_TIMEOUT", "1s"),
        ("BAZAAR_WS__PING_EVERY", "200ms"),
    ])
    .await;
    let guest = || Open {
        name: Some("again"),
        ..Open::default()
    };

    // Act: the client closes; the server closes (a bad frame); the client
    // vanishes without a close; the client falls silent (idle timeout).
    let polite = Raw::client(&app, "again").await.expect("first");
    assert!(Raw::client(&app, "again").await.is_err(), "at the cap");
    polite.close().await;

    let mut rude = open_eventually(&app, guest).await;
    rude.write(OpCode::Text, true, &[0xff]).await;
    assert_eq!(rude.until_closed().await.0, 1007);
    drop(rude);

    let vanished = open_eventually(&app, guest).await;
    drop(vanished);

    let mut silent = open_eventually(&app, guest).await;
    let (code, reason) = loop {
        // Pings are read and not answered.
        if let Got::Closed(code, reason) = silent.next().await {
            break (code, reason);
        }
    };
    drop(silent);

    // Assert: after each ending, a new socket from the address got in.
    assert_eq!((code, reason.as_str()), (1001, "idle timeout"));
    let last = open_eventually(&app, guest).await;
    last.close().await;
}

#[actix_web::test]
async fn a_message_left_unfinished_past_the_deadline_is_closed_even_with_pings_between() {
    // Arrange: half a second to finish a message.
    let app = app_with(&[("BAZAAR_WS__MESSAGE_TIMEOUT", "500ms")]).await;
    let mut fragmented = Raw::client(&app, "fragments").await.expect("open");
    let mut trickled = Raw::client(&app, "trickle").await.expect("open");
    let started = Instant::now();

    // Act: the first fragment of a text message, then only pings; and the
    // first bytes of one frame, then nothing.
    fragmented.write(OpCode::Text, false, b"{\"op\":").await;
    let mut frame = BytesMut::new();
    Parser::write_message(&mut frame, [b' '; 100], OpCode::Text, true, true);
    trickled.tcp.write_all(&frame[..20]).await.expect("write");
    let mut pongs = 0;
    let fragmented_end = loop {
        fragmented.write(OpCode::Ping, true, b"still here").await;
        match tokio::time::timeout(Duration::from_millis(100), fragmented.next()).await {
            Ok(Got::Pong) => pongs += 1,
            Ok(Got::Closed(code, reason)) => break (code, reason, started.elapsed()),
            Ok(Got::Text(frame)) => panic!("{frame}"),
            Err(_) => {}
        }
        assert!(started.elapsed() < Duration::from_secs(5), "still open");
    };
    let trickled_end = trickled.until_closed().await;

    // Assert: pings were answered, and did not put the deadline off.
    assert!(pongs >= 2, "{pongs} pongs");
    let (code, reason, after) = fragmented_end;
    assert_eq!(
        (code, reason.as_str()),
        (1008, "message not finished in time")
    );
    assert!(after < Duration::from_secs(2), "{after:?}");
    assert_eq!(
        trickled_end,
        (1008, "message not finished in time".to_owned())
    );
}

/// Floods a socket with `frame` until the server closes it; the refusals
/// seen on the way and the close code.
async fn flood(raw: &mut Raw, opcode: OpCode, payload: &[u8]) -> (u32, u32, u16) {
    let (mut refused, mut answered) = (0, 0);
    let started = Instant::now();
    loop {
        raw.write(opcode, true, payload).await;
        match tokio::time::timeout(Duration::from_millis(2), raw.next()).await {
            Ok(Got::Text(frame)) if frame["code"] == "rate_limited" => refused += 1,
            Ok(Got::Text(_) | Got::Pong) => answered += 1,
            Ok(Got::Closed(code, _)) => return (refused, answered, code),
            Err(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the flood was never closed ({refused} refused, {answered} answered)"
        );
    }
}

#[actix_web::test]
async fn floods_of_binary_malformed_and_ping_frames_are_limited_like_requests() {
    // Arrange: 5 requests a second, a burst of 5, half a second of grace.
    let app = spawn_app(
        Backend::Sqlite,
        AppOptions {
            env: vec![
                ("BAZAAR_WS__RATE".into(), "5".into()),
                ("BAZAAR_WS__BURST".into(), "5".into()),
                ("BAZAAR_WS__RATE_GRACE".into(), "500ms".into()),
            ],
            ..Default::default()
        },
    )
    .await;
    let mut binary = Raw::client(&app, "binary").await.expect("open");
    let mut malformed = Raw::client(&app, "malformed").await.expect("open");
    let mut pings = Raw::client(&app, "pings").await.expect("open");

    // Act
    let binary = flood(&mut binary, OpCode::Binary, b"\x00\x01").await;
    let malformed = flood(&mut malformed, OpCode::Text, b"{not json").await;
    let pings = flood(&mut pings, OpCode::Ping, b"").await;

    // Assert: refusals with `rate_limited` (none for a ping: it is not
    // answered at all), then the close of a flood.
    assert!(binary.0 > 0, "{binary:?}");
    assert_eq!(binary.2, 1008);
    assert!(malformed.0 > 0, "{malformed:?}");
    assert_eq!(malformed.2, 1008);
    assert_eq!(pings.0, 0, "{pings:?}");
    assert!(pings.1 >= 5, "a burst of pings is answered: {pings:?}");
    assert_eq!(pings.2, 1008);
    assert_eq!(closes(&app, 1008).await, 3);
}
