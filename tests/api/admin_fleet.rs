//! The fleet's admin pages over real HTTP: workers (a real local worker, and
//! workers spoken by hand to see exactly what the server sends them), crawls
//! and chat rooms; what drain, disconnect and start-crawl change, the audit
//! row each leaves, and who is turned away.

use std::time::{Duration, Instant};

use actix_codec::Framed;
use awc::ws::{CloseCode, CloseReason, Codec, Frame, Message};
use awc::BoxedSocket;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

use crate::accounts::{hidden, Visitor};
use crate::auction_pages::account;
use crate::chat_client::ChatClient;
use crate::helpers::{spawn_app, AppOptions, Backend, TestApp};
use crate::on_both_backends;

/// A worker name a hostile worker could choose.
const HOSTILE: &str = "<script>alert('owned')</script>";

/// Timings that keep a silent hand-driven worker and its lease alive for
/// the whole test: it sends no heartbeats.
fn patient() -> AppOptions {
    AppOptions {
        lease: "60s",
        heartbeat: "20s",
        ..Default::default()
    }
}

/// A worker spoken by hand (docs/protocol.md §2).
pub struct HandWorker {
    socket: Framed<BoxedSocket, Codec>,
    pub id: u64,
}

impl HandWorker {
    /// Connects, says hello and grants `credits`.
    async fn connect(app: &TestApp, name: &str, credits: u32) -> HandWorker {
        HandWorker::connect_to(&app.ws, &app.worker_token, name, credits).await
    }

    /// `connect` to the server at `ws` (a `ws://` base URL).
    pub async fn connect_to(ws: &str, token: &str, name: &str, credits: u32) -> HandWorker {
        let (_, socket) = awc::Client::new()
            .ws(format!("{ws}/ws/worker"))
            .bearer_auth(token)
            .max_frame_size(8 << 20)
            .connect()
            .await
            .expect("connect a worker");
        let mut worker = HandWorker { socket, id: 0 };
        worker
            .send(json!({"op":"hello","name":name,"version":"by-hand","slots":4,"sites":["*"]}))
            .await;
        let welcome = worker.recv_op("welcome").await;
        worker.id = welcome["worker"].as_u64().expect("a worker id");
        worker.send(json!({"op":"ready","credits":credits})).await;
        worker
    }

    pub async fn send(&mut self, frame: Value) {
        self.socket
            .send(Message::Text(frame.to_string().into()))
            .await
            .expect("send");
    }

    /// The next text frame within `within`, `Err` with the close reason if
    /// the socket closed, `Ok(None)` if nothing came.
    pub async fn next(&mut self, within: Duration) -> Result<Option<Value>, Option<CloseReason>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let Ok(frame) = tokio::time::timeout_at(deadline, self.socket.next()).await else {
                return Ok(None);
            };
            match frame {
                Some(Ok(Frame::Text(bytes))) => {
                    return Ok(Some(serde_json::from_slice(&bytes).expect("json frame")))
                }
                Some(Ok(Frame::Close(reason))) => return Err(reason),
                None | Some(Err(_)) => return Err(None),
                Some(Ok(_)) => {}
            }
        }
    }

    pub async fn recv_op(&mut self, op: &str) -> Value {
        loop {
            match self.next(Duration::from_secs(10)).await {
                Ok(Some(frame)) if frame["op"] == op => return frame,
                Ok(Some(_)) => {}
                Ok(None) => panic!("no {op} frame within 10 s"),
                Err(reason) => panic!("closed waiting for {op}: {reason:?}"),
            }
        }
    }
}

/// The workers `/api/admin/workers` lists.
async fn workers(app: &TestApp) -> Vec<Value> {
    let mut resp = app
        .client
        .get(format!("{}/api/admin/workers", app.base))
        .bearer_auth(&app.api_token)
        .send()
        .await
        .expect("GET /api/admin/workers");
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.expect("json");
    body["workers"].as_array().expect("a list").clone()
}

