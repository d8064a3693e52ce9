//! UDP: one datagram is one SIP message; the response goes where RFC 3261 §18.2.2 and
//! RFC 3581 say ([`crate::routing`]).
//!
//! Using every core: each UDP listener is **one socket shared by several receive threads**
//! (one per core), not several sockets bound to the same port with `SO_REUSEPORT`. Both
//! spread the work; the shared socket was chosen because `SO_REUSEPORT` lets a second
//! process of the same user (a forgotten `confab serve`, another SIP server) bind the same
//! port without an error and silently take part of the traffic, where one socket makes the
//! second bind fail with "address in use". The kernel wakes one of the threads blocked on
//! the socket for each datagram, and each response is sent from the socket that received the
//! request, so its source port is the listener's port as peers expect.
//!
//! The receive loops are **threads blocked in `recvfrom`**, not async tasks: a datagram
//! wakes one thread, which parses, handles and answers it and blocks again — two system
//! calls per request. An async task paid for `epoll_wait`, a `recvfrom` that found the
//! socket empty and the runtime's wake-ups on top (BENCHMARKS.md). The handler never waits:
//! what has to wait (a store, a forwarded request) runs as a task on the runtime, which the
//! threads enter. A receive timeout lets a thread see shutdown.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use socket2::{Domain, Protocol, Socket, Type};
use tracing::{debug, trace, warn};

use super::{Shared, Source, Transport};

/// The largest UDP payload; larger datagrams cannot exist.
const MAX_DATAGRAM: usize = 65_535;
/// Receive buffer asked of the kernel (it may grant less), so bursts are not dropped
/// before the receive threads get to them.
const RECV_BUFFER: usize = 4 * 1024 * 1024;
/// After an unexpected receive error, wait this long before the next receive.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);
/// How long a receive thread blocks before it looks whether the server is shutting down.
const SHUTDOWN_POLL: Duration = Duration::from_millis(200);
/// The longest a send may block on a full socket buffer before the datagram is given up
/// (UDP may lose it anyway; the transaction layer retransmits).
const SEND_TIMEOUT: Duration = Duration::from_millis(100);

/// Binds a UDP listener, a blocking socket for the receive threads; an IPv6 socket takes
/// IPv6 only, so `[::]` and `0.0.0.0` can both be given.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    socket.set_read_timeout(Some(SHUTDOWN_POLL))?;
    socket.set_write_timeout(Some(SEND_TIMEOUT))?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// How many receive threads share one UDP socket: one per core.
pub(crate) fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One receive thread: receive, handle, answer, until shutdown. Runs on a thread of its own
/// inside the runtime's context (`spawn_blocking`), so that the handler can spawn tasks.
pub(crate) fn receive_loop(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
    let local = match socket.local_addr() {
        Ok(a) => a,
        Err(e) => {
            warn!(error = %e, "UDP socket has no local address; not receiving");
            return;
        }
    };
    let max = shared.limits.max_message_size;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !shared.shutdown.is_cancelled() {
        let (len, peer) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            // The receive timeout (or a signal): look at shutdown, then receive again.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
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
                std::thread::sleep(ERROR_BACKOFF);
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
        if let Err(e) = socket.send_to(&reply.bytes, reply.target) {
            debug!(target = %reply.target, error = %e, "UDP send failed");
        }
    }
}
