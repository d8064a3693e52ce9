//! Framing: turning received octets into messages.
//!
//! A datagram is exactly one message ([`parse_datagram`]); octets after Content-Length are
//! ignored and a datagram of nothing but CR LF is a keep-alive. A stream (TCP, TLS) is cut
//! into messages by [`StreamFramer`]: it accepts partial reads and pipelined messages,
//! answers RFC 5626 keep-alives (a CR LF CR LF "ping" wants a CR LF "pong"), requires
//! Content-Length (RFC 3261 §18.3) and enforces a maximum message size. A framing error on a
//! stream means the boundary of the next message is unknown: the connection must be closed.

use bytes::{Buf, Bytes, BytesMut};

use crate::message::{content_length, parse_head, Message, ParseError, ParseErrorKind};

/// What one datagram carried.
// The message is the common case; boxing it would cost an allocation per datagram.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Datagram {
    /// A SIP message.
    Message(Message),
    /// Only CR LF octets: a NAT keep-alive; no answer is due.
    KeepAlive,
}

/// Parses one received datagram.
pub fn parse_datagram(buf: Bytes) -> Result<Datagram, ParseError> {
    if !buf.is_empty() && buf.iter().all(|b| matches!(b, b'\r' | b'\n')) {
        return Ok(Datagram::KeepAlive);
    }
    Message::parse(buf).map(Datagram::Message)
}

/// What a stream produced.
// The message is the common case; boxing it would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Frame {
    /// A complete SIP message.
    Message(Message),
    /// A CR LF CR LF keep-alive ping: answer with [`PONG`].
    Ping,
    /// A CR LF keep-alive pong.
    Pong,
    /// A message that was framed (its length is known, the stream stays usable) but whose
    /// start line is malformed; [`ParseError::partial`] has its headers, so a request can be
    /// answered with 400.
    Malformed(ParseError),
}

/// The answer to a [`Frame::Ping`].
pub const PONG: &[u8] = b"\r\n";

/// Cuts a byte stream into SIP messages. Feed it with [`StreamFramer::push`] (or read
/// straight into [`StreamFramer::buffer_mut`]) and drain it with
/// [`StreamFramer::next_frame`] until it returns `Ok(None)`.
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    max_message: usize,
    /// How far the search for the end of the head has already looked.
    scanned: usize,
}

impl StreamFramer {
    /// A framer that rejects messages larger than `max_message` octets.
    pub fn new(max_message: usize) -> Self {
        StreamFramer {
            buf: BytesMut::with_capacity(4096),
            max_message,
            scanned: 0,
        }
    }

    /// Appends received octets.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The receive buffer, for reading into directly.
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Octets received but not yet framed.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// True when a message has started but is not complete (useful for slow-client timers).
    pub fn in_message(&self) -> bool {
        self.buf.iter().any(|b| !matches!(b, b'\r' | b'\n'))
    }

