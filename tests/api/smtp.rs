//! A real SMTP server for the mail tests: aiosmtpd on loopback, run by
//! `tests/smtp_sink.py`, which stores what it accepts and answers
//! with scripted 4xx/5xx replies when told to; and a reader for the MIME
//! messages it stores.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::helpers::free_port;

/// How long a test waits for mail before it fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// An aiosmtpd process storing mail in its own folder.
pub struct SmtpSink {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl SmtpSink {
    /// A sink on a free port.
    pub fn start() -> SmtpSink {
        SmtpSink::start_on(free_port())
    }

    pub fn start_on(port: u16) -> SmtpSink {
        let dir = tempfile::tempdir().expect("sink dir");
        let python =
            std::env::var("BAZAAR_TEST_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
        let tests = PathBuf::from(crate::helpers::REPO).join("tests");
        let mut child = Command::new(&python)
            .arg(tests.join("smtp_sink.py"))
            .arg(dir.path())
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|err| {
                panic!("could not start aiosmtpd with {python} (scripts/test installs it): {err}")
            });
        // The sink says "ready" once it listens, or exits if it cannot: a
        // successful connect alone could reach some other server on the port.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(PATIENCE).unwrap_or_default();
        // Built before the check, so a failed start still stops the process.
        let sink = SmtpSink {
            port,
            dir,
            child: Some(child),
        };
        assert_eq!(
            line.trim(),
            "ready",
            "the SMTP sink could not listen on 127.0.0.1:{port} (see its error above)"
        );
        sink
    }

    /// The replies to the next messages, one each, before "250 OK" again.
    pub fn script(&self, replies: &[&str]) {
        let text: String = replies.iter().map(|r| format!("{r}\n")).collect();
        std::fs::write(self.dir.path().join("replies"), text).expect("write replies");
    }

    /// Every message accepted so far, oldest first.
    pub fn received(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("read sink dir")
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|path| std::fs::read_to_string(path).expect("read mail"))
            .collect()
    }

    /// Waits until `n` messages arrived, and returns them.
    pub async fn wait_for(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "{n} mails expected, {} arrived",
                received.len()
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A received message, read the way a mail client would: headers unfolded,
/// and each text part decoded from its transfer encoding.
#[derive(Debug)]
pub struct Received {
    headers: HashMap<String, String>,
    pub text: String,
    pub html: String,
}

impl Received {
    pub fn parse(raw: &str) -> Received {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
        let headers = header_map(head);
        let mut mail = Received {
            headers,
            text: String::new(),
            html: String::new(),
        };
        let content_type = mail.header("Content-Type").unwrap_or_default();
        match boundary(&content_type) {
            Some(boundary) => {
                for part in body.split(&format!("--{boundary}")).skip(1) {
                    let (head, body) = part
                        .trim_start_matches('\n')
                        .split_once("\n\n")
                        .unwrap_or(("", ""));
                    let headers = header_map(head);
                    mail.add_part(&headers, body);
                }
            }
            None => {
                let mut headers = mail.headers.clone();
                // A single-part mail without Content-Type is plain text.
                headers
                    .entry("content-type".to_owned())
                    .or_insert_with(|| "text/plain".to_owned());
                mail.add_part(&headers, body);
            }
        }
        mail
    }

    fn add_part(&mut self, headers: &HashMap<String, String>, body: &str) {
        let kind = headers.get("content-type").cloned().unwrap_or_default();
        let encoding = headers
            .get("content-transfer-encoding")
            .map(|e| e.to_ascii_lowercase())
            .unwrap_or_default();
        let decoded = match encoding.as_str() {
            "quoted-printable" => String::from_utf8(
                quoted_printable::decode(body.trim_end(), quoted_printable::ParseMode::Robust)
                    .expect("quoted-printable"),
            )
            .expect("utf-8 part"),
            "base64" => {
                let compact: String = body.split_whitespace().collect();
                String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(compact)
                        .expect("base64"),
                )
                .expect("utf-8 part")
            }
            _ => body.to_owned(),
        };
        if kind.starts_with("text/html") {
            self.html = decoded;
        } else if kind.starts_with("text/plain") {
            self.text = decoded;
        }
    }

    /// A header's unfolded value.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(&name.to_ascii_lowercase()).cloned()
    }

    /// The first link in the text part that starts with `prefix`.
    pub fn link(&self, prefix: &str) -> Option<String> {
        let at = self.text.find(prefix)?;
        let rest = &self.text[at..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        Some(rest[..end].to_owned())
    }
}

fn header_map(head: &str) -> HashMap<String, String> {
    let mut headers: HashMap<String, String> = HashMap::new();
    let mut last: Option<String> = None;
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(name) = &last {
                let value = headers.get_mut(name).expect("folded onto a header");
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            headers.insert(name.clone(), value.trim().to_owned());
            last = Some(name);
        }
    }
    headers
}

fn boundary(content_type: &str) -> Option<String> {
    let at = content_type.find("boundary=")?;
    Some(
        content_type[at + 9..]
            .split(';')
            .next()?
            .trim()
            .trim_matches('"')
            .to_owned(),
    )
}
