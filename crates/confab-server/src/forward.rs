//! How the proxy rewrites one request for one target (RFC 3261 §16.6) and where it sends
//! it: the [`Listeners`] it speaks for (Via sent-by, Record-Route, which Route values are
//! its own), the loop-detection hash in its branches (§16.3 item 4), the edits made by
//! splicing the received bytes ([`confab_sip::edit::Edit`]), and the resolution of a URI to
//! a flow.
//!
//! - **Via**: `SIP/2.0/T HOST:PORT;branch=z9hG4bKcf<hash>.<n>;rport`, HOST:PORT being the
//!   listener the request leaves by (or [`crate::ServiceConfig::advertise`] for a wildcard
//!   listener). `<hash>` is a keyed hash of what identifies the request as received —
//!   Request-URI, From and To tags, Call-ID, CSeq — so a request that comes back with one of
//!   our Vias carrying its own hash has looped (482), while a spiral (same request, new
//!   Request-URI) has not.
//! - **Record-Route**: `<sip:HOST:PORT;transport=T;lr>` of the listener the request came in
//!   by, on requests that start a dialog or stand alone (no To tag), so in-dialog requests
//!   come back through us.
//! - **Resolution**: a URI whose host and port are those of a registered contact goes over
//!   that contact's flow (NATs, connection reuse); otherwise the host must be an IP address
//!   (no DNS yet), the transport comes from the `transport` parameter (UDP by default, TLS
//!   for `sips:`), and a listener of that transport sends it.

use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use bytes::Bytes;
use confab_sip::edit::{Edit, EditError};
use confab_sip::{HeaderName, Message, Uri};

use crate::config::{ListenUri, ServiceConfig};
use crate::location::{contact_key, Location};
use crate::transport::{Source, Transport};

/// Where one copy of a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The new Request-URI (a registered contact), or `None` to keep it.
    pub request_uri: Option<String>,
    /// The flow to send on.
    pub flow: Source,
    /// Route values to put first (a binding's Path).
    pub route: Vec<String>,
}

/// The listeners of this front-end, known once bound.
#[derive(Debug, Default)]
pub struct Listeners {
    bound: OnceLock<Vec<ListenUri>>,
    advertise: Option<String>,
    fallback_host: String,
}

fn host_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

fn default_port(transport: Transport) -> u16 {
    if transport.is_secure() {
        5061
    } else {
        5060
    }
}

impl Listeners {
    /// Listeners to be set once bound; `advertise` or, failing that, the first domain of
    /// `config` names a wildcard listener.
    pub fn new(config: &ServiceConfig) -> Self {
        Listeners {
            bound: OnceLock::new(),
            advertise: config.advertise.clone(),
            fallback_host: config.domains.first().cloned().unwrap_or_default(),
        }
    }

    /// Records the bound listeners (first call wins).
    pub fn set(&self, bound: Vec<ListenUri>) {
        let _ = self.bound.set(bound);
    }

    fn all(&self) -> &[ListenUri] {
        self.bound.get().map_or(&[], Vec::as_slice)
    }

    /// `HOST:PORT` of a local address, as written in Via and Record-Route.
    pub fn sent_by(&self, local: SocketAddr) -> String {
        let host = if local.ip().is_unspecified() {
            self.advertise
                .clone()
                .unwrap_or_else(|| self.fallback_host.clone())
        } else {
            host_of(local.ip())
        };
        format!("{host}:{}", local.port())
    }

