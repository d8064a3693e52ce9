//! The connection table: every open TCP, TLS and WebSocket connection, keyed by transport and
//! peer address. It enforces the cap on open connections and is how a later layer (the
//! transaction driver retransmitting, the proxy forwarding) sends to a peer over the
//! connection that peer already has open, instead of opening another (connection reuse).
//!
//! A connection's task owns its socket; the table holds only a channel to it. The
//! registration a connection task keeps removes its entry when the task ends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::Transport;

/// Messages queued for one connection before senders are told it is busy.
const QUEUE: usize = 64;

type Key = (Transport, SocketAddr);

#[derive(Debug)]
struct Entry {
    id: u64,
    tx: mpsc::Sender<Bytes>,
}

/// The open connections of one server.
#[derive(Debug)]
pub struct ConnectionTable {
    max: usize,
    next_id: AtomicU64,
    /// Live registrations; can exceed the entries when a peer address was reused.
    open: AtomicUsize,
    entries: Mutex<HashMap<Key, Entry>>,
}

/// Why a message could not be queued for a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No connection to that peer over that transport is open.
    #[error("no open connection to the peer")]
    NotConnected,
    /// The connection's queue is full (the peer does not read).
    #[error("the connection's send queue is full")]
    Busy,
}

impl ConnectionTable {
    /// A table that admits at most `max` connections.
    pub fn new(max: usize) -> Self {
        ConnectionTable {
            max,
            next_id: AtomicU64::new(1),
            open: AtomicUsize::new(0),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Entry>> {
        // A panic while holding the lock cannot leave the map inconsistent (every update is
        // one insert or remove), so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a new connection, or `None` when the table is full. The receiver yields
    /// what others send to the peer through [`ConnectionTable::send`].
    pub(crate) fn register(
        self: &Arc<Self>,
        transport: Transport,
        peer: SocketAddr,
    ) -> Option<(Registration, mpsc::Receiver<Bytes>)> {
        let mut entries = self.lock();
        if self.open.load(Ordering::Relaxed) >= self.max {
            return None;
        }
        self.open.fetch_add(1, Ordering::Relaxed);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(QUEUE);
        // A peer address seen again replaces the older entry: the newest connection is the
        // one its owner uses.
        entries.insert((transport, peer), Entry { id, tx });
        Some((
            Registration {
                table: Arc::clone(self),
                key: (transport, peer),
                id,
            },
            rx,
        ))
    }

    /// Queues `message` for the open connection to `peer` over `transport`.
    pub fn send(
        &self,
        transport: Transport,
        peer: SocketAddr,
        message: Bytes,
    ) -> Result<(), SendError> {
        let entries = self.lock();
        let entry = entries
            .get(&(transport, peer))
            .ok_or(SendError::NotConnected)?;
        entry.tx.try_send(message).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Busy,
            mpsc::error::TrySendError::Closed(_) => SendError::NotConnected,
        })
    }

    /// True when a connection to `peer` over `transport` is open.
    pub fn is_connected(&self, transport: Transport, peer: SocketAddr) -> bool {
        self.lock().contains_key(&(transport, peer))
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// True when no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A connection's place in the table; dropping it removes the entry.
#[derive(Debug)]
pub(crate) struct Registration {
    table: Arc<ConnectionTable>,
    key: Key,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut entries = self.table.lock();
        self.table.open.fetch_sub(1, Ordering::Relaxed);
        if entries.get(&self.key).is_some_and(|e| e.id == self.id) {
            entries.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn cap_send_and_removal() {
        let table = Arc::new(ConnectionTable::new(2));
        let (a, mut rx_a) = table.register(Transport::Tcp, addr(1)).expect("room");
        let (b, _rx_b) = table.register(Transport::Ws, addr(2)).expect("room");
        assert!(table.register(Transport::Tcp, addr(3)).is_none(), "full");
        assert_eq!(table.len(), 2);

        table
            .send(Transport::Tcp, addr(1), Bytes::from_static(b"x"))
            .expect("queued");
        assert_eq!(rx_a.try_recv().ok(), Some(Bytes::from_static(b"x")));
        assert_eq!(
            table.send(Transport::Udp, addr(1), Bytes::new()),
            Err(SendError::NotConnected)
        );

        drop(a);
        assert!(!table.is_connected(Transport::Tcp, addr(1)));
        assert!(table.register(Transport::Tcp, addr(3)).is_some());
        drop(b);
    }

    #[test]
    fn a_replaced_entry_survives_the_old_registration() {
        let table = Arc::new(ConnectionTable::new(8));
        let (old, _rx1) = table.register(Transport::Tcp, addr(1)).expect("room");
        let (_new, _rx2) = table.register(Transport::Tcp, addr(1)).expect("room");
        assert_eq!(table.len(), 2, "both connections count against the cap");
        drop(old);
        assert!(table.is_connected(Transport::Tcp, addr(1)));
        assert_eq!(table.len(), 1);
    }
}
