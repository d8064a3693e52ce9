//! The loop every byte-stream connection runs (TCP, and TLS after its handshake): read,
//! cut into messages with `StreamFramer`, hand each to the handler, write the responses back
//! on the same connection, and send what other layers queued for the peer.
//!
//! A connection is closed when:
//! - framing fails (the next message's boundary is unknown): no response is possible;
//! - its first message, or any message once its first octet arrived, is not complete within
//!   the header timeout (slow-loris defence; `StreamFramer::in_message` says whether a
//!   message has started);
//! - nothing arrives for the idle timeout;
//! - a write stalls for the header timeout (a peer that does not read);
//! - the server shuts down, or the peer closes.
//!
//! A message that is framed but malformed (`Frame::Malformed`) is answered 400 and the
//! connection carries on; a CR LF CR LF ping is answered with `PONG` (RFC 5626).

use std::io;

use bytes::Bytes;
use confab_sip::framing::{Frame, StreamFramer, PONG};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};
use tracing::debug;

use super::{Shared, Source};

/// Octets asked of the socket per read.
const READ_CHUNK: usize = 8 * 1024;

/// Why a connection ended.
#[derive(Debug)]
pub(crate) enum Closed {
    /// The peer closed it.
    ByPeer,
    /// The server is shutting down.
    Shutdown,
    /// No traffic for the idle timeout.
    Idle,
    /// A message (or the first one) did not complete within the header timeout.
    HeaderTimeout,
    /// The stream cannot be framed any more.
    Framing(confab_sip::ParseError),
    /// A read or write failed, or a write stalled.
    Io(io::Error),
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Closed::ByPeer => f.write_str("closed by peer"),
            Closed::Shutdown => f.write_str("server shutting down"),
            Closed::Idle => f.write_str("idle timeout"),
            Closed::HeaderTimeout => f.write_str("message not complete within the header timeout"),
            Closed::Framing(e) => write!(f, "framing error: {e}"),
            Closed::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

/// Runs one connection until it closes. `accepted` is when the connection was accepted: its
/// first message is due within the header timeout of it.
pub(crate) async fn serve<S>(
    mut io: S,
    source: Source,
    shared: &Shared,
    mut outbound: mpsc::Receiver<Bytes>,
    accepted: Instant,
) -> Closed
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limits = shared.limits;
    let mut framer = StreamFramer::new(limits.max_message_size);
    // When the message being received (or, before the first one, the connection) started.
    let mut started = Some(accepted);
    let mut awaiting_first = true;
    let mut last_activity = Instant::now();
    loop {
        let deadline = match started {
            Some(t) => t + limits.header_timeout,
            None => last_activity + limits.idle_timeout,
        };
        let buffer = framer.buffer_mut();
        buffer.reserve(READ_CHUNK);
        tokio::select! {
            _ = shared.shutdown.cancelled() => {
                let _ = timeout(limits.header_timeout, io.shutdown()).await;
                return Closed::Shutdown;
            }
            _ = sleep_until(deadline) => {
                return if started.is_some() { Closed::HeaderTimeout } else { Closed::Idle };
            }
            Some(message) = outbound.recv() => {
                if let Err(e) = write(&mut io, &message, shared).await {
                    return Closed::Io(e);
                }
            }
            read = io.read_buf(buffer) => {
                match read {
                    Ok(0) => return Closed::ByPeer,
                    Ok(_) => last_activity = Instant::now(),
                    Err(e) => return Closed::Io(e),
                }
                let framed = match drain(&mut framer, &mut io, &source, shared).await {
                    Ok(framed) => framed,
                    Err(closed) => return closed,
                };
                awaiting_first &= !framed;
                started = match (framer.in_message(), framed) {
                    // Keep-alives do not stand in for the first message.
                    (false, _) if awaiting_first => started,
                    (false, _) => None,
                    // The rest of this read began a new message.
                    (true, true) => Some(last_activity),
                    // Still the same message: it keeps its start (the accept time, before
                    // the first message).
                    (true, false) => Some(started.unwrap_or(last_activity)),
                };
            }
        }
    }
}

/// Handles every complete frame in the buffer; true when at least one was a SIP message
/// (keep-alives do not count).
async fn drain<S>(
    framer: &mut StreamFramer,
    io: &mut S,
    source: &Source,
    shared: &Shared,
) -> Result<bool, Closed>
where
    S: AsyncWrite + Unpin,
{
    let mut framed = false;
    // Each frame consumes octets from the buffer, so this ends when the buffer does.
    loop {
        let frame = match framer.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => return Ok(framed),
            Err(e) => return Err(Closed::Framing(e)),
        };
        let reply = match frame {
            Frame::Message(m) => {
                framed = true;
                shared.handler.handle(Ok(m), source).map(|r| r.bytes)
            }
            Frame::Malformed(e) => {
                framed = true;
                shared.handler.handle(Err(e), source).map(|r| r.bytes)
            }
            Frame::Ping => Some(Bytes::from_static(PONG)),
            Frame::Pong => None,
        };
        if let Some(bytes) = reply {
            write(io, &bytes, shared).await.map_err(Closed::Io)?;
        }
    }
}

async fn write<S>(io: &mut S, bytes: &[u8], shared: &Shared) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    let stalled = || io::Error::new(io::ErrorKind::TimedOut, "write stalled");
    timeout(shared.limits.header_timeout, async {
        io.write_all(bytes).await?;
        io.flush().await
    })
    .await
    .map_err(|_| stalled())?
}

/// Logs why a connection ended, at a level that matches how unusual it is.
pub(crate) fn log_close(source: &Source, closed: &Closed) {
    match closed {
        Closed::ByPeer | Closed::Shutdown | Closed::Idle => {
            debug!(peer = %source.peer, transport = %source.transport, reason = %closed, "connection closed");
        }
        _ => {
            tracing::info!(peer = %source.peer, transport = %source.transport, reason = %closed, "connection closed");
        }
    }
}