    /// Our Via for a request leaving on `flow` with `branch`.
    pub fn via(&self, flow: &Source, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            flow.transport.via_token(),
            self.sent_by(flow.local)
        )
    }

    /// Our Contact for a dialog whose requests come and go by `flow` (a notifier's 2xx and
    /// NOTIFYs).
    pub fn contact(&self, flow: &Source) -> String {
        format!(
            "<sip:{};transport={}>",
            self.sent_by(flow.local),
            flow.transport.scheme()
        )
    }

    /// Our Record-Route value for a request that came in by `source`.
    pub fn record_route(&self, source: &Source) -> String {
        format!(
            "<sip:{};transport={};lr>",
            self.sent_by(source.local),
            source.transport.scheme()
        )
    }

    /// True when `uri` names this front-end: a listener's address and port, or a local
    /// domain (or the advertised host) with a listener's port or none.
    pub fn is_ours(&self, uri: &Uri<'_>, config: &ServiceConfig) -> bool {
        let Some(host) = uri.host_str() else {
            return false;
        };
        let port = uri.port();
        let ip: Option<IpAddr> = host.trim_matches(['[', ']']).parse().ok();
        self.all().iter().any(|l| {
            let port_ok = port.unwrap_or(default_port(l.transport)) == l.addr.port();
            match ip {
                Some(ip) => port_ok && (l.addr.ip() == ip || l.addr.ip().is_unspecified()),
                None => {
                    let named = config.is_local_domain(host)
                        || self
                            .advertise
                            .as_deref()
                            .is_some_and(|a| a.eq_ignore_ascii_case(host));
                    named && (port.is_none() || port_ok)
                }
            }
        })
    }

    /// The listener to send from over `transport` to `peer`: a listener of that transport
    /// and address family, a specific address preferred.
    pub fn local_for(&self, transport: Transport, peer: SocketAddr) -> Option<SocketAddr> {
        let mut candidates = self
            .all()
            .iter()
            .filter(|l| l.transport == transport && l.addr.is_ipv4() == peer.is_ipv4());
        let first = candidates.clone().next()?;
        Some(
            candidates
                .find(|l| !l.addr.ip().is_unspecified())
                .unwrap_or(first)
                .addr,
        )
    }

    /// This front-end's address for the other members of its pool: its first UDP listener
    /// (front-ends recognise each other by UDP source address), else its first listener, as a
    /// listen URI (`udp://10.0.0.1:5060`). `None` when that listener is bound to a wildcard
    /// address and the advertised host is a name, not an address.
    pub fn member_address(&self) -> Option<String> {
        let all = self.all();
        let l = all
            .iter()
            .find(|l| l.transport == Transport::Udp)
            .or_else(|| all.first())?;
        let sent_by = self.sent_by(l.addr);
        let addr: SocketAddr = sent_by.parse().ok()?;
        Some(format!("{}://{addr}", l.transport.scheme()))
    }

    /// `flow` as this front-end can use it: unchanged when it leaves by one of its listeners,
    /// else (a flow another member of the pool stored, taken over) by this front-end's
    /// listener of the same transport towards the same peer.
    pub fn adopt(&self, flow: Source) -> Source {
        let ours = self
            .all()
            .iter()
            .any(|l| l.transport == flow.transport && l.addr == flow.local);
        match self.local_for(flow.transport, flow.peer) {
            Some(local) if !ours => Source { local, ..flow },
            _ => flow,
        }
    }

    /// The flow for a URI (see the module documentation), or `None` when it cannot be
    /// reached.
    pub fn resolve(&self, uri: &str, location: &Location) -> Option<Source> {
        if let Some(flow) = contact_key(uri).and_then(|k| location.flow_for(&k)) {
            return Some(flow);
        }
        self.resolve_direct(uri)
    }

    /// The flow to the address a URI names (an IP address; no DNS), by this front-end's
    /// listener of its transport, whatever flow a registration may have recorded for it.
    pub fn resolve_direct(&self, uri: &str) -> Option<Source> {
        let u = Uri::parse(uri).ok()?;
        let ip: IpAddr = u.host_str()?.trim_matches(['[', ']']).parse().ok()?;
        let transport = match u.transport() {
            Some(t) => Transport::from_scheme(t)?,
            None if u.is_sips() => Transport::Tls,
            None => Transport::Udp,
        };
        let peer = SocketAddr::new(ip, u.port().unwrap_or(default_port(transport)));
        let local = self.local_for(transport, peer)?;
        Some(Source {
            transport,
            peer,
            local,
        })
    }
}

