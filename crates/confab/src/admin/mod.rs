//! The admin HTTP listener of `confab serve` (`admin_listen`, loopback by default): the admin
//! API under `/api/v1` (JSON, described by `docs/openapi.json`, served at
//! `/api/openapi.json`), the web console under `/console` ([`console`]), `/metrics` in the
//! Prometheus text format and `/healthz` for load balancers.
//!
//! Every API call is made by an administrator: `Authorization: Bearer NAME:TOKEN` (or HTTP
//! Basic with the same name and token), the credentials `confab` itself uses. It goes through
//! the same ops layer and change control as the CLI: the administrator's roles decide what
//! it may do, standard changes are made at once, normal changes are requested and wait for
//! another administrator's approval. A sign-in is recorded in the audit log once per
//! administrator and token every [`SIGN_IN_TTL`] (not on every call a script makes); a token
//! revoked or an administrator disabled takes effect within that time.
//!
//! Errors are JSON, `{"error": "…"}`, with the status code of their kind: 401 not signed in,
//! 403 not allowed, 404 not found, 409 in conflict with the deployment, 400 or 422 a request
//! to fix, 503 the store unavailable; 429 for a failed sign-in from an address that failed
//! too often (see [`AdminState::sign_in_from`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use confab_ops::control::Operator;
use confab_ops::{ErrorKind, OpsError};
use confab_server::Router as SipRouter;
use confab_store::{Store, StoreError};
use tracing::{info, warn};

pub mod api;
pub mod console;
pub mod metrics;

/// How long a verified API sign-in is trusted before the token is checked (and the sign-in
/// recorded) again.
pub const SIGN_IN_TTL: Duration = Duration::from_secs(60);

/// What every handler works on.
pub struct AdminState {
    /// The deployment's store.
    pub store: Store,
    /// This front-end's SIP router (its counters, its registrations).
    pub router: Arc<SipRouter>,
    /// The data directory (backups, snapshots before emergency changes).
    pub data_dir: PathBuf,
    /// The pool this front-end serves.
    pub pool: String,
    /// When the front-end started.
    pub started: Instant,
    signed_in: Mutex<HashMap<(String, String), (Operator, Instant)>>,
    /// Failed sign-ins by source address.
    failures: Mutex<HashMap<std::net::IpAddr, Failures>>,
    /// The console's sessions.
    pub sessions: console::Sessions,
}

/// Failed sign-ins from one address, counted in a window of [`FAILURE_WINDOW`]. From the
/// [`MAX_FAILURES`]th on, for [`FAILURE_BACKOFF`], a failed sign-in from that address is
/// answered 429 and no longer written to the audit log one by one (one `login.throttled`
/// entry says it started), so that a guesser cannot flood the log. A right token still signs
/// in: an administrator sharing the address (loopback) is not locked out by a guesser, and
/// the tokens (256 bits) are not guessable anyway.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
    blocked_until: Option<Instant>,
}

/// Failed sign-ins from one address before it is refused for a while.
pub const MAX_FAILURES: u32 = 5;
/// The window the failures are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How long an address that failed too often is refused.
pub const FAILURE_BACKOFF: Duration = Duration::from_secs(60);

impl AdminState {
    /// The state of a front-end's admin listener.
    pub fn new(store: Store, router: Arc<SipRouter>, data_dir: PathBuf, pool: String) -> Self {
        AdminState {
            store,
            router,
            data_dir,
            pool,
            started: Instant::now(),
            signed_in: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            sessions: console::Sessions::default(),
        }
    }

    /// True while `from` backs off after too many failed sign-ins.
    fn backing_off(&self, from: Option<std::net::IpAddr>) -> bool {
        let Some(ip) = from else { return false };
        let now = Instant::now();
        self.failures
            .lock()
            .ok()
            .and_then(|f| f.get(&ip).and_then(|f| f.blocked_until))
            .is_some_and(|until| until > now)
    }

    /// Counts a failed sign-in from `from`; true when it starts a back-off.
    pub fn failed(&self, from: Option<std::net::IpAddr>) -> bool {
        let Some(ip) = from else { return false };
        let Ok(mut all) = self.failures.lock() else {
            return false;
        };
        let now = Instant::now();
        all.retain(|_, f| {
            f.blocked_until.is_some_and(|u| u > now) || now - f.since < FAILURE_WINDOW
        });
        let f = all.entry(ip).or_insert(Failures {
            count: 0,
            since: now,
            blocked_until: None,
        });
        if now - f.since >= FAILURE_WINDOW {
            *f = Failures {
                count: 0,
                since: now,
                blocked_until: None,
            };
        }
        f.count += 1;
        if f.count >= MAX_FAILURES && f.blocked_until.is_none() {
            f.blocked_until = Some(now + FAILURE_BACKOFF);
            warn!(%ip, failures = f.count, "admin listener: sign-ins from this address refused for a while");
            return true;
        }
        false
    }

