//! What Bazaar mails say: the confirmation, the crawl digest and the price
//! alert, each a text part and an HTML part from askama templates in
//! `templates/mail/`, with the list headers every mail carries (RFC 2919,
//! RFC 2369 and RFC 8058's one-click unsubscribe).

use askama::Template;
use entity::subscriptions;

use super::address::EmailAddress;
use super::header::{ExtraHeader, HeaderText};
use super::outbox::{MailKind, NewMail};
use crate::accounts::token::keyed_hash;
use crate::web::auth::constant_time_eq;

/// Hex digits of the unsubscribe signature: 128 bits is past guessing and
/// keeps the link short.
const SIGNATURE_HEX: usize = 32;
/// The longest game title a subject quotes.
const SUBJECT_TITLE_CHARS: usize = 80;

/// Where a mail's links point, and the key that signs unsubscribe links.
#[derive(Clone)]
pub struct Links {
    base: String,
    list_domain: String,
    key: Vec<u8>,
}

/// Which list a mail belongs to, for its `List-Id`.
#[derive(Debug, Clone, Copy)]
pub enum List {
    Digest,
    Alerts,
}

impl Links {
    /// `public_url` as the site's users reach it; `key` signs unsubscribe
    /// links and hashes confirmation tokens.
    pub fn new(public_url: &str, key: &[u8]) -> Links {
        let base = public_url.trim_end_matches('/').to_owned();
        let host = url::Url::parse(&base)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "localhost".to_owned());
        Links {
            base,
            list_domain: host,
            key: key.to_vec(),
        }
    }

    pub fn home(&self) -> String {
        format!("{}/", self.base)
    }

    pub fn game(&self, id: i64) -> String {
        format!("{}/games/{id}", self.base)
    }

    pub fn confirm(&self, token: &str) -> String {
        format!("{}/subscriptions/confirm?token={token}", self.base)
    }

    pub fn unsubscribe(&self, subscription: i64) -> String {
        format!(
            "{}/unsubscribe?token={}",
            self.base,
            self.unsubscribe_token(subscription)
        )
    }

    /// `{id}.{signature}`: the link works without a lookup table, and a
    /// changed id breaks the signature.
    pub fn unsubscribe_token(&self, subscription: i64) -> String {
        format!("{subscription}.{}", self.signature(subscription))
    }

    /// The subscription an unsubscribe token names, if its signature holds.
    pub fn verify_unsubscribe(&self, token: &str) -> Option<i64> {
        let (id, signature) = token.split_once('.')?;
        let id: i64 = id.parse().ok()?;
        constant_time_eq(signature.as_bytes(), self.signature(id).as_bytes()).then_some(id)
    }

    /// What a confirmation token is stored as.
    pub fn token_hash(&self, token: &str) -> String {
        keyed_hash(&self.key, &format!("confirm:{token}"))
    }

    fn signature(&self, subscription: i64) -> String {
        let mut hash = keyed_hash(&self.key, &format!("unsubscribe:{subscription}"));
        hash.truncate(SIGNATURE_HEX);
        hash
    }

    /// `List-Id`, `List-Unsubscribe` and `List-Unsubscribe-Post`.
    fn list_headers(&self, list: List, subscription: i64) -> Vec<ExtraHeader> {
        let (name, id) = match list {
            List::Digest => ("Bazaar digest", "digest"),
            List::Alerts => ("Bazaar price alerts", "alerts"),
        };
        let headers = [
            ("List-Id", format!("{name} <{id}.{}>", self.list_domain)),
            (
                "List-Unsubscribe",
                format!("<{}>", self.unsubscribe(subscription)),
            ),
            (
                "List-Unsubscribe-Post",
                "List-Unsubscribe=One-Click".to_owned(),
            ),
        ];
        headers
            .into_iter()
            // The values are built from the public URL and digits, which
            // settings already checked; a failure here is a bug.
            .map(|(name, value)| ExtraHeader::parse(name, &value).expect("a valid list header"))
            .collect()
    }
}

/// A title as a subject may quote it: a store's page could hold one of any
/// length.
fn subject_title(title: &str) -> String {
    let title = title.trim();
    if title.chars().count() > SUBJECT_TITLE_CHARS {
        let cut: String = title.chars().take(SUBJECT_TITLE_CHARS - 1).collect();
        format!("{cut}…")
    } else {
        title.to_owned()
    }
}

/// What a subscription is to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum About {
    Digest,
    Alert(AlertGame),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertGame {
    pub id: i64,
    pub title: String,
    pub target: String,
}

