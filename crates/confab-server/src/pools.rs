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
//! **Members.** Several front-ends may serve one pool. Each announces itself in the store
//! with a heartbeat every [`HEARTBEAT_EVERY`]; one whose heartbeat is older than
//! [`DEAD_AFTER`] is dead. Each user of a pool is *owned* by one live member, chosen by
//! rendezvous hashing of the user's address over the live members' addresses
//! ([`rendezvous`]): every front-end computes the same owner without asking anyone, and a
//! member joining or leaving moves only the users it gains or loses. A request for a user of
//! this pool owned by another member goes to that member; a request for a user of another
//! pool goes to that pool's owning member when the pool has live members, else to its first
//! server in the topology (UDP preferred). A request a member of this pool forwarded is
//! served here whatever this front-end thinks of ownership, so that two members whose views
//! of the membership differ for a second never bounce a request between them.
//!
//! Known limits: peers are recognised by their source address and port, which holds for UDP
//! between front-ends (a front-end sends from its listening socket) and on a network where the
//! pools' addresses cannot be spoofed; mutual TLS between pools comes with the edge. A pool
//! whose members are all dead is not failed over to its paired pool: that is an operator's
//! decision (a move of its users, or maintenance), not a heartbeat's.
//!
//! **Maintenance.** A pool an operator put into maintenance is served by its pair: every
//! front-end routes its users as if they were homed on the pair ([`Pools::stand_in`]) — the
//! pool's own front-ends forward their requests there like any other pool's — until it leaves
//! maintenance. A pair that is in maintenance too, or gone from the topology, does not stand
//! in (the store refuses the first).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::RwLock;
use std::time::Duration;

use crate::directory::{MemberRecord, PoolKindRecord, PoolRecord};

/// How often a front-end writes its heartbeat and reads its pool's members.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// A member whose last heartbeat is older than this is dead: its users go to the others.
pub const DEAD_AFTER: Duration = Duration::from_secs(5);

/// The rendezvous score of `member` for the user `aor`: FNV-1a over both, then a 64-bit
/// finaliser so that near-identical addresses still spread users evenly. Fixed here (not
/// the standard library's hasher, whose output may change between releases) because every
/// front-end of a deployment, whatever its version, must compute the same owner.
pub fn rendezvous(member: &str, aor: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in member.bytes().chain([0xff]).chain(aor.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The owner of `aor` among `members` (their addresses): the highest score, ties to the
/// smallest address. `None` for no members.
pub fn owner<'a>(members: impl IntoIterator<Item = &'a str>, aor: &str) -> Option<&'a str> {
    members.into_iter().max_by(|a, b| by_score(a, b, aor))
}

/// One other pool, as routes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRoute {
    /// Front-end or legacy.
    pub kind: PoolKindRecord,
    /// Where its users' requests go, as a SIP URI (`sip:IP:PORT;transport=T`); `None` when
    /// the topology gives no address (its users cannot be reached from here).
    pub hop: Option<String>,
}

/// Where a request for a user goes, as [`Pools::serve`] decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serving {
    /// This front-end serves the user.
    Here,
    /// Another member of this pool owns the user: its SIP URI.
    Member(String),
    /// Another pool serves the user.
    Pool(PoolRoute),
}

/// A member of a pool, alive at the last reading.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    /// Its address as announced (the rendezvous key).
    key: String,
    /// Its SIP URI.
    hop: String,
}

#[derive(Debug, Default)]
struct Map {
    routes: HashMap<String, PoolRoute>,
    /// Pools in maintenance, each with the pair that serves its users meanwhile.
    stand_in: HashMap<String, String>,
    /// The topology's addresses.
    peers: HashSet<SocketAddr>,
}

#[derive(Debug, Default)]
struct Membership {
    /// This front-end's address, once its listeners are bound.
    me: Option<String>,
    /// Live members by pool, ordered by address.
    live: HashMap<String, Vec<Member>>,
    /// Every announced member's address (alive or not): peers.
    peers: HashSet<SocketAddr>,
    /// The announced members of this front-end's own pool, other than itself.
    own_peers: HashSet<SocketAddr>,
    /// The live members of the own pool when [`Pools::own_changed`] last looked.
    seen: Vec<Member>,
}

