//! `server.trusted_proxies`: the proxies whose `X-Forwarded-For` is believed,
//! and the walk that finds a request's client address through them.
//!
//! Behind nginx or a load balancer every TCP peer is the proxy, so the
//! client is only known from `X-Forwarded-For`. But anyone can send that
//! header, so it is read only when the peer is a proxy listed here, and then
//! from the right: each proxy appends the address it saw, so the right-most
//! entry that is not one of ours is the last one a proxy we trust wrote. The
//! left-most entry is whatever the client chose to send.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The proxies allowed to say who the client is; empty trusts nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Network>);

/// An address and how many of its leading bits a match must share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl TrustedProxies {
    /// Parses addresses (`127.0.0.1`, `::1`) and networks (`10.0.0.0/8`).
    /// The error names the first entry that is neither.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<TrustedProxies, String> {
        entries
            .iter()
            .map(|entry| Network::parse(entry.as_ref().trim()))
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    /// The comma-separated form, for an environment variable:
    /// `127.0.0.1, 10.0.0.0/8`. Empty pieces are skipped, so `""` trusts
    /// nobody.
    pub fn parse_list(list: &str) -> Result<TrustedProxies, String> {
        let entries: Vec<&str> = list
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        TrustedProxies::parse(&entries)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.0.iter().any(|network| network.contains(addr))
    }

    /// The client address of a request from `peer` carrying
    /// `forwarded_for` (every `X-Forwarded-For` header, joined with commas
    /// in order). The peer itself unless it is trusted; then the right-most
    /// forwarded address that is not a trusted proxy. If every one is, the
    /// left-most: all of them are ours, and it is the farthest back. A
    /// missing header, or an entry that is not an address before an
    /// untrusted one is found, leaves the peer: the proxy did not say.
    pub fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        let Some(header) = forwarded_for else {
            return peer;
        };
        let mut farthest = peer;
        for entry in header.rsplit(',') {
            let Some(hop) = forwarded_address(entry.trim()) else {
                return peer;
            };
            if !self.contains(hop) {
                return hop;
            }
            farthest = hop;
        }
        farthest
    }
}

/// One `X-Forwarded-For` entry: an address, bare or with a port
/// (`1.2.3.4:5678`, `[2001:db8::1]:443`), or an IPv6 one in brackets.
/// Some proxies write ports; `unknown` and obfuscated names are not
/// addresses.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let addr = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<Ipv6Addr>()
                .ok()
                .map(IpAddr::V6)
        })?;
    Some(addr.to_canonical())
}

impl Network {
    fn parse(entry: &str) -> Result<Network, String> {
        let wrong = |why: &str| format!("{entry:?} is not an IP address or network ({why})");
        let (addr, prefix) = match entry.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (entry, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| wrong("expected e.g. 10.0.0.1, 10.0.0.0/8 or ::1"))?;
        let bits = max_prefix(addr);
        let prefix = match prefix {
            None => bits,
            Some(prefix) => match prefix.parse::<u8>() {
                Ok(p) if p <= bits => p,
                _ => return Err(wrong(&format!("the prefix length must be 0 to {bits}"))),
            },
        };
        let network = Network { addr, prefix };
        let masked = network.masked();
        if masked != addr {
            return Err(wrong(&format!(
                "it has bits set past the /{prefix}; the network is {masked}/{prefix}"
            )));
        }
        Ok(network.canonical())
    }