    /// Returns the next complete frame, `Ok(None)` when more octets are needed, or an error
    /// after which the stream cannot be framed any more.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ParseError> {
        // Keep-alives between messages.
        if self.buf.starts_with(b"\r\n\r\n") {
            self.buf.advance(4);
            self.scanned = 0;
            return Ok(Some(Frame::Ping));
        }
        if self.buf.starts_with(b"\r\n") {
            match self.buf.get(2) {
                None => return Ok(None),
                Some(b'\r') if self.buf.len() == 3 => return Ok(None),
                _ => {
                    self.buf.advance(2);
                    self.scanned = 0;
                    return Ok(Some(Frame::Pong));
                }
            }
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        let from = self.scanned.saturating_sub(3);
        let Some(at) = memchr::memmem::find(self.buf.get(from..).unwrap_or_default(), b"\r\n\r\n")
        else {
            self.scanned = self.buf.len();
            if self.buf.len() > self.max_message {
                return Err(ParseError::new(ParseErrorKind::TooLarge));
            }
            return Ok(None);
        };
        let head_len = from + at + 4;
        if head_len > self.max_message {
            return Err(ParseError::new(ParseErrorKind::TooLarge));
        }
        let head_bytes = self.buf.get(..head_len).unwrap_or_default();
        let head = parse_head(head_bytes, true).map_err(ParseError::new)?;
        let body_len = content_length(head_bytes, &head.fields)
            .map_err(ParseError::new)?
            .ok_or(ParseError::new(ParseErrorKind::MissingContentLength))?;
        let total = head.body_start.saturating_add(body_len);
        if total > self.max_message {
            return Err(ParseError::new(ParseErrorKind::TooLarge));
        }
        if self.buf.len() < total {
            // Resume the search at the terminator just found, so a slow body does not make
            // every call re-scan the whole head.
            self.scanned = head_len - 1;
            return Ok(None);
        }
        let bytes = self.buf.split_to(total).freeze();
        self.scanned = 0;
        let defect = head.defect;
        let msg = Message::from_head(bytes, head, body_len);
        Ok(Some(match defect {
            None => Frame::Message(msg),
            Some(kind) => Frame::Malformed(ParseError::with_partial(kind, msg)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] =
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 4\r\n\r\nbody";

    fn frames(f: &mut StreamFramer) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(fr) = f.next_frame().expect("frames") {
            out.push(fr);
        }
        out
    }

    #[test]
    fn partial_reads_and_pipelining() {
        let mut wire = Vec::new();
        wire.extend_from_slice(b"\r\n\r\n");
        wire.extend_from_slice(OPTIONS);
        wire.extend_from_slice(OPTIONS);
        wire.extend_from_slice(b"\r\n");
        wire.extend_from_slice(OPTIONS);
        for chunk in [1, 2, 3, 7, 50, wire.len()] {
            let mut f = StreamFramer::new(65535);
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                f.push(piece);
                got.extend(frames(&mut f));
            }
            let kinds: Vec<_> = got
                .iter()
                .map(|fr| match fr {
                    Frame::Message(m) => {
                        assert_eq!(m.body(), b"body");
                        "m"
                    }
                    Frame::Ping => "ping",
                    Frame::Malformed(_) => "bad",
                    Frame::Pong => "pong",
                })
                .collect();
            assert_eq!(kinds, ["ping", "m", "m", "pong", "m"], "chunk {chunk}");
            assert_eq!(f.pending(), 0);
        }
    }

    #[test]
    fn content_length_errors() {
        for (wire, kind) in [
            (
                &b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n"[..],
                ParseErrorKind::MissingContentLength,
            ),
            (
                b"OPTIONS sip:a@b SIP/2.0\r\nl: -5\r\n\r\n",
                ParseErrorKind::BadContentLength,
            ),
            (
                b"OPTIONS sip:a@b SIP/2.0\r\nl: x\r\n\r\n",
                ParseErrorKind::BadContentLength,
            ),
            (
                b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\nl: 0\r\n\r\n",
                ParseErrorKind::DuplicateContentLength,
            ),
            (
                b"OPTIONS sip:a@b SIP/2.0\r\nl: 99999999\r\n\r\n",
                ParseErrorKind::TooLarge,
            ),
        ] {
            let mut f = StreamFramer::new(65535);
            f.push(wire);
            assert_eq!(f.next_frame().map(|_| ()).map_err(|e| e.kind()), Err(kind));
        }
    }

    #[test]
    fn max_size_without_terminator() {
        let mut f = StreamFramer::new(100);
        f.push(&[b'a'; 101]);
        assert_eq!(
            f.next_frame().map(|_| ()).map_err(|e| e.kind()),
            Err(ParseErrorKind::TooLarge)
        );
    }

    #[test]
    fn datagram_keepalive() {
        assert!(matches!(
            parse_datagram(Bytes::from_static(b"\r\n\r\n")),
            Ok(Datagram::KeepAlive)
        ));
    }
}
