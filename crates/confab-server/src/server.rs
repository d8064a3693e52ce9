//! The running front-end's SIP side: binds every listener of a [`ServerConfig`], runs the
//! transport tasks, and shuts them down.
//!
//! Binding and running are separate steps, so that a caller learns the actual addresses
//! (port 0 binds an ephemeral port) before traffic flows, and so that a configuration error
//! or a port in use is reported before anything runs.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use std::net::UdpSocket;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::{ListenUri, ServerConfig};
use crate::error::{ServerError, TransportError};
use crate::handler::Handler;
use crate::router::Router;
use crate::transactions::TransactionHook;
use crate::transport::connections::ConnectionTable;
use crate::transport::{tcp, tls, udp, ws, Shared, Transmitter, Transport};

/// How long shutdown waits for connections to close before it stops waiting.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long shutdown waits for the registrations not yet written behind: a million changed
/// bindings take some tens of seconds to write.
const WRITE_BEHIND_GRACE: Duration = Duration::from_secs(120);

enum Listener {
    Udp(Arc<UdpSocket>),
    Stream(TcpListener),
}

/// A bound, not yet running server.
pub struct Server {
    listeners: Vec<(ListenUri, Listener)>,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    transactions: Option<Arc<dyn TransactionHook>>,
    router: Option<Arc<Router>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listeners", &self.local_addrs())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Validates `config`, loads the TLS certificate if a listener needs it, and binds every
    /// listener. Must run inside a Tokio runtime.
    pub async fn bind(config: ServerConfig) -> Result<Server, ServerError> {
        Self::bind_with(config, None).await
    }

    /// As [`Server::bind`], with the transaction layer installed (see
    /// [`crate::transactions`]): its requests and responses go through `transactions`, and
    /// [`Server::run`] runs its task ([`TransactionHook::start`]) with this server's
    /// [`Transmitter`] until shutdown. `None` is [`Server::bind`].
    pub async fn bind_with(
        config: ServerConfig,
        transactions: Option<Arc<dyn TransactionHook>>,
    ) -> Result<Server, ServerError> {
        Self::bind_inner(config, transactions, None).await
    }

    /// As [`Server::bind`], with the router (registrar, proxy, messaging) and its
    /// transaction driver installed: the router learns the bound listeners, its
    /// registrations are loaded from its store (a store failure is logged, and the server
    /// starts with none), and [`Server::run`] runs its background work.
    pub async fn bind_with_router(
        config: ServerConfig,
        router: Arc<Router>,
    ) -> Result<Server, ServerError> {
        let driver: Arc<dyn TransactionHook> = router.driver();
        let server = Self::bind_inner(config, Some(driver), Some(Arc::clone(&router))).await?;
        router.set_listeners(server.local_addrs());
        if let Err(e) = router.load().await {
            warn!(error = %e, "registrations could not be loaded; starting with none");
        }
        Ok(server)
    }

