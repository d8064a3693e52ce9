//! [`UserAgent`]: binding, the client operations (REGISTER, OPTIONS, MESSAGE, INVITE, any
//! other request), receiving requests, and shutting down.

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use confab_sip::headers::Contact;
use confab_sip::{Message, Uri};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::call::Call;
use crate::config::UaConfig;
use crate::core::Core;
use crate::error::UaError;
use crate::ids;
use crate::incoming::Incoming;
use crate::request::{check_target, Local, Outgoing};
use crate::shared::{Counters, Shared};
use crate::subscription::{Publication, PublishRequest, Subscription};
use crate::transport::Sockets;

/// Commands queued to the core before senders wait.
const COMMAND_QUEUE: usize = 1024;
/// Received messages queued to the core before the sockets wait.
const INBOUND_QUEUE: usize = 1024;
/// How long [`UserAgent::shutdown`] waits for the core task to finish.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

/// The result of a successful REGISTER.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The 2xx status.
    pub status: u16,
    /// Seconds the registrar granted this user agent's contact: its `expires` parameter in
    /// the response, else the Expires header, else what was asked. 0 after unregistering.
    pub expires: u32,
    /// Every binding of the AOR the registrar listed, as URIs.
    pub contacts: Vec<String>,
    /// The response.
    pub response: Message,
}

/// Counters of one user agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UaStats {
    /// Messages sent again by a timer: request retransmissions (Timer A, E), final
    /// response retransmissions (Timer G) and 2xx retransmissions.
    pub retransmissions: u64,
    /// Incoming requests not delivered because the queue was full.
    pub incoming_dropped: u64,
}

/// The REGISTER dialog-ish state: one Call-ID per user agent and registrar, CSeq rising
/// (RFC 3261 §10.2).
#[derive(Debug)]
struct RegisterState {
    call_id: String,
    cseq: u32,
}

/// A running SIP user agent: one identity, one socket (or TCP listener), one background task.
/// Dropping it (or [`UserAgent::shutdown`]) stops the task; handles taken from it
/// ([`Call`], [`Incoming`]) then fail with [`UaError::Shutdown`].
#[derive(Debug)]
pub struct UserAgent {
    shared: Arc<Shared>,
    incoming: tokio::sync::Mutex<mpsc::Receiver<Incoming>>,
    register: Mutex<RegisterState>,
    task: Option<JoinHandle<()>>,
    cancel: CancellationToken,
}

impl UserAgent {
    /// Checks `config`, binds its local address and starts the background task.
    pub async fn bind(config: UaConfig) -> Result<UserAgent, UaError> {
        let parts = config.validate()?;
        let timers = config.timers()?;
        let cancel = CancellationToken::new();
        let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
        let sockets = Sockets::bind(
            config.transport,
            config.local,
            inbound_tx,
            cancel.clone(),
            config.max_message,
        )
        .await
        .map_err(|source| UaError::Bind {
            addr: config.local,
            source,
        })?;
        let mut addr = sockets.local_addr();
        if addr.ip().is_unspecified() {
            addr.set_ip(route_ip(config.server, addr));
        }
        let local = Local::new(&config, &parts, addr);
        let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
        let (incoming_tx, incoming_rx) = mpsc::channel(config.incoming_capacity);
        let shared = Arc::new(Shared {
            cmd: cmd_tx,
            local,
            auth: Mutex::new(Authenticator::new(parts.username, config.secret.clone())),
            config,
            timers,
            stats: Counters::default(),
        });
        let core = Core::new(shared.clone(), sockets, incoming_tx);
        let task = tokio::spawn(core.run(cmd_rx, inbound_rx, cancel.clone()));
        Ok(UserAgent {
            shared,
            incoming: tokio::sync::Mutex::new(incoming_rx),
            register: Mutex::new(RegisterState {
                call_id: ids::call_id(),
                cseq: 0,
            }),
            task: Some(task),
            cancel,
        })
    }

