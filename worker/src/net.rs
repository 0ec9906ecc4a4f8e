//! Outbound HTTP and WebSocket connections with Nagle's algorithm off.
//!
//! Frames and requests are small and each is waited for: with Nagle on, a
//! message written in two segments waits for the peer's delayed ACK, about
//! 40 ms on Linux, before its second half leaves. That stall once set the
//! pace of a whole crawl.

use actix_service::{apply_fn, Service};
use actix_tls::connect::{
    ConnectError, ConnectInfo, Connection as TcpConnection, Connector, ConnectorService, Resolver,
};
use awc::http::Uri;
use tokio::net::TcpStream;

/// An awc connector whose TCP streams have `TCP_NODELAY` set.
pub fn connector() -> awc::Connector<
    impl Service<ConnectInfo<Uri>, Response = TcpConnection<Uri, TcpStream>, Error = ConnectError>
        + Clone,
> {
    let tcp = Connector::new(Resolver::default()).service();
    let nodelay = apply_fn::<_, _, _, _, _, ConnectInfo<Uri>, _, _>(
        tcp,
        |req: ConnectInfo<Uri>, tcp: &ConnectorService| {
            let connecting = tcp.call(req);
            async move {
                let conn: TcpConnection<Uri, TcpStream> = connecting.await?;
                // Only fails on a socket that is already closed; the request
                // then fails on its own.
                let _ = conn.io_ref().set_nodelay(true);
                Ok::<_, ConnectError>(conn)
            }
        },
    );
    awc::Connector::new().connector(nodelay)
}
