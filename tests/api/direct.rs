//! Direct conversations in `bazaar chat`: two terminal clients ask, accept
//! or refuse, and talk over a WebRTC data channel; the server relays only
//! the `signal` frames. Each client reaches the server through a recording
//! proxy, so a test can read every byte the server sent it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::browser_helpers::{
    Browser, P2P_ACCEPT, P2P_CLOSE, P2P_INPUT, P2P_MESSAGES, P2P_NOTE, P2P_STATE,
};
use crate::chat_cli::Cli;
use crate::chat_client::ChatClient;
use crate::helpers::{spawn_app, AppOptions, Backend, TestApp};

/// Long enough for ICE and DTLS on loopback on a loaded machine.
const OPEN: Duration = Duration::from_secs(30);
const SOON: Duration = Duration::from_secs(10);

#[actix_web::test]
async fn two_terminal_clients_talk_directly_and_the_server_carries_none_of_it() {
    // Arrange: ana and bob, each behind a recording proxy, and carl watching.
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let (ana_proxy, from_server_to_ana, _ana_recorder) = Recorder::start(&app).await;
    let (bob_proxy, from_server_to_bob, _bob_recorder) = Recorder::start(&app).await;
    let mut carl = ChatClient::connect(&app, Some("carl")).await.expect("carl");
    carl.join("chat:lobby", None).await;
    let (mut ana, mut bob) = two_clients(&ana_proxy, &bob_proxy);

    // Act: ana asks, bob says yes.
    ana.write_line("/direct bob");
    ana.expect_line("* asking bob for a direct conversation", SOON);
    bob.expect_line(
        "* ana wants to talk directly: /accept ana or /reject ana",
        SOON,
    );
    bob.write_line("/accept ana");

    // Assert: both ends open.
    ana.expect_line("* direct conversation with bob open", OPEN);
    bob.expect_line("* direct conversation with ana open", OPEN);

    // Act and assert: a line each way, ana's as a plain line (she is in
    // direct mode), bob's with /msg.
    ana.write_line("psst, only for bob");
    ana.expect_line("you → bob (direct): psst, only for bob", SOON);
    bob.expect_line("ana → you (direct): psst, only for bob", SOON);
    bob.write_line("/msg ana right back at you");
    bob.expect_line("you → ana (direct): right back at you", SOON);
    ana.expect_line("bob → you (direct): right back at you", SOON);

    // Act: ana ends it, then says a line in the room.
    ana.write_line("/close bob");
    ana.expect_line("* direct conversation with bob closed", SOON);
    bob.expect_line("* ana closed the direct conversation", SOON);
    ana.write_line("back in the room");

    // Assert: the room line went through the server, the direct ones did not.
    bob.expect_line("] ana: back in the room", SOON);
    assert_eq!(stored_once_committed(&app).await, ["back in the room"]);
    for (who, bytes) in [("ana", &from_server_to_ana), ("bob", &from_server_to_bob)] {
        // Bob printing the line says the server sent it, not that its
        // copy to ana has crossed her proxy yet.
        let bytes = recorded_until(bytes, "back in the room").await;
        assert!(
            bytes.contains("\"op\":\"signal\""),
            "{who} got the signals: {bytes}"
        );
        assert!(
            bytes.contains("back in the room"),
            "{who} got the room line"
        );
        for direct in ["psst, only for bob", "right back at you"] {
            assert!(!bytes.contains(direct), "the server sent {who} {direct:?}");
        }
    }
    let mut carl_saw = Vec::new();
    let quiet = Duration::from_millis(300);
    while let Ok(Ok(frame)) = tokio::time::timeout(quiet, carl.next_frame(SOON)).await {
        carl_saw.push(frame);
    }
    assert!(carl_saw.iter().all(|f| f["op"] != "signal"), "{carl_saw:?}");
    let carl_saw = Value::Array(carl_saw).to_string();
    assert!(!carl_saw.contains("psst") && !carl_saw.contains("right back"));
}

/// What a recording proxy has passed on so far, once it holds `needle`
/// or `SOON` has gone by.
async fn recorded_until(bytes: &Mutex<Vec<u8>>, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        let text = String::from_utf8_lossy(&bytes.lock().expect("recording")).into_owned();
        if text.contains(needle) || tokio::time::Instant::now() >= deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_web::test]
async fn a_refused_offer_connects_nobody_and_lines_stay_in_the_room() {
    // Arrange
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let (mut ana, mut bob) = two_clients(&app.base, &app.base);
    ana.write_line("/direct bob");
    bob.expect_line("* ana wants to talk directly", SOON);

    // Act
    bob.write_line("/reject ana");

    // Assert: ana is told, and her next line goes to the room.
    bob.expect_line("* you declined ana's direct conversation", SOON);
    ana.expect_line("* bob declined the direct conversation", SOON);
    ana.write_line("oh well");
    bob.expect_line("] ana: oh well", SOON);
    bob.write_line("/accept ana");
    bob.expect_line("! ana has not asked to talk directly", SOON);
    for cli in [&ana, &bob] {
        let opened = cli
            .seen
            .iter()
            .any(|l| l.contains("direct conversation with") && l.ends_with("see it"));
        assert!(!opened, "{:?}", cli.seen);
    }
}

