//! How many sockets a node holds, and how many one address may hold.
//!
//! A socket leaves actix's connection counter at its upgrade, so without
//! these counts nothing bounds the sockets a node keeps open: a guest needs
//! only `?name=`, and each socket is a file descriptor and a few KiB.
//! Every socket takes a [`Slot`] at its upgrade and gives it back when it is
//! gone, whichever side ended it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The caps of one node.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// Sockets of either kind open on the node.
    pub node: usize,
    /// Client sockets from one address (an IPv6 client: from its /64).
    pub per_address: usize,
}

/// Why a socket may not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The node holds `server.max_connections` sockets.
    NodeFull,
    /// The address holds `server.max_connections_per_address` sockets.
    AddressFull,
}

/// The sockets open on this node, counted in total and per address.
pub struct Sockets {
    caps: Caps,
    /// A std Mutex: held for a lookup and an add, never across an `.await`.
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One socket's place in the counts, given back when it is dropped.
pub struct Slot {
    sockets: Arc<Sockets>,
    address: Option<IpAddr>,
}

impl Sockets {
    /// No sockets yet, and these caps.
    pub fn new(caps: Caps) -> Arc<Sockets> {
        Arc::new(Sockets {
            caps,
            counts: Mutex::default(),
        })
    }

    /// The caps, for a refusal to name.
    pub fn caps(&self) -> Caps {
        self.caps
    }

    /// Takes a slot for a socket from `address`, counted against the
    /// address's cap when there is one to count (`None`: worker sockets,
    /// which hold the worker token and share an address when several run
    /// on one machine).
    pub fn admit(self: &Arc<Self>, address: Option<IpAddr>) -> Result<Slot, Refusal> {
        let address = address.map(group);
        let mut counts = self.counts();
        if counts.total >= self.caps.node {
            return Err(Refusal::NodeFull);
        }
        if let Some(address) = address {
            // Looked up before it is counted, so that refused addresses
            // leave nothing behind in the map.
            let held = counts.by_address.get(&address).copied().unwrap_or(0);
            if held >= self.caps.per_address {
                return Err(Refusal::AddressFull);
            }
            counts.by_address.insert(address, held + 1);
        }
        counts.total += 1;
        Ok(Slot {
            sockets: self.clone(),
            address,
        })
    }

    /// The counts, even after a panic elsewhere: nothing panics while
    /// holding them, and each change is whole before the lock is let go.
    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn release(&self, address: Option<IpAddr>) {
        let mut counts = self.counts();
        counts.total = counts.total.saturating_sub(1);
        if let Some(address) = address {
            if let Some(held) = counts.by_address.get_mut(&address) {
                *held = held.saturating_sub(1);
                if *held == 0 {
                    counts.by_address.remove(&address);
                }
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.sockets.release(self.address);
    }
}

/// The key an address is counted under. One IPv6 client is given a whole
/// /64 and can pick any address in it, so its sockets count together.
fn group(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => {
            let [a, b, c, d, ..] = v6.segments();
            IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sockets(node: usize, per_address: usize) -> Arc<Sockets> {
        Sockets::new(Caps { node, per_address })
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn an_address_at_its_cap_is_refused_until_one_of_its_sockets_goes() {
        let sockets = sockets(10, 2);
        let a = sockets.admit(ip("203.0.113.7")).unwrap();
        let _b = sockets.admit(ip("203.0.113.7")).unwrap();
        assert_eq!(
            sockets.admit(ip("203.0.113.7")).err(),
            Some(Refusal::AddressFull)
        );
        assert!(sockets.admit(ip("203.0.113.8")).is_ok(), "others may");
        drop(a);
        assert!(sockets.admit(ip("203.0.113.7")).is_ok());
    }

    #[test]
    fn a_full_node_refuses_every_kind_until_a_socket_goes() {
        let sockets = sockets(2, 10);
        let a = sockets.admit(ip("203.0.113.7")).unwrap();
        let _worker = sockets.admit(None).unwrap();
        assert_eq!(sockets.admit(None).err(), Some(Refusal::NodeFull));
        assert_eq!(
            sockets.admit(ip("198.51.100.1")).err(),
            Some(Refusal::NodeFull)
        );
        drop(a);
        let _c = sockets.admit(ip("198.51.100.1")).unwrap();
        assert_eq!(sockets.admit(None).err(), Some(Refusal::NodeFull));
    }

    #[test]
    fn refused_and_departed_addresses_leave_nothing_counted() {
        let sockets = sockets(10, 1);
        let a = sockets.admit(ip("203.0.113.7")).unwrap();
        for _ in 0..3 {
            assert!(sockets.admit(ip("203.0.113.7")).is_err());
        }
        drop(a);
        let counts = sockets.counts();
        assert_eq!(counts.total, 0);
        assert!(counts.by_address.is_empty());
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64_and_a_mapped_v4_as_itself() {
        let sockets = sockets(10, 1);
        let _a = sockets.admit(ip("2001:db8:1:2::1")).unwrap();
        assert_eq!(
            sockets.admit(ip("2001:db8:1:2:ffff::9")).err(),
            Some(Refusal::AddressFull)
        );
        assert!(sockets.admit(ip("2001:db8:1:3::1")).is_ok());
        let _v4 = sockets.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(
            sockets.admit(ip("::ffff:192.0.2.1")).err(),
            Some(Refusal::AddressFull)
        );
    }
}
