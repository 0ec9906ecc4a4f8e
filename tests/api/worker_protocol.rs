//! The worker protocol (docs/protocol.md §2) spoken by hand: tokens, bad
//! frames, stale leases, disconnects and silent workers.

use std::time::{Duration, Instant};

use actix_codec::Framed;
use awc::ws::{Codec, Frame, Message};
use awc::BoxedSocket;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, AppOptions, Backend, TestApp};

pub type Socket = Framed<BoxedSocket, Codec>;

async fn connect(app: &TestApp, token: &str) -> Result<Socket, u16> {
    let result = awc::Client::new()
        .ws(format!("{}/ws/worker", app.ws))
        .bearer_auth(token)
        .max_frame_size(8 << 20)
        .connect()
        .await;
    match result {
        Ok((_, socket)) => Ok(socket),
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => Err(status.as_u16()),
        Err(err) => panic!("connect: {err}"),
    }
}

pub async fn send(socket: &mut Socket, frame: Value) {
    socket
        .send(Message::Text(frame.to_string().into()))
        .await
        .expect("send");
}

/// The next JSON frame, skipping pings.
async fn recv(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
            .expect("socket open")
            .expect("valid frame");
        match frame {
            Frame::Text(bytes) => return serde_json::from_slice(&bytes).expect("json frame"),
            Frame::Close(reason) => panic!("closed: {reason:?}"),
            _ => continue,
        }
    }
}

/// The next frame with this op.
pub async fn recv_op(socket: &mut Socket, op: &str) -> Value {
    loop {
        let frame = recv(socket).await;
        if frame["op"] == op {
            return frame;
        }
    }
}

async fn hello(socket: &mut Socket, slots: u32) -> Value {
    send(
        socket,
        json!({"op":"hello","name":"by-hand","version":"test","slots":slots,"sites":["*"]}),
    )
    .await;
    recv_op(socket, "welcome").await
}

/// A hand-driven worker with one credit, holding the first task of a new crawl.
pub async fn hold_one_task(app: &TestApp) -> (Socket, Value) {
    let mut ws = connect(app, &app.worker_token).await.expect("connect");
    hello(&mut ws, 1).await;
    send(&mut ws, json!({"op":"ready","credits":1})).await;
    app.start_crawl().await;
    let assign = recv_op(&mut ws, "assign").await;
    (ws, assign)
}

