//! Where a response goes (RFC 3261 §18.2.2, RFC 3581).
//!
//! Over a connection the answer is simple: back on the connection the request came on. Over
//! UDP it depends on the top Via:
//!
//! - with `rport` (or with `force_rport`): to the source address and port of the request;
//! - otherwise: to the source address, at the sent-by port (5060 when absent). RFC 3261 says
//!   "to the address in `received`", and the server adds `received` whenever sent-by is not
//!   the source address, so that address is always the source address. The server never
//!   resolves a sent-by host name, which also keeps it from being aimed at third parties.
//! - `maddr` is ignored: answering a multicast address named by an unauthenticated request
//!   would make the server an amplifier. The destination is never a broadcast, multicast or
//!   unspecified address (RFC 4475 `bcast`), and never port 0.
//!
//! A request whose top Via cannot be read (RFC 4475 `badinv01`) is answered at its source
//! address and port: the only address the server knows for it.

use std::net::{IpAddr, SocketAddr};

use confab_sip::Message;

use crate::transport::Source;

/// The port of RFC 3261 §18.2.2 when sent-by has none.
const DEFAULT_SIP_PORT: u16 = 5060;

/// The UDP destination of a response to `request`, or `None` when it must not be sent.
pub fn datagram_target(
    request: &Message,
    source: &Source,
    force_rport: bool,
) -> Option<SocketAddr> {
    let ip = source.peer.ip();
    if !is_unicast(ip) {
        return None;
    }
    let port = match request.via() {
        Ok(via) if force_rport || via.rport().is_some() => source.peer.port(),
        Ok(via) => via.port().unwrap_or(DEFAULT_SIP_PORT),
        Err(_) => source.peer.port(),
    };
    (port != 0).then_some(SocketAddr::new(ip, port))
}

/// True for an address a response may be sent to.
pub fn is_unicast(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    match ip {
        IpAddr::V4(v4) => !(v4.is_broadcast() || v4.is_multicast() || v4.is_unspecified()),
        IpAddr::V6(v6) => !(v6.is_multicast() || v6.is_unspecified()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Transport;
    use bytes::Bytes;

    fn request(via: &str) -> Message {
        let text = format!(
            "OPTIONS sip:a@b SIP/2.0\r\nVia: {via}\r\nFrom: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\n\
             Call-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        match Message::parse(Bytes::from(text)) {
            Ok(m) => m,
            Err(e) => e.partial().cloned().expect("a readable head"),
        }
    }

    fn source(peer: &str) -> Source {
        Source {
            transport: Transport::Udp,
            peer: peer.parse().expect("addr"),
            local: "127.0.0.1:5060".parse().expect("addr"),
        }
    }

    fn target(via: &str, peer: &str, force: bool) -> Option<String> {
        datagram_target(&request(via), &source(peer), force).map(|a| a.to_string())
    }

    #[test]
    fn rfc3261_and_rfc3581() {
        let peer = "192.0.2.1:40000";
        // rport: source address and port.
        assert_eq!(
            target("SIP/2.0/UDP h.example;branch=z9hG4bK1;rport", peer, false).as_deref(),
            Some("192.0.2.1:40000")
        );
        // No rport: source address (= received), sent-by port.
        assert_eq!(
            target("SIP/2.0/UDP h.example:5070;branch=z9hG4bK1", peer, false).as_deref(),
            Some("192.0.2.1:5070")
        );
        assert_eq!(
            target("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1", peer, false).as_deref(),
            Some("192.0.2.1:5060")
        );
        // force_rport: source port regardless.
        assert_eq!(
            target("SIP/2.0/UDP h.example:5070;branch=z9hG4bK1", peer, true).as_deref(),
            Some("192.0.2.1:40000")
        );
        // Unreadable Via: source address and port.
        assert_eq!(
            target("garbage", peer, false).as_deref(),
            Some("192.0.2.1:40000")
        );
        // maddr is never followed.
        assert_eq!(
            target(
                "SIP/2.0/UDP h;maddr=224.0.1.75;branch=z9hG4bK1",
                peer,
                false
            )
            .as_deref(),
            Some("192.0.2.1:5060")
        );
    }

    #[test]
    fn never_broadcast_multicast_or_port_zero() {
        let via = "SIP/2.0/UDP h;branch=z9hG4bK1;rport";
        assert_eq!(target(via, "255.255.255.255:5060", false), None);
        assert_eq!(target(via, "224.0.1.75:5060", false), None);
        assert_eq!(target(via, "[ff02::1]:5060", false), None);
        assert_eq!(target(via, "[::ffff:255.255.255.255]:5060", false), None);
        assert_eq!(target(via, "0.0.0.0:5060", false), None);
        assert_eq!(
            target("SIP/2.0/UDP h:0;branch=z9hG4bK1", "192.0.2.1:1", false),
            None
        );
    }
}
