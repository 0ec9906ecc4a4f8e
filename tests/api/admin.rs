//! The admin pages and API over real HTTP, against a server that has really
//! crawled the demo stores: what admins see, what their actions change,
//! the audit row each leaves, and who is turned away.

use std::time::{Duration, Instant};

use sea_orm::ConnectionTrait;
use serde_json::Value;

use crate::accounts::{hidden, Visitor};
use crate::auction_pages::account;
use crate::helpers::{spawn_app, AppOptions, Backend, TestApp};
use crate::on_both_backends;

/// Text a hostile store page could put in an error.
const HOSTILE: &str = "<script>alert('owned')</script>";

/// A server with one local worker that has finished one crawl.
async fn crawled_app() -> (TestApp, i64) {
    crawled_app_on(Backend::Sqlite).await
}

async fn crawled_app_on(backend: Backend) -> (TestApp, i64) {
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
    (app, crawl)
}

async fn audit_rows(app: &TestApp, action: &str) -> i64 {
    app.count(&format!(
        "SELECT COUNT(*) FROM audit_log WHERE action = '{action}'"
    ))
    .await
}

async fn task_state(app: &TestApp, id: i64) -> String {
    app.rows(&format!("SELECT state FROM tasks WHERE id = {id}"))
        .await
        .remove(0)
        .remove(0)
}

