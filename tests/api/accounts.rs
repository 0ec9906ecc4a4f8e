//! Accounts over real HTTP: register, log in, the account page, log out,
//! CSRF, throttling, the admin CLI, and sockets that follow their account.

use std::collections::BTreeMap;
use std::time::Duration;

use awc::http::header;
use chrono::TimeDelta;
use serde_json::{json, Value};

use crate::chat_client::{ChatClient, MemberList};
use crate::helpers::{run_bazaar, spawn_app, AppOptions, Backend, TestApp};

/// A browser's view of the site: it keeps cookies and follows nothing.
pub struct Visitor<'a> {
    /// The server, when it is a `TestApp` (`None` for a cluster's nginx).
    app: Option<&'a TestApp>,
    base: String,
    client: awc::Client,
    cookies: BTreeMap<String, String>,
    /// Sent with every request, as a proxy in front of the server would.
    headers: Vec<(&'static str, String)>,
}

pub struct Page {
    pub status: u16,
    pub body: String,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    /// The `X-Request-Id` the server answered with.
    pub request_id: Option<String>,
    /// The `Retry-After` the server answered with.
    pub retry_after: Option<String>,
}

impl Page {
    /// The `Retry-After` the page came with, in seconds.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after
            .as_deref()
            .expect("a Retry-After header")
            .parse()
            .expect("whole seconds")
    }
}

impl<'a> Visitor<'a> {
    pub fn new(app: &'a TestApp) -> Visitor<'a> {
        Visitor {
            app: Some(app),
            ..Visitor::at(&app.base)
        }
    }

    /// A visitor of the site at `base`, such as a cluster's load balancer.
    pub fn at(base: &str) -> Visitor<'a> {
        Visitor {
            app: None,
            base: base.to_owned(),
            // Redirects are asserted on, not followed.
            client: awc::Client::builder()
                .disable_redirects()
                .timeout(Duration::from_secs(20))
                .finish(),
            cookies: BTreeMap::new(),
            headers: Vec::new(),
        }
    }

