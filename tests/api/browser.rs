//! The chat page in real headless Chromium: two users in two windows chat,
//! see each other come and go, ride out a server restart, and talk directly
//! over WebRTC without the server, once the one called says yes.

use sea_orm::{ConnectionTrait, Statement};
use serde_json::{json, Value};

use crate::accounts::Visitor;
use crate::browser_helpers::{
    Browser, Page, P2P_ACCEPT, P2P_CLOSE, P2P_DECLINE, P2P_INPUT, P2P_MESSAGES, P2P_NOTE,
    P2P_PANEL, P2P_STATE,
};
use crate::helpers::{spawn_app, AppOptions, Backend, TestApp};

/// The room's composer; Enter sends.
pub const COMPOSER: &str = "#composer textarea[name=text]";
/// The text of every message the server numbered.
pub const MESSAGES: &str = "#messages .message[data-seq] .text";
/// The name of everyone in the member list.
pub const MEMBERS: &str = "#members [data-conn] .user";

#[actix_web::test]
async fn two_pages_chat_and_see_presence() {
    // Arrange
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut browser = Browser::start().await;
    let (ana, bob) = two_in_the_lobby(&app, &mut browser).await;

    // Act
    ana.send(COMPOSER, "hello from ana").await;
    bob.wait_for_text(MESSAGES, "hello from ana").await;
    bob.send(COMPOSER, "hi ana, bob here").await;
    ana.wait_for_text(MESSAGES, "hi ana, bob here").await;
    bob.close().await;

    // Assert: bob's window closing takes him off ana's list.
    ana.wait_for_no_text(MEMBERS, "bob").await;
    assert_eq!(ana.texts(MEMBERS).await, ["ana"]);
}

#[actix_web::test]
async fn page_reconnects_after_server_restart_and_resumes() {
    // Arrange
    let mut app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut browser = Browser::start().await;
    let (ana, bob) = two_in_the_lobby(&app, &mut browser).await;
    ana.send(COMPOSER, "before the crash").await;
    bob.wait_for_text(MESSAGES, "before the crash").await;
    bob.send(COMPOSER, "seen it").await;
    ana.wait_for_text(MESSAGES, "seen it").await;
    // Members see a message before its commit, and a crash may lose what
    // is not committed (the resume then says so): this test is about what
    // was stored, so the crash comes after the commit.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while crate::direct::stored_texts(&app).await != ["before the crash", "seen it"] {
        assert!(tokio::time::Instant::now() < deadline, "never stored");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // Act
    app.kill9();
    ana.wait_until("#conn-state to leave online", "#conn-state", |badge| {
        badge != ["online"]
    })
    .await;
    app.start().await;
    ana.wait_online().await;
    bob.wait_online().await;
    bob.send(COMPOSER, "after the restart").await;

    // Assert: the new message joins the old ones, each once, in seq order.
    ana.wait_for_text(MESSAGES, "after the restart").await;
    assert_eq!(
        ana.texts(MESSAGES).await,
        ["before the crash", "seen it", "after the restart"]
    );
    let seqs: Vec<u64> = ana
        .attrs("#messages .message[data-seq]", "data-seq")
        .await
        .iter()
        .map(|seq| seq.parse().expect("a numeric data-seq"))
        .collect();
    assert!(
        seqs.windows(2).all(|pair| pair[0] < pair[1]),
        "seqs not strictly increasing: {seqs:?}"
    );
}

#[actix_web::test]
async fn p2p_message_bypasses_the_server() {
    // Arrange: a room message first, which the server does store.
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut browser = Browser::start().await;
    let (ana, bob) = two_in_the_lobby(&app, &mut browser).await;
    ana.send(COMPOSER, "said in the room").await;
    bob.wait_for_text(MESSAGES, "said in the room").await;
    ana.watch_peer_connections().await;
    bob.watch_peer_connections().await;

    // Act: ana calls; bob is asked, and nothing connects until he accepts.
    ana.call_directly("bob").await;
    ana.wait_for_text(P2P_STATE, "waiting for bob to accept")
        .await;
    bob.wait_for_text(P2P_STATE, "ana wants to talk directly")
        .await;
    assert!(bob.peer_connections().await.is_empty());
    bob.click(P2P_ACCEPT).await;
    ana.wait_for_text(P2P_STATE, "direct connection open").await;
    bob.wait_for_text(P2P_STATE, "direct connection open").await;
    ana.send(P2P_INPUT, "just between us").await;

    // Assert: bob reads it; the server's table never saw it. Each page made
    // one connection, with no STUN server: chat.stun_urls is empty.
    bob.wait_for_text(P2P_MESSAGES, "just between us").await;
    assert_eq!(stored_texts(&app).await, ["said in the room"]);
    for page in [&ana, &bob] {
        assert_eq!(page.peer_connections().await, [json!({"iceServers": []})]);
    }
}

