//! The steps of `Application::build`, one per subsystem, in the order they
//! depend on each other. Every actor and loop they start runs on the
//! node's `Lifecycle`.

use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use anyhow::Context;
use sea_orm::DatabaseConnection;

use super::heartbeat::Heartbeat;
use super::http::{self, Listening};
use crate::accounts::hub::SessionHub;
use crate::accounts::password::Passwords;
use crate::accounts::throttle::LoginThrottle;
use crate::bus::{Bus, LocalBus, NodeId, RedisBus};
use crate::clock;
use crate::config::{LogFormat, Settings};
use crate::crawl::dispatcher::{Dispatcher, QueuePolicy};
use crate::crawl::lease::RetryPolicy;
use crate::crawl::local_workers::{LocalWorkers, LocalWorkersConfig};
use crate::crawl::merger::{Merger, Merging};
use crate::crawl::scheduler::{Duties, Scheduler};
use crate::crawl::sites::Sites;
use crate::handover::Handover;
use crate::lifecycle::Lifecycle;
use crate::mail::compose::Links;
use crate::mail::notifier::Notifier;
use crate::mail::subscription::Policy;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::roles::Leadership;
use crate::rooms::ids::MessageIds;
use crate::rooms::registry::RoomRegistry;
use crate::rooms::writer::{MessageStore, MessageWriter, Messages};
use crate::supervision::{self, Name, Restart};
use crate::web::rate::RateLimit;
use crate::web::session::Accounts;
use crate::web::subscriptions::Subscriptions;
use crate::web::Parts;
use crate::ws::{Caps, Leaving, Sockets};
use crate::{db, secrets};

/// What `Application::build` keeps of the steps.
pub struct Node {
    pub listening: Listening,
    pub handover: Handover,
    pub registry: Addr<RoomRegistry>,
    pub lifecycle: Lifecycle,
    pub serving: File,
    pub mailer: Addr<Mailer>,
    pub notifier: Addr<Notifier>,
    pub local_workers: Option<Addr<LocalWorkers>>,
}

pub async fn build(settings: Settings) -> anyhow::Result<Node> {
    announce_drill()?;
    let serving = data_dir(&settings)?;
    let secrets = Secrets::load(&settings)?;
    let lifecycle = Lifecycle::new();
    let core = core(&settings, &lifecycle).await?;
    let crawl = crawl(&core, &settings)?;
    let rooms = rooms(&core, &settings).await?;
    let links = Links::new(settings.public_url(), secrets.session_key.as_bytes());
    let mail = mail(&core, &settings, links.clone())?;
    retention(&core, &settings).await?;
    let leaving = Leaving::default();
    let handover = handover(&core, &crawl, &leaving);
    let settings = Arc::new(settings);
    let parts = Arc::new(Parts {
        db: core.db.clone(),
        settings: settings.clone(),
        sites: crawl.sites,
        dispatcher: crawl.dispatcher.clone(),
        merger: crawl.merger,
        scheduler: crawl.scheduler,
        registry: rooms.registry.clone(),
        bus: core.bus.clone(),
        ws: Arc::new(settings.ws.clone()),
        chat: rooms.chat,
        worker_token: secrets.worker_token.clone(),
        api_token: secrets.api_token,
        leaving: leaving.clone(),
        sockets: Sockets::new(Caps {
            node: settings.server.max_connections,
            per_address: settings.server.max_connections_per_address,
        }),
        accounts: accounts(&settings, secrets.session_key, rooms.hub),
        subscriptions: subscriptions(&settings, links),
        admin_limit: Arc::new(RateLimit::new(
            settings.accounts.admin_actions_per_minute.max(1),
            Duration::from_secs(60),
        )),
        metrics: core.metrics.clone(),
    });
    let listening = http::web_server(&settings, parts)?;
    Heartbeat {
        bus: core.bus.clone(),
        addr: listening.address,
        started_at: crate::protocol::client::time(clock::now()),
        metrics: core.metrics.clone(),
        registry: rooms.registry.clone(),
        dispatcher: crawl.dispatcher,
        leaving,
        leadership: core.leadership.clone(),
    }
    .spawn(&lifecycle);
    let local_workers = local_workers(&settings, &listening, secrets.worker_token, &lifecycle)?;
    Ok(Node {
        listening,
        handover,
        registry: rooms.registry,
        lifecycle,
        serving,
        mailer: mail.mailer,
        notifier: mail.notifier,
        local_workers,
    })
}

/// A drill that names no actor would silently test nothing.
fn announce_drill() -> anyhow::Result<()> {
    if let Some(actor) = supervision::drill_target().map_err(anyhow::Error::msg)? {
        tracing::warn!(
            actor = actor.as_str(),
            "fault drill: this actor will panic once"
        );
    }
    Ok(())
}

