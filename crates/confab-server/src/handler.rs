//! The one request-handling path behind every transport (the hickory-dns shape): parsed or
//! half-parsed messages in, at most one response out. It does no I/O, so every decision here
//! is testable without sockets.
//!
//! In order, for each message:
//!
//! 1. A datagram or stream message that could not be parsed is answered 400 with the parse
//!    error as reason phrase when its head shows a request (not an ACK); otherwise dropped.
//! 2. A response is checked with `check_response` (dropped when it fails) and offered to the
//!    transaction layer, which hands a response to one of the proxy's or messaging's client
//!    transactions to them; a response matching none is dropped, never forwarded
//!    (RFC 6026, RFC 4475 `bcast`).
//! 3. A request is offered to the transaction layer ([`TransactionHook`]), which may absorb
//!    it as a retransmission (answered with what the layer resends, if anything), or refuse
//!    it when it holds too many transactions (answered 503 with Retry-After, statelessly).
//!    Every request that goes on is answered through [`TransactionHook::respond`], so its
//!    transaction (if it has one) keeps the response; only ACK goes unanswered, and ACK
//!    never starts a transaction.
//! 4. ACK is absorbed silently: it never gets a response. With the router installed, an
//!    ACK for a 2xx that came through our Record-Route is forwarded first
//!    ([`crate::Router::ack`]).
//! 5. `check_request`: 400, 416, 420 (with Unsupported), 505 as it says.
//! 6. With the router installed ([`Handler::with_router`]), every request it takes —
//!    REGISTER, requests for local users and through our Record-Route, CANCEL of an INVITE
//!    being proxied — is answered by it, later, from a task of its own; the rest goes on.
//!    OPTIONS is answered 200 with Allow, Accept, Accept-Encoding, Accept-Language and
//!    Supported. Until the router arrives, every OPTIONS is addressed to this server: there
//!    is no user to forward it to, so it is answered locally, even with Max-Forwards 0
//!    (RFC 3261 §11, RFC 4475 `zeromf`).
//! 7. Any other request with Max-Forwards 0 gets 483 (`check_forwarding`).
//! 8. CANCEL gets 481: every INVITE is answered at once, so none is left to cancel. (An
//!    INVITE transaction the driver still holds has its final response already; RFC 3261
//!    §9.2 would answer a CANCEL matching it 200, which arrives with the proxy.)
//! 9. Other methods: 405 with Allow for the methods of RFC 3261 and its extensions that the
//!    server will handle but does not yet (REGISTER with the registrar, INVITE and BYE with
//!    the proxy, MESSAGE with messaging, SUBSCRIBE and PUBLISH with presence); 501 for methods it does not know (RFC 3261 §8.2.1).
//!
//! Final responses carry a To-tag derived from the request (RFC 3261 §8.2.7: a stateless
//! UAS gives a retransmission the same tag).

use std::borrow::Cow;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use confab_sip::builder::ResponseBuilder;
use confab_sip::framing::{parse_datagram, Datagram};
use confab_sip::validate::{check_forwarding, check_request, check_response, Policy};
use confab_sip::{HeaderName, Message, Method, ParseError};
use tracing::{debug, trace};

use crate::router::Router;
use crate::routing;
use crate::transactions::{Disposition, Stateless, TransactionHook};
use crate::transport::Source;

/// The methods the server answers itself (RFC 3261 §20.5 Allow).
pub const ALLOW: &str = "OPTIONS, ACK, CANCEL";
/// The methods the server handles with the router installed.
pub const ALLOW_ROUTED: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, INFO, UPDATE, REFER, NOTIFY, PRACK, SUBSCRIBE, PUBLISH";
/// The bodies the server understands (RFC 3261 §20.1 Accept).
pub const ACCEPT: &str = "application/sdp";
/// The option tags the server supports: `path` (RFC 3327, stored by the registrar).
/// Requiring any other tag gets 420.
pub const SUPPORTED: &[&str] = &["path"];
/// The Server header of every response.
pub const SERVER: &str = concat!("Confab/", env!("CARGO_PKG_VERSION"));

