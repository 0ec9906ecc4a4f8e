//! The Dispatcher actor: leases ready tasks from the database to connected
//! workers, up to the credits each has granted and within each host's
//! politeness (concurrency, delay, robots.txt). Its memory is a cache of the
//! database: a restart rebuilds it and loses nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use serde::Serialize;
use url::Url;

use super::lease::{LeaseToken, RetryPolicy, Setback};
use super::sites::Sites;
use super::store::{self, Leased, Released};
use super::worker_session::{AssignTask, CloseConnection, DrainWorker, WorkerSession};
use crate::clock::{delta, Clock};
use crate::metrics::Metrics;
use crate::protocol::worker::TaskKind;
use crate::scrape::fetch::Fetcher;
use crate::scrape::robots::Robots;

/// How often the queue is looked at even when nothing happened: retries whose
/// backoff ran out and hosts whose delay passed become ready on their own.
const TICK: Duration = Duration::from_millis(250);

/// How long robots.txt is trusted before it is fetched again.
const ROBOTS_TTL: Duration = Duration::from_secs(3600);

/// The most credits a worker may hold; more would only hoard tasks.
const MAX_CREDITS: u32 = 1024;

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

enum RobotsEntry {
    Loading,
    Ready { robots: Robots, fetched: Instant },
}

/// What the API and logs show about a connected worker.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerStatus {
    pub id: u64,
    pub name: String,
    pub version: String,
    pub address: String,
    pub slots: u32,
    pub credits: u32,
    pub in_flight: usize,
    /// The tasks it holds, by id.
    pub tasks: Vec<i64>,
    pub done: u64,
    pub failed: u64,
    pub scraper_restarts: u64,
    pub connected_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
    /// It finishes what it holds and is assigned nothing more.
    pub draining: bool,
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
                // The worker left while the lease was being taken.
                None => {
                    self.release_slots(&row.host, 1);
                    self.give_back(token, Setback::Disconnected, "the worker disconnected", ctx);
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

    /// Returns a lease to the queue in the database.
    /// Credits reserved for a step and not used go back to the worker,
    /// unless it is draining: then it is owed nothing more.
    fn return_credits(&mut self, worker: u64, credits: u32) {
        if let Some(worker) = self.workers.get_mut(&worker).filter(|w| !w.draining) {
            worker.credits += credits;
        }
    }

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

    /// Whether robots.txt for `host` is known; starts fetching it if not.
    fn robots_ready(&mut self, host: &str, ctx: &mut Context<Self>) -> bool {
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

    fn robots_delay(&self, host: &str) -> Duration {
        match self.robots.get(host) {
            Some(RobotsEntry::Ready { robots, .. }) => robots.crawl_delay().unwrap_or_default(),
            _ => Duration::ZERO,
        }
    }

    /// `http` or `https` for a host, from the sites' start URLs.
    fn scheme_for(&self, host: &str) -> &'static str {
        let https =
            self.sites.iter().flat_map(|s| s.start.iter()).any(|u| {
                super::sites::host_key(u).as_deref() == Some(host) && u.scheme() == "https"
            });
        if https {
            "https"
        } else {
            "http"
        }
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

/// A worker finished its `hello`.
#[derive(Message)]
#[rtype(result = "WorkerId")]
pub struct Connect {
    pub session: Addr<WorkerSession>,
    pub name: String,
    pub version: String,
    pub peer: String,
    pub slots: u32,
}

/// The id the Dispatcher gives a connected worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, MessageResponse)]
pub struct WorkerId(pub u64);

impl Handler<Connect> for Dispatcher {
    type Result = WorkerId;

    fn handle(&mut self, msg: Connect, _: &mut Context<Self>) -> WorkerId {
        self.next_worker += 1;
        let id = self.next_worker;
        let now = self.clock.now();
        tracing::info!(worker = id, name = %msg.name, peer = %msg.peer, slots = msg.slots, "worker connected");
        self.workers.insert(
            id,
            WorkerEntry {
                session: msg.session,
                name: msg.name,
                version: msg.version,
                peer: msg.peer,
                slots: msg.slots,
                credits: 0,
                restarts: 0,
                done: 0,
                failed: 0,
                connected_at: now,
                last_heartbeat: now,
                draining: false,
            },
        );
        WorkerId(id)
    }
}

/// A worker's connection closed: its tasks go back to the queue at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    pub worker: WorkerId,
}

impl Handler<Disconnect> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, ctx: &mut Context<Self>) {
        let Some(worker) = self.workers.remove(&msg.worker.0) else {
            return;
        };
        let tokens: Vec<LeaseToken> = self
            .leases
            .iter()
            .filter(|(_, e)| e.worker == msg.worker.0)
            .map(|(t, _)| t.clone())
            .collect();
        tracing::info!(worker = msg.worker.0, name = %worker.name, requeued = tokens.len(), "worker disconnected");
        for token in tokens {
            self.forget(&token);
            self.give_back(token, Setback::Disconnected, "the worker disconnected", ctx);
        }
    }
}