impl About {
    /// In words, for mails and pages.
    pub fn describe(&self) -> String {
        match self {
            About::Digest => {
                "the Bazaar digest: new games and price drops after each crawl".to_owned()
            }
            About::Alert(game) => format!(
                "a price alert for {} at {} or less",
                game.title, game.target
            ),
        }
    }
}

#[derive(Template)]
#[template(path = "mail/confirm.txt")]
struct ConfirmText<'a> {
    what: &'a str,
    confirm: &'a str,
    unsubscribe: &'a str,
    hours: u64,
}

#[derive(Template)]
#[template(path = "mail/confirm.html")]
struct ConfirmHtml<'a> {
    what: &'a str,
    confirm: &'a str,
    unsubscribe: &'a str,
    hours: u64,
}

/// The mail that asks `to` to confirm `subscription`, whose token is `token`.
pub fn confirmation(
    links: &Links,
    subscription: &subscriptions::Model,
    to: &EmailAddress,
    about: &About,
    token: &str,
    valid_for: std::time::Duration,
) -> Result<NewMail, askama::Error> {
    let what = about.describe();
    let confirm = links.confirm(token);
    let unsubscribe = links.unsubscribe(subscription.id);
    let hours = valid_for.as_secs() / 3600;
    let (list, subject) = match about {
        About::Digest => (
            List::Digest,
            "Confirm your Bazaar digest subscription".to_owned(),
        ),
        About::Alert(game) => (
            List::Alerts,
            format!(
                "Confirm your price alert for {}",
                subject_title(&game.title)
            ),
        ),
    };
    Ok(NewMail {
        kind: MailKind::Confirm,
        key: format!(
            "confirm:sub-{}-{}:{to}",
            subscription.id, subscription.confirms_sent
        ),
        to: to.clone(),
        subject: subject_text(&subject),
        text: ConfirmText {
            what: &what,
            confirm: &confirm,
            unsubscribe: &unsubscribe,
            hours,
        }
        .render()?,
        html: Some(
            ConfirmHtml {
                what: &what,
                confirm: &confirm,
                unsubscribe: &unsubscribe,
                hours,
            }
            .render()?,
        ),
        headers: links.list_headers(list, subscription.id),
    })
}

/// A subject line without control characters, whatever went into it.
fn subject_text(text: &str) -> HeaderText {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    HeaderText::parse(&clean).expect("no control characters, and titles are cut short")
}

/// A game a digest lists as new.
#[derive(Debug, Clone)]
pub struct NewGame {
    pub url: String,
    pub title: String,
    pub price: String,
}

/// A price that went down in one store.
#[derive(Debug, Clone)]
pub struct Drop {
    pub url: String,
    pub title: String,
    pub store: String,
    pub old: String,
    pub new: String,
}

/// What a crawl changed, as a digest shows it: at most a screenful of each,
/// with how many more the site has.
#[derive(Debug, Clone)]
pub struct Digest {
    pub crawl: i64,
    pub new_games: Vec<NewGame>,
    pub more_new: usize,
    pub drops: Vec<Drop>,
    pub more_drops: usize,
}

impl Digest {
    fn subject(&self) -> String {
        let new = self.new_games.len() + self.more_new;
        let drops = self.drops.len() + self.more_drops;
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        match (new, drops) {
            (0, d) => format!("Bazaar: {}", plural(d, "price drop", "price drops")),
            (n, 0) => format!("Bazaar: {}", plural(n, "new game", "new games")),
            (n, d) => format!(
                "Bazaar: {} and {}",
                plural(n, "new game", "new games"),
                plural(d, "price drop", "price drops")
            ),
        }
    }
}

#[derive(Template)]
#[template(path = "mail/digest.txt")]
struct DigestText<'a> {
    digest: &'a Digest,
    home: &'a str,
    unsubscribe: &'a str,
}

#[derive(Template)]
#[template(path = "mail/digest.html")]
struct DigestHtml<'a> {
    digest: &'a Digest,
    home: &'a str,
    unsubscribe: &'a str,
}

/// The digest of `digest.crawl` for one confirmed subscriber.
pub fn digest(
    links: &Links,
    subscription: &subscriptions::Model,
    to: &EmailAddress,
    digest: &Digest,
) -> Result<NewMail, askama::Error> {
    let home = links.home();
    let unsubscribe = links.unsubscribe(subscription.id);
    Ok(NewMail {
        kind: MailKind::Digest,
        key: format!("digest:crawl-{}:{to}", digest.crawl),
        to: to.clone(),
        subject: subject_text(&digest.subject()),
        text: DigestText {
            digest,
            home: &home,
            unsubscribe: &unsubscribe,
        }
        .render()?,
        html: Some(
            DigestHtml {
                digest,
                home: &home,
                unsubscribe: &unsubscribe,
            }
            .render()?,
        ),
        headers: links.list_headers(List::Digest, subscription.id),
    })
}

