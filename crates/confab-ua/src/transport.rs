//! The user agent's sockets: one UDP socket, or one TCP listener plus the connections it
//! accepts and the ones it opens on demand.
//!
//! Everything received is framed and parsed here and handed to the core task as an
//! [`Inbound`] over one bounded channel, so that the core sees messages from every socket in
//! arrival order and never waits on a socket itself. Sending is the core's: a UDP datagram is
//! sent at once; a stream message is queued to the connection's writer task, opening the
//! connection first if there is none to that address. Every task here stops when the user
//! agent's cancellation token fires or, for a connection, when it closes.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use confab_sip::framing::{parse_datagram, Datagram, Frame, StreamFramer, PONG};
use confab_sip::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, trace};

use crate::config::Transport;

/// Messages queued to one connection's writer before sends are refused.
const WRITE_QUEUE: usize = 256;
/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest UDP datagram read.
const MAX_DATAGRAM: usize = 65_535;
/// Room made in a stream's buffer before each read.
const READ_CHUNK: usize = 8192;

/// What the sockets hand to the core.
// Messages are the common case; boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A parsed message and the address it came from.
    Message { msg: Message, from: SocketAddr },
    /// A TCP connection was accepted; messages to `peer` go to `writer`.
    Accepted {
        peer: SocketAddr,
        writer: mpsc::Sender<Bytes>,
    },
    /// The connection to `peer` is established.
    Connected(SocketAddr),
    /// The connection to `peer` closed or could not be opened.
    Closed(SocketAddr),
}

/// One stream connection as the core sees it.
struct Connection {
    writer: mpsc::Sender<Bytes>,
    /// False while the connection is being opened.
    up: bool,
}

/// The user agent's sockets (see the module documentation).
pub(crate) struct Sockets {
    kind: Transport,
    local: SocketAddr,
    udp: Option<Arc<UdpSocket>>,
    connections: HashMap<SocketAddr, Connection>,
    inbound: mpsc::Sender<Inbound>,
    cancel: CancellationToken,
    max_message: usize,
}

impl Sockets {
    /// Binds `local` and starts the receive (UDP) or accept (TCP) task.
    pub(crate) async fn bind(
        kind: Transport,
        local: SocketAddr,
        inbound: mpsc::Sender<Inbound>,
        cancel: CancellationToken,
        max_message: usize,
    ) -> io::Result<Sockets> {
        let mut sockets = Sockets {
            kind,
            local,
            udp: None,
            connections: HashMap::new(),
            inbound: inbound.clone(),
            cancel: cancel.clone(),
            max_message,
        };
        match kind {
            Transport::Udp => {
                let socket = Arc::new(UdpSocket::bind(local).await?);
                sockets.local = socket.local_addr()?;
                tokio::spawn(udp_receive(socket.clone(), inbound, cancel));
                sockets.udp = Some(socket);
            }
            Transport::Tcp => {
                let listener = TcpListener::bind(local).await?;
                sockets.local = listener.local_addr()?;
                tokio::spawn(tcp_accept(listener, inbound, cancel, max_message));
            }
        }
        Ok(sockets)
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sends one message to `to`: `Ok(true)` when it went out or was queued on an open
    /// connection, `Ok(false)` when it waits for a connection being opened (whose failure
    /// comes back as [`Inbound::Closed`]), `Err` when it certainly was not sent.
    pub(crate) async fn send(&mut self, to: SocketAddr, bytes: Bytes) -> Result<bool, ()> {
        match self.kind {
            Transport::Udp => {
                let Some(socket) = &self.udp else {
                    return Err(());
                };
                socket.send_to(&bytes, to).await.map(|_| true).map_err(|e| {
                    debug!(%to, error = %e, "UDP send failed");
                })
            }
            Transport::Tcp => {
                if !self.connections.contains_key(&to) {
                    self.connect(to);
                }
                let conn = self.connections.get(&to).ok_or(())?;
                conn.writer.try_send(bytes).map_err(|e| {
                    debug!(%to, error = %e, "connection queue refused a message");
                })?;
                Ok(conn.up)
            }
        }
    }

    /// Notes a connection the accept task reported.
    pub(crate) fn accepted(&mut self, peer: SocketAddr, writer: mpsc::Sender<Bytes>) {
        self.connections
            .insert(peer, Connection { writer, up: true });
    }

    /// Notes that the connection being opened to `peer` is up.
    pub(crate) fn connected(&mut self, peer: SocketAddr) {
        if let Some(c) = self.connections.get_mut(&peer) {
            c.up = true;
        }
    }

    /// Forgets a closed connection.
    pub(crate) fn closed(&mut self, peer: SocketAddr) {
        self.connections.remove(&peer);
    }

    /// Starts opening a connection to `to`; messages queue until it is up.
    fn connect(&mut self, to: SocketAddr) {
        let (writer, queue) = mpsc::channel(WRITE_QUEUE);
        self.connections.insert(
            to,
            Connection {
                writer: writer.clone(),
                up: false,
            },
        );
        let inbound = self.inbound.clone();
        let cancel = self.cancel.clone();
        let max = self.max_message;
        tokio::spawn(async move {
            let stream = tokio::select! {
                _ = cancel.cancelled() => return,
                r = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to)) => r,
            };
            match stream {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    if inbound.send(Inbound::Connected(to)).await.is_err() {
                        return;
                    }
                    let (read, write) = stream.into_split();
                    run_connection(to, read, write, writer, queue, inbound, cancel, max).await;
                }
                Ok(Err(e)) => {
                    debug!(%to, error = %e, "connect failed");
                    let _ = inbound.send(Inbound::Closed(to)).await;
                }
                Err(_) => {
                    debug!(%to, "connect timed out");
                    let _ = inbound.send(Inbound::Closed(to)).await;
                }
            }
        });
    }
}