/// The pools this front-end routes by (see the module documentation).
#[derive(Debug)]
pub struct Pools {
    own: String,
    map: RwLock<Map>,
    members: RwLock<Membership>,
}

impl Pools {
    /// A front-end of pool `own`, knowing no other pool yet.
    pub fn new(own: &str) -> Pools {
        Pools {
            own: own.to_owned(),
            map: RwLock::new(Map::default()),
            members: RwLock::new(Membership::default()),
        }
    }

    fn membership(&self) -> std::sync::RwLockReadGuard<'_, Membership> {
        self.members
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// This front-end's own address as a member of its pool (a listen URI), once known.
    pub fn set_me(&self, address: String) {
        self.members
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .me = Some(address);
    }

    /// This front-end's own address as a member, if it announces itself.
    pub fn me(&self) -> Option<String> {
        self.membership().me.clone()
    }

    /// Replaces what is known of the members with `records` (from the store): those whose
    /// heartbeat is at most [`DEAD_AFTER`] old are alive.
    pub fn set_members(&self, records: &[MemberRecord]) {
        let mut live: HashMap<String, Vec<Member>> = HashMap::new();
        let mut peers = HashSet::new();
        let mut own_peers = HashSet::new();
        let mut m = self
            .members
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for r in records {
            let Some((addr, transport)) = parse_hop(&r.address) else {
                continue;
            };
            peers.insert(addr);
            if r.pool == self.own && m.me.as_deref() != Some(r.address.as_str()) {
                own_peers.insert(addr);
            }
            if r.heartbeat_age <= DEAD_AFTER {
                live.entry(r.pool.clone()).or_default().push(Member {
                    key: r.address.clone(),
                    hop: sip_uri(addr, transport),
                });
            }
        }
        for members in live.values_mut() {
            members.sort_by(|a, b| a.key.cmp(&b.key));
        }
        m.live = live;
        m.peers = peers;
        m.own_peers = own_peers;
    }

    /// True when the live members of this front-end's own pool changed since the last call
    /// (its users' owners may have).
    pub fn own_changed(&self) -> bool {
        let mut m = self
            .members
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = m.live.get(&self.own).cloned().unwrap_or_default();
        if now == m.seen {
            return false;
        }
        m.seen = now;
        true
    }

    /// The live members of this front-end's own pool, by address.
    pub fn own_members(&self) -> Vec<String> {
        self.membership()
            .live
            .get(&self.own)
            .map(|v| v.iter().map(|m| m.key.clone()).collect())
            .unwrap_or_default()
    }

    /// True when this front-end owns `aor`, a user of its own pool: it is the pool's only
    /// front-end, its own view of the members names none (the store cannot be read), or
    /// rendezvous hashing over the live members picks it.
    pub fn owns(&self, aor: &str) -> bool {
        let m = self.membership();
        match m.live.get(&self.own) {
            None => true,
            Some(live) => match owner(live.iter().map(|x| x.key.as_str()), aor) {
                None => true,
                Some(key) => m.me.as_deref() == Some(key),
            },
        }
    }

    /// Where a user homed on `pool` (`None`: on no pool) is served; `via_member` says the
    /// request came from another member of this pool, which decided it is served here.
    pub fn serve(&self, pool: Option<&str>, aor: &str, via_member: bool) -> Serving {
        let Some(home) = pool else {
            return Serving::Here;
        };
        let stand_in = self.stand_in(home);
        let pool = stand_in.as_deref().unwrap_or(home);
        if pool == self.own {
            if via_member {
                return Serving::Here;
            }
            let m = self.membership();
            let Some(live) = m.live.get(pool) else {
                return Serving::Here;
            };
            return match live.iter().max_by(|a, b| by_score(&a.key, &b.key, aor)) {
                Some(x) if m.me.as_deref() != Some(x.key.as_str()) => {
                    Serving::Member(x.hop.clone())
                }
                _ => Serving::Here,
            };
        }
        let Some(mut route) = self.route(pool) else {
            return Serving::Here;
        };
        if route.kind == PoolKindRecord::FrontEnd {
            let m = self.membership();
            if let Some(x) = m
                .live
                .get(pool)
                .and_then(|live| live.iter().max_by(|a, b| by_score(&a.key, &b.key, aor)))
            {
                route.hop = Some(x.hop.clone());
            }
        }
        Serving::Pool(route)
    }