#[actix_web::test]
async fn a_peer_that_vanishes_mid_conversation_ends_it_with_a_clear_line() {
    // Arrange: an open conversation.
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let (mut ana, mut bob) = two_clients(&app.base, &app.base);
    ana.write_line("/direct bob");
    bob.expect_line("* ana wants to talk directly", SOON);
    bob.write_line("/accept ana");
    ana.expect_line("* direct conversation with bob open", OPEN);

    // Act: bob's process dies without a word.
    bob.child.kill().expect("kill bob's client");

    // Assert
    ana.expect_line(
        "* direct conversation with bob ended: they left the room",
        SOON,
    );
    ana.expect_line("* lines go to the room again", SOON);
    ana.write_line("/msg bob are you there?");
    ana.expect_line("! no direct conversation with that name", SOON);
}

#[actix_web::test]
async fn an_offer_to_nobody_or_to_yourself_is_refused_on_the_spot() {
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let (mut ana, _bob) = two_clients(&app.base, &app.base);

    ana.write_line("/direct zed");
    ana.expect_line("! nobody called zed is in the room", SOON);
    ana.write_line("/direct ana");
    ana.expect_line("! that is you", SOON);
    ana.write_line("/close bob");
    ana.expect_line("! no direct conversation with bob", SOON);
    ana.write_line("/room");
    ana.expect_line("* lines already go to #lobby", SOON);
}

/// The terminal client and the browser page speak the same convention: a
/// page asks the terminal, then the terminal asks the page, and each time
/// a line goes each way on the channel.
#[actix_web::test]
async fn the_terminal_client_and_a_browser_page_talk_directly_both_ways() {
    // Arrange: ana in Chromium, bob in the terminal.
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut browser = Browser::start().await;
    let mut bob = Cli::spawn_as(&app.base, "bob", &[]);
    bob.expect_line("* in #lobby", SOON);
    let ana = browser.page().await;
    ana.enter_room(&app.base, "lobby", "ana").await;
    bob.expect_line("* ana joined", SOON);

    // Act: the page asks; the terminal says yes.
    ana.call_directly("bob").await;
    bob.expect_line("* ana wants to talk directly: /accept ana", SOON);
    bob.write_line("/accept ana");

    // Assert: open on both ends, and a line each way.
    ana.wait_for_text(P2P_STATE, "direct connection open").await;
    bob.expect_line("* direct conversation with ana open", OPEN);
    ana.send(P2P_INPUT, "hello from Chromium").await;
    bob.expect_line("ana → you (direct): hello from Chromium", SOON);
    bob.write_line("/msg ana hello from the terminal");
    ana.wait_for_text(P2P_MESSAGES, "hello from the terminal")
        .await;

    // Act: the page closes its panel; then the terminal asks the page.
    ana.click(P2P_CLOSE).await;
    bob.expect_line("* ana closed the direct conversation", SOON);
    bob.write_line("/direct ana");
    ana.wait_for_text(P2P_STATE, "bob wants to talk directly")
        .await;
    ana.click(P2P_ACCEPT).await;

    // Assert
    bob.expect_line("* direct conversation with ana open", OPEN);
    ana.wait_for_text(P2P_STATE, "direct connection open").await;
    bob.write_line("the terminal asked this time");
    ana.wait_for_text(P2P_MESSAGES, "the terminal asked this time")
        .await;
    ana.send(P2P_INPUT, "and the page answers").await;
    bob.expect_line("ana → you (direct): and the page answers", SOON);

    // Act: the terminal leaves.
    bob.write_line("/quit");

    // Assert: the page says the conversation is over.
    ana.wait_for_text(P2P_STATE, "closed").await;
    let why = ana.texts(P2P_NOTE).await;
    let told = ["They closed the conversation.", "They left the room."];
    assert!(why.iter().any(|w| told.contains(&w.as_str())), "{why:?}");
    let stored = stored_texts(&app).await;
    assert!(stored.is_empty(), "no direct line was stored: {stored:?}");
}

