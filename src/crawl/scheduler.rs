//! The Scheduler actor: starts crawls (on schedule, or when asked), sweeps
//! expired leases back into the queue, closes crawls with nothing left, and
//! opens and closes auction lots on time.
//!
//! Every node runs one, and each answers `StartCrawl` (the database lets one
//! crawl run at a time), but only the node holding the scheduler role
//! (`roles.rs`) runs the timed duties: in a cluster they run once.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use entity::crawls::CrawlStatus;
use sea_orm::DatabaseConnection;

use super::dispatcher::{Dispatcher, LeasesExpired};
use super::lease::RetryPolicy;
use super::sites::Sites;
use super::store::{self, StartOutcome};
use crate::bus::{Bus, Control};
use crate::clock::{self, delta};
use crate::roles::Leadership;
use crate::supervision::{self, Name};

/// How often expired leases are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How often the crawl schedule is checked.
const SCHEDULE_EVERY: Duration = Duration::from_secs(5);
/// How often lots due to open or close are looked for: the most a lot's
/// start or end can lag.
const LOTS_EVERY: Duration = Duration::from_millis(200);

/// How the Scheduler's timed duties run.
pub struct Duties {
    pub retry: RetryPolicy,
    /// Time between scheduled crawls; zero turns the schedule off.
    pub every: Duration,
    /// Whether this node runs them.
    pub leadership: Leadership,
}

pub struct Scheduler {
    db: DatabaseConnection,
    sites: Arc<Sites>,
    dispatcher: Addr<Dispatcher>,
    retry: RetryPolicy,
    /// Time between scheduled crawls; zero turns the schedule off.
    every: Duration,
    sweeping: bool,
    bus: Arc<dyn Bus>,
    lots_busy: bool,
    leadership: Leadership,
}

impl Scheduler {
    pub fn new(
        db: DatabaseConnection,
        sites: Arc<Sites>,
        dispatcher: Addr<Dispatcher>,
        bus: Arc<dyn Bus>,
        duties: Duties,
    ) -> Scheduler {
        Scheduler {
            db,
            sites,
            dispatcher,
            retry: duties.retry,
            every: duties.every,
            sweeping: false,
            bus,
            lots_busy: false,
            leadership: duties.leadership,
        }
    }

    fn tick_lots(&mut self, ctx: &mut Context<Self>) {
        if self.lots_busy || !self.leadership.held() {
            return;
        }
        self.lots_busy = true;
        let db = self.db.clone();
        let bus = self.bus.clone();
        let now = clock::now();
        async move { crate::auction::schedule::run_due(&db, bus.as_ref(), now).await }
            .into_actor(self)
            .map(|(), act, _| act.lots_busy = false)
            .spawn(ctx);
    }

    fn sweep(&mut self, ctx: &mut Context<Self>) {
        if self.sweeping || !self.leadership.held() {
            return;
        }
        self.sweeping = true;
        let db = self.db.clone();
        let retry = self.retry;
        let now = clock::now();
        async move {
            let released = store::expire_leases(&db, &retry, now).await?;
            store::finish_idle_crawls(&db, now).await?;
            Ok::<_, sea_orm::DbErr>(released)
        }
        .into_actor(self)
        .map(|res, act, _| {
            act.sweeping = false;
            match res {
                Ok(released) if !released.is_empty() => {
                    act.dispatcher.do_send(LeasesExpired { released });
                }
                Ok(_) => {}
                Err(err) => tracing::error!(error = %err, "lease sweep failed"),
            }
        })
        .spawn(ctx);
    }

    fn check_schedule(&mut self, ctx: &mut Context<Self>) {
        if self.every.is_zero() || !self.leadership.held() {
            return;
        }
        let db = self.db.clone();
        let now = clock::now();
        let every = delta(self.every);
        async move {
            let latest = store::latest_crawl(&db).await?;
            Ok::<_, sea_orm::DbErr>(match latest {
                None => true,
                Some(c) => c.status != CrawlStatus::Running && c.started_at + every <= now,
            })
        }
        .into_actor(self)
        .map(|due, act, ctx| match due {
            Ok(true) => act.start(ctx, "schedule"),
            Ok(false) => {}
            Err(err) => tracing::error!(error = %err, "could not read the crawl schedule"),
        })
        .spawn(ctx);
    }

    fn start(&mut self, ctx: &mut Context<Self>, trigger: &'static str) {
        let msg = StartCrawl { trigger };
        ctx.address().do_send(msg);
    }
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(SWEEP_EVERY, |act, ctx| act.sweep(ctx));
        self.check_schedule(ctx);
        ctx.run_interval(SCHEDULE_EVERY, |act, ctx| act.check_schedule(ctx));
        ctx.run_interval(LOTS_EVERY, |act, ctx| act.tick_lots(ctx));
    }
}

impl Supervised for Scheduler {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!("scheduler restarted");
        self.sweeping = false;
    }
}

/// Start a crawl of every site unless one is running.
#[derive(Message)]
#[rtype(result = "Result<StartOutcome, String>")]
pub struct StartCrawl {
    /// `schedule`, `visitor`, `api` or `admin`.
    pub trigger: &'static str,
}

impl Handler<StartCrawl> for Scheduler {
    type Result = ResponseActFuture<Self, Result<StartOutcome, String>>;

    fn handle(&mut self, msg: StartCrawl, _: &mut Context<Self>) -> Self::Result {
        supervision::drill(Name::Scheduler);
        let db = self.db.clone();
        let sites = self.sites.clone();
        let now = clock::now();
        Box::pin(
            async move { store::start_crawl(&db, &sites, msg.trigger, now).await }
                .into_actor(self)
                .map(move |res, act, _| match res {
                    Ok(outcome) => {
                        if let StartOutcome::Started(id) = outcome {
                            tracing::info!(crawl = id, trigger = msg.trigger, "crawl started");
                            act.bus.control(Control::QueueChanged);
                        }
                        Ok(outcome)
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "could not start a crawl");
                        Err(err.to_string())
                    }
                }),
        )
    }
}