    /// Signs `name` in with `token` through `via` (`api`, `console`) for a client at `from`:
    /// an API sign-in from the cache of recent ones when it is there; failures counted per
    /// address (see [`Failures`]).
    pub async fn sign_in_from(
        &self,
        name: &str,
        token: &str,
        via: &str,
        from: Option<std::net::IpAddr>,
    ) -> Result<Operator, ApiError> {
        let key = (name.to_owned(), confab_ops::control::token_hash(token));
        if via == "api" {
            if let Ok(cache) = self.signed_in.lock() {
                if let Some((op, at)) = cache.get(&key) {
                    if at.elapsed() < SIGN_IN_TTL {
                        return Ok(op.clone());
                    }
                }
            }
        }
        let quiet = self.backing_off(from);
        let signed =
            confab_ops::control::sign_in_recording(&self.store, name, token, via, !quiet).await;
        let op = match signed {
            Ok(op) => op,
            Err(e) if matches!(e.kind(), ErrorKind::SignIn | ErrorKind::Denied) => {
                if self.failed(from) {
                    let detail = serde_json::json!({
                        "via": via,
                        "from": from.map(|ip| ip.to_string()),
                        "for_s": FAILURE_BACKOFF.as_secs(),
                    });
                    let _ = self
                        .store
                        .audit(name, "login.throttled", name, &detail.to_string())
                        .await;
                }
                if quiet || self.backing_off(from) {
                    let mut refused = ApiError::from(e);
                    refused.status = StatusCode::TOO_MANY_REQUESTS;
                    refused.message = format!(
                        "{} (too many failed sign-ins from this address: they are no longer \
                         recorded one by one for a while)",
                        refused.message
                    );
                    return Err(refused);
                }
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        if via != "api" {
            return Ok(op);
        }
        if let Ok(mut cache) = self.signed_in.lock() {
            cache.retain(|_, (_, at)| at.elapsed() < SIGN_IN_TTL);
            cache.insert(key, (op.clone(), Instant::now()));
        }
        Ok(op)
    }
}

/// An error as the API answers it.
#[derive(Debug)]
pub struct ApiError {
    /// The status code.
    pub status: StatusCode,
    /// What went wrong and what to do.
    pub message: String,
}

impl ApiError {
    /// An error of `status` saying `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// A request to fix.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<OpsError> for ApiError {
    fn from(e: OpsError) -> Self {
        let status = match e.kind() {
            ErrorKind::SignIn => StatusCode::UNAUTHORIZED,
            ErrorKind::Denied => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Invalid => StatusCode::BAD_REQUEST,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            warn!(error = %e, "admin API request failed");
        }
        ApiError::new(status, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        OpsError::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(FAILURE_BACKOFF.as_secs()),
            );
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"confab\", Basic realm=\"confab\""),
            );
        }
        response
    }
}

/// The administrator's name and token from `Authorization`: `Bearer NAME:TOKEN` or `Basic`
/// with the same pair.
pub fn credentials(headers: &HeaderMap) -> Result<(String, String), ApiError> {
    let missing = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "sign in: send Authorization: Bearer NAME:TOKEN (the name and token of an \
             administrator's credentials file)",
        )
    };
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(missing)?;
    let (scheme, rest) = value.trim().split_once(' ').ok_or_else(missing)?;
    let pair = if scheme.eq_ignore_ascii_case("bearer") {
        rest.trim().to_owned()
    } else if scheme.eq_ignore_ascii_case("basic") {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .map_err(|_| missing())?;
        String::from_utf8(bytes).map_err(|_| missing())?
    } else {
        return Err(missing());
    };
    let (name, token) = pair.split_once(':').ok_or_else(missing)?;
    if name.is_empty() || token.is_empty() {
        return Err(missing());
    }
    Ok((name.to_owned(), token.to_owned()))
}

/// The address a request came from, as the listener recorded it.
pub struct Peer(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// The signed-in administrator of an API request.
pub struct Admin(pub Operator);

impl axum::extract::FromRequestParts<Arc<AdminState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<AdminState>,
    ) -> Result<Self, Self::Rejection> {
        let Ok(Peer(from)) = Peer::from_request_parts(parts, state).await;
        let (name, token) = credentials(&parts.headers)?;
        Ok(Admin(state.sign_in_from(&name, &token, "api", from).await?))
    }
}

/// The whole listener: API, console, metrics, health.
pub fn app(state: Arc<AdminState>) -> axum::Router {
    console::router().merge(api::router()).with_state(state)
}

/// Binds the admin listener at `addr`.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Serves `app` on `listener` until `stop` completes: plain HTTP, or HTTPS with `tls`. At
/// most [`MAX_CONNECTIONS`] connections at once (more wait in the kernel's backlog); a client
/// has [`HANDSHAKE`] for its TLS handshake and [`HEADERS`] for each request's headers, so that
/// a slow or stalled client cannot hold the listener.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let addr = listener.local_addr().ok();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(stop);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let slot = tokio::select! {
            () = &mut stop => break,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "admin listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (tls, app) = (tls.clone(), app.clone());
        connections.spawn(async move {
            let _slot = slot;
            match tls {
                None => serve_connection(stream, app, peer).await,
                Some(tls) => match tokio::time::timeout(HANDSHAKE, tls.accept(stream)).await {
                    Ok(Ok(s)) => serve_connection(s, app, peer).await,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "admin listener: TLS handshake failed");
                    }
                    Err(_) => tracing::debug!(%peer, "admin listener: TLS handshake timed out"),
                },
            }
        });
        // Finished connections are reaped as new ones come.
        while connections.try_join_next().is_some() {}
    }
    connections.abort_all();
    info!(?addr, "admin listener stopped");
}

/// Serves HTTP/1.1 on one connection.
async fn serve_connection<IO>(io: IO, app: axum::Router, peer: SocketAddr)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service =
        hyper_util::service::TowerToHyperService::new(tower::util::ServiceExt::map_request(
            app,
            move |r: axum::http::Request<hyper::body::Incoming>| {
                let mut r = r.map(axum::body::Body::new);
                r.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                r
            },
        ));
    let served = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADERS)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(%peer, error = %e, "admin listener: connection ended");
    }
}

/// Connections the admin listener serves at once.
pub const MAX_CONNECTIONS: usize = 256;

/// How long a client has to send a request's headers.
pub const HEADERS: Duration = Duration::from_secs(10);

/// How long a client has for its TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);
