//! The idle benchmark: C WebSocket connections to `/ws` that say nothing,
//! and the server's resident memory before and while they are open.
//!
//! Connections come from 127.0.0.2..=127.0.0.254 (the socket is bound before
//! connecting) so that tens of thousands fit in the ephemeral port range, and
//! the upgrade is a hand-written request: nothing is read after it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use url::Url;

use super::pin::Pinning;
use super::{proc_status_kib, raise_nofile_limit, ChildServer};

#[derive(Debug, Clone, Args)]
pub struct IdleBench {
    /// WebSocket connections to open.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Target this running server (http://host:port) instead of starting one;
    /// its memory is then not measured.
    #[arg(long)]
    server: Option<Url>,
    /// Seconds to hold the connections open before measuring.
    #[arg(long, default_value_t = 3.0)]
    hold: f64,
    #[command(flatten)]
    pinning: Pinning,
}

/// Connections opened at once.
const CONNECT_CONCURRENCY: usize = 128;

/// The source address of connection `i`: 127.0.0.2 ..= 127.0.0.254 in turn.
fn source_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + (i % 253) as u8)
}

async fn open(
    server: SocketAddr,
    source: Option<Ipv4Addr>,
    host: &str,
    name: &str,
) -> anyhow::Result<TcpStream> {
    let socket = match server {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(IpAddr::V4(ip), 0))
            .with_context(|| format!("bind {ip}"))?;
    }
    let mut stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    let request = format!(
        "GET /ws?name={name} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > 8192 {
            bail!("the server closed the connection during the upgrade");
        }
        head.extend_from_slice(&buf[..n]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        let line = String::from_utf8_lossy(&head);
        bail!(
            "upgrade refused: {}",
            line.lines().next().unwrap_or_default()
        );
    }
    Ok(stream)
}

pub async fn run(bench: IdleBench) -> anyhow::Result<()> {
    let limit = raise_nofile_limit();
    let needed = bench.connections as u64 + 64;
    if needed > limit {
        bail!(
            "--connections {} needs about {needed} open files in this process (and as many in the \
             server), but the open-file limit is {limit} even after raising it to the hard limit; \
             ask for fewer connections or raise the hard limit (ulimit -Hn, limits.conf)",
            bench.connections
        );
    }
    eprintln!("open-file limit: {limit} (raised to the hard limit; a child server inherits it)");
    bench.pinning.apply(bench.server.is_none())?;
    let child = match &bench.server {
        Some(_) => None,
        None => Some(ChildServer::start(&[], bench.pinning.server()).await?),
    };
    let server = match (&bench.server, &child) {
        (Some(url), _) => url.clone(),
        (None, Some(child)) => Url::parse(&child.base)?,
        (None, None) => unreachable!(),
    };
    let host = server
        .host_str()
        .context("--server has no host")?
        .to_owned();
    let port = server
        .port_or_known_default()
        .context("--server has no port")?;
    let host_header = format!("{host}:{port}");
    let addr = tokio::net::lookup_host(&host_header)
        .await?
        .next()
        .with_context(|| format!("{host_header} does not resolve"))?;
    let spread = matches!(addr.ip(), IpAddr::V4(ip) if ip.is_loopback());
    if !spread {
        eprintln!("the server is not on 127.0.0.0/8: not spreading source addresses");
    }
    let pid = child.as_ref().map(|c| c.pid);

    tokio::time::sleep(Duration::from_millis(500)).await;
    let before_kib = pid.map_or(0, |p| proc_status_kib(p, "VmRSS"));
    let started = Instant::now();
    let results: Vec<anyhow::Result<TcpStream>> = futures_util::stream::iter(0..bench.connections)
        .map(|i| {
            let host_header = &host_header;
            async move {
                let source = spread.then(|| source_addr(i));
                open(addr, source, host_header, &format!("idle{i}")).await
            }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    let connect_seconds = started.elapsed().as_secs_f64();
    let mut open_streams = Vec::with_capacity(results.len());
    let mut failed = 0usize;
    let mut first_error = None;
    for r in results {
        match r {
            Ok(s) => open_streams.push(s),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = &first_error {
        eprintln!("{failed} connections failed; the first: {e:#}");
    }
    let opened = open_streams.len();
    tokio::time::sleep(Duration::from_secs_f64(bench.hold.max(0.0))).await;
    let open_kib = pid.map_or(0, |p| proc_status_kib(p, "VmRSS"));
    let peak_kib = pid.map_or(0, |p| proc_status_kib(p, "VmHWM"));
    drop(open_streams);
    if let Some(child) = child {
        child.stop().await;
    }

    let per_conn = if opened > 0 && pid.is_some() {
        open_kib.saturating_sub(before_kib) as f64 / opened as f64
    } else {
        0.0
    };
    if pid.is_some() {
        println!(
            "{opened} idle connections ({failed} failed) opened in {connect_seconds:.2} s  \
             server RSS {} MiB before, {} MiB with them open  {per_conn:.1} KiB per connection  peak RSS {} MiB",
            before_kib / 1024,
            open_kib / 1024,
            peak_kib / 1024
        );
    } else {
        println!(
            "{opened} idle connections ({failed} failed) opened in {connect_seconds:.2} s  \
             (server memory not measured: not our child)"
        );
    }
    println!("\nconnections,opened,failed,connect_seconds,rss_before_kib,rss_open_kib,kib_per_connection,peak_rss_kib");
    println!(
        "{},{opened},{failed},{connect_seconds:.3},{before_kib},{open_kib},{per_conn:.2},{peak_kib}",
        bench.connections
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::source_addr;
    use std::net::Ipv4Addr;

    #[test]
    fn source_addresses_cycle_over_127_0_0_2_to_254() {
        assert_eq!(source_addr(0), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(source_addr(252), Ipv4Addr::new(127, 0, 0, 254));
        assert_eq!(source_addr(253), Ipv4Addr::new(127, 0, 0, 2));
    }
}
