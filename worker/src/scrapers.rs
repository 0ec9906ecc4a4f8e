//! The Scraper actor: fetches one task's page and extracts from it. One per
//! slot, each under an actix Supervisor: a scraper that panics reports its
//! task as failed (retryable), stops, and is restarted.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use url::Url;

use crate::protocol::worker::{Item, Link, Profile, TaskKind};
use crate::scrape::fetch::Fetcher;
use crate::scrape::{extract_listing, extract_page};

/// Fault injection for tests and drills: when set, a scraper panics on the
/// first attempt of any task whose URL contains this text.
pub const PANIC_ONCE_ENV: &str = "BAZAAR_FAULT_PANIC_ONCE_ON";

/// One task to scrape.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Scrape {
    pub slot: usize,
    pub task: u64,
    pub lease: String,
    pub attempt: u32,
    pub kind: TaskKind,
    pub url: String,
    pub site: String,
    pub profile: Box<Profile>,
}

/// What a scrape produced.
#[derive(Debug)]
pub enum ScrapeOutput {
    Items(Vec<Item>),
    Links(Vec<Link>),
}

/// A scrape ended, well or not.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ScrapeDone {
    pub slot: usize,
    pub task: u64,
    pub lease: String,
    pub outcome: Result<ScrapeOutput, ScrapeFailure>,
}

#[derive(Debug)]
pub struct ScrapeFailure {
    pub error: String,
    pub retryable: bool,
}

pub struct Scraper {
    link: Recipient<ScrapeDone>,
    fetcher: Fetcher,
    restarts: Arc<AtomicU64>,
    panic_once_on: Option<String>,
}

impl Scraper {
    /// `fetcher` is shared by a worker's scrapers: one connection pool, and
    /// one TLS context instead of a trust store loaded per slot.
    pub fn new(link: Recipient<ScrapeDone>, fetcher: Fetcher, restarts: Arc<AtomicU64>) -> Scraper {
        Scraper {
            link,
            fetcher,
            restarts,
            panic_once_on: std::env::var(PANIC_ONCE_ENV).ok().filter(|s| !s.is_empty()),
        }
    }
}

impl Actor for Scraper {
    type Context = Context<Self>;
}

impl Supervised for Scraper {
    fn restarting(&mut self, _: &mut Context<Self>) {
        let n = self.restarts.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(restarts = n, "scraper restarted by its supervisor");
    }
}

impl Handler<Scrape> for Scraper {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: Scrape, _: &mut Context<Self>) -> Self::Result {
        let fetcher = self.fetcher.clone();
        let url = Url::parse(&msg.url);
        let allowed = msg.profile.allowed_hosts.clone();
        Box::pin(
            async move {
                let url = url.map_err(|e| ScrapeFailure {
                    error: format!("bad url: {e}"),
                    retryable: false,
                })?;
                fetcher
                    .page(&url, &allowed)
                    .await
                    .map_err(|e| ScrapeFailure {
                        retryable: e.retryable(),
                        error: e.to_string(),
                    })
            }
            .into_actor(self)
            .map(move |page, act, ctx| {
                let inject = act
                    .panic_once_on
                    .as_deref()
                    .is_some_and(|needle| msg.attempt == 1 && msg.url.contains(needle));
                // Extraction runs on untrusted HTML: a panic in it must cost one
                // task, not the process.
                let outcome = match page {
                    Err(failure) => Err(failure),
                    Ok(page) => match catch_unwind(AssertUnwindSafe(|| {
                        if inject {
                            panic!("injected scraper fault for {}", msg.url);
                        }
                        extract(&page.html, &page.url, &msg)
                    })) {
                        Ok(result) => result,
                        Err(panic) => {
                            let what = panic
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                                .unwrap_or_else(|| "unknown panic".to_owned());
                            act.link.do_send(ScrapeDone {
                                slot: msg.slot,
                                task: msg.task,
                                lease: msg.lease.clone(),
                                outcome: Err(ScrapeFailure {
                                    error: format!("scraper panicked: {what}"),
                                    retryable: true,
                                }),
                            });
                            // Stopping hands the actor back to its Supervisor,
                            // which restarts it with a fresh state.
                            ctx.stop();
                            return;
                        }
                    },
                };
                act.link.do_send(ScrapeDone {
                    slot: msg.slot,
                    task: msg.task,
                    lease: msg.lease,
                    outcome,
                });
            }),
        )
    }
}

fn extract(html: &str, url: &Url, msg: &Scrape) -> Result<ScrapeOutput, ScrapeFailure> {
    let failure = |e: crate::scrape::ExtractError| ScrapeFailure {
        error: e.to_string(),
        retryable: false,
    };
    match msg.kind {
        TaskKind::Page => extract_page(html, url, &msg.profile)
            .map(ScrapeOutput::Items)
            .map_err(failure),
        TaskKind::Listing => extract_listing(html, url, &msg.site, &msg.profile)
            .map(ScrapeOutput::Links)
            .map_err(failure),
    }
}