/// A price alert as it fires: the game, its price now and the target.
#[derive(Debug, Clone)]
pub struct Alert {
    pub game_id: i64,
    pub title: String,
    pub price: String,
    pub target: String,
}

#[derive(Template)]
#[template(path = "mail/alert.txt")]
struct AlertText<'a> {
    alert: &'a Alert,
    game: &'a str,
    unsubscribe: &'a str,
}

#[derive(Template)]
#[template(path = "mail/alert.html")]
struct AlertHtml<'a> {
    alert: &'a Alert,
    game: &'a str,
    unsubscribe: &'a str,
}

/// The alert for `subscription`'s crossing number `subscription.fired + 1`.
pub fn alert(
    links: &Links,
    subscription: &subscriptions::Model,
    to: &EmailAddress,
    alert: &Alert,
) -> Result<NewMail, askama::Error> {
    let game = links.game(alert.game_id);
    let unsubscribe = links.unsubscribe(subscription.id);
    Ok(NewMail {
        kind: MailKind::Alert,
        key: format!(
            "alert:sub-{}-{}:{to}",
            subscription.id,
            subscription.fired + 1
        ),
        to: to.clone(),
        subject: subject_text(&format!(
            "Price alert: {} is now {}",
            subject_title(&alert.title),
            alert.price
        )),
        text: AlertText {
            alert,
            game: &game,
            unsubscribe: &unsubscribe,
        }
        .render()?,
        html: Some(
            AlertHtml {
                alert,
                game: &game,
                unsubscribe: &unsubscribe,
            }
            .render()?,
        ),
        headers: links.list_headers(List::Alerts, subscription.id),
    })
}

#[cfg(test)]
mod tests {
    use entity::subscriptions::SubscriptionStatus;

    use super::*;

    fn links() -> Links {
        Links::new("https://bazaar.example.org/", b"a test key")
    }

    #[test]
    fn unsubscribe_tokens_verify_and_a_changed_one_does_not() {
        let links = links();
        let token = links.unsubscribe_token(42);
        assert_eq!(links.verify_unsubscribe(&token), Some(42));
        let forged = token.replacen("42.", "43.", 1);
        assert_eq!(links.verify_unsubscribe(&forged), None);
        assert_eq!(links.verify_unsubscribe("42"), None);
        assert_eq!(links.verify_unsubscribe("x.y"), None);
        let other = Links::new("https://bazaar.example.org", b"another key");
        assert_eq!(other.verify_unsubscribe(&token), None);
    }

    #[test]
    fn list_headers_name_the_list_and_the_one_click_link() {
        let headers = links().list_headers(List::Alerts, 7);
        let get = |name: &str| {
            headers
                .iter()
                .find(|h| h.name() == name)
                .map(|h| h.value().to_string())
                .unwrap()
        };
        assert_eq!(
            get("List-Id"),
            "Bazaar price alerts <alerts.bazaar.example.org>"
        );
        assert!(
            get("List-Unsubscribe").starts_with("<https://bazaar.example.org/unsubscribe?token=7.")
        );
        assert_eq!(get("List-Unsubscribe-Post"), "List-Unsubscribe=One-Click");
    }

    #[test]
    fn a_hostile_title_cannot_break_the_subject_and_is_escaped_in_html() {
        let links = links();
        let sub = subscriptions::Model {
            id: 3,
            email: "ana@example.com".into(),
            topic: "game:9".into(),
            game_id: Some(9),
            target_cents: Some(500),
            pending_target_cents: None,
            status: SubscriptionStatus::Confirmed,
            token_hash: None,
            token_expires_at: None,
            confirm_sent_at: None,
            confirms_sent: 1,
            armed: true,
            fired: 0,
            created_at: chrono::Utc::now(),
            confirmed_at: None,
            unsubscribed_at: None,
        };
        let alert = Alert {
            game_id: 9,
            title: "Doom\r\nBcc: everyone@example.com <script>".into(),
            price: "4.99 €".into(),
            target: "5.00 €".into(),
        };
        let to = EmailAddress::parse("ana@example.com").unwrap();
        let mail = super::alert(&links, &sub, &to, &alert).unwrap();
        assert!(!mail.subject.as_str().contains('\n'));
        assert!(mail.subject.as_str().starts_with("Price alert: Doom"));
        let html = mail.html.unwrap();
        assert!(html.contains("&#60;script&#62;"), "{html}");
        assert!(!html.contains("<script>"));
        assert!(mail.text.contains(&links.unsubscribe(3)));
        assert_eq!(mail.key, "alert:sub-3-1:ana@example.com");
    }
}