/// Waits until task `id` is in `state`.
async fn wait_task(app: &TestApp, id: i64, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while task_state(app, id).await != state {
        assert!(
            Instant::now() < deadline,
            "task {id} stayed {}",
            task_state(app, id).await
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The CSRF token on an admin page.
async fn csrf(admin: &mut Visitor<'_>, path: &str) -> String {
    let page = admin.get(path).await;
    assert_eq!(page.status, 200, "{path}: {}", page.body);
    hidden(&page.body, "csrf").expect("a form token")
}

#[actix_web::test]
async fn every_admin_page_renders_real_data_and_others_are_turned_away() {
    // Arrange
    let (app, crawl) = crawled_app().await;
    let mut admin = account(&app, "root", true).await;
    let mut member = account(&app, "ana", false).await;
    let mut visitor = Visitor::new(&app);
    let task: i64 = app.count("SELECT MIN(id) FROM tasks").await;
    let pages = [
        "/admin",
        "/admin/tasks",
        &format!("/admin/tasks/{task}"),
        "/admin/tasks/requeue-dead",
        "/admin/mail",
        "/admin/audit",
    ];

    for path in pages {
        // Act / Assert: visitors log in first, members are refused.
        let page = visitor.get(path).await;
        assert_eq!(page.status, 303, "{path}");
        assert!(
            page.location
                .as_deref()
                .unwrap_or_default()
                .starts_with("/login?next="),
            "{path}: {:?}",
            page.location
        );
        let page = member.get(path).await;
        assert_eq!(page.status, 403, "{path}");
        let page = admin.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
    }

    // The dashboard shows the crawl and the queue.
    let done = app
        .count("SELECT COUNT(*) FROM tasks WHERE state = 'done'")
        .await;
    let dashboard = admin.get("/admin").await.body;
    assert!(
        dashboard.contains(&format!(
            "<a id=\"crawl-link\" href=\"/admin/tasks?crawl={crawl}\">{crawl}</a> is <span id=\"crawl-status\">finished</span>"
        )),
        "{dashboard}"
    );
    assert!(dashboard.contains(&format!("<td data-state=\"done\">{done}</td>")));
    let worker = app
        .rows(&format!(
            "SELECT worker FROM task_attempts WHERE task_id = {task}"
        ))
        .await
        .remove(0)
        .remove(0);
    assert!(
        dashboard.contains(&format!("<td>{worker}</td>")),
        "the local worker is listed: {dashboard}"
    );

    // The task list filters by state and URL text, and pages.
    let listing = app
        .rows("SELECT url FROM tasks WHERE kind = 'listing' ORDER BY id LIMIT 1")
        .await
        .remove(0)
        .remove(0);
    let needle = listing.rsplit('/').next().unwrap().to_owned();
    let filtered = admin
        .get(&format!("/admin/tasks?state=done&q={needle}&sort=id"))
        .await;
    assert_eq!(filtered.status, 200);
    assert!(filtered.body.contains(&listing), "{}", filtered.body);
    let total = app.count("SELECT COUNT(*) FROM tasks").await;
    let all = admin.get("/admin/tasks?sort=url").await.body;
    let pages = (total + 49) / 50;
    assert!(
        all.contains(&format!("Page 1 of {pages} · {total} in all")),
        "{all}"
    );
    let bad = admin.get("/admin/tasks?sort=sideways").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("Sort must be one of"), "{}", bad.body);

    // A task's page shows its attempt: the worker and how long it took.
    let detail = admin.get(&format!("/admin/tasks/{task}")).await.body;
    assert!(detail.contains(&worker), "{detail}");
    assert!(detail.contains("<td>done</td>"), "{detail}");
    assert!(detail.contains(" s</td>"), "a duration: {detail}");
    assert_eq!(admin.get("/admin/tasks/999999").await.status, 404);
}

#[actix_web::test]
async fn hostile_text_in_a_task_is_shown_escaped() {
    // Arrange: a task died with an error and URL a hostile page chose.
    let (app, _) = crawled_app().await;
    let task: i64 = app.count("SELECT MAX(id) FROM tasks").await;
    app.db
        .execute_unprepared(&format!(
            "UPDATE tasks SET state = 'dead', last_error = '{}', url = url || '?q={}' WHERE id = {task}",
            HOSTILE.replace('\'', "''"),
            HOSTILE.replace('\'', "''")
        ))
        .await
        .expect("make a hostile task");
    let mut admin = account(&app, "root", true).await;

    // Act
    let list = admin.get("/admin/tasks?state=dead").await.body;
    let detail = admin.get(&format!("/admin/tasks/{task}")).await.body;

    // Assert
    for page in [&list, &detail] {
        assert!(!page.contains(HOSTILE), "unescaped: {page}");
        assert!(page.contains("&#60;script&#62;alert("), "{page}");
    }
}

#[actix_web::test]
async fn each_action_changes_the_queue_and_leaves_an_audit_row() {
    // Arrange: one dead task.
    let (app, crawl) = crawled_app().await;
    let dead: i64 = app
        .count("SELECT MAX(id) FROM tasks WHERE state = 'done'")
        .await;
    app.db
        .execute_unprepared(&format!(
            "UPDATE tasks SET state = 'dead', last_error = 'HTTP 503' WHERE id = {dead}"
        ))
        .await
        .expect("kill a task");
    let mut admin = account(&app, "root", true).await;
    let token = csrf(&mut admin, &format!("/admin/tasks/{dead}")).await;

    // Act / Assert: retry now: the worker fetches it again.
    let page = admin
        .post(&format!("/admin/tasks/{dead}/retry"), &[("csrf", &token)])
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    wait_task(&app, dead, "done").await;
    assert_eq!(audit_rows(&app, "task.retry").await, 1);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM task_attempts WHERE task_id = {dead}"
        ))
        .await,
        2,
        "the first attempt and the retry"
    );
    let again = admin
        .post(&format!("/admin/tasks/{dead}/retry"), &[("csrf", &token)])
        .await;
    assert_eq!(again.status, 409, "a done task is not retried");
    assert!(
        again.body.contains("only queued and dead tasks"),
        "{}",
        again.body
    );
    assert_eq!(audit_rows(&app, "task.retry").await, 1);

    // Pause: a new crawl's tasks stay queued.
    let page = admin.post("/admin/queue/pause", &[("csrf", &token)]).await;
    assert_eq!(page.status, 303);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM flags WHERE name = 'queue_paused'")
            .await,
        1
    );
    let paused_list = admin.get("/admin/tasks").await.body;
    assert!(
        paused_list.contains("The queue is paused by root"),
        "{paused_list}"
    );
    app.db
        .execute_unprepared(&format!(
            "UPDATE crawls SET finished_at = NULL, status = 'running' WHERE id = {crawl}"
        ))
        .await
        .unwrap();
    app.db
        .execute_unprepared(&format!(
            "UPDATE tasks SET state = 'queued', not_before = created_at WHERE id IN (SELECT id FROM tasks WHERE crawl_id = {crawl} ORDER BY id LIMIT 3)"
        ))
        .await
        .unwrap();
    let queued: Vec<i64> = app
        .rows(&format!(
            "SELECT id FROM tasks WHERE crawl_id = {crawl} AND state = 'queued' ORDER BY id"
        ))
        .await
        .into_iter()
        .map(|r| r[0].parse().unwrap())
        .collect();
    assert_eq!(queued.len(), 3);
    // Cancel one while paused.
    let page = admin
        .post(
            &format!("/admin/tasks/{}/cancel", queued[0]),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(page.status, 303);
    assert_eq!(task_state(&app, queued[0]).await, "cancelled");
    actix_web::rt::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        task_state(&app, queued[1]).await,
        "queued",
        "nothing leased while paused"
    );

    // Resume: the rest is fetched.
    let page = admin.post("/admin/queue/resume", &[("csrf", &token)]).await;
    assert_eq!(page.status, 303);
    wait_task(&app, queued[1], "done").await;
    wait_task(&app, queued[2], "done").await;

    // Requeue the dead, through the confirmation page.
    app.db
        .execute_unprepared(&format!(
            "UPDATE tasks SET state = 'dead' WHERE id IN ({}, {})",
            queued[1], queued[2]
        ))
        .await
        .unwrap();
    let confirm = admin.get("/admin/tasks/requeue-dead").await.body;
    assert!(confirm.contains("2 dead tasks will go back"), "{confirm}");
    let skipped = admin
        .post("/admin/tasks/requeue-dead", &[("csrf", &token)])
        .await;
    assert_eq!(skipped.status, 303, "without the confirmation, back to it");
    assert_eq!(task_state(&app, queued[1]).await, "dead");
    let page = admin
        .post(
            "/admin/tasks/requeue-dead",
            &[("csrf", &token), ("confirm", "yes")],
        )
        .await;
    assert_eq!(page.status, 303);
    wait_task(&app, queued[1], "done").await;
    wait_task(&app, queued[2], "done").await;

    // Every action is in the audit log, with who did it.
    for action in [
        "task.retry",
        "queue.pause",
        "task.cancel",
        "queue.resume",
        "tasks.requeue_dead",
    ] {
        assert_eq!(audit_rows(&app, action).await, 1, "{action}");
    }
    let log = admin.get("/admin/audit").await.body;
    assert!(log.contains("tasks.requeue_dead"), "{log}");
    assert!(log.contains("2 tasks"), "{log}");
    assert!(log.contains("<td>root</td>"), "{log}");
}