    /// True when `peer` is another announced member of this front-end's own pool.
    pub fn is_own_member(&self, peer: SocketAddr) -> bool {
        self.membership().own_peers.contains(&peer)
    }

    /// The pool this front-end serves.
    pub fn own(&self) -> &str {
        &self.own
    }

    /// Replaces what is known of the pools with `records` (from the store); true when the
    /// pools in maintenance, or their stand-ins, changed (users are served elsewhere now).
    pub fn set(&self, records: &[PoolRecord]) -> bool {
        let mut map = Map::default();
        let down: HashSet<&str> = records
            .iter()
            .filter(|r| r.maintenance)
            .map(|r| r.name.as_str())
            .collect();
        for r in records {
            // A pool in maintenance is served by its pair, unless the pair is down too (the
            // store refuses that) or gone from the topology: then by itself, as before.
            if let Some(pair) = r.pair.as_deref().filter(|_| r.maintenance) {
                if !down.contains(pair) && records.iter().any(|p| p.name == pair) {
                    map.stand_in.insert(r.name.clone(), pair.to_owned());
                }
            }
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
        let mut current = self
            .map
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let changed = current.stand_in != map.stand_in;
        *current = map;
        changed
    }

    /// The pool serving the users homed on `pool` while it is in maintenance (its pair);
    /// `None` when it serves them itself.
    pub fn stand_in(&self, pool: &str) -> Option<String> {
        let map = self
            .map
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Most deployments have no pool in maintenance: no lookup, no copy.
        if map.stand_in.is_empty() {
            return None;
        }
        map.stand_in.get(pool).cloned()
    }

    /// The pools in maintenance this front-end knows of, each with its stand-in.
    pub fn in_maintenance(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .map
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .stand_in
            .iter()
            .map(|(a, b)| (a.clone(), b.clone()))
            .collect();
        v.sort();
        v
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

    /// True when the topology names a pool besides this one, or this pool has another live
    /// member: without either, every user is served here and no look-up of a home pool is
    /// needed.
    pub fn has_others(&self) -> bool {
        let others = !self
            .map
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .routes
            .is_empty();
        others
            || self
                .membership()
                .live
                .get(&self.own)
                .is_some_and(|l| l.len() > 1)
    }

    /// True when `peer` is one of the deployment's servers (a front-end of any pool named by
    /// the topology or announced in the store, or a legacy pool's next hop): what it sends was
    /// authenticated where it came from.
    pub fn is_peer(&self, peer: SocketAddr) -> bool {
        self.map
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .peers
            .contains(&peer)
            || self.membership().peers.contains(&peer)
    }
}

/// Orders two members by their score for `aor` (ties: the smaller address ranks higher).
fn by_score(a: &str, b: &str, aor: &str) -> std::cmp::Ordering {
    rendezvous(a, aor)
        .cmp(&rendezvous(b, aor))
        .then_with(|| b.cmp(a))
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
            pair: None,
            maintenance: false,
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

    fn member(pool: &str, address: &str, age_ms: u64) -> MemberRecord {
        MemberRecord {
            pool: pool.into(),
            address: address.into(),
            heartbeat_age: Duration::from_millis(age_ms),
        }
    }

    #[test]
    fn rendezvous_spreads_users_and_moves_only_a_leaving_members_share() {
        let three = [
            "udp://10.0.0.1:5060",
            "udp://10.0.0.2:5060",
            "udp://10.0.0.3:5060",
        ];
        let users: Vec<String> = (0..3000).map(|i| format!("user{i}@example.com")).collect();
        let mut counts = [0usize; 3];
        for u in &users {
            let o = owner(three, u).expect("an owner");
            counts[three.iter().position(|m| *m == o).expect("a member")] += 1;
        }
        for c in counts {
            assert!((850..1150).contains(&c), "uneven: {counts:?}");
        }
        // Without the third member, only its users change owner.
        for u in &users {
            let before = owner(three, u).expect("an owner");
            let after = owner(three[..2].iter().copied(), u).expect("an owner");
            if before != three[2] {
                assert_eq!(before, after, "{u} moved needlessly");
            }
        }
        // Fixed across releases: every front-end of a deployment must agree (the value
        // checked against an independent implementation of FNV-1a and the finaliser).
        assert_eq!(
            rendezvous("udp://10.0.0.1:5060", "alice@example.com"),
            0xa18b_a171_ccc8_a895
        );
        assert_eq!(owner(std::iter::empty(), "alice@example.com"), None);
    }

    #[test]
    fn members_decide_where_users_are_served() {
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
                &["udp://127.0.0.1:5080"],
                None,
            ),
        ]);
        let me = "udp://127.0.0.1:5070";
        let other = "udp://127.0.0.1:5071";
        pools.set_me(me.into());
        pools.set_members(&[member("a", me, 0)]);
        assert!(pools.own_changed());
        assert!(!pools.own_changed(), "reported once");
        assert!(!pools.has_others() || pools.route("b").is_some());
        assert!(pools.owns("anyone@example.com"), "the only member");
        // A second live member of pool a, and one of pool b that is dead.
        pools.set_members(&[
            member("a", me, 0),
            member("a", other, 4000),
            member("b", "udp://127.0.0.1:5081", 6000),
        ]);
        assert!(pools.own_changed());
        assert_eq!(pools.own_members(), vec![me.to_owned(), other.to_owned()]);
        let users: Vec<String> = (0..50).map(|i| format!("u{i}@example.com")).collect();
        let theirs = users
            .iter()
            .find(|u| !pools.owns(u))
            .expect("the other member owns some");
        let mine = users
            .iter()
            .find(|u| pools.owns(u))
            .expect("this one owns some");
        assert_eq!(
            pools.serve(Some("a"), theirs, false),
            Serving::Member("sip:127.0.0.1:5071;transport=udp".into())
        );
        assert_eq!(pools.serve(Some("a"), mine, false), Serving::Here);
        assert_eq!(
            pools.serve(Some("a"), theirs, true),
            Serving::Here,
            "a request another member sent is served here"
        );
        assert_eq!(pools.serve(None, theirs, false), Serving::Here);
        // Pool b's only member is dead: its topology address is used.
        match pools.serve(Some("b"), mine, false) {
            Serving::Pool(r) => {
                assert_eq!(r.hop.as_deref(), Some("sip:127.0.0.1:5080;transport=udp"))
            }
            other => panic!("{other:?}"),
        }
        // Announced members are peers, dead or alive; only pool a's count as own members.
        let other_addr: SocketAddr = "127.0.0.1:5071".parse().expect("addr");
        let b_member: SocketAddr = "127.0.0.1:5081".parse().expect("addr");
        assert!(pools.is_peer(other_addr) && pools.is_peer(b_member));
        assert!(pools.is_own_member(other_addr) && !pools.is_own_member(b_member));
        assert!(
            !pools.is_own_member("127.0.0.1:5070".parse().expect("addr")),
            "not itself"
        );
        // Pool b's member comes alive: requests for b's users go to it.
        pools.set_members(&[member("a", me, 0), member("b", "udp://127.0.0.1:5081", 10)]);
        assert!(pools.own_changed(), "the other member of a died");
        assert!(pools.owns(theirs));
        match pools.serve(Some("b"), mine, false) {
            Serving::Pool(r) => {
                assert_eq!(r.hop.as_deref(), Some("sip:127.0.0.1:5081;transport=udp"))
            }
            other => panic!("{other:?}"),
        }
    }
}
