//! Validation verdicts for a server: what RFC 3261 and RFC 4475 say must be rejected, and
//! with which status, returned as a typed [`Rejection`] that the server turns into a
//! response. Nothing here sends anything.
//!
//! - [`check_request`]: every request a server receives — version (505), Request-URI (400,
//!   416), required and single-valued headers (400), CSeq method (400), Require and
//!   Proxy-Require (420).
//! - [`check_forwarding`]: before a proxy forwards a request — Max-Forwards 0 (483).
//! - [`check_content_type`], [`check_accept`]: at a UAS that consumes or produces a body
//!   (415, 406).
//! - [`check_response`]: a response that fails it is dropped, never answered.

use crate::header_name::HeaderName;
use crate::headers::{HeaderError, Problem};
use crate::message::Message;
use crate::method::Method;
use crate::uri::Scheme;

/// What a server supports, for [`check_request`].
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// Option tags accepted in Require.
    pub supported: &'a [&'a str],
    /// Option tags accepted in Proxy-Require; checked when `proxy` is set.
    pub proxy_supported: &'a [&'a str],
    /// Whether the server acts as a proxy for the request (checks Proxy-Require).
    pub proxy: bool,
}

impl Default for Policy<'static> {
    fn default() -> Self {
        Policy {
            supported: &[],
            proxy_supported: &[],
            proxy: true,
        }
    }
}

/// A request the server must refuse, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection<'a> {
    /// The status code to answer with.
    pub status: u16,
    /// The reason phrase, saying what is wrong.
    pub reason: &'static str,
    /// For 420: the option tags to list in Unsupported.
    pub unsupported: Vec<&'a str>,
}

impl Rejection<'_> {
    fn new(status: u16, reason: &'static str) -> Self {
        Rejection {
            status,
            reason,
            unsupported: Vec::new(),
        }
    }
}

fn bad_header(e: HeaderError) -> Rejection<'static> {
    let reason = match (e.name, e.problem) {
        (_, Problem::Duplicate) => "Duplicate Single-Value Header",
        (_, Problem::OutOfRange) => "Value Out Of Range",
        (_, Problem::NotUtf8) => "Header Not UTF-8",
        (HeaderName::Via, Problem::Missing) => "Missing Via",
        (HeaderName::From, Problem::Missing) => "Missing From",
        (HeaderName::To, Problem::Missing) => "Missing To",
        (HeaderName::CallId, Problem::Missing) => "Missing Call-ID",
        (HeaderName::CSeq, Problem::Missing) => "Missing CSeq",
        (HeaderName::Via, _) => "Bad Via",
        (HeaderName::From, _) => "Bad From",
        (HeaderName::To, _) => "Bad To",
        (HeaderName::CallId, _) => "Bad Call-ID",
        (HeaderName::CSeq, _) => "Bad CSeq",
        (HeaderName::Contact, _) => "Bad Contact",
        (HeaderName::ContentType, _) => "Bad Content-Type",
        _ => "Bad Header",
    };
    Rejection::new(400, reason)
}

/// The checks common to requests and responses: required headers present, parseable and
/// not repeated.
fn check_common(msg: &Message) -> Result<(), HeaderError> {
    for f in msg.fields() {
        if f.name.is_single() && msg.is_repeated(f.name) {
            return Err(HeaderError {
                name: f.name,
                problem: Problem::Duplicate,
            });
        }
    }
    for v in msg.vias() {
        v?;
    }
    msg.via()?;
    msg.from()?;
    msg.to()?;
    msg.call_id()?;
    msg.cseq()?;
    msg.max_forwards()?;
    msg.expires()?;
    msg.min_expires()?;
    msg.content_type()?;
    for c in msg.contacts() {
        c?;
    }
    Ok(())
}

