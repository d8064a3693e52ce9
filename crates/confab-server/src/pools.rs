//! The pools of the deployment as this front-end routes by them: which pool it serves, where
//! each other pool is reached (a front-end pool's servers, a legacy pool's next hop), and
//! which peers are the deployment's own front-ends.
//!
//! Every request for a user is answered by the user's home pool (DESIGN.md, "Data flow"): a
//! front-end that receives one for a user homed elsewhere forwards it there — REGISTER with a
//! Path to itself, so that a client pointed at any pool signs in at its home pool and is
//! reached back through the front-end it uses. A request that arrives from a peer (an address
//! of another pool's server, or a legacy pool's next hop) was authenticated by the pool that
//! sent it and is not challenged again.
//!
//! Known limits: peers are recognised by their source address and port, which holds for UDP
//! between front-ends (a front-end sends from its listening socket) and on a network where the
//! pools' addresses cannot be spoofed; mutual TLS between pools comes with the edge. A pool's
//! first server is the one requests go to; failing over to its other servers or its paired pool
//! comes with pool failover.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::RwLock;

use crate::directory::{PoolKindRecord, PoolRecord};

/// One other pool, as routes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRoute {
    /// Front-end or legacy.
    pub kind: PoolKindRecord,
    /// Where its users' requests go, as a SIP URI (`sip:IP:PORT;transport=T`); `None` when
    /// the topology gives no address (its users cannot be reached from here).
    pub hop: Option<String>,
}

#[derive(Debug, Default)]
struct Map {
    routes: HashMap<String, PoolRoute>,
    peers: HashSet<SocketAddr>,
}

/// The pools this front-end routes by (see the module documentation).
#[derive(Debug)]
pub struct Pools {
    own: String,
    map: RwLock<Map>,
}

impl Pools {
    /// A front-end of pool `own`, knowing no other pool yet.
    pub fn new(own: &str) -> Pools {
        Pools {
            own: own.to_owned(),
            map: RwLock::new(Map::default()),
        }
    }

    /// The pool this front-end serves.
    pub fn own(&self) -> &str {
        &self.own
    }

    /// Replaces what is known of the pools with `records` (from the store).
    pub fn set(&self, records: &[PoolRecord]) {
        let mut map = Map::default();
        for r in records {
            let addresses: Vec<(SocketAddr, &'static str)> = match r.kind {
                PoolKindRecord::FrontEnd => r.servers.iter().filter_map(|s| parse_hop(s)).collect(),
                PoolKindRecord::Legacy => r.next_hop.iter().filter_map(|s| parse_hop(s)).collect(),
            };
            map.peers.extend(addresses.iter().map(|(a, _)| *a));
            if r.name == self.own {
                continue;
            }
            // UDP first: it is how front-ends recognise each other (see the module docs).
            let pick = addresses
                .iter()
                .find(|(_, t)| *t == "udp")
                .or_else(|| addresses.first());
            let hop = pick.map(|(addr, t)| sip_uri(*addr, t));
            map.routes
                .insert(r.name.clone(), PoolRoute { kind: r.kind, hop });
        }
        *self
            .map
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = map;
    }

    /// Where a user homed on `pool` is served: `None` when that is this front-end's pool, or
    /// a pool the topology does not know (served here, as before topologies).
    pub fn route(&self, pool: &str) -> Option<PoolRoute> {
        if pool == self.own {
            return None;
        }
        self.map
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .routes
            .get(pool)
            .cloned()
    }

    /// True when the topology names a pool besides this one: without, every user is served
    /// here and no look-up of a home pool is needed.
    pub fn has_others(&self) -> bool {
        !self
            .map
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .routes
            .is_empty()
    }

    /// True when `peer` is one of the deployment's servers (a front-end of any pool, or a
    /// legacy pool's next hop): what it sends was authenticated where it came from.
    pub fn is_peer(&self, peer: SocketAddr) -> bool {
        self.map
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .peers
            .contains(&peer)
    }
}