    /// An IPv4-mapped IPv6 network as the IPv4 network it is, since
    /// addresses are matched in their canonical form.
    fn canonical(self) -> Network {
        match self.addr {
            IpAddr::V6(v6) if self.prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => Network {
                    addr: IpAddr::V4(v4),
                    prefix: self.prefix - 96,
                },
                None => self,
            },
            _ => self,
        }
    }

    /// The address with the bits past the prefix cleared.
    fn masked(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(
                u32::from(v4)
                    & u32::MAX
                        .checked_shl(32 - u32::from(self.prefix))
                        .unwrap_or(0),
            )),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(
                u128::from(v6)
                    & u128::MAX
                        .checked_shl(128 - u32::from(self.prefix))
                        .unwrap_or(0),
            )),
        }
    }

    fn contains(&self, addr: IpAddr) -> bool {
        let same_family = matches!(
            (self.addr, addr),
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_))
        );
        same_family
            && Network {
                addr,
                prefix: self.prefix,
            }
            .masked()
                == self.addr
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == max_prefix(self.addr) {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

impl Serialize for TrustedProxies {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

/// A list of strings (TOML, or `["127.0.0.1", "::1"]` in the environment),
/// or one comma-separated string (`BAZAAR_SERVER__TRUSTED_PROXIES=127.0.0.1,::1`).
/// A wrong entry fails the whole setting, so the server does not start
/// trusting less (or more) than was meant.
impl<'de> Deserialize<'de> for TrustedProxies {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;

        impl<'de> Visitor<'de> for Entries {
            type Value = TrustedProxies;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of IP addresses and networks, or one comma-separated string")
            }

            fn visit_str<E: de::Error>(self, list: &str) -> Result<TrustedProxies, E> {
                TrustedProxies::parse_list(list).map_err(E::custom)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TrustedProxies, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = seq.next_element::<String>()? {
                    entries.push(entry);
                }
                TrustedProxies::parse(&entries).map_err(de::Error::custom)
            }
        }

        deserializer.deserialize_any(Entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn trusting(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(entries).unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says() {
        let nobody = TrustedProxies::default();
        assert_eq!(
            nobody.client(ip("127.0.0.1"), Some("203.0.113.7")),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn an_untrusted_peer_is_the_client_even_when_it_forwards() {
        let proxies = trusting(&["10.0.0.0/8"]);
        assert_eq!(
            proxies.client(ip("198.51.100.1"), Some("203.0.113.7")),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn a_trusted_peer_names_the_client_in_the_right_most_entry() {
        let proxies = trusting(&["127.0.0.1"]);
        assert_eq!(
            proxies.client(ip("127.0.0.1"), Some("203.0.113.7")),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn the_walk_skips_trusted_hops_and_ignores_what_the_client_wrote_on_the_left() {
        let proxies = trusting(&["127.0.0.1", "10.0.0.0/8"]);
        // The client forged 1.1.1.1; the load balancer 10.0.0.2 saw
        // 203.0.113.7; nginx on loopback saw the load balancer.
        let chain = "1.1.1.1, 203.0.113.7, 10.0.0.2";
        assert_eq!(
            proxies.client(ip("127.0.0.1"), Some(chain)),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn when_every_hop_is_trusted_the_farthest_is_the_client() {
        let proxies = trusting(&["127.0.0.1", "10.0.0.0/8"]);
        assert_eq!(
            proxies.client(ip("127.0.0.1"), Some("10.0.0.9, 10.0.0.2")),
            ip("10.0.0.9")
        );
    }

    #[test]
    fn a_missing_or_malformed_header_leaves_the_peer() {
        let proxies = trusting(&["127.0.0.1", "10.0.0.0/8"]);
        let peer = ip("127.0.0.1");
        for header in [
            None,
            Some(""),
            Some("unknown"),
            Some("203.0.113.7, nonsense"),
            Some("203.0.113.7,,10.0.0.2"),
            Some("nonsense, 10.0.0.2"),
            Some("256.1.1.1"),
            Some("fe80::1%eth0"),
        ] {
            assert_eq!(proxies.client(peer, header), peer, "{header:?}");
        }
    }

    #[test]
    fn garbage_left_of_the_client_does_not_matter() {
        let proxies = trusting(&["127.0.0.1"]);
        assert_eq!(
            proxies.client(ip("127.0.0.1"), Some("<script>, unknown, 203.0.113.7")),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn entries_may_carry_ports_and_brackets() {
        let proxies = trusting(&["127.0.0.1", "10.0.0.0/8"]);
        let peer = ip("127.0.0.1");
        for (header, client) in [
            ("203.0.113.7:5678", "203.0.113.7"),
            ("203.0.113.7:5678, 10.0.0.2:443", "203.0.113.7"),
            ("[2001:db8::7]:443", "2001:db8::7"),
            ("[2001:db8::7]", "2001:db8::7"),
            (" 2001:db8::7 ,10.0.0.2", "2001:db8::7"),
        ] {
            assert_eq!(proxies.client(peer, Some(header)), ip(client), "{header}");
        }
    }

    #[test]
    fn ipv6_proxies_and_networks_are_matched() {
        let proxies = trusting(&["::1", "fd00::/8"]);
        assert_eq!(
            proxies.client(ip("::1"), Some("2001:db8::7, fd12:3456::1")),
            ip("2001:db8::7")
        );
        assert!(!proxies.contains(ip("fe00::1")));
    }

    #[test]
    fn ipv4_mapped_addresses_match_their_ipv4_networks() {
        let proxies = trusting(&["10.0.0.0/8"]);
        assert_eq!(
            proxies.client(ip("::ffff:10.1.2.3"), Some("::ffff:203.0.113.7")),
            ip("203.0.113.7")
        );
        let mapped = trusting(&["::ffff:10.0.0.0/104"]);
        assert!(mapped.contains(ip("10.200.0.1")));
        assert_eq!(mapped, trusting(&["10.0.0.0/8"]));
    }

    #[test]
    fn networks_match_on_their_prefix_only() {
        let proxies = trusting(&["10.0.0.0/8", "192.168.1.0/24", "2001:db8::/32"]);
        assert!(proxies.contains(ip("10.255.255.255")));
        assert!(!proxies.contains(ip("11.0.0.0")));
        assert!(proxies.contains(ip("192.168.1.77")));
        assert!(!proxies.contains(ip("192.168.2.1")));
        assert!(proxies.contains(ip("2001:db8:ffff::1")));
        assert!(!proxies.contains(ip("2001:db9::1")));
        assert!(!proxies.contains(ip("::ffff:11.0.0.1")));
        let everyone = trusting(&["0.0.0.0/0"]);
        assert!(everyone.contains(ip("203.0.113.7")));
        assert!(!everyone.contains(ip("2001:db8::1")), "IPv4 only");
    }

    #[test]
    fn a_bad_entry_is_refused_by_name() {
        for (entries, names) in [
            (&["10.0.0.0/33"][..], "\"10.0.0.0/33\""),
            (&["127.0.0.1", "nonsense"][..], "\"nonsense\""),
            (&["::1/129"][..], "\"::1/129\""),
            (&["10.0.0.0/"][..], "\"10.0.0.0/\""),
            (&["10.0.0.0/-1"][..], "\"10.0.0.0/-1\""),
            (&["10.0.0.1:80"][..], "\"10.0.0.1:80\""),
            (&[""][..], "\"\""),
        ] {
            let err = TrustedProxies::parse(entries).unwrap_err();
            assert!(err.starts_with(names), "{entries:?}: {err}");
        }
        let err = TrustedProxies::parse(&["10.0.0.0/33"]).unwrap_err();
        assert!(err.contains("0 to 32"), "{err}");
    }

    #[test]
    fn a_network_with_host_bits_set_is_refused_with_the_network_it_meant() {
        let err = TrustedProxies::parse(&["10.1.2.3/8"]).unwrap_err();
        assert!(err.contains("the network is 10.0.0.0/8"), "{err}");
    }

    #[test]
    fn a_comma_separated_list_parses_like_a_list() {
        assert_eq!(
            TrustedProxies::parse_list("127.0.0.1, 10.0.0.0/8,::1").unwrap(),
            trusting(&["127.0.0.1", "10.0.0.0/8", "::1"])
        );
        assert!(TrustedProxies::parse_list("").unwrap().is_empty());
        assert!(TrustedProxies::parse_list("127.0.0.1, 10.0.0.0/33").is_err());
    }

    #[test]
    fn it_serializes_to_the_list_it_parses_from() {
        let proxies = trusting(&["127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"]);
        let json = serde_json::to_string(&proxies).unwrap();
        assert_eq!(json, r#"["127.0.0.1","10.0.0.0/8","::1","fd00::/8"]"#);
        let back: TrustedProxies = serde_json::from_str(&json).unwrap();
        assert_eq!(back, proxies);
    }
}

#[cfg(test)]
mod settings_tests {
    use std::path::Path;

    use super::*;
    use crate::config::Settings;

    /// `server.trusted_proxies` as `bazaar serve` loads it, from
    /// `BAZAAR_SERVER__TRUSTED_PROXIES` set to `value`.
    #[allow(clippy::result_large_err)]
    fn from_env(value: &str) -> Result<TrustedProxies, String> {
        let mut loaded = Err(String::new());
        figment::Jail::expect_with(|jail| {
            jail.set_env("BAZAAR_SERVER__TRUSTED_PROXIES", value);
            loaded = Settings::load(Path::new("absent.toml"))
                .map(|s| s.server.trusted_proxies)
                .map_err(|e| format!("{e:#}"));
            Ok(())
        });
        loaded
    }

    #[test]
    fn the_environment_takes_a_list_or_a_comma_separated_string() {
        let want = TrustedProxies::parse(&["127.0.0.1", "10.0.0.0/8", "::1"]).unwrap();
        for value in [
            r#"["127.0.0.1", "10.0.0.0/8", "::1"]"#,
            "[127.0.0.1, 10.0.0.0/8, ::1]",
            "127.0.0.1,10.0.0.0/8,::1",
            "127.0.0.1, 10.0.0.0/8, ::1",
        ] {
            assert_eq!(from_env(value), Ok(want.clone()), "{value}");
        }
        assert_eq!(
            from_env("::1"),
            Ok(TrustedProxies::parse(&["::1"]).unwrap())
        );
    }

    #[test]
    fn a_wrong_entry_stops_the_settings_from_loading_and_is_named() {
        for (value, entry) in [
            (r#"["127.0.0.1", "10.0.0.0/33"]"#, "10.0.0.0/33"),
            ("nonsense", "nonsense"),
            ("127.0.0.1, nonsense", "nonsense"),
        ] {
            let err = from_env(value).unwrap_err();
            assert!(err.contains(&format!("{entry:?}")), "{value}: {err}");
            assert!(
                err.to_lowercase().contains("server.trusted_proxies"),
                "{value}: {err}"
            );
        }
    }
}
