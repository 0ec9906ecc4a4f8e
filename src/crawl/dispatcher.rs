//! The Dispatcher actor: leases ready tasks from the database to connected
//! workers, up to the credits each has granted and within each host's
//! politeness (concurrency, delay, robots.txt). Its memory is a cache of the
//! database: a restart rebuilds it and loses nothing.
//!
//! This file holds the actor, its state and the dispatch loop (plan, lease,
//! hand out, give back). Its messages are in `workers` (a worker's
//! lifecycle), `outcomes` (how a lease ends) and `admin` (listing and
//! closing workers); `robots` fetches and caches robots.txt per host.

mod admin;
mod outcomes;
mod robots;
mod workers;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use url::Url;

use super::lease::{LeaseToken, RetryPolicy, Setback};
use super::sites::Sites;
use super::store::{self, Leased};
use super::worker_session::{AssignTask, WorkerSession};
use crate::clock::{delta, Clock};
use crate::metrics::Metrics;
use crate::protocol::worker::TaskKind;
use crate::scrape::fetch::Fetcher;
use robots::RobotsEntry;

pub use admin::{CloseWorker, ListWorkers, WorkerStatus};
pub use outcomes::{Fetched, LeasesExpired, TaskFailed, TaskFinished, Wake};
pub use workers::{Connect, Credit, Disconnect, Heartbeat, StopAssigning, WorkerId};

/// How often the queue is looked at even when nothing happened: retries whose
/// backoff ran out and hosts whose delay passed become ready on their own.
const TICK: Duration = Duration::from_millis(250);

/// Lease timing and retries, from the settings.
#[derive(Debug, Clone, Copy)]
pub struct QueuePolicy {
    pub lease: Duration,
    pub heartbeat: Duration,
    pub retry: RetryPolicy,
}

pub struct Dispatcher {
    db: DatabaseConnection,
    clock: Clock,
    sites: Arc<Sites>,
    policy: QueuePolicy,
    fetcher: Option<Fetcher>,
    workers: HashMap<u64, WorkerEntry>,
    /// Leases this node handed out, by token.
    leases: HashMap<LeaseToken, LeaseEntry>,
    /// Tasks in flight per host, for politeness.
    in_flight: HashMap<String, u32>,
    /// The earliest next lease per host, for the politeness delay.
    next_fetch: HashMap<String, Instant>,
    robots: HashMap<String, RobotsEntry>,
    next_worker: u64,
    /// Which worker is offered tasks first, rotated so that load spreads.
    rotation: usize,
    dispatching: bool,
    again: bool,
    /// The counters were rebuilt from the database after a (re)start.
    loaded: bool,
    metrics: Arc<Metrics>,
}

struct WorkerEntry {
    session: Addr<WorkerSession>,
    name: String,
    version: String,
    peer: String,
    slots: u32,
    credits: u32,
    restarts: u64,
    done: u64,
    failed: u64,
    connected_at: DateTime<Utc>,
    last_heartbeat: DateTime<Utc>,
    /// Draining workers get no more tasks and grant no more credits.
    draining: bool,
}

struct LeaseEntry {
    worker: u64,
    host: String,
    /// The page is still being fetched: the lease holds one of its host's
    /// politeness slots. The slot is freed when the result arrives, not when
    /// it is merged, since politeness is about the host, not the database.
    fetching: bool,
}

impl Dispatcher {
    pub fn new(
        db: DatabaseConnection,
        clock: Clock,
        sites: Arc<Sites>,
        policy: QueuePolicy,
        metrics: Arc<Metrics>,
    ) -> Dispatcher {
        Dispatcher {
            db,
            clock,
            sites,
            policy,
            fetcher: None,
            workers: HashMap::new(),
            leases: HashMap::new(),
            in_flight: HashMap::new(),
            next_fetch: HashMap::new(),
            robots: HashMap::new(),
            next_worker: u64::from(rand::random::<u16>()) << 16,
            rotation: 0,
            dispatching: false,
            again: false,
            loaded: false,
            metrics,
        }
    }

    /// Rebuilds the politeness counters from the leases in the database.
    fn load(&mut self, ctx: &mut Context<Self>) {
        let db = self.db.clone();
        async move { store::leased_by_host(&db).await }
            .into_actor(self)
            .map(|res, act, ctx| match res {
                Ok(counts) => {
                    act.in_flight = counts;
                    act.loaded = true;
                    act.dispatch(ctx);
                }
                Err(err) => {
                    tracing::error!(error = %err, "could not read the leases; retrying");
                    ctx.run_later(Duration::from_secs(1), |act, ctx| act.load(ctx));
                }
            })
            .spawn(ctx);
    }

