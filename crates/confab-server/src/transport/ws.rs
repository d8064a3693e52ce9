//! SIP over WebSocket (RFC 7118), over plain TCP (`ws://`) or TLS (`wss://`).
//!
//! The HTTP upgrade must offer the `sip` subprotocol (`Sec-WebSocket-Protocol: sip`); the
//! server echoes it, and refuses the upgrade with 400 otherwise. Any request path is
//! accepted. Each WebSocket message, text or binary, is one SIP message, parsed like a
//! datagram (RFC 7118 §5: no Content-Length framing inside a message); responses go back on
//! the same connection, as text frames when they are UTF-8.
//!
//! Slow-loris defence: the TLS and HTTP handshakes must finish within the header timeout.
//! After that the WebSocket library reassembles frames out of sight, so a message trickled
//! in is bounded by the idle timeout, which only complete messages (and pings) reset.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;
use tracing::debug;

use super::stream::{log_close, Closed};
use super::tcp::Accepted;
use super::{Shared, Source};

/// The subprotocol of RFC 7118.
pub const SUBPROTOCOL: &str = "sip";

/// Accepts the upgrade only when the client offers the `sip` subprotocol.
#[allow(clippy::result_large_err)] // the signature is tungstenite's callback type
fn check_subprotocol(request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    let offered = request
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case(SUBPROTOCOL));
    if !offered {
        let mut refusal = ErrorResponse::new(Some(
            "SIP over WebSocket needs the subprotocol: Sec-WebSocket-Protocol: sip\n".to_owned(),
        ));
        *refusal.status_mut() = StatusCode::BAD_REQUEST;
        return Err(refusal);
    }
    response.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(SUBPROTOCOL),
    );
    Ok(response)
}

/// Serves one `ws://` connection.
pub(crate) async fn serve(conn: Accepted, shared: Arc<Shared>) {
    let Accepted {
        stream,
        source,
        registration,
        outbound,
        at,
    } = conn;
    upgrade_and_serve(stream, source, &shared, outbound, at).await;
    drop(registration);
}

/// Serves one `wss://` connection: TLS, then WebSocket.
pub(crate) async fn serve_secure(conn: Accepted, shared: Arc<Shared>, acceptor: TlsAcceptor) {
    let Accepted {
        stream,
        source,
        registration,
        outbound,
        at,
    } = conn;
    let deadline = at + shared.limits.header_timeout;
    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => upgrade_and_serve(tls, source, &shared, outbound, at).await,
        Ok(Err(e)) => debug!(error = %e, "TLS handshake failed"),
        Err(_) => debug!("TLS handshake not complete within the header timeout"),
    }
    drop(registration);
}

async fn upgrade_and_serve<S>(
    io: S,
    source: Source,
    shared: &Shared,
    outbound: tokio::sync::mpsc::Receiver<Bytes>,
    accepted: Instant,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let max = shared.limits.max_message_size;
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let deadline = accepted + shared.limits.header_timeout;
    let handshake =
        tokio_tungstenite::accept_hdr_async_with_config(io, check_subprotocol, Some(config));
    let ws = match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            debug!(error = %e, "WebSocket handshake failed");
            return;
        }
        Err(_) => {
            debug!("WebSocket handshake not complete within the header timeout");
            return;
        }
    };
    debug!("WebSocket connection established");
    let closed = run(ws, source, shared, outbound).await;
    log_close(&source, &closed);
}

async fn run<S>(
    mut ws: WebSocketStream<S>,
    source: Source,
    shared: &Shared,
    mut outbound: tokio::sync::mpsc::Receiver<Bytes>,
) -> Closed
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limits = shared.limits;
    let mut last_activity = Instant::now();
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => {
                let _ = timeout(limits.header_timeout, ws.close(None)).await;
                return Closed::Shutdown;
            }
            _ = sleep_until(last_activity + limits.idle_timeout) => {
                let _ = timeout(limits.header_timeout, ws.close(None)).await;
                return Closed::Idle;
            }
            Some(message) = outbound.recv() => {
                if let Err(e) = send(&mut ws, message, shared).await {
                    return e;
                }
            }
            received = ws.next() => {
                let data = match received {
                    None => return Closed::ByPeer,
                    Some(Err(e)) => return Closed::Io(std::io::Error::other(e)),
                    Some(Ok(WsMessage::Text(text))) => Bytes::from(text),
                    Some(Ok(WsMessage::Binary(data))) => data,
                    Some(Ok(WsMessage::Close(_))) => return Closed::ByPeer,
                    // The library answers pings itself; both count as activity.
                    Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => {
                        last_activity = Instant::now();
                        continue;
                    }
                };
                last_activity = Instant::now();
                if let Some(reply) = shared.handler.handle_datagram(data, &source) {
                    if let Err(e) = send(&mut ws, reply.bytes, shared).await {
                        return e;
                    }
                }
            }
        }
    }
}

async fn send<S>(ws: &mut WebSocketStream<S>, message: Bytes, shared: &Shared) -> Result<(), Closed>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Text frames when the message is UTF-8, as browsers' SIP stacks expect; binary when a
    // header echoed from the request is not.
    let frame = match Utf8Bytes::try_from(message.clone()) {
        Ok(text) => WsMessage::Text(text),
        Err(_) => WsMessage::Binary(message),
    };
    match timeout(shared.limits.header_timeout, ws.send(frame)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Closed::Io(std::io::Error::other(e))),
        Err(_) => Err(Closed::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "write stalled",
        ))),
    }
}