/// Creates the data dir and takes the lock that keeps `bazaar admin
/// restore` away while the node runs.
fn data_dir(settings: &Settings) -> anyhow::Result<File> {
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "could not create the data dir {}",
            settings.data_dir.display()
        )
    })?;
    crate::admin::backup::lock_shared(&settings.data_dir, "start the server")
}

/// The data dir's secrets, generated on first start unless configured.
struct Secrets {
    worker_token: String,
    api_token: String,
    session_key: String,
}

impl Secrets {
    fn load(settings: &Settings) -> anyhow::Result<Secrets> {
        let dir = &settings.data_dir;
        Ok(Secrets {
            worker_token: secrets::load_or_create(
                settings.workers.token.as_deref(),
                dir,
                "worker_token",
            )?,
            api_token: secrets::load_or_create(settings.api.token.as_deref(), dir, "api_token")?,
            session_key: secrets::load_or_create(
                settings.accounts.session_key.as_deref(),
                dir,
                "session_key",
            )?,
        })
    }
}

/// What every subsystem is built on.
struct Core {
    db: DatabaseConnection,
    db_url: String,
    bus: Arc<dyn Bus>,
    metrics: Arc<Metrics>,
    leadership: Leadership,
    lifecycle: Lifecycle,
}

/// The database, the bus, and the scheduler role.
async fn core(settings: &Settings, lifecycle: &Lifecycle) -> anyhow::Result<Core> {
    let db_url = settings.database_url();
    let db = db::connect(&db_url).await?;
    db::checkpoint_in_background(&db_url, lifecycle).await?;
    tracing::info!(database = %db::redact(&db_url), "database ready");
    let bus = bus(settings, lifecycle)?;
    // Taken before the Scheduler starts, so that a single node runs its
    // schedule from the first tick.
    let leadership = Leadership::start(db.clone(), bus.node().to_string(), lifecycle).await;
    Ok(Core {
        db,
        db_url,
        bus,
        metrics: Arc::new(Metrics::default()),
        leadership,
        lifecycle: lifecycle.clone(),
    })
}

/// LocalBus on one node, RedisBus in a cluster.
fn bus(settings: &Settings, lifecycle: &Lifecycle) -> anyhow::Result<Arc<dyn Bus>> {
    let node = NodeId::generate();
    Ok(match &settings.bus.redis_url {
        Some(url) => {
            tracing::info!(%node, redis = %db::redact(url), "cluster mode: rooms are shared over Redis");
            Arc::new(RedisBus::start(url, node, lifecycle).context("could not start the bus")?)
        }
        None => Arc::new(LocalBus::new(node)),
    })
}

struct Crawl {
    sites: Arc<Sites>,
    merger: Addr<Merger>,
    dispatcher: Addr<Dispatcher>,
    scheduler: Addr<Scheduler>,
}

/// The Merger, the Dispatcher and the Scheduler.
fn crawl(core: &Core, settings: &Settings) -> anyhow::Result<Crawl> {
    let sites = Arc::new(Sites::load(
        settings.crawl.sites_file.as_deref(),
        settings.public_url(),
    )?);
    let retry = RetryPolicy {
        max_attempts: settings.crawl.max_attempts.max(1),
        base: settings.crawl.retry_base,
        max: settings.crawl.retry_max,
    };
    let policy = QueuePolicy {
        lease: settings.workers.lease,
        heartbeat: settings.workers.heartbeat,
        retry,
    };
    let merger = Merger::new(Merging {
        db: core.db.clone(),
    });
    let merger = supervision::start(Name::Merger, Restart::Always, &core.lifecycle, |_| merger);
    let dispatcher = Dispatcher::new(
        core.db.clone(),
        core.bus.clone(),
        sites.clone(),
        policy,
        core.metrics.clone(),
    );
    let dispatcher = supervision::start(Name::Dispatcher, Restart::Always, &core.lifecycle, |_| {
        dispatcher
    });
    let duties = Duties {
        retry,
        every: settings.crawl.every,
        leadership: core.leadership.clone(),
    };
    let scheduler = Scheduler::new(
        core.db.clone(),
        sites.clone(),
        dispatcher.clone(),
        core.bus.clone(),
        duties,
    );
    let scheduler = supervision::start(Name::Scheduler, Restart::Always, &core.lifecycle, |_| {
        scheduler
    });
    // Routed here rather than in `started`, which runs again after a
    // restart: a second route would deliver everything twice.
    core.bus.route_control(dispatcher.clone().recipient());
    Ok(Crawl {
        sites,
        merger,
        dispatcher,
        scheduler,
    })
}

struct Rooms {
    chat: Arc<crate::config::ChatSettings>,
    hub: Addr<SessionHub>,
    registry: Addr<RoomRegistry>,
}

