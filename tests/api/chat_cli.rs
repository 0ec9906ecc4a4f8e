//! `bazaar chat` against a real server: stdin lines become messages, others'
//! messages reach stdout, and `/quit` ends the process cleanly.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::accounts::Visitor;
use crate::chat_client::ChatClient;
use crate::helpers::{spawn_app, AppOptions, Backend};

/// The CLI process; killed when dropped, whatever the test did.
pub(crate) struct Cli {
    pub(crate) child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// Lines read while waiting for others.
    pub(crate) seen: Vec<String>,
}

impl Cli {
    fn spawn(base: &str) -> Cli {
        Cli::spawn_as(base, "cli", &[])
    }

    /// `bazaar chat` in the lobby as `name`, with `extra` arguments.
    pub(crate) fn spawn_as(base: &str, name: &str, extra: &[&str]) -> Cli {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bazaar"))
            .args(["chat", "--server", base, "--name", name, "--room", "lobby"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn bazaar chat");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Cli {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    pub(crate) fn write_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to the CLI");
        stdin.flush().expect("flush the CLI's stdin");
    }

    /// Waits for a stdout line containing `needle`.
    pub(crate) fn expect_line(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no line with {needle:?} in time; saw {:?}", self.seen),
            }
        }
    }

    pub(crate) fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[actix_web::test]
async fn the_terminal_client_says_lines_shows_messages_and_quits() {
    // Arrange
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut ana = ChatClient::connect(&app, Some("ana")).await.expect("ana");
    ana.join("chat:lobby", None).await;
    let mut cli = Cli::spawn(&app.base);
    cli.expect_line("* in #lobby", Duration::from_secs(10));

    // Act: the CLI says a line
    cli.write_line("hello from the terminal");

    // Assert: ana receives it as cli's message
    let message = loop {
        let message = ana.recv_op("message").await;
        if message["user"] == "cli" {
            break message;
        }
    };
    assert_eq!(message["topic"], "chat:lobby");
    assert_eq!(message["text"], "hello from the terminal");

    // Act: ana says something
    ana.say("chat:lobby", "hi cli").await;

    // Assert: it shows on the CLI's stdout
    cli.expect_line("ana: hi cli", Duration::from_secs(10));

    // Act: /quit
    cli.write_line("/quit");

    // Assert: the process ends cleanly
    let status = cli
        .wait_exit(Duration::from_secs(5))
        .expect("bazaar chat exits after /quit");
    assert!(status.success(), "exit status {status}");
}

#[actix_web::test]
async fn the_terminal_client_shows_a_rename_and_keeps_the_member() {
    // Arrange: Ana, logged in, in the lobby with the CLI.
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut account = Visitor::new(&app);
    assert_eq!(
        account.register("ana", "Ana", "correct horse").await.status,
        303
    );
    let mut cli = Cli::spawn(&app.base);
    cli.expect_line("* in #lobby", Duration::from_secs(10));
    let mut ana = ChatClient::connect_with_cookie(&app, &account.cookie_header())
        .await
        .expect("the cookie is an identity");
    ana.join("chat:lobby", None).await;
    cli.expect_line("* Ana joined", Duration::from_secs(10));

    // Act
    account.rename("Ana Maria").await;

    // Assert: one line says so, and she is still a member.
    cli.expect_line("* Ana is now Ana Maria", Duration::from_secs(10));
    cli.write_line("/who");
    let who = cli.expect_line("Ana Maria", Duration::from_secs(10));
    assert!(who.contains("cli (you)"), "{who}");
    assert!(
        !cli.seen.iter().any(|l| l.contains("left")),
        "{:?}",
        cli.seen
    );
}
