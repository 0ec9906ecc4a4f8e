//! STUN for direct conversations behind NAT: ask a STUN server which public
//! address each local socket is seen from (RFC 8489 Binding), so that the
//! offer carries it as a server-reflexive candidate. str0m builds and reads
//! the messages; this module only sends them and waits.

#[cfg(feature = "p2p")]
pub use query::reflexive;

/// The port STUN servers listen on unless the URL says otherwise.
const PORT: u16 = 3478;

/// A STUN server as given to `--stun`: `stun:host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StunServer {
    host: String,
    port: u16,
}

impl StunServer {
    pub fn parse(url: &str) -> Result<StunServer, String> {
        let rest = url.strip_prefix("stun:").ok_or_else(|| {
            if url.starts_with("stuns:") {
                format!("{url}: STUN over TLS (stuns:) is not supported; use stun:")
            } else {
                format!("{url}: a STUN server is stun:host[:port]")
            }
        })?;
        let (host, port) = match rest.rsplit_once(':') {
            // An IPv6 literal's colons are inside brackets.
            Some((host, port))
                if !port.contains(']') && (!host.contains(':') || host.ends_with(']')) =>
            {
                let port = port
                    .parse()
                    .map_err(|_| format!("{url}: the port must be a number from 1 to 65535"))?;
                (host, port)
            }
            _ => (rest, PORT),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err(format!("{url}: a STUN server is stun:host[:port]"));
        }
        Ok(StunServer {
            host: host.to_owned(),
            port,
        })
    }
}

impl std::fmt::Display for StunServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "stun:[{}]:{}", self.host, self.port)
        } else {
            write!(f, "stun:{}:{}", self.host, self.port)
        }
    }
}

/// The Binding exchange itself, on the conversation's own sockets, and the
/// few bytes of STUN it takes.
#[cfg(feature = "p2p")]
mod query {
    use std::net::{IpAddr, SocketAddr};
    use std::time::Duration;

    use tokio::net::UdpSocket;
    use tokio::time::Instant;

    use super::StunServer;

    /// STUN's magic cookie (RFC 8489 §5).
    pub(super) const COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
    pub(super) const BINDING_REQUEST: u16 = 0x0001;
    pub(super) const BINDING_SUCCESS: u16 = 0x0101;
    const MAPPED_ADDRESS: u16 = 0x0001;
    pub(super) const XOR_MAPPED_ADDRESS: u16 = 0x0020;

    /// A Binding request: a header and no attributes. (str0m's STUN messages
    /// are ICE's, which must carry credentials; a STUN server's are not.)
    pub(super) fn binding_request(id: &[u8; 12]) -> [u8; 20] {
        let mut request = [0u8; 20];
        request[..2].copy_from_slice(&BINDING_REQUEST.to_be_bytes());
        request[4..8].copy_from_slice(&COOKIE);
        request[8..].copy_from_slice(id);
        request
    }

    /// The address a Binding success reply to transaction `id` reports:
    /// XOR-MAPPED-ADDRESS, or the older MAPPED-ADDRESS.
    pub(super) fn mapped_address(reply: &[u8], id: &[u8; 12]) -> Option<SocketAddr> {
        let header = reply.get(..20)?;
        let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if u16::from_be_bytes([header[0], header[1]]) != BINDING_SUCCESS
            || header[4..8] != COOKIE
            || header[8..20] != id[..]
        {
            return None;
        }
        let mut attributes = reply.get(20..20 + length)?;
        let mut plain = None;
        while attributes.len() >= 4 {
            let kind = u16::from_be_bytes([attributes[0], attributes[1]]);
            let len = usize::from(u16::from_be_bytes([attributes[2], attributes[3]]));
            let value = attributes.get(4..4 + len)?;
            match kind {
                XOR_MAPPED_ADDRESS => return address(value, Some(&header[4..20])),
                MAPPED_ADDRESS => plain = address(value, None),
                _ => {}
            }
            // Attributes are padded to 4 bytes.
            attributes = attributes
                .get((4 + len).next_multiple_of(4)..)
                .unwrap_or_default();
        }
        plain
    }