/// Checks a request as every server must before acting on it.
pub fn check_request<'m>(msg: &'m Message, policy: &Policy<'_>) -> Result<(), Rejection<'m>> {
    if !msg.is_request() {
        return Err(Rejection::new(400, "Not A Request"));
    }
    if !msg.is_sip_2_0() {
        return Err(Rejection::new(505, "Version Not Supported"));
    }
    match msg.request_uri() {
        Some(Ok(uri)) => {
            if uri.scheme() == Scheme::Other {
                return Err(Rejection::new(416, "Unsupported URI Scheme"));
            }
            if uri.headers().is_some() {
                return Err(Rejection::new(400, "Headers Not Allowed In Request-URI"));
            }
        }
        _ => return Err(Rejection::new(400, "Bad Request-URI")),
    }
    check_common(msg).map_err(bad_header)?;
    let method = msg.method_str().unwrap_or_default();
    let cseq = msg.cseq().map_err(bad_header)?;
    if cseq.method != method {
        return Err(Rejection::new(400, "CSeq Method Mismatch"));
    }
    let kind = msg.method().unwrap_or(Method::Extension);
    if !matches!(kind, Method::Ack | Method::Cancel) {
        let mut unsupported: Vec<&str> = msg
            .require()
            .filter(|t| !policy.supported.iter().any(|s| s.eq_ignore_ascii_case(t)))
            .collect();
        if policy.proxy {
            unsupported.extend(msg.proxy_require().filter(|t| {
                !policy
                    .proxy_supported
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(t))
            }));
        }
        if !unsupported.is_empty() {
            return Err(Rejection {
                status: 420,
                reason: "Bad Extension",
                unsupported,
            });
        }
    }
    Ok(())
}

/// Checks, before forwarding, that the request may travel one more hop (RFC 3261 §16.3).
/// A request with Max-Forwards 0 that is addressed to the server itself (an OPTIONS, say) may
/// still be answered locally.
pub fn check_forwarding(msg: &Message) -> Result<(), Rejection<'static>> {
    match msg.max_forwards() {
        Ok(Some(0)) => Err(Rejection::new(483, "Too Many Hops")),
        Ok(_) => Ok(()),
        Err(e) => Err(bad_header(e)),
    }
}

/// At a UAS: the body's Content-Type (and Content-Encoding) must be one it understands
/// (RFC 3261 §8.2.3, RFC 4475 `invut`). `understood` lists (type, subtype) pairs.
pub fn check_content_type(
    msg: &Message,
    understood: &[(&str, &str)],
) -> Result<(), Rejection<'static>> {
    if msg.body().is_empty() {
        return Ok(());
    }
    if msg.has(HeaderName::ContentEncoding)
        && msg
            .tokens(HeaderName::ContentEncoding)
            .any(|e| !e.eq_ignore_ascii_case("identity"))
    {
        return Err(Rejection::new(415, "Unsupported Content-Encoding"));
    }
    match msg.content_type() {
        Ok(Some(ct)) if understood.iter().any(|(t, s)| ct.is(t, s)) => Ok(()),
        Ok(_) => Err(Rejection::new(415, "Unsupported Media Type")),
        Err(e) => Err(bad_header(e)),
    }
}

/// At a UAS that will answer with a body of one of the `producible` types: the request's
/// Accept must admit one of them (RFC 3261 §8.2.3, RFC 4475 `sdp01`). Without Accept,
/// `application/sdp` is assumed.
pub fn check_accept(msg: &Message, producible: &[(&str, &str)]) -> Result<(), Rejection<'static>> {
    if !msg.has(HeaderName::Accept) {
        return if producible
            .iter()
            .any(|(t, s)| t.eq_ignore_ascii_case("application") && s.eq_ignore_ascii_case("sdp"))
        {
            Ok(())
        } else {
            Err(Rejection::new(406, "Not Acceptable"))
        };
    }
    for range in msg.accept() {
        let range = range.map_err(bad_header)?;
        if producible.iter().any(|(t, s)| range.matches(t, s)) {
            return Ok(());
        }
    }
    Err(Rejection::new(406, "Not Acceptable"))
}

/// Checks a received response; one that fails is dropped (RFC 4475 `scalarlg`, `bigcode`).
pub fn check_response(msg: &Message) -> Result<(), HeaderError> {
    if !msg.is_response() || !msg.is_sip_2_0() {
        return Err(HeaderError::malformed(
            HeaderName::Other,
            "not a SIP/2.0 response",
        ));
    }
    check_common(msg)
}