/// A worker grants more credits.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Credit {
    pub worker: WorkerId,
    pub credits: u32,
}

impl Handler<Credit> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: Credit, ctx: &mut Context<Self>) {
        if let Some(worker) = self.workers.get_mut(&msg.worker.0).filter(|w| !w.draining) {
            worker.credits = worker.credits.saturating_add(msg.credits).min(MAX_CREDITS);
            self.dispatch(ctx);
        }
    }
}

/// A worker is to drain, because it asked or an admin did: assign it
/// nothing more, and tell it with a `drain` frame. Resolves to the worker's
/// name, or `None` if no such worker is connected to this node.
#[derive(Message)]
#[rtype(result = "Option<String>")]
pub struct StopAssigning {
    pub worker: WorkerId,
}

impl Handler<StopAssigning> for Dispatcher {
    type Result = Option<String>;

    fn handle(&mut self, msg: StopAssigning, _: &mut Context<Self>) -> Option<String> {
        let worker = self.workers.get_mut(&msg.worker.0)?;
        tracing::info!(worker = msg.worker.0, name = %worker.name, "worker draining");
        worker.draining = true;
        worker.credits = 0;
        // Through the session's mailbox, after every assignment already sent:
        // once the worker reads this, no assignment can follow.
        worker.session.do_send(DrainWorker);
        Some(worker.name.clone())
    }
}

/// An admin closes a worker's connection. Its tasks go back to the queue
/// when its session stops (`Disconnect`), as for any closed connection.
/// Resolves to the worker's name, or `None` if no such worker is connected
/// to this node.
#[derive(Message)]
#[rtype(result = "Option<String>")]
pub struct CloseWorker {
    pub worker: WorkerId,
    /// The close frame's reason, for the worker's log.
    pub reason: &'static str,
}

impl Handler<CloseWorker> for Dispatcher {
    type Result = Option<String>;

    fn handle(&mut self, msg: CloseWorker, _: &mut Context<Self>) -> Option<String> {
        let worker = self.workers.get_mut(&msg.worker.0)?;
        tracing::info!(worker = msg.worker.0, name = %worker.name, reason = msg.reason, "closing a worker's connection");
        // Nothing more is assigned in the moment before the session stops.
        worker.draining = true;
        worker.credits = 0;
        worker
            .session
            .do_send(CloseConnection { reason: msg.reason });
        Some(worker.name.clone())
    }
}

/// A worker is alive and still holds these leases.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Heartbeat {
    pub worker: WorkerId,
    pub leases: Vec<LeaseToken>,
    pub restarts: u64,
}

impl Handler<Heartbeat> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: Heartbeat, ctx: &mut Context<Self>) {
        let now = self.clock.now();
        let Some(worker) = self.workers.get_mut(&msg.worker.0) else {
            return;
        };
        worker.last_heartbeat = now;
        if msg.restarts > worker.restarts {
            tracing::warn!(worker = msg.worker.0, name = %worker.name, restarts = msg.restarts, "worker's scrapers were restarted");
            worker.restarts = msg.restarts;
        }
        // Only leases this worker holds are extended: a token is not a
        // capability to keep someone else's task.
        let mine: Vec<LeaseToken> = msg
            .leases
            .into_iter()
            .filter(|t| self.leases.get(t).is_some_and(|e| e.worker == msg.worker.0))
            .collect();
        let db = self.db.clone();
        let until = now + delta(self.policy.lease);
        async move { store::extend_leases(&db, &mine, until).await }
            .into_actor(self)
            .map(|res, _, _| {
                if let Err(err) = res {
                    tracing::error!(error = %err, "could not extend leases");
                }
            })
            .spawn(ctx);
    }
}

