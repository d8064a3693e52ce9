//! Sending outside a request's own answer: what the transaction layer's timers (and later the
//! proxy) need to reach a peer. Datagrams leave from the UDP socket a request arrived on, so
//! their source port is the one the peer knows; stream messages are queued on the open
//! connection to the peer (connection reuse). No connection is opened here: outbound
//! connections arrive with the proxy.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use bytes::Bytes;

use super::connections::ConnectionTable;
use super::{Source, Transport};
use crate::routing;

/// A handle to send messages over the server's transports. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Transmitter {
    udp: Arc<[(SocketAddr, Arc<UdpSocket>)]>,
    connections: Arc<ConnectionTable>,
}

impl Transmitter {
    pub(crate) fn new(
        udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
        connections: Arc<ConnectionTable>,
    ) -> Self {
        Transmitter {
            udp: udp.into(),
            connections,
        }
    }

    /// Sends `bytes` back along `source`'s path: over UDP from the socket at `source.local`
    /// to `target`, otherwise on the open connection to `source.peer`. Never to a broadcast
    /// or multicast address.
    pub async fn send(&self, source: &Source, target: SocketAddr, bytes: Bytes) -> io::Result<()> {
        if source.transport != Transport::Udp {
            return self
                .connections
                .send(source.transport, source.peer, bytes)
                .map_err(|e| io::Error::new(io::ErrorKind::NotConnected, e));
        }
        if !routing::is_unicast(target.ip()) || target.port() == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not an address a message may be sent to",
            ));
        }
        let socket = self
            .udp
            .iter()
            .find(|(local, _)| *local == source.local)
            .or_else(|| {
                self.udp
                    .iter()
                    .find(|(l, _)| l.is_ipv4() == target.is_ipv4())
            })
            .map(|(_, s)| s)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no UDP listener"))?;
        // A blocking socket shared with the receive threads; a full send buffer makes this
        // wait at most the socket's send timeout.
        socket.send_to(&bytes, target).map(drop)
    }
}