    /// This visitor, sending `name: value` with every request.
    pub fn with_header(mut self, name: &'static str, value: &str) -> Visitor<'a> {
        self.headers.push((name, value.to_owned()));
        self
    }

    fn request(&self, method: awc::http::Method, path: &str) -> awc::ClientRequest {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .insert_header((header::COOKIE, self.cookie_header()));
        for (name, value) in &self.headers {
            request = request.append_header((*name, value.as_str()));
        }
        request
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn read(
        &mut self,
        mut resp: awc::ClientResponse<
            impl futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
        >,
    ) -> Page {
        let mut set_cookies = Vec::new();
        for value in resp.headers().get_all(header::SET_COOKIE) {
            let raw = value.to_str().expect("ascii cookie").to_owned();
            let pair = raw.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
            set_cookies.push(raw);
        }
        let location = resp
            .headers()
            .get(header::LOCATION)
            .map(|l| l.to_str().unwrap_or_default().to_owned());
        let request_id = resp
            .headers()
            .get("x-request-id")
            .map(|id| id.to_str().expect("ascii request id").to_owned());
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .map(|wait| wait.to_str().expect("ascii Retry-After").to_owned());
        let status = resp.status().as_u16();
        let body = String::from_utf8(resp.body().await.expect("body").to_vec()).expect("utf-8");
        Page {
            status,
            body,
            location,
            set_cookies,
            request_id,
            retry_after,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let resp = self
            .request(awc::http::Method::GET, path)
            .send()
            .await
            .expect("get");
        self.read(resp).await
    }

    /// The server this visitor browses.
    pub fn app(&self) -> &'a TestApp {
        self.app.expect("a visitor of a TestApp")
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let resp = self
            .request(awc::http::Method::POST, path)
            .send_form(&form)
            .await
            .expect("post");
        self.read(resp).await
    }

    /// The CSRF token of the form on `path`.
    pub async fn token(&mut self, path: &str) -> String {
        let page = self.get(path).await;
        hidden(&page.body, "csrf")
            .unwrap_or_else(|| panic!("no csrf field on {path}: {}", page.body))
    }

    pub async fn register(&mut self, name: &str, display: &str, password: &str) -> Page {
        let csrf = self.token("/register").await;
        self.post(
            "/register",
            &[
                ("csrf", &csrf),
                ("name", name),
                ("display_name", display),
                ("password", password),
                ("confirm", password),
            ],
        )
        .await
    }

    /// Changes the display name on `/account`, as the form does.
    pub async fn rename(&mut self, display: &str) {
        let csrf = self.token("/account").await;
        let page = self
            .post("/account", &[("csrf", &csrf), ("display_name", display)])
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
    }

    pub async fn login(&mut self, name: &str, password: &str) -> Page {
        let csrf = self.token("/login").await;
        self.post(
            "/login",
            &[("csrf", &csrf), ("name", name), ("password", password)],
        )
        .await
    }
}

/// The value of the hidden input `name` in `html`.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_owned())
}

#[actix_web::test]
async fn register_log_out_and_log_in_again_with_a_hashed_password() {
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut ana = Visitor::new(&app);

    let registered = ana
        .register("Ana", "Ana <b>Banana</b>", "correct horse")
        .await;
    assert_eq!(
        registered.status, 400,
        "a display name with markup is refused"
    );
    assert!(
        registered.body.contains("display name is 1-32"),
        "{}",
        registered.body
    );
    assert!(
        !registered.body.contains("<b>Banana</b>"),
        "what was typed comes back escaped"
    );

    let registered = ana.register("Ana", "Ana B", "correct horse").await;
    assert_eq!(registered.status, 303, "{}", registered.body);
    let session = registered
        .set_cookies
        .iter()
        .find(|c| c.starts_with("bazaar_session="))
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(attribute), "{attribute} in {session}");
    }
    assert!(!session.contains("Secure"), "plain http: no Secure");

    let home = ana.get("/").await;
    assert!(home.body.contains("Ana B"), "the top bar names the account");
    let account = ana.get("/account").await;
    assert_eq!(account.status, 200);
    assert!(
        account.body.contains("<strong>ana</strong>"),
        "login names are lowercased"
    );

    // The password is stored as argon2id, never as given.
    let hashes = app
        .count("SELECT COUNT(*) FROM users WHERE name = 'ana' AND password_hash LIKE '$argon2id$%'")
        .await;
    assert_eq!(hashes, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE password_hash LIKE '%correct horse%'")
            .await,
        0
    );

    let taken = Visitor::new(&app)
        .register("ana", "Other", "another password")
        .await;
    assert_eq!(taken.status, 400);
    assert!(taken.body.contains("taken"), "{}", taken.body);

    let csrf = hidden(&ana.get("/account").await.body, "csrf").expect("logout token");
    let out = ana.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 0);
    let account = ana.get("/account").await;
    assert_eq!(account.status, 303, "logged out");
    assert_eq!(account.location.as_deref(), Some("/login?next=%2Faccount"));

    let wrong = ana.login("ana", "wrong horse").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("do not match"), "{}", wrong.body);
    let right = ana.login("ANA", "correct horse").await;
    assert_eq!(right.status, 303, "{}", right.body);
    assert_eq!(ana.get("/account").await.status, 200);
}

#[actix_web::test]
async fn a_response_names_its_request_and_the_log_lines_it_caused() {
    // Arrange: JSON logs, as an operator following a request would read.
    let app = spawn_app(Backend::Sqlite, AppOptions::json_logs()).await;
    let registered = Visitor::new(&app)
        .register("ana", "Ana", "correct horse")
        .await;
    assert_eq!(registered.status, 303, "{}", registered.body);

    // Act
    let mut ana = Visitor::new(&app);
    let login = ana.login("ana", "correct horse").await;
    let page = ana.get("/").await;

    // Assert: each response has its own id, and the login's is on the
    // line the login wrote.
    assert_eq!(login.status, 303, "{}", login.body);
    let id = login.request_id.expect("X-Request-Id on the login");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_ne!(page.request_id.as_deref(), Some(id.as_str()));
    let line = app
        .json_log_line(|line| {
            line["fields"]["message"] == "logged in" && line["span"]["http.route"] == "/login"
        })
        .await;
    assert_eq!(line["span"]["request_id"], id.as_str(), "{line}");
    assert_eq!(line["fields"]["user"], "ana", "{line}");
}

#[actix_web::test]
async fn every_post_needs_its_csrf_token() {
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut ana = Visitor::new(&app);
    assert_eq!(
        ana.register("ana", "Ana", "correct horse").await.status,
        303
    );

    // A forged form: the right cookie, no or a wrong token.
    let renamed = ana.post("/account", &[("display_name", "Mallory")]).await;
    assert_eq!(renamed.status, 403, "{}", renamed.body);
    let renamed = ana
        .post("/account", &[("csrf", "0000"), ("display_name", "Mallory")])
        .await;
    assert_eq!(renamed.status, 403);
    assert_eq!(ana.post("/logout", &[]).await.status, 403);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE display_name = 'Mallory'")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sessions").await,
        1,
        "still logged in"
    );

    // Logging in needs the token too (login CSRF).
    let mut bob = Visitor::new(&app);
    let forged = bob
        .post("/login", &[("name", "ana"), ("password", "correct horse")])
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 1);

    // With the token, the change goes through.
    let csrf = hidden(&ana.get("/account").await.body, "csrf").expect("token");
    let renamed = ana
        .post(
            "/account",
            &[("csrf", &csrf), ("display_name", "Ana Maria")],
        )
        .await;
    assert_eq!(renamed.status, 303);
    assert!(ana.get("/account?saved=1").await.body.contains("Ana Maria"));
}