/// The MessageWriter, the SessionHub and the RoomRegistry.
async fn rooms(core: &Core, settings: &Settings) -> anyhow::Result<Rooms> {
    let chat = Arc::new(settings.chat.clone());
    let writer = MessageWriter::new(Messages {
        db: db::open_store(&core.db, &core.db_url).await?,
    });
    let store = MessageStore {
        ids: Arc::new(MessageIds::new(core.db.clone())),
        writer: supervision::start(Name::Writer, Restart::Always, &core.lifecycle, |_| writer),
    };
    let hub = SessionHub::new(core.bus.clone());
    let hub = supervision::start(Name::Hub, Restart::Always, &core.lifecycle, |_| hub);
    let registry = RoomRegistry::new(
        core.db.clone(),
        core.bus.clone(),
        chat.clone(),
        store,
        hub.clone(),
        core.lifecycle.clone(),
    );
    let registry = supervision::start(Name::Registry, Restart::Always, &core.lifecycle, |_| {
        registry
    });
    // Routed here rather than in their `started`, which runs again after
    // a restart: a second route would deliver everything twice.
    core.bus.route_inbox(registry.clone().recipient());
    core.bus.route_accounts(hub.clone().recipient());
    Ok(Rooms {
        chat,
        hub,
        registry,
    })
}

struct Mail {
    mailer: Addr<Mailer>,
    notifier: Addr<Notifier>,
}

/// The Mailer, which sends the outbox, and the Notifier, which queues
/// digests and price alerts.
fn mail(core: &Core, settings: &Settings, links: Links) -> anyhow::Result<Mail> {
    Ok(Mail {
        mailer: crate::mail::start(core.db.clone(), settings, &core.lifecycle)
            .context("could not start the Mailer")?,
        notifier: crate::mail::notifier::start(
            core.db.clone(),
            links,
            settings.mail.notify_every,
            core.leadership.clone(),
            &core.lifecycle,
        ),
    })
}

/// Retention passes, once per cluster: on the node holding the scheduler
/// role.
async fn retention(core: &Core, settings: &Settings) -> anyhow::Result<()> {
    crate::retention::spawn(
        db::open_pruner(&core.db, &core.db_url).await?,
        settings.retention.clone(),
        core.leadership.clone(),
        core.metrics.clone(),
        &core.lifecycle,
    );
    Ok(())
}

/// The Handover actor, which an admin's Drain node reaches over the bus;
/// the value returned hands over on a signal.
fn handover(core: &Core, crawl: &Crawl, leaving: &Leaving) -> Handover {
    let handover = Handover {
        node: core.bus.node().to_string(),
        db: core.db.clone(),
        leaving: leaving.clone(),
        dispatcher: crawl.dispatcher.clone(),
        leadership: core.leadership.clone(),
        metrics: core.metrics.clone(),
        spread: core.bus.shared(),
    };
    let drains = handover.clone();
    let drains = supervision::start(Name::Handover, Restart::Always, &core.lifecycle, |_| drains);
    core.bus.route_control(drains.recipient());
    handover
}

fn accounts(settings: &Settings, session_key: String, hub: Addr<SessionHub>) -> Arc<Accounts> {
    Arc::new(Accounts {
        key: session_key.into_bytes(),
        lifetime: settings.accounts.session_lifetime,
        secure: settings.public_url().starts_with("https://"),
        throttle: LoginThrottle::new(
            settings.accounts.login_attempts_per_name,
            settings.accounts.login_attempts_per_address,
            settings.accounts.login_window,
        ),
        passwords: Passwords::new(settings.accounts.password_hashes),
        registrations: RateLimit::new(
            settings.accounts.registrations_per_address.max(1),
            settings.accounts.registration_window,
        ),
        hub,
    })
}

fn subscriptions(settings: &Settings, links: Links) -> Arc<Subscriptions> {
    Arc::new(Subscriptions {
        links,
        policy: Policy {
            confirm_ttl: settings.mail.confirm_ttl,
            resend_after: settings.mail.resend_after,
        },
        limit: RateLimit::new(
            settings.mail.subscribes_per_hour.max(1),
            Duration::from_secs(3600),
        ),
    })
}

/// `workers.local` worker processes, connected to the address the server
/// got.
fn local_workers(
    settings: &Settings,
    listening: &Listening,
    token: String,
    lifecycle: &Lifecycle,
) -> anyhow::Result<Option<Addr<LocalWorkers>>> {
    if settings.workers.local == 0 {
        return Ok(None);
    }
    let exe =
        std::env::current_exe().context("could not find this program to start local workers")?;
    let config = LocalWorkersConfig {
        exe,
        server: format!("ws://{}", http::loopback(listening.address)),
        token,
        count: settings.workers.local,
        slots: settings.workers.slots.max(1),
        json_logs: settings.log.format == LogFormat::Json,
    };
    Ok(Some(supervision::start(
        Name::LocalWorkers,
        Restart::Always,
        lifecycle,
        move |_| LocalWorkers::new(config),
    )))
}
