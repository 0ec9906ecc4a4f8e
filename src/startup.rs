//! Building and running the server: the database, the supervision tree, the
//! HTTP server, and the local workers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use actix_http::HttpService;
use actix_server::ServerHandle;
use actix_service::map_config;
use actix_web::dev::AppConfig;
use actix_web::middleware::{Compress, DefaultHeaders};
use actix_web::{web, App};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::accounts::hub::SessionHub;
use crate::accounts::password::Passwords;
use crate::accounts::throttle::LoginThrottle;
use crate::admin::fleet::{Live, VERSION};
use crate::bus::NodeInfo;
use crate::bus::{Bus, LocalBus, NodeId, RedisBus};
use crate::clock;
use crate::config::{LogFormat, Settings};
use crate::crawl::dispatcher::{Dispatcher, QueuePolicy};
use crate::crawl::lease::RetryPolicy;
use crate::crawl::local_workers::{LocalWorkers, LocalWorkersConfig};
use crate::crawl::merger::{Merger, Merging};
use crate::crawl::scheduler::{Duties, Scheduler};
use crate::crawl::sites::Sites;
use crate::demo::DemoState;
use crate::handover::{within, Handover, CLIENT_GRACE};
use crate::mail::compose::Links;
use crate::mail::subscription::Policy;
use crate::metrics::{Connection, Metrics};
use crate::roles::Leadership;
use crate::rooms::ids::MessageIds;
use crate::rooms::registry::{OpenChatRooms, RoomRegistry};
use crate::rooms::writer::{MessageStore, MessageWriter, Messages};
use crate::supervision::{self, Name, Restart};
use crate::web::rate::RateLimit;
use crate::web::session::Accounts;
use crate::web::subscriptions::Subscriptions;
use crate::web::AppState;
use crate::ws::{Caps, Leaving, Sockets};
use crate::{db, secrets};

/// Scripts only inline from our own origin; no CDN, no inline scripts.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