/// Waits until a worker named `name` is connected and returns it.
async fn wait_worker(app: &TestApp, name: &str, not_id: Option<u64>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = workers(app)
            .await
            .into_iter()
            .find(|w| w["name"] == name && w["id"].as_u64() != not_id);
        if let Some(worker) = found {
            return worker;
        }
        assert!(Instant::now() < deadline, "no worker {name} connected");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn task_state(app: &TestApp, id: i64) -> String {
    app.rows(&format!("SELECT state FROM tasks WHERE id = {id}"))
        .await
        .remove(0)
        .remove(0)
}

/// The audit log as action, object kind, object id, detail and who.
async fn audit(app: &TestApp) -> Vec<Vec<String>> {
    app.rows("SELECT action, object_kind, object_id, detail, user_name FROM audit_log ORDER BY id")
        .await
}

/// The CSRF token on an admin page.
async fn csrf(admin: &mut Visitor<'_>, path: &str) -> String {
    let page = admin.get(path).await;
    assert_eq!(page.status, 200, "{path}: {}", page.body);
    hidden(&page.body, "csrf").expect("a form token")
}

async fn the_fleet_pages_show_real_workers_crawls_and_rooms_and_others_are_turned_away(
    backend: Backend,
) {
    // Arrange: a local worker that has crawled, and a chat room in use.
    let app = spawn_app(
        backend,
        AppOptions {
            local_workers: 1,
            ..Default::default()
        },
    )
    .await;
    let crawl = app.start_crawl().await;
    app.wait_crawl(crawl, Duration::from_secs(60)).await;
    let mut chat = ChatClient::connect(&app, Some("ana")).await.expect("chat");
    chat.join("chat:lobby", None).await;
    for text in ["one", "two", "three"] {
        chat.say("chat:lobby", text).await;
    }
    let mut admin = account(&app, "root", true).await;
    let mut member = account(&app, "bea", false).await;
    let mut visitor = Visitor::new(&app);

    // Act / Assert: visitors log in first, members are refused.
    for path in ["/admin/workers", "/admin/crawls", "/admin/rooms"] {
        let page = visitor.get(path).await;
        assert_eq!(page.status, 303, "{path}");
        assert_eq!(
            page.location.as_deref(),
            Some(format!("/login?next={}", path.replace('/', "%2F")).as_str()),
            "{path}"
        );
        assert_eq!(member.get(path).await.status, 403, "{path}");
        let api = app
            .client
            .get(format!("{}/api{path}", app.base))
            .send()
            .await
            .expect("GET");
        assert_eq!(api.status().as_u16(), 401, "/api{path}");
    }

    // The local worker, as the Dispatcher knows it.
    let local = wait_worker(&app, "local-0", None).await;
    let done = app
        .count("SELECT COUNT(*) FROM tasks WHERE state = 'done'")
        .await;
    assert_eq!(local["done"], done, "{local}");
    assert_eq!(local["slots"], 4);
    assert_eq!(local["version"], env!("CARGO_PKG_VERSION"));
    assert!(local["address"].as_str().unwrap().starts_with("127.0.0.1"));
    let page = admin.get("/admin/workers").await;
    assert_eq!(page.status, 200);
    let id = local["id"].as_u64().unwrap();
    let row = page
        .body
        .split(&format!("<tr id=\"worker-{id}\">"))
        .nth(1)
        .and_then(|rest| rest.split("</tr>").next())
        .unwrap_or_else(|| panic!("no row for worker {id}: {}", page.body));
    for cell in [
        "<td>local-0</td>".to_owned(),
        format!("<td>{}</td>", local["address"].as_str().unwrap()),
        format!("<td>{}</td>", env!("CARGO_PKG_VERSION")),
        "<td>4</td>".to_owned(),
        format!("<td>{done}</td>"),
        "<td>0</td>".to_owned(),
        " ago)</td>".to_owned(),
    ] {
        assert!(row.contains(&cell), "{cell} in {row}");
    }
    assert!(row.contains(&format!("/admin/workers/{id}/drain")), "{row}");
    assert!(row.contains(&format!("/admin/workers/{id}/disconnect")));

    // The crawl, with its tasks by state.
    let crawls = admin.get("/admin/crawls").await.body;
    let row = crawls
        .split(&format!("<tr id=\"crawl-{crawl}\">"))
        .nth(1)
        .and_then(|rest| rest.split("</tr>").next())
        .unwrap_or_else(|| panic!("no row for crawl {crawl}: {crawls}"));
    assert!(row.contains("<td>api</td><td>finished</td>"), "{row}");
    assert!(
        row.contains(&format!(
            "<td data-state=\"done\"><a href=\"/admin/tasks?crawl={crawl}&amp;state=done\">{done}</a></td>"
        )),
        "{row}"
    );
    assert!(crawls.contains("Page 1 of 1 · 1 in all"), "{crawls}");
    let mut resp = app
        .client
        .get(format!("{}/api/admin/crawls", app.base))
        .bearer_auth(&app.api_token)
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["items"][0]["id"], crawl);
    assert_eq!(body["items"][0]["tasks"]["done"], done);

    // The room: one member here, three messages in the last minute.
    let rooms = admin.get("/admin/rooms").await.body;
    assert!(
        rooms.contains(
            "<td><a href=\"/rooms/lobby\">chat:lobby</a></td>\n      <td>1</td><td>3</td><td>0.05</td>"
        ),
        "{rooms}"
    );
    // The dashboard counts the same room and its one connection.
    let dashboard = admin.get("/admin").await.body;
    for (key, n) in [
        ("clients", 1),
        ("chat_rooms", 1),
        ("auction_rooms", 0),
        ("members", 1),
    ] {
        assert!(
            dashboard.contains(&format!("<td data-node=\"{key}\">{n}</td>")),
            "{key} = {n}: {dashboard}"
        );
    }
    let mut resp = app
        .client
        .get(format!("{}/api/admin/rooms", app.base))
        .bearer_auth(&app.api_token)
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["window_seconds"], 60);
    let mut room = body["rooms"][0].clone();
    let nodes = room
        .as_object_mut()
        .and_then(|r| r.remove("nodes"))
        .expect("members by node");
    assert_eq!(
        room,
        json!({"topic": "chat:lobby", "members": 1, "messages": 3, "per_second": 0.05})
    );
    let by_node: Vec<&Value> = nodes.as_object().expect("by node").values().collect();
    assert_eq!(by_node, [&json!(1)], "one node, one member: {nodes}");
    chat.close().await;
}
on_both_backends!(the_fleet_pages_show_real_workers_crawls_and_rooms_and_others_are_turned_away);

