//! UDP: one datagram is one SIP message; the response goes where RFC 3261 §18.2.2 and
//! RFC 3581 say ([`crate::routing`]).
//!
//! Using every core: each UDP listener is **one socket shared by several receive tasks**
//! (one per core), not several sockets bound to the same port with `SO_REUSEPORT`. Both
//! spread the work; the shared socket was chosen because `SO_REUSEPORT` lets a second
//! process of the same user (a forgotten `confab serve`, another SIP server) bind the same
//! port without an error and silently take part of the traffic, where one socket makes the
//! second bind fail with "address in use". The kernel lets concurrent `recvfrom` calls on
//! one socket proceed, and each response is sent from the socket that received the request,
//! so its source port is the listener's port as peers expect.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tracing::{debug, trace, warn};

use super::{pause, Shared, Source, Transport};

/// The largest UDP payload; larger datagrams cannot exist.
const MAX_DATAGRAM: usize = 65_535;
/// Receive buffer asked of the kernel (it may grant less), so bursts are not dropped
/// before the receive tasks get to them.
const RECV_BUFFER: usize = 4 * 1024 * 1024;
/// After an unexpected receive error, wait this long before the next receive.
const ERROR_BACKOFF: std::time::Duration = std::time::Duration::from_millis(10);

/// Binds a UDP listener; an IPv6 socket takes IPv6 only, so `[::]` and `0.0.0.0` can both
/// be given.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// How many receive tasks share one UDP socket: one per core.
pub(crate) fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One receive task: receive, handle, answer, until shutdown.
pub(crate) async fn receive_loop(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
    let local = match socket.local_addr() {
        Ok(a) => a,
        Err(e) => {
            warn!(error = %e, "UDP socket has no local address; not receiving");
            return;
        }
    };
    let max = shared.limits.max_message_size;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let received = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            r = socket.recv_from(&mut buf) => r,
        };
        let (len, peer) = match received {
            Ok(r) => r,
            // An ICMP error for an earlier send (port unreachable) surfaces here on Linux;
            // it concerns that peer, not this socket.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
                ) =>
            {
                trace!(error = %e, "ICMP error for an earlier datagram");
                continue;
            }
            Err(e) => {
                warn!(%local, error = %e, "UDP receive failed");
                if pause(&shared, ERROR_BACKOFF).await {
                    return;
                }
                continue;
            }
        };
        if len > max {
            debug!(%peer, len, max, "datagram larger than max_message_size dropped");
            continue;
        }
        let Some(data) = buf.get(..len) else { continue };
        let source = Source {
            transport: Transport::Udp,
            peer,
            local,
        };
        let Some(reply) = shared
            .handler
            .handle_datagram(Bytes::copy_from_slice(data), &source)
        else {
            continue;
        };
        if let Err(e) = socket.send_to(&reply.bytes, reply.target).await {
            debug!(target = %reply.target, error = %e, "UDP send failed");
        }
    }
}