#[actix_web::test]
async fn a_declined_offer_opens_nothing_and_tells_the_caller() {
    // Arrange
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut browser = Browser::start().await;
    let (ana, bob) = two_in_the_lobby(&app, &mut browser).await;
    bob.watch_peer_connections().await;
    ana.call_directly("bob").await;
    bob.wait_for_p2p_state("asking").await;

    // Act
    bob.click(P2P_DECLINE).await;

    // Assert: ana's call ends with the reason; bob never made a connection.
    ana.wait_for_p2p_state("closed").await;
    ana.wait_for_text(P2P_NOTE, "bob declined.").await;
    assert_eq!(bob.texts(P2P_NOTE).await, ["You declined."]);
    assert_eq!(bob.texts(P2P_STATE).await, ["closed"]);
    assert!(bob.peer_connections().await.is_empty());
    for page in [&ana, &bob] {
        assert!(page
            .texts(&format!("{P2P_PANEL}[data-state=open]"))
            .await
            .is_empty());
        assert!(page.texts(P2P_MESSAGES).await.is_empty());
    }
    assert!(stored_texts(&app).await.is_empty());
}

#[actix_web::test]
async fn the_prompt_goes_away_when_the_caller_hangs_up_first() {
    // Arrange
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut browser = Browser::start().await;
    let (ana, bob) = two_in_the_lobby(&app, &mut browser).await;
    bob.watch_peer_connections().await;
    ana.call_directly("bob").await;
    bob.wait_for(P2P_ACCEPT).await;

    // Act: ana closes her panel before bob answers, which sends a bye.
    ana.click(P2P_CLOSE).await;

    // Assert
    bob.wait_for_text(P2P_NOTE, "ana withdrew the offer.").await;
    assert_eq!(bob.texts(P2P_STATE).await, ["closed"]);
    assert!(!bob.is_displayed(P2P_ACCEPT).await);
    assert!(!bob.is_displayed(P2P_DECLINE).await);
    assert!(bob.peer_connections().await.is_empty());
    assert!(ana.texts(P2P_PANEL).await.is_empty(), "ana's panel is gone");
}

#[actix_web::test]
async fn two_calling_each_other_connect_without_a_prompt() {
    // Arrange
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut browser = Browser::start().await;
    let (ana, bob) = two_in_the_lobby(&app, &mut browser).await;

    // Act: both ask at once. When the offers cross, both said yes and one
    // answers the other's; when one arrives first, the other's click on
    // "talk directly" is the yes.
    tokio::join!(ana.call_directly("bob"), bob.call_directly("ana"));

    // Assert
    ana.wait_for_text(P2P_STATE, "direct connection open").await;
    bob.wait_for_text(P2P_STATE, "direct connection open").await;
    bob.send(P2P_INPUT, "we both asked").await;
    ana.wait_for_text(P2P_MESSAGES, "we both asked").await;
    for page in [&ana, &bob] {
        assert_eq!(page.texts(P2P_PANEL).await.len(), 1, "one panel each");
    }
}

#[actix_web::test]
async fn the_room_page_carries_the_configured_stun_servers() {
    // Arrange
    let stun = ["stun:stun.example.org:3478", "stuns:[2001:db8::1]:5349"];
    let options = AppOptions {
        env: vec![("BAZAAR_CHAT__STUN_URLS".into(), json!(stun).to_string())],
        ..AppOptions::default()
    };
    let app = spawn_app(Backend::Sqlite, options).await;

    // Act
    let (status, html) = app.get_html("/rooms/lobby").await;

    // Assert: the attribute holds the list as JSON, escaped for HTML.
    assert_eq!(status, 200);
    assert_eq!(data_stun(&html), json!(stun));
    let default = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    assert_eq!(
        data_stun(&default.get_html("/rooms/lobby").await.1),
        json!([])
    );
}