#[actix_web::test]
async fn a_drained_worker_gets_the_drain_frame_and_is_assigned_nothing_more() {
    // Arrange: a worker with a hostile name holds one task of a crawl.
    let app = spawn_app(Backend::Sqlite, patient()).await;
    let mut worker = HandWorker::connect(&app, HOSTILE, 1).await;
    let crawl = app.start_crawl().await;
    let assign = worker.recv_op("assign").await;
    let task = assign["task"].as_i64().unwrap();
    let mut admin = account(&app, "root", true).await;
    let page = admin.get("/admin/workers").await.body;
    assert!(!page.contains(HOSTILE), "unescaped: {page}");
    assert!(page.contains("&#60;script&#62;alert("), "{page}");
    assert!(
        page.contains(&format!("1 <a href=\"/admin/tasks/{task}\">{task}</a>")),
        "its current task: {page}"
    );
    let token = hidden(&page, "csrf").unwrap();

    // Act
    let done = admin
        .post(
            &format!("/admin/workers/{}/drain", worker.id),
            &[("csrf", &token)],
        )
        .await;

    // Assert: told to drain, and given nothing for the credits it grants.
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some("/admin/workers"));
    worker.recv_op("drain").await;
    worker.send(json!({"op":"ready","credits":3})).await;
    assert_eq!(
        worker.next(Duration::from_millis(1_500)).await,
        Ok(None),
        "nothing is assigned after the drain"
    );
    let queued = app
        .count(&format!(
            "SELECT COUNT(*) FROM tasks WHERE crawl_id = {crawl} AND state = 'queued'"
        ))
        .await;
    let all = app
        .count(&format!(
            "SELECT COUNT(*) FROM tasks WHERE crawl_id = {crawl}"
        ))
        .await;
    assert_eq!(queued, all - 1, "only the task it held is leased");
    assert_eq!(task_state(&app, task).await, "leased");
    let page = admin.get("/admin/workers").await.body;
    assert!(page.contains("(draining)"), "{page}");
    assert!(!page.contains(&format!("/admin/workers/{}/drain", worker.id)));
    assert_eq!(
        audit(&app).await,
        [[
            "worker.drain".to_owned(),
            "worker".to_owned(),
            worker.id.to_string(),
            HOSTILE.to_owned(),
            "root".to_owned()
        ]]
    );
    let log = admin.get("/admin/audit").await.body;
    assert!(!log.contains(HOSTILE), "unescaped: {log}");
}