/// Runs `bazaar serve` until the process is told to stop.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    // A drill that names no actor would silently test nothing.
    if let Some(actor) = supervision::drill_target().map_err(anyhow::Error::msg)? {
        tracing::warn!(
            actor = actor.as_str(),
            "fault drill: this actor will panic once"
        );
    }
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "could not create the data dir {}",
            settings.data_dir.display()
        )
    })?;
    // Held until the server stops: `bazaar admin restore` refuses to run
    // while it is.
    let _serving = crate::admin::backup::lock_for_serving(&settings.data_dir)?;
    let worker_token = secrets::load_or_create(
        settings.workers.token.as_deref(),
        &settings.data_dir,
        "worker_token",
    )?;
    let api_token = secrets::load_or_create(
        settings.api.token.as_deref(),
        &settings.data_dir,
        "api_token",
    )?;
    let url = settings.database_url();
    let db = db::connect(&url).await?;
    db::checkpoint_in_background(&db);
    tracing::info!(database = %db::redact(&url), "database ready");
    let sites = Arc::new(Sites::load(
        settings.crawl.sites_file.as_deref(),
        settings.public_url(),
    )?);
    let started_at = crate::protocol::client::time(clock::now());

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
    let metrics = Arc::new(Metrics::default());
    let merger = {
        let db = db.clone();
        supervision::start(Name::Merger, Restart::Always, move |_| {
            Merger::new(Merging { db: db.clone() })
        })
    };
    let node = NodeId::generate();
    let bus: Arc<dyn Bus> = match &settings.bus.redis_url {
        Some(url) => {
            tracing::info!(%node, redis = %db::redact(url), "cluster mode: rooms are shared over Redis");
            Arc::new(RedisBus::start(url, node).context("could not start the bus")?)
        }
        None => Arc::new(LocalBus::new(node)),
    };
    let dispatcher = {
        let (db, bus, sites, metrics) = (db.clone(), bus.clone(), sites.clone(), metrics.clone());
        supervision::start(Name::Dispatcher, Restart::Always, move |_| {
            Dispatcher::new(db, bus, sites, policy, metrics)
        })
    };
    // Taken before the Scheduler starts, so that a single node runs its
    // schedule from the first tick.
    let leadership = Leadership::start(db.clone(), bus.node().to_string()).await;
    let scheduler = {
        let (db, sites, dispatcher, bus, leadership) = (
            db.clone(),
            sites.clone(),
            dispatcher.clone(),
            bus.clone(),
            leadership.clone(),
        );
        let every = settings.crawl.every;
        supervision::start(Name::Scheduler, Restart::Always, move |_| {
            let duties = Duties {
                retry,
                every,
                leadership,
            };
            Scheduler::new(db, sites, dispatcher, bus, duties)
        })
    };

    let chat = Arc::new(settings.chat.clone());
    let store = {
        let store_db = db::open_store(&db, &url).await?;
        MessageStore {
            ids: Arc::new(MessageIds::new(db.clone())),
            writer: supervision::start(Name::Writer, Restart::Always, move |_| {
                MessageWriter::new(Messages {
                    db: store_db.clone(),
                })
            }),
        }
    };
    let hub = {
        let bus = bus.clone();
        supervision::start(Name::Hub, Restart::Always, move |_| SessionHub::new(bus))
    };
    let registry = {
        let (db, bus, chat, hub) = (db.clone(), bus.clone(), chat.clone(), hub.clone());
        supervision::start(Name::Registry, Restart::Always, move |_| {
            RoomRegistry::new(db, bus, chat, store, hub)
        })
    };

    // Routed here rather than in their `started`, which runs again after
    // a restart: a second route would deliver everything twice.
    bus.route_inbox(registry.clone().recipient());
    bus.route_accounts(hub.clone().recipient());
    bus.route_control(dispatcher.clone().recipient());

    let session_key = secrets::load_or_create(
        settings.accounts.session_key.as_deref(),
        &settings.data_dir,
        "session_key",
    )?;
    let links = Links::new(settings.public_url(), session_key.as_bytes());
    let subscriptions = Arc::new(Subscriptions {
        links: links.clone(),
        policy: Policy {
            confirm_ttl: settings.mail.confirm_ttl,
            resend_after: settings.mail.resend_after,
        },
        limit: RateLimit::new(
            settings.mail.subscribes_per_hour.max(1),
            Duration::from_secs(3600),
        ),
    });
    let accounts = Arc::new(Accounts {
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
    });
    // Once per cluster: on the node holding the scheduler role.
    crate::retention::spawn(
        db::open_pruner(&db, &url).await?,
        settings.retention.clone(),
        leadership.clone(),
        metrics.clone(),
    );
    // Held for as long as the server runs: the Mailer sends the outbox.
    let _mailer =
        crate::mail::start(db.clone(), &settings).context("could not start the Mailer")?;
    // Held likewise: the Notifier queues digests and price alerts.
    let _notifier = crate::mail::notifier::start(
        db.clone(),
        links,
        settings.mail.notify_every,
        leadership.clone(),
    );

    let settings = Arc::new(settings);
    let leaving = Leaving::default();
    let handover = Handover {
        node: bus.node().to_string(),
        db: db.clone(),
        leaving: leaving.clone(),
        dispatcher: dispatcher.clone(),
        leadership,
        metrics: metrics.clone(),
        spread: bus.shared(),
    };
    let drains = {
        let handover = handover.clone();
        supervision::start(Name::Handover, Restart::Always, move |_| handover)
    };
    bus.route_control(drains.recipient());
    let sockets = metrics.clone();
    let rooms = registry.clone();
    let state = web::Data::new(AppState {
        db,
        settings: settings.clone(),
        sites,
        dispatcher,
        merger,
        scheduler,
        registry,
        bus: bus.clone(),
        ws: Arc::new(settings.ws.clone()),
        chat,
        worker_token: worker_token.clone(),
        api_token,
        leaving: leaving.clone(),
        sockets: Sockets::new(Caps {
            node: settings.server.max_connections,
            per_address: settings.server.max_connections_per_address,
        }),
        accounts,
        subscriptions,
        admin_limit: Arc::new(RateLimit::new(
            settings.accounts.admin_actions_per_minute.max(1),
            Duration::from_secs(60),
        )),
        metrics,
    });
    let demo = web::Data::new(DemoState::new(settings.demo.seed));
    let app = move || {
        let metrics = state.metrics.clone();
        App::new()
            .wrap(Compress::default())
            .wrap(
                DefaultHeaders::new()
                    .add(("Content-Security-Policy", CSP))
                    .add(("X-Content-Type-Options", "nosniff"))
                    .add(("Referrer-Policy", "same-origin")),
            )
            .wrap_fn(crate::web::request_id::echo)
            .wrap(TracingLogger::default())
            // Outermost, so that the time includes the other middleware.
            .wrap_fn(move |req, service| crate::web::metrics::time_request(&metrics, req, service))
            .app_data(state.clone())
            .app_data(demo.clone())
            .app_data(crate::web::error::json_config())
            .app_data(crate::web::error::query_config())
            .app_data(crate::web::error::path_config())
            .app_data(crate::web::error::form_config())
            .configure(crate::web::configure)
    };
    check_open_files(settings.server.max_connections);
    let listeners = listen(&settings.server.bind)
        .with_context(|| format!("could not listen on {}", settings.server.bind))?;
    let addr = listeners[0].local_addr()?;
    // actix-web's HttpServer, with one addition it has no setting for: the
    // upgrade service, through which WebSockets leave the HTTP dispatcher.
    let mut server = actix_server::Server::build()
        // Signals are handled below, so that sockets hear 1001 first.
        .disable_signals()
        .shutdown_timeout(CLIENT_GRACE.as_secs());
    for listener in listeners {
        let local = listener.local_addr()?;
        let app = app.clone();
        server = server.listen(format!("bazaar-{local}"), listener, move || {
            HttpService::build()
                // WebSocket frames go out one by one and are waited for;
                // Nagle's algorithm would hold some back for a delayed ACK
                // (see `net`).
                .tcp_nodelay(true)
                .local_addr(local)
                .upgrade(crate::ws::handover(app.clone()))
                .finish(map_config(app(), |_| AppConfig::default()))
                .tcp()
        })?;
    }
    tracing::info!(%addr, public_url = settings.public_url(), "listening");
    spawn_heartbeat(Heartbeat {
        bus,
        addr,
        started_at,
        metrics: sockets.clone(),
        registry: rooms.clone(),
        dispatcher: handover.dispatcher.clone(),
        leaving: leaving.clone(),
        leadership: handover.leadership.clone(),
    });

    // Kept alive for as long as the server runs; dropping it stops nothing,
    // but naming it documents that the children belong to this scope.
    let _local_workers = if settings.workers.local > 0 {
        let exe = std::env::current_exe()
            .context("could not find this program to start local workers")?;
        let config = LocalWorkersConfig {
            exe,
            server: format!("ws://{}", loopback(addr)),
            token: worker_token,
            count: settings.workers.local,
            slots: settings.workers.slots.max(1),
            json_logs: settings.log.format == LogFormat::Json,
        };
        Some(supervision::start(
            Name::LocalWorkers,
            Restart::Always,
            move |_| LocalWorkers::new(config),
        ))
    } else {
        None
    };
    let server = server.run();
    let shutdown = actix_web::rt::spawn(leave_on_signal(server.handle(), handover, rooms));
    let served = server.await.context("the HTTP server failed");
    if leaving.is_cancelled() {
        // The server has stopped, but rooms may still be storing what they
        // published: the signal's handler says when.
        let _ = shutdown.await;
    } else {
        shutdown.abort();
    }
    served
}

