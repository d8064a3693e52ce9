//! The source networks this front-end drops at ingress, before parsing: an operator's
//! emergency block of an attacker (`confab change emergency -- source block CIDR`). Read
//! from the store at start and whenever the change feed says the list changed. A check
//! costs one relaxed atomic load while nothing is blocked.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

/// Blocked networks (see the module documentation).
#[derive(Debug, Default)]
pub struct Blocklist {
    any: AtomicBool,
    networks: RwLock<Vec<(IpAddr, u8)>>,
}

impl Blocklist {
    /// Replaces the networks with `cidrs` (`203.0.113.0/24`, `192.0.2.7`); an entry that does
    /// not parse is passed over (the store validates what it keeps). Returns how many hold.
    pub fn set(&self, cidrs: &[String]) -> usize {
        let networks: Vec<(IpAddr, u8)> = cidrs
            .iter()
            .filter_map(|c| confab_store::parse_cidr(c).ok())
            .collect();
        let n = networks.len();
        *self
            .networks
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = networks;
        self.any.store(n > 0, Ordering::Relaxed);
        n
    }

    /// True when `ip` is in a blocked network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if !self.any.load(Ordering::Relaxed) {
            return false;
        }
        // An IPv4 client over an IPv6 socket is blocked by its IPv4 network.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.networks
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .any(|(net, len)| net.is_ipv4() == ip.is_ipv4() && confab_store::mask(ip, *len) == *net)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_single_addresses() {
        let b = Blocklist::default();
        let ip = |s: &str| s.parse::<IpAddr>().expect("address");
        assert!(!b.contains(ip("203.0.113.9")));
        assert_eq!(
            b.set(&[
                "203.0.113.0/24".into(),
                "192.0.2.7".into(),
                "2001:db8::/32".into(),
                "junk".into()
            ]),
            3
        );
        assert!(b.contains(ip("203.0.113.9")));
        assert!(b.contains(ip("::ffff:203.0.113.200")), "mapped IPv4");
        assert!(!b.contains(ip("203.0.114.1")));
        assert!(b.contains(ip("192.0.2.7")) && !b.contains(ip("192.0.2.8")));
        assert!(b.contains(ip("2001:db8:1::5")) && !b.contains(ip("2001:db9::1")));
        b.set(&[]);
        assert!(!b.contains(ip("203.0.113.9")));
    }
}
