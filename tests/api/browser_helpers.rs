//! Real browsers for the page tests: one `chromedriver` per test, and one
//! headless Chromium session per user, each with its own profile, driven
//! over WebDriver with fantoccini.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use crate::helpers::free_port;

/// Debian's paths; `scripts/test` installs both packages when missing.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a page gets to show what a test waits for: a reconnect after a
/// server restart, with its backoff, is the slowest thing waited on.
const WAIT: Duration = Duration::from_secs(15);
/// How often a wait looks at the page again.
const POLL: Duration = Duration::from_millis(100);
/// How long chromedriver gets to start listening.
const DRIVER_START: Duration = Duration::from_secs(10);
/// How much of the page a failed wait prints.
const EXCERPT_CHARS: usize = 4000;

/// A direct conversation's panel on a room page (static/js/p2p.js): its
/// `data-state` is `closed`, `waiting` (we called), `asking` (they called),
/// `connecting` or `open`.
pub const P2P_PANEL: &str = ".p2p-panel";
/// The panel's state line: "waiting for NAME to accept", "NAME wants to talk
/// directly", "connecting", "direct connection open" or "closed".
pub const P2P_STATE: &str = ".p2p-panel .p2p-state";
/// Why the conversation closed: "NAME declined.", "NAME did not answer.",
/// "NAME withdrew the offer.", "You declined.", "They closed the
/// conversation.", "They left the room.", ...
pub const P2P_NOTE: &str = ".p2p-panel .p2p-note";
/// The answers to an incoming offer, shown only while it asks.
pub const P2P_ACCEPT: &str = ".p2p-panel button.p2p-accept";
pub const P2P_DECLINE: &str = ".p2p-panel button.p2p-decline";
/// The panel's close button; on a waiting call it withdraws the offer.
pub const P2P_CLOSE: &str = ".p2p-panel button.p2p-close";
/// The direct composer (Enter sends), enabled only while the channel is open.
pub const P2P_INPUT: &str = ".p2p-panel .p2p-composer input[name=text]";
/// The text of every direct message, sent or received.
pub const P2P_MESSAGES: &str = ".p2p-panel .message.p2p .text";

/// A chromedriver process and every browser it started. It runs in a process
/// group of its own, so dropping it kills the Chromium processes too, even
/// when a test panics before closing its pages.
pub struct Browser {
    driver: Child,
    url: String,
    /// Holds the chromedriver log and one profile per page; removed after
    /// the processes using it are gone.
    dir: tempfile::TempDir,
    pages: usize,
}

impl Browser {
    /// Starts chromedriver on a free port and waits until it answers.
    pub async fn start() -> Browser {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: the browser tests need Debian's {package} package, \
                 which scripts/test installs (apt-get install chromium chromium-driver)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("bazaar-browser-")
            .tempdir()
            .expect("browser temp dir");
        let log = dir.path().join("chromedriver.log");
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let browser = Browser {
            driver,
            url: format!("http://127.0.0.1:{port}"),
            dir,
            pages: 0,
        };
        let deadline = Instant::now() + DRIVER_START;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on port {port}; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        browser
    }

    /// A new browser session: a window with a fresh profile, so no name or
    /// storage leaks from one user to the next.
    pub async fn page(&mut self) -> Page {
        self.pages += 1;
        let profile = self.dir.path().join(format!("profile-{}", self.pages));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    // Tests run as root in CI, where Chromium's sandbox refuses to start.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("the capabilities are a JSON object")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "chromedriver could not start {CHROMIUM}: {err}; log:\n{}",
                    self.driver_log()
                )
            });
        Page { client }
    }

    fn driver_log(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default();
        tail(&log, EXCERPT_CHARS).to_owned()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The group's id is chromedriver's pid: this reaches the browsers it
        // started and nothing else. (Chromium's crash handlers start a
        // session of their own and exit once their browser is gone.)
        let group = self.driver.id() as i32;
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.driver.wait();
    }
}

/// One user's browser window.
pub struct Page {
    client: Client,
}