/// `--stun` adds the address a STUN server reports to the offer, as a
/// server-reflexive candidate that the callee receives.
#[actix_web::test]
async fn a_stun_server_s_answer_travels_in_the_offer() {
    // Arrange: a STUN server on loopback that reports a public address.
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let stun = stun_server("203.0.113.7:40000".parse().expect("an address"));
    let mut bob = ChatClient::connect(&app, Some("bob")).await.expect("bob");
    bob.join("chat:lobby", None).await;
    let mut ana = Cli::spawn_as(&app.base, "ana", &["--stun", &format!("stun:{stun}")]);
    ana.expect_line("* in #lobby", SOON);

    // Act
    ana.write_line("/direct bob");

    // Assert
    let signal = bob.recv_op("signal").await;
    assert_eq!(signal["data"]["kind"], "offer");
    let sdp = signal["data"]["sdp"].as_str().expect("an SDP offer");
    assert!(
        sdp.lines()
            .any(|l| l.contains("203.0.113.7 40000 typ srflx")),
        "{sdp}"
    );
    assert!(sdp.contains("typ host"), "{sdp}");
}

/// ana and bob in the lobby, each knowing the other is there.
fn two_clients(ana_server: &str, bob_server: &str) -> (Cli, Cli) {
    let mut ana = Cli::spawn_as(ana_server, "ana", &[]);
    ana.expect_line("* in #lobby", SOON);
    let mut bob = Cli::spawn_as(bob_server, "bob", &[]);
    bob.expect_line("* in #lobby", SOON);
    ana.expect_line("* bob joined", SOON);
    (ana, bob)
}

/// The stored texts once there is one: members see a message before its
/// commit.
async fn stored_once_committed(app: &TestApp) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        let stored = stored_texts(app).await;
        if !stored.is_empty() || tokio::time::Instant::now() > deadline {
            return stored;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The lobby's stored texts, in seq order.
pub(crate) async fn stored_texts(app: &TestApp) -> Vec<String> {
    let sql = "SELECT text FROM messages WHERE topic = 'chat:lobby' ORDER BY seq";
    let statement = Statement::from_string(app.db.get_database_backend(), sql.to_owned());
    let rows = app
        .db
        .query_all(statement)
        .await
        .expect("read the messages");
    rows.iter()
        .map(|row| row.try_get_by_index::<String>(0).expect("a text"))
        .collect()
}

/// A TCP proxy to the app for one client, keeping every byte the server
/// sends back. Server-to-client WebSocket frames are not masked, so a text
/// the server relayed shows in the recording as it was written. It runs on
/// a thread of its own (the test blocks its own while it reads a client's
/// stdout) and stops when dropped.
struct Recorder {
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Recorder {
    async fn start(app: &TestApp) -> (String, Arc<Mutex<Vec<u8>>>, Recorder) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let upstream = app.base.trim_start_matches("http://").to_owned();
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let recording = recorded.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        on_own_thread(async move {
            let listener = TcpListener::from_std(listener).expect("a tokio listener");
            let accepting = async {
                while let Ok((client, _)) = listener.accept().await {
                    let server = TcpStream::connect(&upstream).await.expect("the app");
                    tokio::spawn(relay(client, server, recording.clone()));
                }
            };
            tokio::select! {
                () = accepting => {}
                _ = stopped => {}
            }
        });
        let base = format!("http://127.0.0.1:{port}");
        (base, recorded, Recorder { _stop: stop })
    }
}

/// Runs `work` on a new thread with a runtime of its own.
fn on_own_thread(work: impl std::future::Future<Output = ()> + Send + 'static) {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(work);
    });
}

async fn relay(client: TcpStream, server: TcpStream, recording: Arc<Mutex<Vec<u8>>>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upward = async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    };
    let downward = async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = server_read.read(&mut buf).await {
            if n == 0 {
                break;
            }
            recording
                .lock()
                .expect("recording")
                .extend_from_slice(&buf[..n]);
            if client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upward, downward);
}

/// A STUN server that answers every Binding request with `public`, as
/// XOR-MAPPED-ADDRESS (RFC 8489 §14.2).
fn stun_server(public: std::net::SocketAddr) -> std::net::SocketAddr {
    const COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
    let std::net::SocketAddr::V4(public) = public else {
        panic!("an IPv4 address")
    };
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.set_nonblocking(true).expect("nonblocking");
    let address = socket.local_addr().expect("addr");
    // Lives as long as the test process: a few bytes of state.
    on_own_thread(async move {
        let socket = tokio::net::UdpSocket::from_std(socket).expect("a tokio socket");
        let mut buf = [0u8; 1500];
        while let Ok((len, from)) = socket.recv_from(&mut buf).await {
            if len < 20 || buf[..2] != [0, 1] || buf[4..8] != COOKIE {
                continue; // not a Binding request
            }
            let mut reply = vec![0x01, 0x01, 0, 12];
            reply.extend_from_slice(&buf[4..20]);
            reply.extend_from_slice(&[0, 0x20, 0, 8, 0, 1]);
            reply.extend_from_slice(&(public.port() ^ 0x2112).to_be_bytes());
            reply.extend(public.ip().octets().iter().zip(COOKIE).map(|(a, b)| a ^ b));
            let _ = socket.send_to(&reply, from).await;
        }
    });
    address
}