/// The server is a proxy for requests to users of other pools, so Proxy-Require counts too.
const POLICY: Policy<'static> = Policy {
    supported: SUPPORTED,
    proxy_supported: SUPPORTED,
    proxy: true,
};

/// A response and where to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The serialised response.
    pub bytes: Bytes,
    /// The destination: for UDP per RFC 3261 §18.2.2; for connections the peer, and the
    /// response goes back on the connection the request came on.
    pub target: SocketAddr,
}

/// The core's answer before it is serialised.
struct Answer {
    status: u16,
    reason: Cow<'static, str>,
    headers: Vec<(&'static str, String)>,
}

impl Answer {
    fn new(status: u16, reason: impl Into<Cow<'static, str>>) -> Self {
        Answer {
            status,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// The request-handling path. Cheap to share: transports hold it in an `Arc`.
pub struct Handler {
    force_rport: bool,
    /// Keys the To-tag hash; random per process, so tags are not predictable.
    tag_key: RandomState,
    transactions: Arc<dyn TransactionHook>,
    router: Option<Arc<Router>>,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("force_rport", &self.force_rport)
            .finish_non_exhaustive()
    }
}

impl Handler {
    /// A stateless handler; `force_rport` as in [`crate::ServerConfig::force_rport`].
    pub fn new(force_rport: bool) -> Self {
        Handler {
            force_rport,
            tag_key: RandomState::new(),
            transactions: Arc::new(Stateless),
            router: None,
        }
    }

    /// Installs the router (see [`crate::router`]); it needs its transaction driver
    /// installed too ([`Handler::with_transactions`]).
    pub fn with_router(mut self, router: Arc<Router>) -> Self {
        self.router = Some(router);
        self
    }

    fn allow(&self) -> &'static str {
        if self.router.is_some() {
            ALLOW_ROUTED
        } else {
            ALLOW
        }
    }

    /// Installs the transaction layer (see [`crate::transactions`]).
    pub fn with_transactions(mut self, transactions: Arc<dyn TransactionHook>) -> Self {
        self.transactions = transactions;
        self
    }

    /// True when the router blocks the source's network: its messages are dropped unread.
    fn blocked(&self, source: &Source) -> bool {
        let blocked = self
            .router
            .as_ref()
            .is_some_and(|r| r.is_blocked(source.peer.ip()));
        if blocked {
            trace!(peer = %source.peer, "message from a blocked source dropped");
        }
        blocked
    }

    /// Handles one datagram (UDP) or one WebSocket message.
    pub fn handle_datagram(&self, data: Bytes, source: &Source) -> Option<Reply> {
        if self.blocked(source) {
            return None;
        }
        match parse_datagram(data) {
            Ok(Datagram::KeepAlive) => {
                trace!(peer = %source.peer, "keep-alive");
                None
            }
            Ok(Datagram::Message(m)) => self.handle(Ok(m), source),
            Err(e) => self.handle(Err(e), source),
        }
    }

    /// Handles one message, or the error of one that did not parse.
    pub fn handle(&self, parsed: Result<Message, ParseError>, source: &Source) -> Option<Reply> {
        if self.blocked(source) {
            return None;
        }
        let msg = match parsed {
            Ok(msg) => msg,
            Err(e) => return self.unparsable(&e, source),
        };
        if msg.is_response() {
            self.response(&msg, source);
            return None;
        }
        match self.transactions.request_received(&msg, source) {
            Disposition::Continue => {}
            Disposition::Absorbed { resend } => {
                debug!(peer = %source.peer, "request absorbed by its transaction");
                return resend.and_then(|bytes| self.reply_to(&msg, bytes, source));
            }
            Disposition::Overloaded { retry_after } => {
                return self.overloaded(&msg, retry_after, source)
            }
        }
        let answer = self.answer(&msg, source)?;
        debug!(
            peer = %source.peer,
            transport = %source.transport,
            method = msg.method_str().unwrap_or("?"),
            status = answer.status,
            "request answered"
        );
        let bytes = self.build(&msg, answer, source);
        let bytes = self.transactions.respond(&msg, bytes, source)?;
        self.reply_to(&msg, bytes, source)
    }

    /// 503 with Retry-After in whole seconds (at least 1), outside any transaction.
    fn overloaded(&self, req: &Message, retry_after: Duration, source: &Source) -> Option<Reply> {
        if req.method() == Some(Method::Ack) {
            return None;
        }
        let secs = retry_after.as_secs().max(1);
        let answer =
            Answer::new(503, "Service Unavailable").header("Retry-After", secs.to_string());
        let bytes = self.build(req, answer, source);
        self.reply_to(req, bytes, source)
    }

    fn unparsable(&self, e: &ParseError, source: &Source) -> Option<Reply> {
        match e.partial() {
            Some(req) if req.is_request() && req.method() != Some(Method::Ack) => {
                debug!(peer = %source.peer, error = %e, "malformed request answered 400");
                let bytes = self.build(req, Answer::new(400, e.kind().reason()), source);
                self.reply_to(req, bytes, source)
            }
            _ => {
                debug!(peer = %source.peer, error = %e, "unparsable message dropped");
                None
            }
        }
    }

    fn response(&self, msg: &Message, source: &Source) {
        if let Err(e) = check_response(msg) {
            debug!(peer = %source.peer, error = %e, "invalid response dropped");
            return;
        }
        if let Disposition::Absorbed { .. } = self.transactions.response_received(msg, source) {
            return;
        }
        debug!(
            peer = %source.peer,
            status = msg.status().unwrap_or_default(),
            "response matching no transaction dropped"
        );
    }

    /// The core's decision for a request, or `None` when it gets no response.
    fn answer(&self, req: &Message, source: &Source) -> Option<Answer> {
        let method = req.method().unwrap_or(Method::Extension);
        if method == Method::Ack {
            if let Some(router) = &self.router {
                router.ack(req);
            }
            return None;
        }
        if let Err(r) = check_request(req, &POLICY) {
            let mut answer = Answer::new(r.status, r.reason);
            if !r.unsupported.is_empty() {
                answer = answer.header("Unsupported", r.unsupported.join(", "));
            }
            return Some(answer);
        }
        if let Some(router) = &self.router {
            if router.route(req, source) {
                return None;
            }
        }
        if method == Method::Options {
            return Some(
                Answer::new(200, "OK")
                    .header("Allow", self.allow())
                    .header("Accept", ACCEPT)
                    .header("Accept-Encoding", "identity")
                    .header("Accept-Language", "en")
                    .header("Supported", SUPPORTED.join(", ")),
            );
        }
        if let Err(r) = check_forwarding(req) {
            return Some(Answer::new(r.status, r.reason));
        }
        Some(match method {
            Method::Cancel => Answer::new(481, "Call/Transaction Does Not Exist"),
            // Not a standard method, or not one this server will ever implement.
            Method::Extension => Answer::new(501, "Not Implemented"),
            // REGISTER, INVITE, BYE, MESSAGE, SUBSCRIBE, NOTIFY, PUBLISH, INFO, PRACK,
            // UPDATE, REFER: handled by the registrar, proxy, messaging and presence of
            // later issues; until then, refused with what is allowed.
            _ => Answer::new(405, "Method Not Allowed").header("Allow", self.allow()),
        })
    }

    fn build(&self, req: &Message, answer: Answer, source: &Source) -> Bytes {
        let mut builder = ResponseBuilder::new(req, answer.status, answer.reason)
            .to_tag(self.to_tag(req))
            .received_from(source.peer)
            .header("Server", SERVER);
        for (name, value) in answer.headers {
            builder = builder.header(name, value);
        }
        builder.build()
    }

    /// A To-tag that is the same for every retransmission of a request: a keyed hash of
    /// what identifies its transaction (RFC 3261 §17.2.3).
    fn to_tag(&self, req: &Message) -> String {
        let key = (
            req.header_bytes(HeaderName::CallId),
            req.from().ok().and_then(|f| f.tag()),
            req.header_bytes(HeaderName::CSeq),
            req.via().ok().map(|v| v.as_str()),
        );
        format!("{:016x}", self.tag_key.hash_one(key))
    }

    fn reply_to(&self, req: &Message, bytes: Bytes, source: &Source) -> Option<Reply> {
        let target = if source.transport.is_datagram() {
            match routing::datagram_target(req, source, self.force_rport) {
                Some(t) => t,
                None => {
                    debug!(peer = %source.peer, "no address a response may be sent to; dropped");
                    return None;
                }
            }
        } else {
            source.peer
        };
        Some(Reply { bytes, target })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Transport;

    fn source(transport: Transport) -> Source {
        Source {
            transport,
            peer: "192.0.2.9:40000".parse().expect("addr"),
            local: "192.0.2.1:5060".parse().expect("addr"),
        }
    }

    fn request(method: &str, extra: &str) -> Bytes {
        Bytes::from(format!(
            "{method} sip:confab.example SIP/2.0\r\n\
             Via: SIP/2.0/UDP client.example:5070;branch=z9hG4bK-1;rport\r\n\
             From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:confab.example>\r\n\
             Call-ID: call-1\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n{extra}\
             Content-Length: 0\r\n\r\n"
        ))
    }

    fn answer(
        handler: &Handler,
        data: Bytes,
        transport: Transport,
    ) -> Option<(Message, SocketAddr)> {
        let reply = handler.handle_datagram(data, &source(transport))?;
        let msg = Message::parse(reply.bytes).expect("the response parses");
        Some((msg, reply.target))
    }

    #[test]
    fn options_is_answered_with_capabilities() {
        let h = Handler::new(false);
        let (resp, target) = answer(&h, request("OPTIONS", ""), Transport::Udp).expect("answered");
        assert_eq!(resp.status(), Some(200));
        assert_eq!(target.to_string(), "192.0.2.9:40000", "rport: source port");
        assert_eq!(resp.header(HeaderName::Allow), Some(ALLOW));
        assert_eq!(resp.header(HeaderName::Accept), Some(ACCEPT));
        assert!(resp.has(HeaderName::Supported));
        assert_eq!(resp.headers_named("Server").next(), Some(SERVER.as_bytes()));
        let via = resp.via().expect("via");
        assert_eq!(via.received(), "192.0.2.9".parse().ok());
        assert_eq!(via.rport(), Some(Some(40000)));
        let tag = resp
            .to()
            .expect("to")
            .tag()
            .map(str::to_owned)
            .expect("a To-tag");
        // A retransmission gets the same tag (stateless UAS, RFC 3261 §8.2.7) …
        let (again, _) = answer(&h, request("OPTIONS", ""), Transport::Udp).expect("answered");
        assert_eq!(again.to().expect("to").tag(), Some(tag.as_str()));
        // … and another request another one.
        let other = Bytes::from(
            String::from_utf8(request("OPTIONS", "").to_vec())
                .expect("text")
                .replace("call-1", "call-2"),
        );
        let (other, _) = answer(&h, other, Transport::Udp).expect("answered");
        assert_ne!(other.to().expect("to").tag(), Some(tag.as_str()));
    }

    #[test]
    fn statuses_per_method() {
        let h = Handler::new(false);
        let status = |method: &str, extra: &str| {
            answer(&h, request(method, extra), Transport::Tcp).map(|(m, _)| {
                (
                    m.status().unwrap_or_default(),
                    m.header(HeaderName::Allow).map(str::to_owned),
                )
            })
        };
        assert_eq!(status("ACK", ""), None, "ACK is absorbed");
        assert_eq!(status("REGISTER", ""), Some((405, Some(ALLOW.to_owned()))));
        assert_eq!(status("INVITE", ""), Some((405, Some(ALLOW.to_owned()))));
        assert_eq!(status("FROBNICATE", ""), Some((501, None)));
        assert_eq!(status("CANCEL", ""), Some((481, None)));
        // Max-Forwards 0: OPTIONS is still answered, anything else is not forwarded.
        let zero = |m: &str| {
            let text = String::from_utf8(request(m, "").to_vec()).expect("text");
            let data = Bytes::from(text.replace("Max-Forwards: 70", "Max-Forwards: 0"));
            answer(&h, data, Transport::Udp).and_then(|(m, _)| m.status())
        };
        assert_eq!(zero("OPTIONS"), Some(200));
        assert_eq!(zero("INVITE"), Some(483));
    }

    #[test]
    fn validation_verdicts() {
        let h = Handler::new(false);
        let (resp, _) = answer(
            &h,
            request("OPTIONS", "Require: foo, bar\r\n"),
            Transport::Udp,
        )
        .expect("answered");
        assert_eq!(resp.status(), Some(420));
        assert_eq!(resp.header(HeaderName::Unsupported), Some("foo, bar"));

        let bad_line = Bytes::from(
            String::from_utf8(request("OPTIONS", "").to_vec())
                .expect("text")
                .replacen(
                    "OPTIONS sip:confab.example",
                    "OPTIONS  sip:confab.example",
                    1,
                ),
        );
        let (resp, _) = answer(&h, bad_line, Transport::Udp).expect("answered");
        assert_eq!(resp.status(), Some(400));
        assert_eq!(resp.reason(), Some("Malformed Request-Line"));

        assert!(answer(&h, Bytes::from_static(b"\x00\x01garbage"), Transport::Udp).is_none());
        let response = Bytes::from_static(
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK1\r\n\
              From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\
              Content-Length: 0\r\n\r\n",
        );
        assert!(
            answer(&h, response, Transport::Udp).is_none(),
            "responses are never answered"
        );
    }

    #[test]
    fn udp_without_rport_goes_to_the_sent_by_port() {
        let h = Handler::new(false);
        let text = String::from_utf8(request("OPTIONS", "").to_vec()).expect("text");
        let data = Bytes::from(text.replace(";rport", ""));
        let (_, target) = answer(&h, data.clone(), Transport::Udp).expect("answered");
        assert_eq!(target.to_string(), "192.0.2.9:5070");
        let (_, target) = answer(&Handler::new(true), data, Transport::Udp).expect("answered");
        assert_eq!(target.to_string(), "192.0.2.9:40000", "force_rport");
    }

    #[test]
    fn the_transaction_layer_can_absorb_retransmissions() {
        struct Absorbing;
        impl TransactionHook for Absorbing {
            fn request_received(&self, _: &Message, _: &Source) -> Disposition {
                Disposition::Absorbed {
                    resend: Some(Bytes::from_static(b"SIP/2.0 100 Trying\r\n\r\n")),
                }
            }
        }
        let h = Handler::new(false).with_transactions(Arc::new(Absorbing));
        let reply = h
            .handle_datagram(request("OPTIONS", ""), &source(Transport::Udp))
            .expect("resent");
        assert_eq!(&reply.bytes[..], b"SIP/2.0 100 Trying\r\n\r\n");
    }

    #[test]
    fn an_overloaded_transaction_layer_gets_503_with_retry_after() {
        struct Full;
        impl TransactionHook for Full {
            fn request_received(&self, _: &Message, _: &Source) -> Disposition {
                Disposition::Overloaded {
                    retry_after: Duration::from_millis(2500),
                }
            }
            fn respond(&self, _: &Message, _: Bytes, _: &Source) -> Option<Bytes> {
                panic!("a refused request is answered outside any transaction");
            }
        }
        let h = Handler::new(false).with_transactions(Arc::new(Full));
        let (resp, _) = answer(&h, request("INVITE", ""), Transport::Udp).expect("answered");
        assert_eq!(resp.status(), Some(503));
        assert_eq!(resp.headers_named("Retry-After").next(), Some(&b"2"[..]));
        assert!(resp.to().expect("to").tag().is_some());
        assert!(answer(&h, request("ACK", ""), Transport::Udp).is_none());
    }
}
