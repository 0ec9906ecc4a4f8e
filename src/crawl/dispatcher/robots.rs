//! robots.txt for the Dispatcher: fetched once per host and cached for
//! `ROBOTS_TTL`, it holds back a host's tasks until it is known, stretches
//! the host's politeness delay to its `Crawl-delay`, and lets `refusal`
//! cancel the paths it disallows.

use std::time::{Duration, Instant};

use actix::prelude::*;

use super::Dispatcher;
use crate::scrape::fetch::Fetcher;
use crate::scrape::robots::Robots;

/// How long robots.txt is trusted before it is fetched again.
const ROBOTS_TTL: Duration = Duration::from_secs(3600);

pub(super) enum RobotsEntry {
    Loading,
    Ready { robots: Robots, fetched: Instant },
}

impl Dispatcher {
    /// Whether robots.txt for `host` is known; starts fetching it if not.
    pub(super) fn robots_ready(&mut self, host: &str, ctx: &mut Context<Self>) -> bool {
        match self.robots.get(host) {
            Some(RobotsEntry::Ready { fetched, .. }) if fetched.elapsed() < ROBOTS_TTL => {
                return true
            }
            Some(RobotsEntry::Loading) => return false,
            _ => {}
        }
        self.robots.insert(host.to_owned(), RobotsEntry::Loading);
        let scheme = self.scheme_for(host);
        let url = format!("{scheme}://{host}/robots.txt");
        let fetcher = self.fetcher.get_or_insert_with(Fetcher::for_robots).clone();
        let host = host.to_owned();
        async move { fetcher.robots(&url).await }
            .into_actor(self)
            .map(move |text, act, ctx| {
                let robots = match text {
                    Ok(Some(text)) => Robots::parse(&text, "bazaar"),
                    Ok(None) => Robots::allow_all(),
                    Err(err) => {
                        // An unreachable robots.txt is read as "allow all", as
                        // most crawlers do, but said out loud.
                        tracing::warn!(host, error = %err, "robots.txt unavailable; allowing all");
                        Robots::allow_all()
                    }
                };
                act.robots.insert(
                    host,
                    RobotsEntry::Ready {
                        robots,
                        fetched: Instant::now(),
                    },
                );
                act.dispatch(ctx);
            })
            .spawn(ctx);
        false
    }

    pub(super) fn robots_delay(&self, host: &str) -> Duration {
        match self.robots.get(host) {
            Some(RobotsEntry::Ready { robots, .. }) => robots.crawl_delay().unwrap_or_default(),
            _ => Duration::ZERO,
        }
    }

    /// `http` or `https` for a host, from the sites' start URLs.
    fn scheme_for(&self, host: &str) -> &'static str {
        let https = self.sites.iter().flat_map(|s| s.start.iter()).any(|u| {
            crate::crawl::sites::host_key(u).as_deref() == Some(host) && u.scheme() == "https"
        });
        if https {
            "https"
        } else {
            "http"
        }
    }
}