/// What a node's heartbeat describes it from.
struct Heartbeat {
    bus: Arc<dyn Bus>,
    addr: SocketAddr,
    started_at: String,
    metrics: Arc<Metrics>,
    registry: Addr<RoomRegistry>,
    dispatcher: Addr<Dispatcher>,
    leaving: Leaving,
    leadership: Leadership,
}

/// Describes this node to the bus every `nodes::HEARTBEAT`: in a cluster,
/// the other nodes count it alive by this, and `/api/nodes` and every
/// node's admin pages show it, its workers and its rooms as it says.
fn spawn_heartbeat(beat: Heartbeat) {
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(crate::bus::nodes::HEARTBEAT);
        loop {
            tick.tick().await;
            // An actor that did not answer (it is restarting) leaves its
            // part empty for one beat rather than the node unlisted.
            let live = Live::read(
                &beat.dispatcher,
                &beat.registry,
                &beat.metrics,
                &beat.leaving,
            )
            .await
            .unwrap_or_else(|_| Live {
                clients: beat.metrics.open_now(Connection::Client),
                draining: beat.leaving.is_cancelled(),
                ..Live::default()
            });
            let mut info = NodeInfo {
                id: beat.bus.node().to_string(),
                address: beat.addr.to_string(),
                started_at: beat.started_at.clone(),
                version: VERSION.to_owned(),
                scheduler: beat.leadership.held(),
                ..NodeInfo::default()
            };
            live.describe(&mut info);
            beat.bus.heartbeat(info);
        }
    });
}