#[actix_web::test]
async fn a_disconnected_worker_is_closed_with_a_reason_and_its_task_goes_back_to_the_queue() {
    // Arrange
    let app = spawn_app(Backend::Sqlite, patient()).await;
    let mut worker = HandWorker::connect(&app, "by-hand", 1).await;
    app.start_crawl().await;
    let task = worker.recv_op("assign").await["task"].as_i64().unwrap();
    let mut admin = account(&app, "root", true).await;
    let token = csrf(&mut admin, "/admin/workers").await;

    // Act
    let done = admin
        .post(
            &format!("/admin/workers/{}/disconnect", worker.id),
            &[("csrf", &token)],
        )
        .await;

    // Assert: the socket closes with a reason, the task is queued again.
    assert_eq!(done.status, 303, "{}", done.body);
    let closed = loop {
        match worker.next(Duration::from_secs(10)).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the socket stayed open"),
            Err(reason) => break reason,
        }
    };
    assert_eq!(
        closed,
        Some(CloseReason {
            code: CloseCode::Normal,
            description: Some("disconnected by an admin".to_owned()),
        })
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while task_state(&app, task).await != "queued" {
        assert!(Instant::now() < deadline, "task {task} was not requeued");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.rows(&format!(
            "SELECT outcome, error FROM task_attempts WHERE task_id = {task}"
        ))
        .await,
        [["retry".to_owned(), "the worker disconnected".to_owned()]]
    );
    assert!(workers(&app).await.is_empty());
    assert_eq!(
        audit(&app).await,
        [[
            "worker.disconnect".to_owned(),
            "worker".to_owned(),
            worker.id.to_string(),
            "by-hand".to_owned(),
            "root".to_owned()
        ]]
    );
}

#[actix_web::test]
async fn a_local_worker_disconnected_through_the_api_comes_back_under_a_new_id() {
    // Arrange
    let app = spawn_app(
        Backend::Sqlite,
        AppOptions {
            local_workers: 1,
            ..Default::default()
        },
    )
    .await;
    let before = wait_worker(&app, "local-0", None).await["id"]
        .as_u64()
        .unwrap();

    // Act
    let mut resp = app
        .client
        .post(format!(
            "{}/api/admin/workers/{before}/disconnect",
            app.base
        ))
        .bearer_auth(&app.api_token)
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object_id"], before.to_string());
    assert_eq!(body["detail"], "local-0");
    let after = wait_worker(&app, "local-0", Some(before)).await;
    assert!(after["id"].as_u64().unwrap() > before, "{after}");
    assert_eq!(workers(&app).await.len(), 1, "the old id is gone");
    assert_eq!(
        audit(&app).await,
        [[
            "worker.disconnect".to_owned(),
            "worker".to_owned(),
            before.to_string(),
            "local-0".to_owned(),
            "api-token".to_owned()
        ]]
    );
}

