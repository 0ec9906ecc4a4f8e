//! The worker protocol (docs/protocol.md §2): frames between the server and
//! `bazaar worker` processes on `GET /ws/worker`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ErrorCode;

/// What a task's page is: the `kind` of an assigned task and of a link.
/// The server stores it in its tasks table under the same names, through
/// the `sea-orm` feature (the worker, which has no database, goes without).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(
    feature = "sea-orm",
    derive(sea_orm::EnumIter, sea_orm::DeriveActiveEnum),
    sea_orm(
        rs_type = "String",
        db_type = "String(sea_orm::sea_query::StringLen::N(16))"
    )
)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Links to game pages and to the next listing page.
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "listing"))]
    Listing,
    /// One game page, which yields offers.
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "page"))]
    Page,
}

impl TaskKind {
    /// Every kind, in declaration order.
    pub const ALL: [TaskKind; 2] = [TaskKind::Listing, TaskKind::Page];

    /// The name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Listing => "listing",
            TaskKind::Page => "page",
        }
    }

    /// The kind named `text`, if any.
    pub fn parse(text: &str) -> Option<TaskKind> {
        TaskKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl std::fmt::Display for TaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The ops a worker may send.
pub const OPS: [&str; 6] = ["hello", "ready", "heartbeat", "result", "failed", "drain"];

/// A frame a worker sends to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum WorkerFrame {
    /// The first frame on a connection: who the worker is.
    Hello {
        name: String,
        version: String,
        slots: u32,
        #[serde(default)]
        sites: Vec<String>,
    },
    /// Grants the server this many more task credits.
    Ready { credits: u32 },
    /// Keeps the listed leases alive; `restarts` is the worker's running count
    /// of scraper restarts.
    Heartbeat {
        leases: Vec<String>,
        #[serde(default)]
        restarts: u64,
    },
    /// A task finished: the offers found (`page`) or the links found (`listing`).
    Result {
        task: u64,
        lease: String,
        #[serde(default)]
        items: Vec<Item>,
        #[serde(default)]
        links: Vec<Link>,
    },
    /// The worker is draining: assign it nothing more. The server answers
    /// with `drain` once no assignment can follow.
    Drain,
    /// A task could not be done.
    Failed {
        task: u64,
        lease: String,
        error: String,
        retryable: bool,
    },
}

/// A frame the server sends to a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ServerFrame {
    Welcome {
        worker: u64,
        heartbeat_ms: u64,
        lease_ms: u64,
    },
    Assign {
        task: u64,
        lease: String,
        attempt: u32,
        kind: TaskKind,
        url: String,
        site: String,
        profile: Box<Profile>,
        lease_until: DateTime<Utc>,
    },
    Cancel {
        task: u64,
        lease: String,
    },
    Stale {
        task: u64,
        lease: String,
    },
    /// Finish what you hold and take nothing more. With `reconnect`, this
    /// node is going away: deliver, close, and connect again (through the
    /// load balancer, to another node) instead of leaving.
    Drain {
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reconnect: bool,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
}

/// One store offer for one game, as extracted from a page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub title: String,
    pub store: String,
    pub url: String,
    pub price_cents: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regular_cents: Option<i64>,
    pub currency: String,
    #[serde(default = "default_true")]
    pub available: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub external_ids: BTreeMap<String, String>,
}

fn default_true() -> bool {
    true
}

/// A link found on a listing page: a game page, or the next listing page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub url: String,
    pub site: String,
    /// `page` for a game page (the default), `listing` for a further listing.
    #[serde(default = "default_link_kind")]
    pub kind: TaskKind,
}

fn default_link_kind() -> TaskKind {
    TaskKind::Page
}

/// How to extract offers and links from a site's pages. The server sends it
/// with every task, so a worker needs no site configuration of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Which extractor reads game pages.
    pub extract: Extractor,
    /// The store name put on every offer.
    pub store: String,
    /// The currency assumed when a page shows a bare number.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// Hosts the worker may fetch for this site; anything else is refused.
    /// Filled in from the site's `allowed_hosts` when sites are loaded.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// CSS selector for the game-page links on a listing page.
    pub links: String,
    /// CSS selector for the next listing page's link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// `css` profile: selectors on a game page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub css: Option<CssSelectors>,
    /// Text the store puts around its game titles, removed from every
    /// title read: patterns such as "Buy {title}" or "{title} on Steam"
    /// (the server's `TitlePattern` reads them), applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub title_strip: Vec<String>,
}

fn default_currency() -> String {
    "EUR".to_owned()
}

/// The extraction profiles of docs/architecture.md §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Extractor {
    /// schema.org `Product`/`VideoGame` with `offers`, in JSON-LD.
    Jsonld,
    /// OpenGraph `og:title` + `product:price:*`, or microdata `itemprop`.
    Meta,
    /// Plain HTML read with the selectors in [`CssSelectors`].
    Css,
}

impl Extractor {
    /// Its name in a sites file.
    pub fn as_str(self) -> &'static str {
        match self {
            Extractor::Jsonld => "jsonld",
            Extractor::Meta => "meta",
            Extractor::Css => "css",
        }
    }
}

/// Selectors for the `css` profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CssSelectors {
    pub title: String,
    pub price: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regular_price: Option<String>,
    /// Present when the game is out of stock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    /// An element whose text is the Steam app id, when the store shows one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steam_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc_examples;

    /// The `assign` of a css site in docs/protocol.md §2.
    fn documented_profile() -> (serde_json::Value, Profile) {
        let doc = doc_examples::protocol();
        let line =
            doc_examples::block_after(doc_examples::section(&doc, 2), "### Server to worker")
                .into_iter()
                .find(|l| l.contains("\"title_strip\""))
                .expect("an assign with title_strip")
                .to_owned();
        let shown = doc_examples::json(&line)["profile"].clone();
        let profile: Profile = serde_json::from_value(shown.clone()).expect("a profile");
        (shown, profile)
    }

    #[test]
    fn title_strip_is_read_as_documented_and_left_out_when_empty() {
        let (shown, profile) = documented_profile();
        assert_eq!(profile.title_strip, ["Buy {title}", "{title} | MyStore"]);
        let written = serde_json::to_value(&profile).expect("written");
        assert!(doc_examples::shows(&written, &shown), "{written}");

        let mut older = profile.clone();
        older.title_strip.clear();
        let written = serde_json::to_value(&older).expect("written");
        assert!(written.get("title_strip").is_none(), "{written}");
        let read: Profile = serde_json::from_value(written).expect("read back");
        assert_eq!(read, older);
    }
}