#[actix_web::test]
async fn repeated_failed_logins_are_throttled() {
    let app = spawn_app(
        Backend::Sqlite,
        AppOptions {
            env: vec![(
                "BAZAAR_ACCOUNTS__LOGIN_ATTEMPTS_PER_NAME".into(),
                "3".into(),
            )],
            ..AppOptions::default()
        },
    )
    .await;
    assert_eq!(
        Visitor::new(&app)
            .register("ana", "Ana", "correct horse")
            .await
            .status,
        303
    );
    let mut guesser = Visitor::new(&app);
    for _ in 0..3 {
        assert_eq!(guesser.login("ana", "guess").await.status, 401);
    }
    let throttled = guesser.login("ana", "correct horse").await;
    assert_eq!(throttled.status, 429, "even the right password waits");
    // The form says the wait in minutes; the header says it in seconds,
    // within the default 15-minute window.
    let wait = throttled.retry_after_secs();
    assert!((1..=900).contains(&wait), "Retry-After: {wait}");
    assert!(
        throttled.body.contains("Too many failed attempts"),
        "{}",
        throttled.body
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sessions").await,
        1,
        "only the registration's"
    );
}

#[actix_web::test]
async fn the_admin_cli_creates_accounts() {
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let env = app.env_vars();
    let run = |args: &[&str], stdin: &str| run_bazaar(args, &env, stdin);
    let made = run(
        &["admin", "create-user", "root", "--admin"],
        "a long password\n",
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    assert!(String::from_utf8_lossy(&made.stdout).contains("created admin account root"));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE name = 'root' AND is_admin")
            .await,
        1
    );
    let again = run(&["admin", "create-user", "root"], "a long password\n");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("taken"));
    let short = run(&["admin", "create-user", "bob"], "short\n");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("8-256 characters"));

    let mut root = Visitor::new(&app);
    assert_eq!(root.login("root", "a long password").await.status, 303);
}

/// Frames until one with `op`, keeping none.
async fn until(client: &mut ChatClient, op: &str) -> Value {
    loop {
        let frame = client
            .next_frame(Duration::from_secs(5))
            .await
            .unwrap_or_else(|end| panic!("socket ended waiting for {op}: {end:?}"));
        if frame["op"] == op {
            return frame;
        }
    }
}