    async fn bind_inner(
        config: ServerConfig,
        transactions: Option<Arc<dyn TransactionHook>>,
        router: Option<Arc<Router>>,
    ) -> Result<Server, ServerError> {
        config.validate()?;
        let tls = match (
            &config.tls,
            config.listen.iter().any(|l| l.transport.is_secure()),
        ) {
            (Some(files), true) => Some(tls::acceptor(files)?),
            _ => None,
        };
        let mut listeners = Vec::with_capacity(config.listen.len());
        for uri in &config.listen {
            let bind_error = |source| TransportError::Bind {
                uri: uri.to_string(),
                source,
            };
            let (listener, local) = if uri.transport == Transport::Udp {
                let socket = udp::bind(uri.addr).map_err(bind_error)?;
                let local = socket.local_addr().map_err(bind_error)?;
                (Listener::Udp(Arc::new(socket)), local)
            } else {
                let listener = tcp::bind(uri.addr).map_err(bind_error)?;
                let local = listener.local_addr().map_err(bind_error)?;
                (Listener::Stream(listener), local)
            };
            listeners.push((ListenUri::new(uri.transport, local), listener));
        }
        let mut handler = Handler::new(config.force_rport);
        if let Some(t) = &transactions {
            handler = handler.with_transactions(Arc::clone(t));
        }
        if let Some(r) = &router {
            handler = handler.with_router(Arc::clone(r));
        }
        let shared = Arc::new(Shared {
            handler,
            limits: config.limits,
            connections: Arc::new(ConnectionTable::new(config.limits.max_connections)),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        Ok(Server {
            listeners,
            tls,
            shared,
            transactions,
            router,
        })
    }

    /// The listeners as bound, with the actual ports, in configuration order.
    pub fn local_addrs(&self) -> Vec<ListenUri> {
        self.listeners.iter().map(|(uri, _)| *uri).collect()
    }

    /// The open connections, for sending to a peer over the connection it already has.
    pub fn connections(&self) -> Arc<ConnectionTable> {
        Arc::clone(&self.shared.connections)
    }

    /// A handle that sends over this server's UDP sockets and open connections, for the
    /// transaction layer's retransmissions (see [`crate::transactions`]).
    pub fn transmitter(&self) -> Transmitter {
        let udp = self
            .listeners
            .iter()
            .filter_map(|(uri, l)| match l {
                Listener::Udp(socket) => Some((uri.addr, Arc::clone(socket))),
                Listener::Stream(_) => None,
            })
            .collect();
        Transmitter::new(udp, Arc::clone(&self.shared.connections))
    }

    /// Serves until `shutdown` completes, then stops accepting, closes every connection,
    /// stops the transaction layer's task and returns (waiting at most a few seconds for
    /// connections to close).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let transmitter = self.transmitter();
        let Server {
            listeners,
            tls,
            shared,
            transactions,
            router,
        } = self;
        if let Some(task) = transactions.and_then(|t| t.start(transmitter, shared.shutdown.clone()))
        {
            shared.tasks.spawn(task);
        }
        // Not among the transports' tasks: on the way out it writes the registrations not
        // yet written, which may take longer than connections get to close.
        let router_task = router.map(|router| tokio::spawn(router.start(shared.shutdown.clone())));
        // The UDP receive threads end when the token is cancelled; this future dropped
        // unfinished (its runtime shutting down, which waits for those threads) cancels it.
        let _stop_threads = shared.shutdown.clone().drop_guard();
        let workers = udp::workers();
        for (uri, listener) in listeners {
            match listener {
                Listener::Udp(socket) => {
                    for _ in 0..workers {
                        let (socket, s) = (Arc::clone(&socket), Arc::clone(&shared));
                        shared
                            .tasks
                            .spawn_blocking(move || udp::receive_loop(socket, s));
                    }
                    info!(listener = %uri, receive_threads = workers, "listening");
                }
                Listener::Stream(listener) => {
                    spawn_accept_loop(listener, uri.transport, &shared, tls.clone());
                    info!(listener = %uri, "listening");
                }
            }
        }
        shutdown.await;
        info!(
            open_connections = shared.connections.len(),
            "shutting down: closing listeners and connections"
        );
        shared.shutdown.cancel();
        shared.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, shared.tasks.wait())
            .await
            .is_err()
        {
            warn!("some connections did not close within {SHUTDOWN_GRACE:?}; dropping them");
        }
        info!("SIP transports stopped");
        if let Some(task) = router_task {
            match tokio::time::timeout(WRITE_BEHIND_GRACE, task).await {
                Ok(Ok(())) => info!("registrations and presence written to the store"),
                Ok(Err(e)) => warn!(error = %e, "the router's background work ended abnormally"),
                Err(_) => warn!(
                    "registrations not all written to the store within {WRITE_BEHIND_GRACE:?}; \
                     their clients register again at their next refresh"
                ),
            }
        }
    }
}

fn spawn_accept_loop(
    listener: TcpListener,
    transport: Transport,
    shared: &Arc<Shared>,
    tls: Option<TlsAcceptor>,
) {
    let s = Arc::clone(shared);
    match (transport, tls) {
        (Transport::Tcp, _) => {
            shared
                .tasks
                .spawn(tcp::accept_loop(listener, transport, s, tcp::serve));
        }
        (Transport::Ws, _) => {
            shared
                .tasks
                .spawn(tcp::accept_loop(listener, transport, s, ws::serve));
        }
        (Transport::Tls, Some(acceptor)) => {
            let serve = move |c, sh| tls::serve(c, sh, acceptor.clone());
            shared
                .tasks
                .spawn(tcp::accept_loop(listener, transport, s, serve));
        }
        (Transport::Wss, Some(acceptor)) => {
            let serve = move |c, sh| ws::serve_secure(c, sh, acceptor.clone());
            shared
                .tasks
                .spawn(tcp::accept_loop(listener, transport, s, serve));
        }
        // Validation requires TLS files for secure listeners, and bind loads them.
        (Transport::Tls | Transport::Wss, None) | (Transport::Udp, _) => {
            warn!(%transport, "listener has no way to serve; not accepting");
        }
    }
}