#[actix_web::test]
async fn a_call_asks_the_configured_stun_servers() {
    // Arrange: a STUN server on loopback, so that no name is looked up.
    let stun = "stun:127.0.0.1:3478";
    let options = AppOptions {
        env: vec![("BAZAAR_CHAT__STUN_URLS".into(), stun.into())],
        ..AppOptions::default()
    };
    let app = spawn_app(Backend::Sqlite, options).await;
    let mut browser = Browser::start().await;
    let (ana, bob) = two_in_the_lobby(&app, &mut browser).await;
    ana.watch_peer_connections().await;

    // Act
    ana.call_directly("bob").await;
    bob.wait_for_p2p_state("asking").await;

    // Assert
    assert_eq!(
        ana.peer_connections().await,
        [json!({"iceServers": [{"urls": [stun]}]})]
    );
}

#[actix_web::test]
async fn a_rename_shows_in_every_member_list_and_drops_no_one() {
    // Arrange: Ana logged in on the lobby's page, and a guest beside her.
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut account = Visitor::new(&app);
    assert_eq!(
        account.register("ana", "Ana", "correct horse").await.status,
        303
    );
    let mut browser = Browser::start().await;
    let ana = browser.page().await;
    ana.goto(&format!("{}/login", app.base)).await;
    ana.type_into("#login-form input[name=name]", "ana").await;
    ana.type_into("#login-form input[name=password]", "correct horse")
        .await;
    ana.click("#login-form button[type=submit]").await;
    ana.wait_for("a[href='/account']").await;
    ana.goto(&format!("{}/rooms/lobby", app.base)).await;
    ana.wait_online().await;
    let gus = browser.page().await;
    gus.enter_room(&app.base, "lobby", "gus").await;
    gus.wait_for_text(MEMBERS, "Ana").await;
    ana.wait_for_text(MEMBERS, "gus").await;

    // Act: she changes her display name elsewhere.
    account.rename("Ana Maria").await;

    // Assert
    for page in [&gus, &ana] {
        page.wait_for_text(MEMBERS, "Ana Maria").await;
        let mut members = page.texts(MEMBERS).await;
        members.sort();
        assert_eq!(members, ["Ana Maria", "gus"]);
    }
}

/// Ana and then bob open the lobby in their own windows, and each sees the
/// other in the member list.
async fn two_in_the_lobby(app: &TestApp, browser: &mut Browser) -> (Page, Page) {
    let ana = browser.page().await;
    let bob = browser.page().await;
    ana.enter_room(&app.base, "lobby", "ana").await;
    bob.enter_room(&app.base, "lobby", "bob").await;
    ana.wait_for_text(MEMBERS, "bob").await;
    bob.wait_for_text(MEMBERS, "ana").await;
    (ana, bob)
}

/// Every message text the server stored for the lobby, in seq order.
async fn stored_texts(app: &TestApp) -> Vec<String> {
    let sql = "SELECT text FROM messages WHERE topic = 'chat:lobby' ORDER BY seq";
    let rows = app
        .db
        .query_all(Statement::from_string(
            app.db.get_database_backend(),
            sql.to_owned(),
        ))
        .await
        .expect("read the messages table");
    rows.iter()
        .map(|row| row.try_get_by_index::<String>(0).expect("a text"))
        .collect()
}

/// The room page's `data-stun` attribute, read back as the JSON it holds.
fn data_stun(html: &str) -> Value {
    let value = html
        .split_once("data-stun=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .unwrap_or_else(|| panic!("no data-stun attribute in:\n{html}"))
        .0;
    let value = value.replace("&#34;", "\"").replace("&#38;", "&");
    serde_json::from_str(&value).unwrap_or_else(|err| panic!("data-stun {value:?}: {err}"))
}
