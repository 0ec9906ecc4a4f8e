//! The HTTP server: the app every request goes through, bound to
//! `server.bind` (port 0 takes a free port).

use std::net::SocketAddr;
use std::sync::Arc;

use actix_http::HttpService;
use actix_service::map_config;
use actix_web::dev::AppConfig;
use actix_web::middleware::{Compress, DefaultHeaders};
use actix_web::{web, App};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::config::Settings;
use crate::demo::DemoState;
use crate::handover::CLIENT_GRACE;
use crate::web::Parts;

/// Scripts only inline from our own origin; no CDN, no inline scripts.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

/// The server, bound but not yet awaited, and the address it got.
pub struct Listening {
    pub server: actix_server::Server,
    pub address: SocketAddr,
}

/// Binds `server.bind` and builds the server on it.
pub fn web_server(settings: &Settings, parts: Arc<Parts>) -> anyhow::Result<Listening> {
    let demo = web::Data::new(DemoState::new(settings.demo.seed));
    let app = move || {
        let metrics = parts.metrics.clone();
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
            .configure(|cfg| parts.register(cfg))
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
    let address = listeners[0].local_addr()?;
    // actix-web's HttpServer, with one addition it has no setting for: the
    // upgrade service, through which WebSockets leave the HTTP dispatcher.
    let mut server = actix_server::Server::build()
        // Signals are handled by `Application::run_until_stopped`, so that
        // sockets hear 1001 first.
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
    tracing::info!(addr = %address, public_url = settings.public_url(), "listening");
    Ok(Listening {
        server: server.run(),
        address,
    })
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
    let limit = raise_nofile_limit();
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
pub fn loopback(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

/// Raises this process's open-file limit to its hard limit (children, such
/// as the servers a benchmark starts, inherit it); returns the soft limit now in force.
pub fn raise_nofile_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        lim.rlim_cur
    }
}