    /// An address attribute's value; `xor` is the cookie and transaction id
    /// the XOR form is masked with.
    fn address(value: &[u8], xor: Option<&[u8]>) -> Option<SocketAddr> {
        let mask = |bytes: &[u8], offset: usize| -> Vec<u8> {
            let key = xor.unwrap_or(&[0; 16]);
            bytes
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[offset + i])
                .collect()
        };
        let port = mask(value.get(2..4)?, 0);
        let port = u16::from_be_bytes([port[0], port[1]]);
        let ip = match value.get(1)? {
            0x01 => IpAddr::from(<[u8; 4]>::try_from(mask(value.get(4..8)?, 0)).ok()?),
            0x02 => IpAddr::from(<[u8; 16]>::try_from(mask(value.get(4..20)?, 0)).ok()?),
            _ => return None,
        };
        Some(SocketAddr::new(ip, port))
    }

    /// How long all servers together get to answer.
    const WAIT: Duration = Duration::from_secs(2);
    /// When a request is sent again, the datagram having been lost.
    const RESEND: Duration = Duration::from_millis(400);

    /// (local address, address the server saw) for each socket a server
    /// answered, leaving out answers that only repeat the local address.
    pub async fn reflexive(
        sockets: &[UdpSocket],
        servers: &[StunServer],
    ) -> Vec<(SocketAddr, SocketAddr)> {
        if servers.is_empty() {
            return Vec::new();
        }
        // (socket index, server address, transaction)
        let mut asked: Vec<(usize, SocketAddr, [u8; 12])> = Vec::new();
        for server in servers {
            let addresses = match tokio::net::lookup_host((server.host.as_str(), server.port)).await
            {
                Ok(addresses) => addresses.collect::<Vec<_>>(),
                Err(err) => {
                    println!("! STUN server {server} could not be resolved: {err}");
                    continue;
                }
            };
            for (index, socket) in sockets.iter().enumerate() {
                let Ok(local) = socket.local_addr() else {
                    continue;
                };
                if let Some(address) = addresses.iter().find(|a| a.is_ipv4() == local.is_ipv4()) {
                    asked.push((index, *address, rand::random()));
                }
            }
        }
        let mut found = Vec::new();
        let deadline = Instant::now() + WAIT;
        let mut buf = [0u8; 1500];
        while !asked.is_empty() && Instant::now() < deadline {
            for (index, server, id) in &asked {
                let _ = sockets[*index].send_to(&binding_request(id), server).await;
            }
            let resend = (Instant::now() + RESEND).min(deadline);
            while let Ok(Ok((index, len, from))) =
                tokio::time::timeout_at(resend, super::super::link::recv_any(sockets, &mut buf))
                    .await
            {
                let answered = asked.iter().position(|(i, server, id)| {
                    *i == index && *server == from && mapped_address(&buf[..len], id).is_some()
                });
                let Some(at) = answered else {
                    continue;
                };
                let (_, _, id) = asked.swap_remove(at);
                let mapped = mapped_address(&buf[..len], &id);
                if let (Some(mapped), Ok(local)) = (mapped, sockets[index].local_addr()) {
                    if mapped != local {
                        found.push((local, mapped));
                    }
                }
            }
        }
        if !asked.is_empty() && found.is_empty() {
            println!("! no STUN server answered; offering local addresses only");
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(feature = "p2p")]
    use std::net::SocketAddr;

    #[cfg(feature = "p2p")]
    use super::query::{
        binding_request, mapped_address, BINDING_SUCCESS, COOKIE, XOR_MAPPED_ADDRESS,
    };

    #[test]
    fn stun_urls_parse_with_and_without_a_port() {
        let parsed = |url: &str| StunServer::parse(url).map(|s| s.to_string());
        assert_eq!(
            parsed("stun:stun.example.org"),
            Ok("stun:stun.example.org:3478".into())
        );
        assert_eq!(
            parsed("stun:127.0.0.1:19302"),
            Ok("stun:127.0.0.1:19302".into())
        );
        assert_eq!(parsed("stun:[::1]:5000"), Ok("stun:[::1]:5000".into()));
        assert_eq!(parsed("stun:[::1]"), Ok("stun:[::1]:3478".into()));
        assert!(parsed("stuns:stun.example.org")
            .unwrap_err()
            .contains("not supported"));
        assert!(parsed("stun.example.org:3478")
            .unwrap_err()
            .contains("stun:host"));
        assert!(parsed("stun:").is_err());
        assert!(parsed("stun:host:0").is_err());
        assert!(parsed("stun:host:http").unwrap_err().contains("port"));
    }

    #[cfg(feature = "p2p")]
    /// A reply as a STUN server writes it: XOR-MAPPED-ADDRESS after an
    /// attribute this client does not know.
    fn reply(id: &[u8; 12], public: SocketAddr) -> Vec<u8> {
        let mut reply = binding_request(id).to_vec();
        reply[..2].copy_from_slice(&BINDING_SUCCESS.to_be_bytes());
        reply.extend_from_slice(&[0x80, 0x22, 0, 3, b'b', b'z', b'r', 0]); // SOFTWARE
        let SocketAddr::V4(v4) = public else {
            panic!("an IPv4 address")
        };
        reply.extend_from_slice(&XOR_MAPPED_ADDRESS.to_be_bytes());
        reply.extend_from_slice(&[0, 8, 0, 1]);
        reply.extend_from_slice(&(v4.port() ^ 0x2112).to_be_bytes());
        let ip: Vec<u8> = v4
            .ip()
            .octets()
            .iter()
            .zip(COOKIE)
            .map(|(a, b)| a ^ b)
            .collect();
        reply.extend_from_slice(&ip);
        let length = (reply.len() - 20) as u16;
        reply[2..4].copy_from_slice(&length.to_be_bytes());
        reply
    }

    #[cfg(feature = "p2p")]
    #[test]
    fn a_reply_s_mapped_address_is_read_and_a_stranger_s_is_not() {
        let id = [7u8; 12];
        let public: SocketAddr = "203.0.113.9:40000".parse().expect("addr");
        assert_eq!(mapped_address(&reply(&id, public), &id), Some(public));
        assert_eq!(mapped_address(&reply(&id, public), &[8u8; 12]), None);
        assert_eq!(mapped_address(&binding_request(&id), &id), None);
        let cut = reply(&id, public);
        assert_eq!(mapped_address(&cut[..cut.len() - 3], &id), None);
        assert_eq!(mapped_address(&[], &id), None);
    }

    /// A STUN server on loopback that says it saw a public address.
    #[cfg(feature = "p2p")]
    #[tokio::test]
    async fn a_server_reflexive_address_is_what_the_server_saw() {
        use tokio::net::UdpSocket;

        let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("stun:{}", server.local_addr().expect("addr"));
        let public: SocketAddr = "203.0.113.9:40000".parse().expect("addr");
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            let (len, from) = server.recv_from(&mut buf).await.expect("request");
            assert_eq!(len, 20, "a bare Binding request");
            let id: [u8; 12] = buf[8..20].try_into().expect("an id");
            server
                .send_to(&reply(&id, public), from)
                .await
                .expect("send");
        });
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let local = socket.local_addr().expect("addr");
        let servers = [StunServer::parse(&url).expect("url")];
        let found = reflexive(&[socket], &servers).await;
        assert_eq!(found, vec![(local, public)]);
    }
}