/// The loop-detection hash of a request as received: 16 hex digits.
pub fn loop_hash(key: &RandomState, req: &Message) -> String {
    use std::hash::Hasher;
    let mut h = key.build_hasher();
    h.write_u64(key.hash_one((
        req.request_uri_str(),
        req.from().ok().and_then(|f| f.tag()),
        req.to().ok().and_then(|t| t.tag()),
        req.header_bytes(HeaderName::CallId),
        req.cseq().ok().map(|c| c.seq),
        req.method_str(),
    )));
    // RFC 3261 §16.6 step 8: every field that steers the request, so that a spiral (the
    // request back with its route set consumed further, e.g. a dialog through this
    // front-end and another pool's and back) is told from a loop.
    for name in [
        HeaderName::Route,
        HeaderName::ProxyRequire,
        HeaderName::ProxyAuthorization,
    ] {
        for v in req.values(name) {
            h.write(v.as_bytes());
            h.write_u8(0xff);
        }
        h.write_u8(0xfe);
    }
    format!("{:016x}", h.finish())
}

/// The branch of copy `n` of a request with `hash`.
pub fn branch(hash: &str, n: &str) -> String {
    format!("z9hG4bKcf{hash}.{n}")
}

/// True when one of the request's Vias is ours and carries `hash`: it has been here before
/// in this very form (RFC 3261 §16.3 item 4).
pub fn has_looped(req: &Message, hash: &str, listeners: &Listeners) -> bool {
    let mark = format!("z9hG4bKcf{hash}.");
    req.vias().flatten().any(|v| {
        v.branch().is_some_and(|b| b.starts_with(&mark))
            && listeners.all().iter().any(|l| {
                listeners.sent_by(l.addr).eq_ignore_ascii_case(&format!(
                    "{}:{}",
                    v.host_str(),
                    v.port().unwrap_or(default_port(l.transport))
                ))
            })
    })
}

/// The request rewritten for `target` (RFC 3261 §16.6): our Route popped when `pop_route`,
/// the Request-URI replaced, Max-Forwards decremented, Record-Route pushed when given, our
/// Via pushed, the target's Route values put first, and the Proxy-Authorization credentials
/// for a realm of ours (`own_realm`) removed: they were for us, not for the next hop
/// (RFC 3261 §22.3).
pub fn build(
    req: &Message,
    target: &Target,
    via: &str,
    record_route: Option<&str>,
    pop_route: bool,
    own_realm: &dyn Fn(&str) -> bool,
) -> Result<Bytes, EditError> {
    let mut e = Edit::new(req);
    e.remove_fields(HeaderName::ProxyAuthorization, |value| {
        std::str::from_utf8(value)
            .ok()
            .and_then(|v| confab_sip::auth::Credentials::parse(v).ok())
            .and_then(|c| c.realm())
            .is_some_and(|realm| own_realm(&realm))
    });
    if pop_route {
        e.pop_route()?;
    }
    if let Some(uri) = &target.request_uri {
        e.set_request_uri(uri)?;
    }
    e.decrement_max_forwards()?;
    if let Some(rr) = record_route {
        e.push_record_route(rr);
    }
    e.push_via(via);
    let bytes = e.apply()?;
    Ok(prepend_routes(bytes, &target.route))
}

/// Inserts `Route` fields right after the start line, before any other header.
pub fn prepend_routes(bytes: Bytes, routes: &[String]) -> Bytes {
    prepend_fields(bytes, "Route", routes)
}

/// Inserts `name` fields with `values` right after the start line, before any other header.
pub fn prepend_fields(bytes: Bytes, name: &str, values: &[String]) -> Bytes {
    if values.is_empty() {
        return bytes;
    }
    let Some(eol) = bytes.windows(2).position(|w| w == b"\r\n") else {
        return bytes;
    };
    let (head, rest) = bytes.split_at(eol + 2);
    let mut out = Vec::with_capacity(
        bytes.len()
            + values
                .iter()
                .map(|v| v.len() + name.len() + 4)
                .sum::<usize>(),
    );
    out.extend_from_slice(head);
    for v in values {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(rest);
    Bytes::from(out)
}

/// The response with our Via popped, to relay upstream (RFC 3261 §16.7 step 3).
pub fn upstream(response: &Message) -> Option<Bytes> {
    let mut e = Edit::new(response);
    e.pop_via().ok()?;
    e.apply().ok()
}

#[cfg(test)]
#[path = "forward_tests.rs"]
mod tests;