impl Page {
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|err| panic!("open {url}: {err}"));
    }

    /// Opens a chat room as a guest named `name`, and waits until the page
    /// says it is online.
    pub async fn enter_room(&self, base: &str, room: &str, name: &str) {
        self.goto(&format!("{base}/rooms/{room}")).await;
        self.type_into("#name-form input[name=name]", name).await;
        self.click("#name-form button[type=submit]").await;
        self.wait_online().await;
    }

    /// Waits until the chat page's connection badge says online.
    pub async fn wait_online(&self) {
        self.wait_until("#conn-state to say online", "#conn-state", |badge| {
            badge == ["online"]
        })
        .await;
    }

    /// Types `text` into the field matched by `css` and presses Enter, which
    /// sends a chat composer and submits a one-line form.
    pub async fn send(&self, css: &str, text: &str) {
        let enter: char = Key::Enter.into();
        self.type_into(css, &format!("{text}{enter}")).await;
    }

    /// Types `text` into the field matched by `css`, as keystrokes.
    pub async fn type_into(&self, css: &str, text: &str) {
        self.wait_for(css)
            .await
            .send_keys(text)
            .await
            .unwrap_or_else(|err| panic!("type into {css}: {err}"));
    }

    pub async fn click(&self, css: &str) {
        self.wait_for(css)
            .await
            .click()
            .await
            .unwrap_or_else(|err| panic!("click {css}: {err}"));
    }

    /// Waits until an element matching `css` is displayed: the page's forms
    /// stay hidden until its script has set them up.
    pub async fn wait_for(&self, css: &str) -> Element {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(element) = self.displayed(css).await {
                return element;
            }
            if Instant::now() >= deadline {
                self.fail(&format!("nothing displayed matched {css}")).await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Whether an element matching `css` is displayed now.
    pub async fn is_displayed(&self, css: &str) -> bool {
        self.displayed(css).await.is_some()
    }

    /// The first displayed element matching `css`, now.
    async fn displayed(&self, css: &str) -> Option<Element> {
        let elements = self.client.find_all(Locator::Css(css)).await;
        for element in elements.unwrap_or_default() {
            if element.is_displayed().await.unwrap_or(false) {
                return Some(element);
            }
        }
        None
    }

    /// Waits until an element matching `css` has text containing `text`.
    pub async fn wait_for_text(&self, css: &str, text: &str) {
        self.wait_until(&format!("{css} to show {text:?}"), css, |texts| {
            texts.iter().any(|t| t.contains(text))
        })
        .await;
    }

    /// Waits until no element matching `css` has text containing `text`.
    pub async fn wait_for_no_text(&self, css: &str, text: &str) {
        self.wait_until(&format!("{css} to stop showing {text:?}"), css, |texts| {
            !texts.iter().any(|t| t.contains(text))
        })
        .await;
    }

    /// Waits until the texts of the elements matching `css` satisfy `done`.
    pub async fn wait_until(&self, what: &str, css: &str, done: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            let texts = self.texts(css).await;
            if done(&texts) {
                return;
            }
            if Instant::now() >= deadline {
                self.fail(&format!("waited for {what}; it shows {texts:?}"))
                    .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The text of every element matching `css`, in document order.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        self.eval_strings(
            "return [...document.querySelectorAll(arguments[0])].map((e) => e.textContent.trim());",
            css,
        )
        .await
    }

    /// The value of attribute `name` on every element matching `css`.
    pub async fn attrs(&self, css: &str, name: &str) -> Vec<String> {
        let script = format!(
            "return [...document.querySelectorAll(arguments[0])].map((e) => e.getAttribute({}) ?? '');",
            json!(name)
        );
        self.eval_strings(&script, css).await
    }

    async fn eval_strings(&self, script: &str, css: &str) -> Vec<String> {
        let value = self
            .client
            .execute(script, vec![json!(css)])
            .await
            .unwrap_or_else(|err| panic!("read {css} from the page: {err}"));
        serde_json::from_value(value).expect("a list of strings")
    }

    /// Runs `script` in the page and returns what it returns.
    pub async fn run(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|err| panic!("run {script:?} in the page: {err}"))
    }

    /// Clicks "talk directly" next to `user` in the room's member list,
    /// once they are listed.
    pub async fn call_directly(&self, user: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            for member in self
                .client
                .find_all(Locator::Css("#members [data-conn]"))
                .await
                .unwrap_or_default()
            {
                let Ok(name) = member.find(Locator::Css(".user")).await else {
                    continue;
                };
                if name.text().await.ok().as_deref() != Some(user) {
                    continue;
                }
                if let Ok(talk) = member.find(Locator::Css("button.talk")).await {
                    talk.click()
                        .await
                        .unwrap_or_else(|err| panic!("click talk directly with {user}: {err}"));
                    return;
                }
            }
            if Instant::now() >= deadline {
                self.fail(&format!("no \"talk directly\" button next to {user}"))
                    .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until a direct conversation's panel is in `state` (see
    /// `P2P_PANEL`).
    pub async fn wait_for_p2p_state(&self, state: &str) {
        let css = format!("{P2P_PANEL}[data-state={state}]");
        self.wait_until(
            &format!("a direct conversation to be {state}"),
            &css,
            |panels| !panels.is_empty(),
        )
        .await;
    }

    /// From now on, counts the RTCPeerConnections the page makes and keeps
    /// the configuration each was made with (`peer_connections`). The page's
    /// script looks the constructor up when it connects, so this sees every
    /// one made after the call.
    pub async fn watch_peer_connections(&self) {
        self.run(
            "window.bazaarPeerConnections = [];
             const Native = window.RTCPeerConnection;
             window.RTCPeerConnection = new Proxy(Native, {
               construct(target, args) {
                 window.bazaarPeerConnections.push(args[0] ?? null);
                 return new target(...args);
               },
             });",
        )
        .await;
    }

    /// The configuration of every RTCPeerConnection made since
    /// `watch_peer_connections`, in order.
    pub async fn peer_connections(&self) -> Vec<Value> {
        let made = self.run("return window.bazaarPeerConnections;").await;
        serde_json::from_value(made).expect("watch_peer_connections first")
    }

    /// Ends this browser session; the window closes as when a user closes it.
    pub async fn close(self) {
        self.client.close().await.expect("close the browser window");
    }

    /// Panics with `why` and the part of the page a reader needs to see.
    async fn fail(&self, why: &str) -> ! {
        let html = self
            .client
            .execute(
                "return (document.getElementById('chat') ?? document.body).outerHTML;",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "(the page could not be read)".into());
        let url = self
            .client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        panic!(
            "{why} (after {WAIT:?}) on {url}; page:\n{}",
            head(&html, EXCERPT_CHARS)
        );
    }
}

/// The first `n` characters of `s`.
fn head(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

/// The last `n` characters of `s`.
fn tail(s: &str, n: usize) -> &str {
    let count = s.chars().count();
    s.char_indices()
        .nth(count.saturating_sub(n))
        .map_or(s, |(i, _)| &s[i..])
}
