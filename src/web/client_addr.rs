//! The one place a request's client address is decided: the TCP peer, or
//! what a trusted proxy says in `X-Forwarded-For` (the walk is
//! `domain::trusted_proxies`). Login throttling, subscription limits, the
//! audit log, worker addresses and `/metrics`' loopback check all ask here,
//! so behind a proxy they see clients rather than the proxy, and without
//! `server.trusted_proxies` a forged header changes none of them.
//!
//! Not actix's `realip_remote_addr`: it believes `Forwarded` and
//! `X-Forwarded-For` from anyone, left-most entry first.

use std::net::IpAddr;

use actix_web::{web, HttpRequest};

use crate::config::Settings;

/// The client's address; `None` only for a request with no peer (one made
/// up in a test, not one off a socket). WebSocket upgrades pass through
/// here too: the handshake is an ordinary request until `ws::accept`.
pub fn client_addr(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let proxies = req
        .app_data::<web::Data<Settings>>()
        .map(|settings| &settings.server.trusted_proxies);
    Some(match proxies {
        Some(proxies) if proxies.contains(peer) => {
            proxies.client(peer, forwarded_for(req).as_deref())
        }
        // Headers are read only from a trusted peer; anyone else's are
        // whatever the client wrote.
        _ => peer.to_canonical(),
    })
}

/// The client address as text, for keys and rows that store it.
pub fn client_addr_text(req: &HttpRequest) -> String {
    client_addr(req).map_or_else(|| "unknown".to_owned(), |addr| addr.to_string())
}

/// Every `X-Forwarded-For` header, joined in order as one list. A header
/// that is not text makes the whole list unreadable: `None`, so that the
/// peer stands.
fn forwarded_for(req: &HttpRequest) -> Option<String> {
    let mut values = req.headers().get_all("x-forwarded-for").peekable();
    values.peek()?;
    let values: Result<Vec<&str>, _> = values.map(|v| v.to_str()).collect();
    values.ok().map(|values| values.join(","))
}