/// A topology address: a listen URI (`udp://IP:PORT`, `tcp://…`, `tls://…`, `ws://…`) or a SIP
/// URI whose host is an IP address (`sip:IP:PORT;transport=tcp`).
fn parse_hop(text: &str) -> Option<(SocketAddr, &'static str)> {
    let text = text.trim();
    if let Some((scheme, rest)) = text.split_once("://") {
        let transport = match scheme.to_ascii_lowercase().as_str() {
            "udp" => "udp",
            "tcp" => "tcp",
            "tls" => "tls",
            "ws" => "ws",
            "wss" => "wss",
            _ => return None,
        };
        return Some((rest.trim_end_matches('/').parse().ok()?, transport));
    }
    let uri = confab_sip::Uri::parse(text).ok()?;
    let ip: IpAddr = uri.host_str()?.trim_matches(['[', ']']).parse().ok()?;
    let transport = match uri.transport().map(str::to_ascii_lowercase).as_deref() {
        None | Some("udp") => "udp",
        Some("tcp") => "tcp",
        Some("tls") => "tls",
        Some("ws") => "ws",
        Some("wss") => "wss",
        Some(_) => return None,
    };
    let default = if transport == "tls" { 5061 } else { 5060 };
    Some((
        SocketAddr::new(ip, uri.port().unwrap_or(default)),
        transport,
    ))
}

fn sip_uri(addr: SocketAddr, transport: &str) -> String {
    let host = match addr.ip() {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    format!("sip:{host}:{};transport={transport}", addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(
        name: &str,
        kind: PoolKindRecord,
        servers: &[&str],
        next_hop: Option<&str>,
    ) -> PoolRecord {
        PoolRecord {
            name: name.into(),
            kind,
            servers: servers.iter().map(|s| (*s).to_owned()).collect(),
            next_hop: next_hop.map(str::to_owned),
        }
    }

    #[test]
    fn routes_to_other_pools_and_knows_its_peers() {
        let pools = Pools::new("a");
        pools.set(&[
            pool(
                "a",
                PoolKindRecord::FrontEnd,
                &["udp://127.0.0.1:5070"],
                None,
            ),
            pool(
                "b",
                PoolKindRecord::FrontEnd,
                &["tcp://127.0.0.1:5080", "udp://127.0.0.1:5080"],
                None,
            ),
            pool(
                "k",
                PoolKindRecord::Legacy,
                &[],
                Some("sip:127.0.0.2:5090;transport=tcp"),
            ),
            pool("empty", PoolKindRecord::FrontEnd, &[], None),
        ]);
        assert_eq!(pools.route("a"), None, "our own pool");
        assert_eq!(pools.route("nowhere"), None, "unknown: served here");
        assert_eq!(
            pools.route("b").and_then(|r| r.hop),
            Some("sip:127.0.0.1:5080;transport=udp".into()),
            "UDP first"
        );
        let k = pools.route("k").expect("legacy");
        assert_eq!(k.kind, PoolKindRecord::Legacy);
        assert_eq!(k.hop.as_deref(), Some("sip:127.0.0.2:5090;transport=tcp"));
        assert_eq!(pools.route("empty").map(|r| r.hop), Some(None));
        assert!(pools.has_others());
        for peer in ["127.0.0.1:5070", "127.0.0.1:5080", "127.0.0.2:5090"] {
            assert!(pools.is_peer(peer.parse().expect("addr")), "{peer}");
        }
        assert!(!pools.is_peer("127.0.0.1:40000".parse().expect("addr")));
        // A new topology replaces the old one.
        pools.set(&[pool("a", PoolKindRecord::FrontEnd, &[], None)]);
        assert_eq!(pools.route("b"), None);
        assert!(!pools.has_others(), "only our own pool");
        assert!(!pools.is_peer("127.0.0.1:5080".parse().expect("addr")));
    }

    #[test]
    fn addresses_in_both_spellings() {
        assert_eq!(
            parse_hop("udp://[::1]:5060"),
            Some(("[::1]:5060".parse().expect("addr"), "udp"))
        );
        assert_eq!(
            parse_hop("sip:10.0.0.1"),
            Some(("10.0.0.1:5060".parse().expect("addr"), "udp"))
        );
        assert_eq!(
            parse_hop("sip:10.0.0.1;transport=tls"),
            Some(("10.0.0.1:5061".parse().expect("addr"), "tls"))
        );
        assert_eq!(parse_hop("sip:kamailio.example.com"), None, "no DNS yet");
        assert_eq!(parse_hop("http://10.0.0.1:80"), None);
    }
}