/// A worker sent a task's result: the fetch is over, so its host slot is
/// free, while the lease stays until the result is merged.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Fetched {
    pub lease: LeaseToken,
}

impl Handler<Fetched> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: Fetched, ctx: &mut Context<Self>) {
        let Some(entry) = self.leases.get_mut(&msg.lease) else {
            return;
        };
        if std::mem::take(&mut entry.fetching) {
            let host = entry.host.clone();
            self.release_slots(&host, 1);
            self.dispatch(ctx);
        }
    }
}

/// A task's result was merged (or found stale): its lease is over.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TaskFinished {
    pub worker: WorkerId,
    pub lease: LeaseToken,
}

impl Handler<TaskFinished> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: TaskFinished, ctx: &mut Context<Self>) {
        if self.forget(&msg.lease).is_some() {
            if let Some(worker) = self.workers.get_mut(&msg.worker.0) {
                worker.done += 1;
            }
        }
        self.dispatch(ctx);
    }
}

/// A worker could not do a task.
#[derive(Message)]
#[rtype(result = "Result<bool, String>")]
pub struct TaskFailed {
    pub worker: WorkerId,
    pub lease: LeaseToken,
    pub error: String,
    pub retryable: bool,
}

impl Handler<TaskFailed> for Dispatcher {
    type Result = ResponseActFuture<Self, Result<bool, String>>;

    /// Resolves to whether the lease was current (`false`: stale, ignored).
    fn handle(&mut self, msg: TaskFailed, _: &mut Context<Self>) -> Self::Result {
        if self.forget(&msg.lease).is_some() {
            if let Some(worker) = self.workers.get_mut(&msg.worker.0) {
                worker.failed += 1;
            }
        }
        let db = self.db.clone();
        let policy = self.policy.retry;
        let now = self.clock.now();
        let setback = Setback::Failed {
            retryable: msg.retryable,
        };
        Box::pin(
            async move { store::release(&db, &msg.lease, &setback, &msg.error, &policy, now).await }
                .into_actor(self)
                .map(|res, act, ctx| {
                    act.dispatch(ctx);
                    match res {
                        Ok(released) => Ok(released.is_some()),
                        Err(err) => Err(err.to_string()),
                    }
                }),
        )
    }
}

/// Leases ran out (found by the Scheduler's sweep).
#[derive(Message)]
#[rtype(result = "()")]
pub struct LeasesExpired {
    pub released: Vec<Released>,
}

impl Handler<LeasesExpired> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: LeasesExpired, ctx: &mut Context<Self>) {
        self.metrics.leases_expired(msg.released.len());
        for released in &msg.released {
            tracing::warn!(task = released.task, host = %released.host, state = %released.state, "lease expired");
            if self.forget(&released.token).is_none() {
                // Leased by an earlier process or another node: the counters
                // rebuilt from the database still hold its slot.
                self.release_slots(&released.host, 1);
            }
        }
        self.dispatch(ctx);
    }
}

/// New work may be ready (a crawl started, say).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

impl Handler<Wake> for Dispatcher {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.dispatch(ctx);
    }
}

/// The workers connected to this node, for the API and the admin pages.
/// Each node's Dispatcher knows only its own workers.
#[derive(Message)]
#[rtype(result = "Vec<WorkerStatus>")]
pub struct ListWorkers;

impl Handler<ListWorkers> for Dispatcher {
    type Result = MessageResult<ListWorkers>;

    fn handle(&mut self, _: ListWorkers, _: &mut Context<Self>) -> Self::Result {
        let mut list: Vec<WorkerStatus> = self
            .workers
            .iter()
            .map(|(&id, w)| {
                let mut tasks: Vec<i64> = self
                    .leases
                    .iter()
                    .filter(|(_, e)| e.worker == id)
                    .map(|(token, _)| token.task())
                    .collect();
                tasks.sort_unstable();
                WorkerStatus {
                    id,
                    name: w.name.clone(),
                    version: w.version.clone(),
                    address: w.peer.clone(),
                    slots: w.slots,
                    credits: w.credits,
                    in_flight: tasks.len(),
                    tasks,
                    done: w.done,
                    failed: w.failed,
                    scraper_restarts: w.restarts,
                    connected_at: w.connected_at,
                    last_heartbeat: w.last_heartbeat,
                    draining: w.draining,
                }
            })
            .collect();
        list.sort_by_key(|w| w.id);
        MessageResult(list)
    }
}