#[actix_web::test]
async fn sockets_follow_the_account_through_a_rename_and_a_logout() {
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut ana = Visitor::new(&app);
    assert_eq!(
        ana.register("ana", "Ana", "correct horse").await.status,
        303
    );
    let cookie = ana.cookie_header();

    // Two tabs of Ana's, each in two rooms; a guest watches both rooms.
    let mut tabs = Vec::new();
    for _ in 0..2 {
        let mut tab = ChatClient::connect_with_cookie(&app, &cookie)
            .await
            .expect("the cookie is an identity");
        for topic in ["chat:one", "chat:two"] {
            let joined = tab.join(topic, None).await;
            let members = joined["members"].as_array().expect("members").clone();
            assert!(members.iter().any(|m| m["user"] == "Ana"), "{joined}");
        }
        tabs.push(tab);
    }
    let mut guest = ChatClient::connect(&app, Some("gus")).await.expect("guest");
    for topic in ["chat:one", "chat:two"] {
        let joined = guest.join(topic, None).await;
        let anas = joined["members"]
            .as_array()
            .expect("members")
            .iter()
            .filter(|m| m["user"] == "Ana")
            .count();
        assert_eq!(anas, 2, "one entry per tab: {joined}");
    }
    let said = tabs[0].say("chat:one", "hello as Ana").await;
    let message = until(&mut guest, "message").await;
    assert_eq!(message["user"], "Ana", "{message} {said}");

    // A new display name reaches every tab.
    let csrf = hidden(&ana.get("/account").await.body, "csrf").expect("token");
    let renamed = ana
        .post(
            "/account",
            &[("csrf", &csrf), ("display_name", "Ana Maria")],
        )
        .await;
    assert_eq!(renamed.status, 303);
    for tab in &mut tabs {
        let session = until(tab, "session").await;
        assert_eq!(session["user"]["display_name"], "Ana Maria", "{session}");
        assert_eq!(session["user"]["name"], "ana");
        assert!(session["user"]["id"].as_i64().is_some());
        assert!(session["user"].get("password_hash").is_none());
    }
    tabs[1].say("chat:two", "renamed").await;
    let message = until(&mut guest, "message").await;
    assert_eq!(message["user"], "Ana Maria", "{message}");

    // Logging out: every tab hears `session: null` and leaves every room.
    let out = ana.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    for tab in &mut tabs {
        let session = until(tab, "session").await;
        assert!(session["user"].is_null(), "{session}");
    }
    let mut left: Vec<(String, String)> = Vec::new();
    while left.len() < 4 {
        let presence = until(&mut guest, "presence").await;
        // A rename's diff (a leave and a join) may still be on its way.
        if presence["joins"].as_array().is_some_and(|j| !j.is_empty()) {
            continue;
        }
        for leave in presence["leaves"].as_array().expect("leaves") {
            left.push((
                presence["topic"].as_str().unwrap_or_default().to_owned(),
                leave["conn"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    left.sort();
    left.dedup();
    assert_eq!(left.len(), 4, "both tabs left both rooms: {left:?}");
    let refused = tabs[0]
        .request(json!({"op": "say", "topic": "chat:one", "text": "still here?"}))
        .await;
    assert_eq!(refused["body"]["code"], "not_logged_in", "{refused}");

    // A socket opened with the dead cookie is no one.
    assert!(ChatClient::connect_with_cookie(&app, &cookie)
        .await
        .is_err());
}

#[actix_web::test]
async fn a_rename_keeps_the_member_listed_under_the_new_name_in_every_view() {
    // Arrange: Ana in a chat room and in a lot's room, and a guest who sees
    // her in both.
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut root = crate::auction_pages::account(&app, "root", true).await;
    let fields =
        crate::auction_pages::lot_fields("Vib-Ribbon", TimeDelta::hours(1), TimeDelta::hours(1));
    let lot = crate::auction_pages::list_lot(&mut root, &fields).await;
    let topics = ["chat:names".to_owned(), format!("auction:{lot}")];
    let mut ana = Visitor::new(&app);
    assert_eq!(
        ana.register("ana", "Ana", "correct horse").await.status,
        303
    );
    let mut tab = ChatClient::connect_with_cookie(&app, &ana.cookie_header())
        .await
        .expect("the cookie is an identity");
    let mut gus = ChatClient::connect(&app, Some("gus")).await.expect("guest");
    let mut ana_conn = String::new();
    let mut seen_by_gus = BTreeMap::new();
    for topic in &topics {
        ana_conn = tab.join(topic, None).await["conn"]
            .as_str()
            .expect("conn")
            .to_owned();
        let list = MemberList::of(&gus.join(topic, None).await);
        assert_eq!(list.user(&ana_conn), Some("Ana"));
        seen_by_gus.insert(topic.clone(), list);
    }

    // Act
    ana.rename("Ana Maria").await;

    // Assert: in each room one diff has her connection leave as Ana and
    // join as Ana Maria, and applied in order the diffs keep her, renamed,
    // for the guest and for herself.
    let tells_rename = |presence: &Value| {
        presence["leaves"]
            .as_array()
            .is_some_and(|l| l.contains(&json!({"conn": ana_conn, "user": "Ana"})))
    };
    let mut heard = BTreeMap::new();
    while heard.len() < topics.len() {
        let presence = until(&mut gus, "presence").await;
        let topic = presence["topic"].as_str().expect("topic").to_owned();
        seen_by_gus
            .get_mut(&topic)
            .expect("a joined topic")
            .apply(&presence);
        if tells_rename(&presence) {
            let joins = presence["joins"].as_array().expect("joins");
            assert!(
                joins.contains(&json!({"conn": ana_conn, "user": "Ana Maria"})),
                "{presence}"
            );
            heard.insert(topic, presence);
        }
    }
    for (topic, list) in &seen_by_gus {
        assert_eq!(list.0.len(), 2, "{topic}: {list:?}");
        assert_eq!(list.user(&ana_conn), Some("Ana Maria"), "{topic}");
    }
    let mut own = BTreeMap::new();
    while own.len() < topics.len() {
        let presence = until(&mut tab, "presence").await;
        if tells_rename(&presence) {
            own.insert(
                presence["topic"].as_str().expect("topic").to_owned(),
                presence,
            );
        }
    }
    assert_eq!(own, heard, "her own tab hears of the new name too");
}
