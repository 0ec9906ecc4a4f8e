//! The Dispatcher actor: leases ready tasks from the database to connected
//! workers, up to the credits each has granted and within each host's
//! politeness (concurrency, delay, robots.txt). Its memory is a cache of the
//! database: a restart rebuilds it and loses nothing.
//!
//! Every node runs one, for the workers connected to it. Politeness holds
//! for the whole cluster because leasing applies it in the database, under
//! a lock on the host's row (`store::lease`): this actor's counts are only
//! its own share, to split its workers' credits.
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
use super::store::{self, HostLease, Leased, Pace, Share, Writer};
use super::worker_session::{AssignTask, WorkerSession};
use crate::bus::{Bus, Control};
use crate::clock::{self, delta};
use crate::metrics::Metrics;
use crate::protocol::worker::TaskKind;
use crate::scrape::fetch::Fetcher;
use robots::RobotsEntry;

pub use admin::{CloseWorker, ListWorkers, DISCONNECTED_BY_ADMIN};
pub use outcomes::{Announce, Fetched, LeasesExpired, TaskFailed, TaskFinished};
pub use workers::{Connect, Credit, Disconnect, HandOver, Heartbeat, StopAssigning, WorkerId};

/// How often the queue is looked at even when nothing happened: retries whose
/// backoff ran out become ready on their own. Hosts waiting out a politeness
/// delay do not wait for it: a timer wakes the Dispatcher when one is due.
const TICK: Duration = Duration::from_millis(250);

/// How long before a host's next fetch is due its task is leased. The lease
/// is a database round trip; taken ahead, it is not added to every delay,
/// and the task is handed out the moment the delay has passed. A delay
/// shorter than this has several starts within it, leased in one pass.
const LEAD: Duration = Duration::from_millis(20);

/// Lease timing and retries, from the settings.
#[derive(Debug, Clone, Copy)]
pub struct QueuePolicy {
    pub lease: Duration,
    pub heartbeat: Duration,
    pub retry: RetryPolicy,
}

pub struct Dispatcher {
    db: DatabaseConnection,
    bus: Arc<dyn Bus>,
    sites: Arc<Sites>,
    policy: QueuePolicy,
    fetcher: Option<Fetcher>,
    workers: HashMap<u64, WorkerEntry>,
    /// Leases this node handed out, by token.
    leases: HashMap<LeaseToken, LeaseEntry>,
    /// This node's fetches in flight per host: its share of each host's
    /// concurrency, the most it asks the database for.
    in_flight: HashMap<String, u32>,
    /// When each host's next fetch may start, as the database last said:
    /// the host is not asked for again before then.
    due: HashMap<String, Instant>,
    /// When each host with a delay may next be sent a fetch, counted from
    /// the last one this node sent: the database plans starts on a grid,
    /// but a pass that ran late (a stalled process, a slow commit) finds
    /// its start already past, and sending it at once would put it right
    /// behind the fetch before.
    next_send: HashMap<String, Instant>,
    /// The timer that runs a pass when the earliest waiting host is due.
    wake: Option<(Instant, SpawnHandle)>,
    robots: HashMap<String, RobotsEntry>,
    next_worker: u64,
    /// Which worker is offered tasks first, rotated so that load spreads.
    rotation: usize,
    dispatching: bool,
    again: bool,
    /// The queue was paused while a pass was leasing: what it leased goes
    /// back rather than out.
    pause_heard: bool,
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
    /// A listing: its result adds tasks that every node should hear of.
    listing: bool,
    /// The page is still being fetched: the lease holds one of its host's
    /// politeness slots. The slot is freed when the result arrives, not when
    /// it is merged, since politeness is about the host, not the database.
    fetching: bool,
    /// The task was sent to its worker; until then it waits for its host's
    /// delay to pass.
    delivered: bool,
}

impl Dispatcher {
    pub fn new(
        db: DatabaseConnection,
        bus: Arc<dyn Bus>,
        sites: Arc<Sites>,
        policy: QueuePolicy,
        metrics: Arc<Metrics>,
    ) -> Dispatcher {
        Dispatcher {
            db,
            bus,
            sites,
            policy,
            fetcher: None,
            workers: HashMap::new(),
            leases: HashMap::new(),
            in_flight: HashMap::new(),
            due: HashMap::new(),
            next_send: HashMap::new(),
            wake: None,
            robots: HashMap::new(),
            next_worker: u64::from(rand::random::<u16>()) << 16,
            rotation: 0,
            dispatching: false,
            again: false,
            pause_heard: false,
            metrics,
        }
    }