    fn free_credits(&self) -> u32 {
        self.workers.values().map(|w| w.credits).sum()
    }

    /// Leases what can be leased now. Runs one pass at a time; a request during
    /// a pass schedules another.
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        if !self.loaded {
            return;
        }
        if self.dispatching {
            self.again = true;
            return;
        }
        if self.free_credits() == 0 {
            return;
        }
        self.dispatching = true;
        self.again = false;
        let db = self.db.clone();
        let now = self.clock.now();
        let lease_until = now + delta(self.policy.lease);
        async move { store::ready_hosts(&db, now).await }
            .into_actor(self)
            .then(move |hosts, act, ctx| {
                let plan = match hosts {
                    Ok(hosts) => act.plan(hosts, ctx),
                    Err(err) => {
                        tracing::error!(error = %err, "could not read the queue");
                        Vec::new()
                    }
                };
                let db = act.db.clone();
                async move {
                    let mut leased = Vec::new();
                    for step in &plan {
                        match store::lease(&db, &step.host, step.count, &step.worker_name, lease_until, now).await {
                            Ok(rows) => leased.push((step.clone(), rows)),
                            Err(err) => {
                                tracing::error!(error = %err, host = %step.host, "could not lease tasks");
                                leased.push((step.clone(), Vec::new()));
                            }
                        }
                    }
                    leased
                }
                .into_actor(act)
            })
            .map(move |leased, act, ctx| {
                for (step, rows) in leased {
                    act.hand_out(step, rows, lease_until, ctx);
                }
                act.dispatching = false;
                if act.again {
                    act.dispatch(ctx);
                }
            })
            .spawn(ctx);
    }

    /// Splits the free credits over the ready hosts, within politeness.
    /// Credits and host slots are reserved now and settled in `hand_out`.
    fn plan(&mut self, hosts: Vec<String>, ctx: &mut Context<Self>) -> Vec<Step> {
        let mut plan = Vec::new();
        let now = Instant::now();
        for host in hosts {
            let politeness = self.sites.politeness_for(&host);
            if politeness.robots && !self.robots_ready(&host, ctx) {
                continue;
            }
            if self.next_fetch.get(&host).is_some_and(|&t| t > now) {
                continue;
            }
            let delay = self.robots_delay(&host).max(politeness.delay());
            let busy = self.in_flight.get(&host).copied().unwrap_or(0);
            let mut room = politeness.concurrency.saturating_sub(busy);
            if !delay.is_zero() {
                room = room.min(1);
            }
            let mut ids: Vec<u64> = self.workers.keys().copied().collect();
            ids.sort_unstable();
            if !ids.is_empty() {
                self.rotation = (self.rotation + 1) % ids.len();
                ids.rotate_left(self.rotation);
            }
            for id in ids {
                if room == 0 {
                    break;
                }
                let Some(worker) = self.workers.get_mut(&id) else {
                    continue;
                };
                let count = worker.credits.min(room);
                if count == 0 {
                    continue;
                }
                worker.credits -= count;
                room -= count;
                *self.in_flight.entry(host.clone()).or_default() += count;
                if !delay.is_zero() {
                    self.next_fetch.insert(host.clone(), now + delay);
                }
                plan.push(Step {
                    host: host.clone(),
                    worker: id,
                    worker_name: worker.name.clone(),
                    count,
                });
            }
        }
        plan
    }

    /// Sends leased tasks to their worker, and settles the reservations.
    fn hand_out(
        &mut self,
        step: Step,
        rows: Vec<Leased>,
        lease_until: DateTime<Utc>,
        ctx: &mut Context<Self>,
    ) {
        let unused = step
            .count
            .saturating_sub(u32::try_from(rows.len()).unwrap_or(u32::MAX));
        self.release_slots(&step.host, unused);
        self.return_credits(step.worker, unused);
        for row in rows {
            let Some(token) = LeaseToken::parse(&row.lease_token) else {
                continue;
            };
            if let Some(reason) = self.refusal(&row) {
                self.release_slots(&row.host, 1);
                self.return_credits(step.worker, 1);
                let db = self.db.clone();
                let now = self.clock.now();
                let url = row.url.clone();
                let crawl = row.crawl_id;
                tracing::info!(url = %row.url, reason, "task cancelled");
                actix::spawn(async move {
                    if let Err(err) = store::cancel(&db, &token, crawl, &reason, now).await {
                        tracing::error!(error = %err, url, "could not cancel a task");
                    }
                });
                continue;
            }
            let worker = match self.workers.get(&step.worker) {
                Some(worker) if !worker.draining => worker,
                // It began draining while the lease was being taken, and has
                // been told no assignment follows: the task is not its own.
                Some(_) => {
                    self.release_slots(&row.host, 1);
                    self.give_back(
                        token,
                        Setback::Disconnected,
                        "the worker began draining",
                        ctx,
                    );
                    continue;
                }
                // The worker left while the lease was being taken: the task
                // never reached it, which its last error should say rather
                // than read like a held task that was dropped.
                None => {
                    self.release_slots(&row.host, 1);
                    self.give_back(
                        token,
                        Setback::Disconnected,
                        "the worker left before the task reached it",
                        ctx,
                    );
                    continue;
                }
            };
            let kind = if row.kind == "listing" {
                TaskKind::Listing
            } else {
                TaskKind::Page
            };
            worker.session.do_send(AssignTask {
                lease: token.clone(),
                crawl_id: row.crawl_id,
                attempt: u32::try_from(row.attempts).unwrap_or(1),
                kind,
                url: row.url,
                site: row.site,
                host: row.host.clone(),
                lease_until,
            });
            self.leases.insert(
                token,
                LeaseEntry {
                    worker: step.worker,
                    host: row.host,
                    fetching: true,
                },
            );
        }
    }

    /// Why a leased task must not be fetched at all, if it must not.
    fn refusal(&self, row: &Leased) -> Option<String> {
        let Some(site) = self.sites.get(&row.site) else {
            return Some(format!("site {:?} is no longer configured", row.site));
        };
        let url = Url::parse(&row.url).ok()?;
        if !super::sites::is_allowed(&url, &site.profile.allowed_hosts) {
            return Some("host not allowed for this site".to_owned());
        }
        if site.politeness.robots {
            if let Some(RobotsEntry::Ready { robots, .. }) = self.robots.get(&row.host) {
                let path = match url.query() {
                    Some(q) => format!("{}?{q}", url.path()),
                    None => url.path().to_owned(),
                };
                if !robots.allows(&path) {
                    return Some("disallowed by robots.txt".to_owned());
                }
            }
        }
        None
    }

    fn release_slots(&mut self, host: &str, count: u32) {
        if count == 0 {
            return;
        }
        if let Some(n) = self.in_flight.get_mut(host) {
            *n = n.saturating_sub(count);
        }
    }

    /// Forgets a lease this node handed out; frees its host slot if it
    /// still held one.
    fn forget(&mut self, token: &LeaseToken) -> Option<LeaseEntry> {
        let entry = self.leases.remove(token)?;
        if entry.fetching {
            self.release_slots(&entry.host, 1);
        }
        Some(entry)
    }

    /// Credits reserved for a step and not used go back to the worker,
    /// unless it is draining: then it is owed nothing more.
    fn return_credits(&mut self, worker: u64, credits: u32) {
        if let Some(worker) = self.workers.get_mut(&worker).filter(|w| !w.draining) {
            worker.credits += credits;
        }
    }

    /// Returns a lease to the queue in the database.
    fn give_back(
        &mut self,
        token: LeaseToken,
        setback: Setback,
        error: &str,
        ctx: &mut Context<Self>,
    ) {
        let db = self.db.clone();
        let policy = self.policy.retry;
        let now = self.clock.now();
        let error = error.to_owned();
        async move { store::release(&db, &token, &setback, &error, &policy, now).await }
            .into_actor(self)
            .map(|res, act, ctx| {
                if let Err(err) = res {
                    tracing::error!(error = %err, "could not return a task to the queue; its lease will expire");
                }
                act.dispatch(ctx);
            })
            .spawn(ctx);
    }
}

#[derive(Debug, Clone)]
struct Step {
    host: String,
    worker: u64,
    worker_name: String,
    count: u32,
}

impl Actor for Dispatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.load(ctx);
        ctx.run_interval(TICK, |act, ctx| act.dispatch(ctx));
    }
}

impl Supervised for Dispatcher {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!("dispatcher restarted; reloading the queue state");
        // Sessions re-register on their own; leases in flight stay in the DB
        // and expire back to the queue if their worker is gone.
        self.workers.clear();
        self.leases.clear();
        self.in_flight.clear();
        self.dispatching = false;
        self.loaded = false;
    }
}