async fn starting_a_crawl_from_the_crawls_page_is_audited_and_refused_while_one_runs(
    backend: Backend,
) {
    // Arrange: no worker, so the crawl keeps running.
    let app = spawn_app(backend, AppOptions::default()).await;
    let mut admin = account(&app, "root", true).await;
    let token = csrf(&mut admin, "/admin/crawls").await;

    // Act
    let started = admin.post("/admin/crawls/start", &[("csrf", &token)]).await;
    let again = admin.post("/admin/crawls/start", &[("csrf", &token)]).await;

    // Assert: one crawl, by an admin, and one audit row naming it.
    assert_eq!(started.status, 303, "{}", started.body);
    assert_eq!(started.location.as_deref(), Some("/admin/crawls"));
    let crawls = app.rows("SELECT id, trigger, status FROM crawls").await;
    assert_eq!(crawls.len(), 1);
    let crawl = crawls[0][0].clone();
    assert_eq!(crawls[0][1..], ["admin", "running"]);
    assert_eq!(again.status, 409);
    assert!(
        again.body.contains(&format!(
            "Crawl {crawl} is still running; one crawl runs at a time."
        )),
        "{}",
        again.body
    );
    let resp = app
        .client
        .post(format!("{}/api/admin/crawls/start", app.base))
        .bearer_auth(&app.api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 409);
    assert_eq!(app.count("SELECT COUNT(*) FROM crawls").await, 1);
    assert_eq!(
        audit(&app).await,
        [[
            "crawl.start".to_owned(),
            "crawl".to_owned(),
            crawl.clone(),
            String::new(),
            "root".to_owned()
        ]]
    );
    let page = admin.get("/admin/crawls").await.body;
    assert!(page.contains("<td>admin</td><td>running</td>"), "{page}");
    assert!(page.contains(" so far</td>"), "{page}");
}
on_both_backends!(starting_a_crawl_from_the_crawls_page_is_audited_and_refused_while_one_runs);

#[actix_web::test]
async fn fleet_actions_without_their_token_by_members_or_on_no_worker_change_nothing() {
    // Arrange
    let app = spawn_app(Backend::Sqlite, patient()).await;
    let mut worker = HandWorker::connect(&app, "by-hand", 1).await;
    let mut admin = account(&app, "root", true).await;
    let mut member = account(&app, "ana", false).await;
    let member_token = hidden(&member.get("/account").await.body, "csrf").unwrap();
    let admin_token = csrf(&mut admin, "/admin/workers").await;
    let drain = format!("/admin/workers/{}/drain", worker.id);
    let disconnect = format!("/admin/workers/{}/disconnect", worker.id);

    // Act
    let mut statuses = Vec::new();
    for path in [&drain, &disconnect, "/admin/crawls/start"] {
        statuses.push(admin.post(path, &[("csrf", "forged")]).await.status);
        statuses.push(admin.post(path, &[]).await.status);
        statuses.push(member.post(path, &[("csrf", &member_token)]).await.status);
    }
    let unknown = admin
        .post("/admin/workers/999/drain", &[("csrf", &admin_token)])
        .await;

    // Assert
    assert_eq!(statuses, [403; 9]);
    assert_eq!(unknown.status, 404);
    assert_eq!(
        worker.next(Duration::from_millis(500)).await,
        Ok(None),
        "no drain, no close"
    );
    let listed = workers(&app).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["draining"], false);
    assert_eq!(app.count("SELECT COUNT(*) FROM crawls").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log").await, 0);
}