/// On SIGTERM or SIGINT: the node hands over its workers and clients
/// (`handover.rs`), then the server stops once requests in flight finish
/// and the rooms have stored what they published. A second signal stops it
/// at once.
async fn leave_on_signal(server: ServerHandle, handover: Handover, registry: Addr<RoomRegistry>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("could not install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down: handing over (signal again to stop at once)");
    // The HTTP server keeps accepting meanwhile: pages are still served,
    // and new sockets are refused with 503, which sends them elsewhere.
    let graceful = async {
        handover.run().await;
        // Members see a message before it is stored; the rooms store the
        // rest before the process ends.
        let stored = within(CLIENT_GRACE, || async {
            registry.send(OpenChatRooms).await.unwrap_or(0) == 0
        });
        tokio::join!(stored, server.stop(true))
    };
    tokio::select! {
        _ = graceful => {}
        _ = term.recv() => server.stop(false).await,
        _ = int.recv() => server.stop(false).await,
    }
}

/// Binds every address `bind` resolves to, as actix-web's HttpServer does:
/// reusable at once after a restart, with a backlog deep enough for
/// thousands of clients connecting together.
fn listen(bind: &str) -> anyhow::Result<Vec<std::net::TcpListener>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mut listeners = Vec::new();
    for addr in std::net::ToSocketAddrs::to_socket_addrs(bind)? {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(BACKLOG)?;
        listeners.push(socket.into());
    }
    anyhow::ensure!(!listeners.is_empty(), "{bind} names no address");
    Ok(listeners)
}

/// Connections waiting to be accepted, per listening socket.
const BACKLOG: i32 = 1024;

/// Files a node keeps open besides its sockets: the database, logs, HTTP
/// connections that are not sockets, local workers' pipes.
const OTHER_FILES: u64 = 1024;

/// Every socket is a file: raises the open-file limit as far as the system
/// allows, and warns when `server.max_connections` sockets would not fit,
/// since past the limit connections fail rather than get a clear 503.
fn check_open_files(max_connections: usize) {
    let limit = crate::bench::raise_nofile_limit();
    let needed = max_connections as u64 + OTHER_FILES;
    if needed > limit {
        tracing::warn!(
            limit,
            needed,
            "server.max_connections needs more open files than this process may have; \
             raise its limit (ulimit -n, LimitNOFILE=) or lower the setting"
        );
    }
}

/// Where local workers reach a server bound to `addr` (a wildcard bind is
/// reached on loopback).
fn loopback(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}