async fn udp_receive(
    socket: Arc<UdpSocket>,
    inbound: mpsc::Sender<Inbound>,
    cancel: CancellationToken,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let received = tokio::select! {
            _ = cancel.cancelled() => return,
            r = socket.recv_from(&mut buf) => r,
        };
        let (n, from) = match received {
            Ok(r) => r,
            // ICMP port unreachable and the like surface here on some systems: not fatal.
            Err(e) => {
                trace!(error = %e, "UDP receive error");
                continue;
            }
        };
        let data = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
        match parse_datagram(data) {
            Ok(Datagram::Message(msg)) => {
                if inbound.send(Inbound::Message { msg, from }).await.is_err() {
                    return;
                }
            }
            Ok(Datagram::KeepAlive) => {}
            Err(e) => debug!(%from, error = %e, "unparseable datagram dropped"),
        }
    }
}

async fn tcp_accept(
    listener: TcpListener,
    inbound: mpsc::Sender<Inbound>,
    cancel: CancellationToken,
    max_message: usize,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                debug!(error = %e, "accept failed");
                // Out of descriptors and the like: do not spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (writer, queue) = mpsc::channel(WRITE_QUEUE);
        let announce = Inbound::Accepted {
            peer,
            writer: writer.clone(),
        };
        if inbound.send(announce).await.is_err() {
            return;
        }
        let (read, write) = stream.into_split();
        let (inbound, cancel) = (inbound.clone(), cancel.clone());
        tokio::spawn(async move {
            run_connection(
                peer,
                read,
                write,
                writer,
                queue,
                inbound,
                cancel,
                max_message,
            )
            .await;
        });
    }
}

/// Runs one connection until either direction ends: reads and frames in a task of its own,
/// writes here.
#[allow(clippy::too_many_arguments)]
async fn run_connection(
    peer: SocketAddr,
    read: OwnedReadHalf,
    mut write: OwnedWriteHalf,
    writer: mpsc::Sender<Bytes>,
    mut queue: mpsc::Receiver<Bytes>,
    inbound: mpsc::Sender<Inbound>,
    cancel: CancellationToken,
    max_message: usize,
) {
    let done = cancel.child_token();
    let reader = tokio::spawn(read_stream(
        peer,
        read,
        writer,
        inbound.clone(),
        done.clone(),
        max_message,
    ));
    loop {
        let next = tokio::select! {
            _ = done.cancelled() => break,
            m = queue.recv() => m,
        };
        let Some(bytes) = next else { break };
        if let Err(e) = write.write_all(&bytes).await {
            debug!(%peer, error = %e, "write failed");
            break;
        }
    }
    done.cancel();
    let _ = write.shutdown().await;
    let _ = reader.await;
    let _ = inbound.send(Inbound::Closed(peer)).await;
}

async fn read_stream(
    peer: SocketAddr,
    mut read: OwnedReadHalf,
    writer: mpsc::Sender<Bytes>,
    inbound: mpsc::Sender<Inbound>,
    done: CancellationToken,
    max_message: usize,
) {
    let mut framer = StreamFramer::new(max_message);
    'read: loop {
        let buf = framer.buffer_mut();
        buf.reserve(READ_CHUNK);
        tokio::select! {
            _ = done.cancelled() => break,
            r = read.read_buf(buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
        }
        loop {
            match framer.next_frame() {
                Ok(None) => break,
                Ok(Some(Frame::Message(msg))) => {
                    if inbound
                        .send(Inbound::Message { msg, from: peer })
                        .await
                        .is_err()
                    {
                        break 'read;
                    }
                }
                Ok(Some(Frame::Ping)) => {
                    let _ = writer.try_send(Bytes::from_static(PONG));
                }
                Ok(Some(Frame::Pong)) => {}
                Ok(Some(Frame::Malformed(e))) => {
                    debug!(%peer, error = %e, "malformed message on stream dropped");
                }
                Err(e) => {
                    debug!(%peer, error = %e, "stream cannot be framed; closing");
                    break 'read;
                }
            }
        }
    }
    done.cancel();
}