#[actix_web::test]
async fn a_worker_without_the_right_token_is_refused_before_the_upgrade() {
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    assert_eq!(connect(&app, "wrong").await.err(), Some(401));
    let resp = app
        .client
        .get(format!("{}/ws/worker", app.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status().as_u16(), 401);
    assert!(connect(&app, &app.worker_token).await.is_ok());
}

#[actix_web::test]
async fn bad_frames_get_error_frames_and_the_connection_stays_open() {
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut ws = connect(&app, &app.worker_token).await.expect("connect");

    send(&mut ws, json!({"op":"ready","credits":1})).await;
    assert_eq!(recv(&mut ws).await["code"], "hello_required");

    ws.send(Message::Text("{not json".into()))
        .await
        .expect("send");
    assert_eq!(recv(&mut ws).await["code"], "bad_frame");

    send(&mut ws, json!({"op":"explode"})).await;
    let frame = recv(&mut ws).await;
    assert_eq!(
        (frame["op"].as_str(), frame["code"].as_str()),
        (Some("error"), Some("unknown_op"))
    );

    hello(&mut ws, 2).await;
    send(&mut ws, json!({"op":"ready","credits":"many"})).await;
    let frame = recv(&mut ws).await;
    assert_eq!(frame["code"], "bad_frame");
    assert!(
        frame["message"]
            .as_str()
            .unwrap_or_default()
            .contains("ready"),
        "{frame}"
    );

    let big = json!({"op":"heartbeat","leases":[], "pad": "x".repeat(1_500_000)});
    send(&mut ws, big).await;
    assert_eq!(recv(&mut ws).await["code"], "frame_too_large");

    send(
        &mut ws,
        json!({"op":"result","task":1,"lease":"t1-a1; DROP TABLE tasks","items":[]}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["code"], "bad_frame");

    // Still open and answering after all of that.
    send(
        &mut ws,
        json!({"op":"result","task":999,"lease":"t999-a1","items":[]}),
    )
    .await;
    let frame = recv(&mut ws).await;
    assert_eq!(
        (frame["op"].as_str(), frame["lease"].as_str()),
        (Some("stale"), Some("t999-a1"))
    );

    // Over the hard limit the connection is closed with 1009.
    ws.send(Message::Text("x".repeat(5 << 20).into()))
        .await
        .expect("send");
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("close in time")
        {
            Some(Ok(Frame::Close(reason))) => break reason,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(closed.map(|r| u16::from(r.code)), Some(1009));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM tasks").await,
        0,
        "nothing was written"
    );
}

#[actix_web::test]
async fn a_disconnected_worker_gets_its_tasks_requeued_at_once_and_its_old_result_is_stale() {
    // Arrange: a hand-driven worker holds a task with a long lease.
    let app = spawn_app(
        Backend::Sqlite,
        AppOptions {
            lease: "60s",
            ..Default::default()
        },
    )
    .await;
    let (mut ws, assign) = hold_one_task(&app).await;
    assert_eq!(assign["kind"], "listing");
    assert!(
        assign["profile"]["allowed_hosts"].is_array(),
        "the profile travels with the task"
    );

    // Act: the connection drops.
    ws.close().await.ok();
    drop(ws);

    // Assert: back in the queue well before the 60 s lease would expire.
    let task = assign["task"].as_i64().expect("task id");
    let deadline = Instant::now() + Duration::from_secs(5);
    while app
        .count(&format!(
            "SELECT COUNT(*) FROM tasks WHERE id = {task} AND state = 'queued'"
        ))
        .await
        != 1
    {
        assert!(Instant::now() < deadline, "task not requeued at once");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The old lease is fenced off on a new connection.
    let mut ws = connect(&app, &app.worker_token).await.expect("reconnect");
    hello(&mut ws, 1).await;
    send(
        &mut ws,
        json!({"op":"result","task":task,"lease":assign["lease"],"links":[]}),
    )
    .await;
    assert_eq!(recv_op(&mut ws, "stale").await["lease"], assign["lease"]);
}

#[actix_web::test]
async fn a_worker_that_vanishes_silently_gets_its_tasks_back_when_the_lease_expires() {
    // Arrange: short leases, and heartbeats too rare to save them.
    let app = spawn_app(
        Backend::Sqlite,
        AppOptions {
            lease: "1s",
            heartbeat: "10s",
            ..Default::default()
        },
    )
    .await;
    let (mut ws, assign) = hold_one_task(&app).await;
    let task = assign["task"].as_i64().expect("task id");

    // Act: say nothing more, keep the socket open.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Assert: the lease ran out; the task is queued again (or re-leased).
    let sql = format!(
        "SELECT COUNT(*) FROM tasks WHERE id = {task} AND last_error LIKE '%lease expired%'"
    );
    assert_eq!(app.count(&sql).await, 1, "{}", app.log());
    send(
        &mut ws,
        json!({"op":"result","task":task,"lease":assign["lease"],"links":[]}),
    )
    .await;
    assert_eq!(recv_op(&mut ws, "stale").await["task"], task);
}

#[actix_web::test]
async fn a_server_going_away_has_its_workers_deliver_then_move_and_refuses_new_ones() {
    // Arrange: a hand-driven worker holds a task.
    let mut app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let (mut ws, assign) = hold_one_task(&app).await;
    let task = assign["task"].as_i64().expect("task id");
    let (url, token) = (format!("{}/ws/worker", app.ws), app.worker_token.clone());

    // Act: the server is told to stop while the worker still fetches.
    let worker = async move {
        let drain = recv_op(&mut ws, "drain").await;
        // A worker arriving now is sent elsewhere, not taken in.
        let refused = awc::Client::new()
            .ws(url.as_str())
            .bearer_auth(token)
            .connect()
            .await
            .err()
            .map(|err| match err {
                awc::error::WsClientError::InvalidResponseStatus(status) => status.as_u16(),
                err => panic!("connect: {err}"),
            });
        // The fetch ends, its result goes in, and only then the worker leaves.
        send(
            &mut ws,
            json!({"op":"result","task":task,"lease":assign["lease"],"links":[]}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        ws.close().await.ok();
        (drain, refused)
    };
    let (exit, (drain, refused)) = tokio::join!(app.terminate(Duration::from_secs(20)), worker);

    // Assert: told to move, not to leave; nothing was wasted.
    assert_eq!(drain, json!({"op":"drain","reconnect":true}));
    assert_eq!(
        refused,
        Some(503),
        "a new worker is refused while handing over"
    );
    assert!(
        exit.is_some_and(|s| s.success()),
        "the server exits cleanly"
    );
    let done = app
        .rows(&format!(
            "SELECT t.state, a.outcome FROM tasks t JOIN task_attempts a ON a.task_id = t.id \
             WHERE t.id = {task}"
        ))
        .await;
    assert_eq!(done, vec![vec!["done".to_owned(), "done".to_owned()]]);
}

#[actix_web::test]
async fn a_stopping_server_lets_its_worker_processes_hang_up_and_reconnect_at_once() {
    // Arrange: a `bazaar worker` connected and idle.
    let mut app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut worker = app.spawn_worker("mover", 2, &[]);
    // Read from the log, not the API: a keep-alive connection of the
    // test's own would hold the server's graceful stop for its grace.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !app.log().contains("name=mover") {
        assert!(Instant::now() < deadline, "the worker never connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Act: the server stops.
    let asked = Instant::now();
    let exit = app.terminate(Duration::from_secs(20)).await;

    // Assert: the worker hung up at once instead of leaving the server to
    // wait out its close grace, and it carries on, looking for a server.
    assert!(
        exit.is_some_and(|s| s.success()),
        "the server exits cleanly"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "the server waited {:?} for its worker to hang up",
        asked.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !app
        .worker_log("mover")
        .contains("reconnecting to another node")
    {
        assert!(Instant::now() < deadline, "{}", app.worker_log("mover"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        worker.terminate_and_wait(Duration::ZERO).is_none(),
        "the worker moves on rather than exit"
    );
}

#[actix_web::test]
async fn a_worker_sessions_log_lines_name_the_worker() {
    // Arrange: JSON logs, and a worker that said hello.
    let app = spawn_app(Backend::Sqlite, AppOptions::json_logs()).await;
    let mut ws = connect(&app, &app.worker_token).await.expect("connect");
    let welcome = hello(&mut ws, 1).await;

    // Act: a frame over the hard limit, which the session logs as it closes.
    ws.send(Message::Text("x".repeat(5 << 20).into()))
        .await
        .expect("send");
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        if matches!(frame, Frame::Close(_)) {
            break;
        }
    }

    // Assert: the line carries the session's span, with the worker's id
    // and name.
    let line = app
        .json_log_line(|line| line["fields"]["message"] == "worker protocol error")
        .await;
    let span = &line["span"];
    assert_eq!(span["name"], "worker_session", "{line}");
    assert_eq!(span["worker"], welcome["worker"], "{line}");
    assert_eq!(span["worker_name"], "by-hand", "{line}");
    assert!(
        span["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1")),
        "{line}"
    );
}
