//! Where mail goes (docs/architecture.md §4), chosen by `mail.transport`: an
//! SMTP relay, `.eml` files in the data dir, or a stub that keeps mail in
//! memory.

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{MailSettings, MailTransport, SmtpSecurity, SmtpSettings};

/// A configured transport.
#[derive(Clone)]
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(AsyncFileTransport<Tokio1Executor>),
    Stub(StubTransport),
}

/// How a send failed, which decides between retrying and giving up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth another try later: no connection, a timeout, a 4xx reply.
    #[error("{0}")]
    Transient(String),
    /// The server refused the mail for good (a 5xx reply).
    #[error("{0}")]
    Permanent(String),
}

/// Mail kept in memory, for unit tests.
#[derive(Debug, Clone, Default)]
pub struct StubTransport {
    sent: Arc<Mutex<Vec<Message>>>,
}

impl StubTransport {
    /// Every message sent so far, oldest first.
    pub fn sent(&self) -> Vec<Message> {
        // A std Mutex: held only to push or clone, never across an await.
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Transport {
    /// The transport `settings` ask for; `file` writes into `data_dir/mail/`.
    pub fn from_settings(settings: &MailSettings, data_dir: &Path) -> anyhow::Result<Transport> {
        Ok(match settings.transport {
            MailTransport::Smtp => Transport::Smtp(smtp(&settings.smtp)?),
            MailTransport::File => {
                let dir = data_dir.join("mail");
                std::fs::create_dir_all(&dir).with_context(|| {
                    format!("could not create the mail folder {}", dir.display())
                })?;
                Transport::File(AsyncFileTransport::new(dir))
            }
            MailTransport::Stub => Transport::Stub(StubTransport::default()),
        })
    }

    /// Sends one message.
    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        match self {
            Transport::Smtp(smtp) => smtp.send(message).await.map(drop).map_err(|err| {
                if err.is_permanent() {
                    SendError::Permanent(err.to_string())
                } else {
                    // 4xx replies, refused connections, timeouts, TLS
                    // hiccups: the retry limit ends a lasting problem.
                    SendError::Transient(err.to_string())
                }
            }),
            Transport::File(file) => file.send(message).await.map(drop).map_err(|err| {
                SendError::Transient(format!("could not write the mail file: {err}"))
            }),
            Transport::Stub(stub) => {
                if let Ok(mut sent) = stub.sent.lock() {
                    sent.push(message);
                }
                Ok(())
            }
        }
    }
}

/// An SMTP transport; plain text only to a loopback host, so neither
/// credentials nor mail cross a network unencrypted.
fn smtp(settings: &SmtpSettings) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let host = settings.host.as_str();
    let tls = match settings.security {
        SmtpSecurity::Starttls => Tls::Required(tls_parameters(host)?),
        SmtpSecurity::Tls => Tls::Wrapper(tls_parameters(host)?),
        SmtpSecurity::None => {
            if !is_loopback(host) {
                bail!(
                    "mail.smtp.security = \"none\" is only allowed for a loopback host, \
                     not {host:?}; use \"starttls\" or \"tls\""
                );
            }
            Tls::None
        }
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(settings.port)
        .tls(tls)
        .timeout(Some(settings.timeout));
    match (&settings.username, &settings.password) {
        (Some(user), Some(password)) => {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        (None, None) => {}
        _ => bail!("mail.smtp.username and mail.smtp.password go together; set both or neither"),
    }
    Ok(builder.build())
}

fn tls_parameters(host: &str) -> anyhow::Result<TlsParameters> {
    TlsParameters::new(host.to_owned())
        .with_context(|| format!("could not set up TLS for the SMTP host {host:?}"))
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smtp_settings(host: &str, security: SmtpSecurity) -> SmtpSettings {
        SmtpSettings {
            host: host.to_owned(),
            security,
            ..SmtpSettings::default()
        }
    }

    #[test]
    fn plain_smtp_is_allowed_only_on_loopback() {
        for host in ["localhost", "127.0.0.1", "::1", "[::1]"] {
            assert!(
                smtp(&smtp_settings(host, SmtpSecurity::None)).is_ok(),
                "{host}"
            );
        }
        let err =
            smtp(&smtp_settings("smtp.example.com", SmtpSecurity::None)).expect_err("refused");
        assert!(err.to_string().contains("loopback"), "{err}");
        assert!(smtp(&smtp_settings("smtp.example.com", SmtpSecurity::Starttls)).is_ok());
        assert!(smtp(&smtp_settings("smtp.example.com", SmtpSecurity::Tls)).is_ok());
    }

    #[test]
    fn a_username_without_a_password_is_refused() {
        let settings = SmtpSettings {
            username: Some("ana@example.com".into()),
            ..smtp_settings("smtp.example.com", SmtpSecurity::Starttls)
        };
        assert!(smtp(&settings).is_err());
    }

    #[actix_web::test]
    async fn the_file_transport_writes_eml_files_into_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let transport = Transport::from_settings(&MailSettings::default(), dir.path()).unwrap();
        let message = Message::builder()
            .from("Bazaar <bazaar@localhost>".parse().unwrap())
            .to("ana@example.com".parse().unwrap())
            .subject("Hello")
            .body("Hi Ana".to_owned())
            .unwrap();
        transport.send(message).await.unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path().join("mail"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1);
        assert!(files[0].extension().is_some_and(|ext| ext == "eml"));
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert!(text.contains("Subject: Hello"), "{text}");
    }

    #[actix_web::test]
    async fn the_stub_keeps_what_it_was_given() {
        let stub = StubTransport::default();
        let transport = Transport::Stub(stub.clone());
        let message = Message::builder()
            .from("Bazaar <bazaar@localhost>".parse().unwrap())
            .to("ana@example.com".parse().unwrap())
            .subject("Hello")
            .body("Hi Ana".to_owned())
            .unwrap();
        transport.send(message).await.unwrap();
        let sent = stub.sent();
        assert_eq!(sent.len(), 1);
        let text = String::from_utf8(sent[0].formatted()).unwrap();
        assert!(text.contains("Subject: Hello"), "{text}");
        assert!(text.contains("To: ana@example.com"), "{text}");
    }
}
