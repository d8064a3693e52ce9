//! TCP: binding listeners (also for TLS and WebSocket, which run over TCP), the accept loop
//! shared by every connection-oriented transport, and plain SIP over TCP.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tracing::{info_span, warn, Instrument};

use super::connections::Registration;
use super::{pause, stream, Shared, Source, Transport, ACCEPT_BACKOFF};

/// Pending connections the kernel queues before `accept`.
const BACKLOG: i32 = 1024;

/// Binds a TCP listener. `SO_REUSEADDR` lets a restarted server bind while old connections
/// linger in TIME_WAIT; an IPv6 listener takes IPv6 only, so `[::]` and `0.0.0.0` can both
/// be given.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// What a connection task gets: the accepted stream, where it came from, its place in the
/// connection table (with the queue of what others send to the peer), and when it was
/// accepted.
pub(crate) struct Accepted {
    pub(crate) stream: TcpStream,
    pub(crate) source: Source,
    pub(crate) registration: Registration,
    pub(crate) outbound: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    pub(crate) at: Instant,
}

/// Accepts connections until shutdown, admitting each into the connection table and running
/// `serve` on it in its own task. Connections over the cap are closed at once.
pub(crate) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    transport: Transport,
    shared: Arc<Shared>,
    serve: F,
) where
    F: Fn(Accepted, Arc<Shared>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            warn!(%transport, error = %e, "listener has no local address; not accepting");
            return;
        }
    };
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors, or a connection reset before accept: wait a
                // little rather than spin.
                warn!(%transport, %local, error = %e, "accept failed");
                if pause(&shared, ACCEPT_BACKOFF).await {
                    return;
                }
                continue;
            }
        };
        let Some((registration, outbound)) = shared.connections.register(transport, peer) else {
            warn!(
                %transport,
                %peer,
                max_connections = shared.limits.max_connections,
                "connection refused: too many open connections"
            );
            drop(stream);
            continue;
        };
        // Responses are small and latency matters more than packing.
        let _ = stream.set_nodelay(true);
        let source = Source {
            transport,
            peer,
            local,
        };
        let span = info_span!("connection", %transport, %peer);
        let task = serve(
            Accepted {
                stream,
                source,
                registration,
                outbound,
                at: Instant::now(),
            },
            Arc::clone(&shared),
        );
        shared.tasks.spawn(task.instrument(span));
    }
}

/// Serves one plain TCP connection.
pub(crate) async fn serve(conn: Accepted, shared: Arc<Shared>) {
    let Accepted {
        stream,
        source,
        registration,
        outbound,
        at,
    } = conn;
    tracing::debug!("connection accepted");
    let closed = stream::serve(stream, source, &shared, outbound, at).await;
    stream::log_close(&source, &closed);
    drop(registration);
}