#[actix_web::test]
async fn actions_without_their_token_or_by_members_change_nothing() {
    // Arrange
    let (app, _) = crawled_app().await;
    let mut admin = account(&app, "root", true).await;
    let mut member = account(&app, "ana", false).await;
    let member_token = hidden(&member.get("/account").await.body, "csrf").unwrap();
    let task: i64 = app.count("SELECT MIN(id) FROM tasks").await;

    // Act
    let forged = admin
        .post("/admin/queue/pause", &[("csrf", "forged")])
        .await;
    let missing = admin
        .post(&format!("/admin/tasks/{task}/cancel"), &[])
        .await;
    let by_member = member
        .post("/admin/queue/pause", &[("csrf", &member_token)])
        .await;

    // Assert
    assert_eq!(forged.status, 403);
    assert_eq!(missing.status, 403);
    assert_eq!(by_member.status, 403);
    assert_eq!(app.count("SELECT COUNT(*) FROM flags").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log").await, 0);
}

#[actix_web::test]
async fn the_admin_api_mirrors_the_pages_for_the_token_and_admin_sessions() {
    // Arrange
    let (app, _) = crawled_app().await;
    let mut admin = account(&app, "root", true).await;
    let session_cookie = admin.cookie_header();
    let session_csrf = csrf(&mut admin, "/admin/tasks").await;

    // Act / Assert: reads with the token.
    let mut resp = app
        .client
        .get(format!("{}/api/admin/tasks?state=done&sort=id", app.base))
        .bearer_auth(&app.api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().limit(1 << 20).await.unwrap();
    let done = app
        .count("SELECT COUNT(*) FROM tasks WHERE state = 'done'")
        .await;
    assert_eq!(body["total"], done);
    assert_eq!(
        body["items"].as_array().unwrap().len(),
        done.min(50) as usize
    );
    let first = body["items"][0]["id"].as_i64().unwrap();
    let mut resp = app
        .client
        .get(format!("{}/api/admin/tasks/{first}", app.base))
        .bearer_auth(&app.api_token)
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["attempts"][0]["outcome"], "done");

    // Without credentials: 401.
    let resp = app
        .client
        .get(format!("{}/api/admin/tasks", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    // An action with the token is audited as the token.
    let resp = app
        .client
        .post(format!("{}/api/admin/queue/pause", app.base))
        .bearer_auth(&app.api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        app.rows("SELECT user_name FROM audit_log WHERE action = 'queue.pause'")
            .await,
        [["api-token".to_owned()]]
    );

    // With a session: the cookie alone cannot act, the CSRF header can.
    let resp = app
        .client
        .post(format!("{}/api/admin/queue/resume", app.base))
        .insert_header(("Cookie", session_cookie.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert_eq!(app.count("SELECT COUNT(*) FROM flags").await, 1);
    let mut resp = app
        .client
        .post(format!("{}/api/admin/queue/resume", app.base))
        .insert_header(("Cookie", session_cookie))
        .insert_header(("X-CSRF-Token", session_csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(app.count("SELECT COUNT(*) FROM flags").await, 0);
    let mut queue = app
        .client
        .get(format!("{}/api/admin/queue", app.base))
        .bearer_auth(&app.api_token)
        .send()
        .await
        .unwrap();
    let queue: Value = queue.json().await.unwrap();
    assert_eq!(queue["paused"], false);
    let _ = resp.body().await;
    let mut audit = app
        .client
        .get(format!("{}/api/admin/audit", app.base))
        .bearer_auth(&app.api_token)
        .send()
        .await
        .unwrap();
    let audit: Value = audit.json().await.unwrap();
    assert_eq!(audit["total"], 2);
    assert_eq!(audit["items"][0]["action"], "queue.resume");
    assert_eq!(audit["items"][0]["user_name"], "root");
}

#[actix_web::test]
async fn a_failed_mail_is_retried_from_the_mail_page() {
    // Arrange: a mail the server refused for good (file transport here, so
    // the retry really sends it).
    let (app, _) = crawled_app().await;
    app.db
        .execute_unprepared(
            "INSERT INTO outbox (key, kind, recipient, subject, text_body, headers, status, attempts, \
             next_attempt_at, last_error, created_at) VALUES ('test:1:ana@example.com', 'digest', \
             'ana@example.com', 'Hello', 'Hi', '{}', 'failed', 10, CURRENT_TIMESTAMP, \
             '550 5.1.1 no such user', CURRENT_TIMESTAMP)",
        )
        .await
        .expect("a failed mail");
    let mut admin = account(&app, "root", true).await;

    // Act
    let page = admin.get("/admin/mail?status=failed").await.body;
    assert!(page.contains("550 5.1.1 no such user"), "{page}");
    let token = hidden(&page, "csrf").unwrap();
    let id = app.count("SELECT id FROM outbox").await;
    let done = admin
        .post(&format!("/admin/mail/{id}/retry"), &[("csrf", &token)])
        .await;

    // Assert: sent this time, and audited.
    assert_eq!(done.status, 303);
    let deadline = Instant::now() + Duration::from_secs(30);
    while app
        .count("SELECT COUNT(*) FROM outbox WHERE status = 'sent'")
        .await
        == 0
    {
        assert!(Instant::now() < deadline, "the mail was not sent again");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(audit_rows(&app, "mail.retry").await, 1);
    let bad = admin.get("/admin/mail?status=lost").await;
    assert_eq!(bad.status, 400);
}

/// An admin API action with the token; its status.
async fn api_post(app: &TestApp, path: &str) -> u16 {
    app.client
        .post(format!("{}{path}", app.base))
        .bearer_auth(&app.api_token)
        .send()
        .await
        .expect("admin API call")
        .status()
        .as_u16()
}

async fn crawl_statuses(app: &TestApp) -> Vec<Vec<String>> {
    app.rows("SELECT id, status FROM crawls ORDER BY id").await
}

async fn kill_tasks(app: &TestApp, ids: &[i64]) {
    let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
    app.db
        .execute_unprepared(&format!(
            "UPDATE tasks SET state = 'dead', last_error = 'HTTP 503' WHERE id IN ({})",
            ids.join(", ")
        ))
        .await
        .expect("kill tasks");
}

async fn retrying_an_older_crawls_dead_tasks_while_a_newer_one_runs_keeps_one_crawl_running(
    backend: Backend,
) {
    // Arrange: the first crawl ended with two dead tasks; a second crawl
    // runs, held by a paused queue.
    let (app, first) = crawled_app_on(backend).await;
    let pages = app
        .rows(&format!(
            "SELECT id FROM tasks WHERE crawl_id = {first} AND kind = 'page' AND state = 'done' ORDER BY id LIMIT 2"
        ))
        .await;
    let [a, b] = [0, 1].map(|i| pages[i][0].parse::<i64>().expect("task id"));
    kill_tasks(&app, &[a, b]).await;
    assert_eq!(api_post(&app, "/api/admin/queue/pause").await, 200);
    let second = app.start_crawl().await;

    // Act: one retried alone, the other with every dead task.
    let retried = api_post(&app, &format!("/api/admin/tasks/{a}/retry")).await;
    let requeued = api_post(&app, "/api/admin/tasks/requeue-dead").await;

    // Assert: both back in the queue; the first crawl keeps its end, and the
    // second alone runs.
    assert_eq!((retried, requeued), (200, 200));
    assert_eq!(task_state(&app, a).await, "queued");
    assert_eq!(task_state(&app, b).await, "queued");
    let (first, second) = (first.to_string(), second.to_string());
    assert_eq!(
        crawl_statuses(&app).await,
        [[&first, "finished"], [&second, "running"]]
    );

    // Act: the queue resumes.
    assert_eq!(api_post(&app, "/api/admin/queue/resume").await, 200);

    // Assert: the old tasks are fetched again, and the second crawl ends.
    wait_task(&app, a, "done").await;
    wait_task(&app, b, "done").await;
    app.wait_crawl(second.parse().unwrap(), Duration::from_secs(60))
        .await;
    assert_eq!(
        crawl_statuses(&app).await,
        [[&first, "finished"], [&second, "finished"]]
    );

    // Act / Assert: a dead task of the newest crawl reopens it until the
    // task is done; one of an older crawl does not.
    let newest = app
        .count(&format!(
            "SELECT MAX(id) FROM tasks WHERE crawl_id = {second} AND kind = 'page' AND state = 'done'"
        ))
        .await;
    kill_tasks(&app, &[a, newest]).await;
    assert_eq!(api_post(&app, "/api/admin/queue/pause").await, 200);
    assert_eq!(
        api_post(&app, &format!("/api/admin/tasks/{a}/retry")).await,
        200
    );
    assert_eq!(
        crawl_statuses(&app).await,
        [[&first, "finished"], [&second, "finished"]]
    );
    assert_eq!(
        api_post(&app, &format!("/api/admin/tasks/{newest}/retry")).await,
        200
    );
    assert_eq!(
        crawl_statuses(&app).await,
        [[&first, "finished"], [&second, "running"]]
    );
    assert_eq!(api_post(&app, "/api/admin/queue/resume").await, 200);
    app.wait_crawl(second.parse().unwrap(), Duration::from_secs(60))
        .await;
    assert_eq!(task_state(&app, newest).await, "done");
    assert_eq!(task_state(&app, a).await, "done");
}
on_both_backends!(
    retrying_an_older_crawls_dead_tasks_while_a_newer_one_runs_keeps_one_crawl_running
);

#[actix_web::test]
async fn admin_lists_answer_a_page_far_past_the_end_with_an_empty_page() {
    // Arrange
    let (app, _) = crawled_app().await;
    let mut admin = account(&app, "root", true).await;

    for list in [
        "/admin/tasks",
        "/admin/audit",
        "/admin/mail",
        "/admin/crawls",
        "/admin/auctions",
    ] {
        // Act: the largest page number a query string can carry.
        let page = admin
            .get(&format!("{list}?page=18446744073709551615"))
            .await;

        // Assert: a page, not an error, and the server is still there.
        assert_eq!(page.status, 200, "{list}: {}", page.body);
    }
    let (status, _) = app.get_html("/healthz").await;
    assert_eq!(status, 200, "log:\n{}", app.log());
}