    /// The bound address (Via sent-by, Contact host and port).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local.addr
    }

    /// The Contact URI, e.g. `sip:alice@127.0.0.1:40000`: where other user agents reach
    /// this one directly.
    pub fn contact_uri(&self) -> &str {
        &self.shared.local.contact_uri
    }

    /// The address-of-record.
    pub fn aor(&self) -> &str {
        &self.shared.local.aor
    }

    /// The configuration it was bound with.
    pub fn config(&self) -> &UaConfig {
        &self.shared.config
    }

    /// Counters so far.
    pub fn stats(&self) -> UaStats {
        UaStats {
            retransmissions: self.shared.stats.retransmissions.load(Ordering::Relaxed),
            incoming_dropped: self.shared.stats.dropped.load(Ordering::Relaxed),
        }
    }

    /// Registers this user agent's contact for `expires` seconds (RFC 3261 §10.2), answering
    /// digest challenges; a `423 Interval Too Brief` is retried once with the registrar's
    /// Min-Expires. Calling it again re-registers (same Call-ID, next CSeq).
    pub async fn register(&self, expires: u32) -> Result<Registration, UaError> {
        let contact = self.shared.local.contact();
        let mut reg = self.send_register(&contact, expires).await?;
        if reg.status().unwrap_or_default() == 423 {
            if let Ok(Some(min)) = reg.min_expires() {
                if min > expires {
                    reg = self.send_register(&contact, min).await?;
                }
            }
        }
        self.registration(reg, expires)
    }

    /// Removes this user agent's contact (`expires=0`).
    pub async fn unregister(&self) -> Result<Registration, UaError> {
        let contact = self.shared.local.contact();
        let reg = self.send_register(&contact, 0).await?;
        self.registration(reg, 0)
    }

    /// Removes every contact of the AOR (`Contact: *`, RFC 3261 §10.2.2).
    pub async fn unregister_all(&self) -> Result<Registration, UaError> {
        let reg = self.send_register("*", 0).await?;
        self.registration(reg, 0)
    }

    async fn send_register(&self, contact: &str, expires: u32) -> Result<Message, UaError> {
        let local = &self.shared.local;
        let (call_id, cseq) = {
            let mut state = self
                .register
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Leave room for the retries of this exchange.
            state.cseq = state.cseq.wrapping_add(8);
            (state.call_id.clone(), state.cseq)
        };
        let mut out = Outgoing::new("REGISTER", &local.domain_uri);
        out.to = format!("<{}>", local.aor);
        out.call_id = call_id;
        out.cseq = cseq;
        out.headers.push(("Contact".into(), contact.to_owned()));
        out.headers.push(("Expires".into(), expires.to_string()));
        let response = self.shared.send_out(&mut out).await;
        let mut state = self
            .register
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.cseq = state.cseq.max(out.cseq);
        response
    }

    fn registration(&self, response: Message, asked: u32) -> Result<Registration, UaError> {
        let status = response.status().unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(UaError::Rejected {
                status,
                reason: response.reason().unwrap_or_default().to_owned(),
            });
        }
        let ours = Uri::parse(&self.shared.local.contact_uri).ok();
        let header_expires = response.expires().ok().flatten();
        let mut contacts = Vec::new();
        let mut granted = None;
        for c in response.contacts().filter_map(Result::ok) {
            let Contact::Address(addr) = c else { continue };
            contacts.push(addr.uri().as_str().to_owned());
            if ours.as_ref().is_some_and(|o| o == addr.uri()) {
                granted = c.expires().or(header_expires);
            }
        }
        let expires = if asked == 0 {
            0
        } else {
            granted.or(header_expires).unwrap_or(asked)
        };
        Ok(Registration {
            status,
            expires,
            contacts,
            response,
        })
    }

    /// Sends OPTIONS to `target` (a SIP URI) and returns the final response.
    pub async fn options(&self, target: &str) -> Result<Message, UaError> {
        self.request("OPTIONS", target, &[], None).await
    }

    /// Sends an instant message (RFC 3428 page mode) to `to` and returns the final status
    /// (200 or 202 when accepted), authenticating on 401/407.
    pub async fn message(
        &self,
        to: &str,
        content_type: &str,
        body: impl Into<Vec<u8>>,
    ) -> Result<u16, UaError> {
        let body = body.into();
        let response = self
            .request("MESSAGE", to, &[], Some((content_type, &body)))
            .await?;
        Ok(response.status().unwrap_or_default())
    }

    /// Sends any request outside a dialog to `target` (Request-URI and To) with extra
    /// headers and an optional (Content-Type, body), and returns the final response,
    /// authenticating on 401/407.
    pub async fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Result<Message, UaError> {
        check_target(target)?;
        let mut out = Outgoing::new(method, target);
        out.contact = matches!(method, "SUBSCRIBE" | "REFER" | "NOTIFY");
        out.headers = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        out.body = body.map(|(ct, b)| (ct.to_owned(), b.to_vec()));
        self.shared.send_out(&mut out).await
    }

    /// Subscribes to `event` (e.g. `presence`, `presence.winfo`) of `target` for `expires`
    /// seconds (RFC 6665 §4.1.2.1), naming what bodies it takes in Accept (none when empty),
    /// authenticating on 401/407. A 2xx gives a [`Subscription`] whose NOTIFYs arrive
    /// through [`Subscription::next_notify`]; any other final response is
    /// [`UaError::Rejected`]. `expires` 0 is a fetch: one NOTIFY (terminated) and no more.
    pub async fn subscribe(
        &self,
        target: &str,
        event: &str,
        accept: &str,
        expires: u32,
    ) -> Result<Subscription, UaError> {
        check_target(target)?;
        Subscription::start(self.shared.clone(), target, event, accept, expires).await
    }

    /// Publishes event state for this user agent's own address-of-record (RFC 3903):
    /// an initial publication (no `if_match`, a body), a refresh (`if_match`, no body), a
    /// modification (`if_match` and a body) or a removal (`if_match`, `expires` 0).
    /// Authenticates on 401/407; a `423 Interval Too Brief` is retried once with the
    /// server's Min-Expires. Any final response is returned (a 412 says the entity-tag is
    /// unknown: publish again without one).
    pub async fn publish(&self, request: PublishRequest<'_>) -> Result<Publication, UaError> {
        let mut expires = request.expires;
        let mut response = self.send_publish(&request, expires).await?;
        if response.status() == Some(423) && expires > 0 {
            if let Ok(Some(min)) = response.min_expires() {
                if min > expires {
                    expires = min;
                    response = self.send_publish(&request, expires).await?;
                }
            }
        }
        Ok(Publication::of(response, expires))
    }

    async fn send_publish(
        &self,
        request: &PublishRequest<'_>,
        expires: u32,
    ) -> Result<Message, UaError> {
        let aor = self.shared.local.aor.clone();
        let mut out = Outgoing::new("PUBLISH", &aor);
        out.headers.push(("Event".into(), request.event.to_owned()));
        if let Some(etag) = request.if_match {
            out.headers.push(("SIP-If-Match".into(), etag.to_owned()));
        }
        out.headers.push(("Expires".into(), expires.to_string()));
        out.body = request
            .body
            .as_ref()
            .map(|(ct, body)| ((*ct).to_owned(), body.to_vec()));
        self.shared.send_out(&mut out).await
    }

    /// Starts a call to `to` with an SDP offer (none when `None`). Returns once the
    /// INVITE is sent; wait on the [`Call`] for its responses.
    pub async fn invite(&self, to: &str, sdp: Option<&str>) -> Result<Call, UaError> {
        check_target(to)?;
        let mut out = Outgoing::new("INVITE", to);
        out.contact = true;
        out.headers
            .push(("Allow".into(), crate::request::ALLOW.into()));
        out.body = sdp.map(|s| ("application/sdp".to_owned(), s.as_bytes().to_vec()));
        Call::start(self.shared.clone(), out).await
    }

    /// The next incoming request, waiting at most `within`.
    pub async fn next_incoming(&self, within: Duration) -> Result<Incoming, UaError> {
        let mut rx = self.incoming.lock().await;
        match tokio::time::timeout(within, rx.recv()).await {
            Err(_) => Err(UaError::Timeout(within)),
            Ok(None) => Err(UaError::Shutdown),
            Ok(Some(incoming)) => Ok(incoming),
        }
    }

    /// The next incoming request with `method`, discarding others, waiting at most
    /// `within` in all.
    pub async fn next_incoming_of(
        &self,
        method: &str,
        within: Duration,
    ) -> Result<Incoming, UaError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let incoming = self.next_incoming(left).await.map_err(|e| match e {
                UaError::Timeout(_) => UaError::Timeout(within),
                e => e,
            })?;
            if incoming.method_str() == method {
                return Ok(incoming);
            }
        }
    }

    /// An incoming request if one is waiting.
    pub fn try_next_incoming(&self) -> Option<Incoming> {
        self.incoming.try_lock().ok()?.try_recv().ok()
    }

    /// Stops the background task and waits (briefly) for it to finish; sockets close.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(SHUTDOWN_WAIT, task).await;
        }
    }
}

impl Drop for UserAgent {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The local IP that routes towards `server` (or loopback), for a socket bound to an
/// unspecified address: Via and Contact need a real one.
fn route_ip(server: Option<SocketAddr>, bound: SocketAddr) -> std::net::IpAddr {
    let fallback = if bound.is_ipv4() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
    };
    let Some(server) = server else {
        return fallback;
    };
    let any: SocketAddr = if server.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    };
    StdUdpSocket::bind(any)
        .and_then(|s| s.connect(server).and_then(|()| s.local_addr()))
        .map(|a| a.ip())
        .unwrap_or(fallback)
}