    fn free_credits(&self) -> u32 {
        self.workers.values().map(|w| w.credits).sum()
    }

    /// Leases what can be leased now. Runs one pass at a time; a request during
    /// a pass schedules another.
    ///
    /// A pass waits for the Dispatcher's turn to write (`store::turn`)
    /// before it reads the queue and plans: it then plans with the credits
    /// granted and the tasks queued meanwhile (a listing just merged, say),
    /// and leases them all in that one turn.
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        if self.dispatching {
            self.again = true;
            return;
        }
        if self.free_credits() == 0 {
            return;
        }
        self.dispatching = true;
        self.again = false;
        self.pause_heard = false;
        let db = self.db.clone();
        async move { store::turn(&db, Writer::Dispatcher).await }
            .into_actor(self)
            .then(|turn, act, _| {
                // What was asked for while waiting, this pass sees: it reads
                // the queue and the credits from here on.
                act.again = false;
                let db = act.db.clone();
                let now = clock::now();
                async move {
                    let hosts = store::ready_hosts(&db, now).await;
                    (turn, now, hosts)
                }
                .into_actor(act)
            })
            .then(|(turn, now, hosts), act, ctx| {
                let plan = match hosts {
                    Ok(hosts) => act.plan(hosts, ctx),
                    Err(err) => {
                        tracing::error!(error = %err, "could not read the queue");
                        Vec::new()
                    }
                };
                let lease_until = now + delta(act.policy.lease);
                lease_plan(act.db.clone(), turn, plan, lease_until, now)
                    .into_actor(act)
                    .map(move |leased, _, _| (leased, lease_until))
            })
            .map(|(leased, lease_until), act, ctx| {
                for (step, got) in leased {
                    act.hand_out(step, got, lease_until, ctx);
                }
                act.dispatching = false;
                if act.again {
                    act.dispatch(ctx);
                }
            })
            .spawn(ctx);
    }

    /// Splits the free credits over the ready hosts, within this node's
    /// view of their politeness; the database holds each host to it for
    /// the cluster (`store::lease`). Each host is leased once a pass, for
    /// every worker with a share of it. Credits and host slots are reserved
    /// now and settled in `hand_out`.
    ///
    /// A host with a delay gets a task for each of its next starts that falls
    /// within `LEAD`, each handed out at its start; a host due later sets the
    /// timer for the pass that will lease it.
    fn plan(&mut self, hosts: Vec<String>, ctx: &mut Context<Self>) -> Vec<Step> {
        let mut plan = Vec::new();
        let now = Instant::now();
        let mut wake: Option<Instant> = None;
        self.due.retain(|_, due| *due > now);
        self.next_send.retain(|_, at| *at > now);
        for host in hosts {
            let politeness = self.sites.politeness_for(&host);
            if politeness.robots && !self.robots_ready(&host, ctx) {
                continue;
            }
            let busy = self.in_flight.get(&host).copied().unwrap_or(0);
            let mut room = politeness.concurrency.saturating_sub(busy);
            // A full host is planned again when a fetch ends (`Fetched`).
            if room == 0 {
                continue;
            }
            let delay = self.delay_for(&host);
            if !delay.is_zero() {
                let due = self.due.get(&host).copied();
                if let Some(due) = due.filter(|&due| due > now + LEAD) {
                    wake = Some(wake.map_or(due - LEAD, |w| w.min(due - LEAD)));
                    continue;
                }
                let wait = due.map_or(Duration::ZERO, |due| due.saturating_duration_since(now));
                room = room.min(store::starts_in_lead(wait, LEAD, delay));
            }
            let fetched = self
                .leases
                .iter()
                .filter(|(_, e)| e.host == host && !e.fetching)
                .map(|(token, _)| token.as_str().to_owned())
                .collect();
            let pace = Pace {
                concurrency: politeness.concurrency,
                delay,
                lead: LEAD,
                fetched,
                shared: self.bus.shared(),
            };
            let mut ids: Vec<u64> = self.workers.keys().copied().collect();
            ids.sort_unstable();
            if !ids.is_empty() {
                self.rotation = (self.rotation + 1) % ids.len();
                ids.rotate_left(self.rotation);
            }
            let mut workers = Vec::new();
            let mut shares = Vec::new();
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
                workers.push(id);
                shares.push(Share {
                    worker: worker.name.clone(),
                    count,
                });
            }
            if !shares.is_empty() {
                plan.push(Step {
                    host,
                    workers,
                    shares,
                    pace,
                });
            }
        }
        if let Some(at) = wake {
            self.wake_at(at, ctx);
        }
        plan
    }

    /// The least time between the starts of two fetches to `host`: its
    /// site's `delay_ms`, or its robots.txt `Crawl-delay` if that is longer.
    fn delay_for(&self, host: &str) -> Duration {
        self.robots_delay(host)
            .max(self.sites.politeness_for(host).delay())
    }

    /// Runs a pass at `at`, unless one is already set to run sooner.
    fn wake_at(&mut self, at: Instant, ctx: &mut Context<Self>) {
        if self.wake.as_ref().is_some_and(|(set, _)| *set <= at) {
            return;
        }
        if let Some((_, handle)) = self.wake.take() {
            ctx.cancel_future(handle);
        }
        let handle = ctx.run_later(at.saturating_duration_since(Instant::now()), |act, ctx| {
            act.wake = None;
            act.dispatch(ctx);
        });
        self.wake = Some((at, handle));
    }

    /// Sends leased tasks to their worker, and settles the reservations.
    fn hand_out(
        &mut self,
        step: Step,
        got: HostLease,
        lease_until: DateTime<Utc>,
        ctx: &mut Context<Self>,
    ) {
        let HostLease {
            rows,
            taken,
            start_at,
            due,
        } = got;
        // Each row's worker: the shares took their rows in order.
        let mut owners = Vec::with_capacity(rows.len());
        for (i, (&worker, share)) in step.workers.iter().zip(&step.shares).enumerate() {
            let got = taken.get(i).copied().unwrap_or(0);
            owners.extend(std::iter::repeat_n(worker, got));
            let unused = share
                .count
                .saturating_sub(u32::try_from(got).unwrap_or(u32::MAX));
            self.release_slots(&step.host, unused);
            self.return_credits(worker, unused);
        }
        // The host's delay, as the database planned it on whichever node
        // leased last: no pass asks for the host again before it is due.
        let next = match (start_at, due) {
            (Some(start), _) => Some(start + delta(store::spaced(step.pace.delay, rows.len()))),
            (None, Some(due)) => Some(due),
            (None, None) => None,
        };
        if let Some(next) = next.map(instant_of) {
            self.due.insert(step.host.clone(), next);
            self.wake_at(next.checked_sub(LEAD).unwrap_or(next), ctx);
        }
        let start_at = start_at.map(instant_of);
        for (i, (row, worker)) in rows.into_iter().zip(owners).enumerate() {
            let Some(token) = LeaseToken::parse(&row.lease_token) else {
                continue;
            };
            let refusal = if self.pause_heard {
                Some(Refusal::Paused)
            } else {
                self.refusal(&row).map(Refusal::Cancel)
            };
            if let Some(refusal) = refusal {
                self.release_slots(&row.host, 1);
                self.return_credits(worker, 1);
                match refusal {
                    Refusal::Paused => {
                        self.give_back(token, Setback::Disconnected, "the queue was paused", ctx)
                    }
                    Refusal::Cancel(reason) => self.cancel(token, &row, reason),
                }
                continue;
            }
            self.leases.insert(
                token.clone(),
                LeaseEntry {
                    worker,
                    host: row.host.clone(),
                    listing: row.kind == TaskKind::Listing,
                    fetching: true,
                    delivered: false,
                },
            );
            let assign = Assignment {
                worker,
                token,
                row,
                lease_until,
                delay: step.pace.delay,
            };
            // One delay after the one before, on the grid the database planned.
            let start_at = start_at.map(|first| first + store::spaced(step.pace.delay, i));
            self.send_at(assign, start_at, ctx);
        }
    }

    /// Sends `assign` at `at`, or as soon after it as its host's delay
    /// allows since the last fetch this node sent it. Checked when the
    /// timer fires: timers that a stall made late fire together, and only
    /// the first of them may go.
    fn send_at(&mut self, assign: Assignment, at: Option<Instant>, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let free = self.next_send.get(&assign.row.host).copied();
        let at = match (at, free) {
            (Some(at), Some(free)) => Some(at.max(free)),
            (at, free) => at.or(free),
        };
        match at {
            Some(at) if at > now => {
                ctx.run_later(at - now, move |act, ctx| {
                    act.send_at(assign, Some(at), ctx);
                });
            }
            // Late past the lead: in a cluster, another node may have
            // planned the next start from the one missed here.
            Some(at) if now - at > LEAD && self.bus.shared() => self.replan(assign, ctx),
            _ => self.assign(assign, ctx),
        }
    }

    /// Sends a fetch this node is late with when the database says its
    /// host may next start one, on whichever node (`store::replan_late_start`).
    fn replan(&mut self, assign: Assignment, ctx: &mut Context<Self>) {
        let db = self.db.clone();
        let host = assign.row.host.clone();
        let delay = assign.delay;
        async move { store::replan_late_start(&db, &host, delay, clock::now()).await }
            .into_actor(self)
            .map(move |planned, act, ctx| {
                let at = match planned {
                    Ok(at) => instant_of(at),
                    Err(err) => {
                        tracing::warn!(error = %err, host = %assign.row.host, "could not plan a late fetch; it goes now");
                        Instant::now()
                    }
                };
                let free = act.next_send.get(&assign.row.host).copied();
                let at = free.map_or(at, |free| free.max(at));
                let now = Instant::now();
                if at > now {
                    ctx.run_later(at - now, move |act, ctx| act.assign(assign, ctx));
                } else {
                    act.assign(assign, ctx);
                }
            })
            .spawn(ctx);
    }

    /// Cancels a leased task for good, as `refusal` decided.
    fn cancel(&self, token: LeaseToken, row: &Leased, reason: String) {
        let db = self.db.clone();
        let now = clock::now();
        let url = row.url.clone();
        let crawl = row.crawl_id;
        tracing::info!(url = %row.url, reason, "task cancelled");
        actix::spawn(async move {
            if let Err(err) = store::cancel(&db, &token, crawl, &reason, now).await {
                tracing::error!(error = %err, url, "could not cancel a task");
            }
        });
    }

    /// Sends a leased task to its worker, now that its host may be fetched.
    fn assign(&mut self, assign: Assignment, ctx: &mut Context<Self>) {
        let Assignment {
            worker: id,
            token,
            row,
            lease_until,
            delay,
        } = assign;
        // Given back meanwhile (its worker left, or it was cancelled): the
        // slot and the task are no longer this hand-out's.
        match self.leases.get_mut(&token) {
            Some(entry) if entry.worker == id => entry.delivered = true,
            _ => return,
        }
        let worker = match self.workers.get(&id) {
            Some(worker) if !worker.draining => worker,
            // It began draining while the lease was being taken, and has
            // been told no assignment follows: the task is not its own.
            Some(_) => {
                self.forget(&token);
                self.give_back(
                    token,
                    Setback::Disconnected,
                    "the worker began draining",
                    ctx,
                );
                return;
            }
            // The worker left while the lease was being taken: the task
            // never reached it, which its last error should say rather
            // than read like a held task that was dropped.
            None => {
                self.forget(&token);
                self.give_back(
                    token,
                    Setback::Disconnected,
                    "the worker left before the task reached it",
                    ctx,
                );
                return;
            }
        };
        if !delay.is_zero() {
            self.next_send
                .insert(row.host.clone(), Instant::now() + delay);
        }
        worker.session.do_send(AssignTask {
            lease: token,
            crawl_id: row.crawl_id,
            attempt: u32::try_from(row.attempts).unwrap_or(1),
            kind: row.kind,
            url: row.url,
            site: row.site,
            host: row.host.clone(),
            lease_until,
        });
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
                if !robots.allows(&crate::scrape::robots::path_and_query(&url)) {
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

    /// Gives back every lease taken and not yet sent to its worker, which
    /// waits for its host's delay: for a pause, or a node going away.
    fn give_back_undelivered(&mut self, why: &str, ctx: &mut Context<Self>) {
        let waiting: Vec<LeaseToken> = self
            .leases
            .iter()
            .filter(|(_, e)| !e.delivered)
            .map(|(t, _)| t.clone())
            .collect();
        for token in waiting {
            if let Some(entry) = self.forget(&token) {
                self.return_credits(entry.worker, 1);
            }
            self.give_back(token, Setback::Disconnected, why, ctx);
        }
    }

    /// Tells every node's Dispatcher that tasks are ready, in a cluster.
    fn tell_others(&self) {
        if self.bus.shared() {
            self.bus.control(Control::QueueChanged);
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
        let now = clock::now();
        let error = error.to_owned();
        async move { store::release(&db, &token, &setback, &error, &policy, now).await }
            .into_actor(self)
            .map(|res, act, ctx| {
                match res {
                    Ok(Some(released)) if !released.state.is_final() => act.tell_others(),
                    Ok(_) => {}
                    Err(err) => tracing::error!(error = %err, "could not return a task to the queue; its lease will expire"),
                }
                act.dispatch(ctx);
            })
            .spawn(ctx);
    }
}

/// What a pass leases of one host: for each of `workers`, its share, the
/// credits reserved for it.
#[derive(Debug, Clone)]
struct Step {
    host: String,
    workers: Vec<u64>,
    shares: Vec<Share>,
    pace: Pace,
}

/// Leases each step of a pass's plan, in the pass's `turn`. A host the
/// database refuses leases nothing, and the others are leased all the same.
async fn lease_plan(
    db: DatabaseConnection,
    turn: store::Turn,
    plan: Vec<Step>,
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<(Step, HostLease)> {
    let mut leased = Vec::with_capacity(plan.len());
    for step in plan {
        let pace = step.pace.clone();
        let got = store::lease(&db, &turn, &step.host, &step.shares, pace, lease_until, now).await;
        match got {
            Ok(got) => leased.push((step, got)),
            Err(err) => {
                tracing::error!(error = %err, host = %step.host, "could not lease tasks");
                leased.push((step, HostLease::default()));
            }
        }
    }
    leased
}

/// The moment on this process's clock that `at` names, or now if it passed.
fn instant_of(at: DateTime<Utc>) -> Instant {
    let ahead = (at - clock::now()).to_std().unwrap_or_default();
    Instant::now() + ahead
}

/// Why a leased task is not handed out.
enum Refusal {
    /// The queue was paused meanwhile: back to the queue, unharmed.
    Paused,
    /// It must not be fetched at all, for this reason.
    Cancel(String),
}

/// A leased task on its way to the worker that will fetch it.
struct Assignment {
    worker: u64,
    token: LeaseToken,
    row: Leased,
    lease_until: DateTime<Utc>,
    /// Its host's delay: the least time after this fetch before the next.
    delay: Duration,
}

impl Actor for Dispatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(TICK, |act, ctx| act.dispatch(ctx));
    }
}

impl Supervised for Dispatcher {
    fn restarting(&mut self, ctx: &mut Context<Self>) {
        tracing::warn!(
            workers = self.workers.len(),
            leases = self.leases.len(),
            "dispatcher restarting; its workers reconnect"
        );
        // Its passes and timers went with the old context.
        self.wake = None;
        self.dispatching = false;
        self.again = false;
        self.pause_heard = false;
        self.due.clear();
        self.robots
            .retain(|_, entry| matches!(entry, RobotsEntry::Ready { .. }));
        // The leases it handed out are its own record of which worker holds
        // which task (the database knows tasks, not sockets): kept, and the
        // host slots recounted from them.
        self.in_flight.clear();
        for entry in self.leases.values().filter(|e| e.fetching) {
            *self.in_flight.entry(entry.host.clone()).or_default() += 1;
        }
        // A worker whose disconnect was lost: its tasks go back now.
        let orphans: Vec<LeaseToken> = self
            .leases
            .iter()
            .filter(|(_, e)| !self.workers.contains_key(&e.worker))
            .map(|(t, _)| t.clone())
            .collect();
        for token in orphans {
            self.forget(&token);
            self.give_back(token, Setback::Disconnected, "the worker disconnected", ctx);
        }
        // Tasks waiting out their host's delay lost the timer that would
        // have sent them.
        self.give_back_undelivered(
            "the dispatcher restarted before the task reached its worker",
            ctx,
        );
        // The message it panicked on may have been a worker's credit or
        // result, which nobody sends twice. Each worker delivers what it
        // holds and reconnects, and counts from scratch.
        let ids: Vec<u64> = self.workers.keys().copied().collect();
        for id in ids {
            self.stop_assigning(WorkerId(id), true);
        }
    }
}
