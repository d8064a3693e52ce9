//! Building messages: responses to a received request (RFC 3261 §8.2.6: Via, From, To,
//! Call-ID and CSeq copied, a To-tag added) and new requests. Building allocates; it is not
//! on the parse hot path.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::SocketAddr;

use bytes::Bytes;

use crate::header_name::HeaderName;
use crate::message::Message;

fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn finish(mut out: Vec<u8>, body: Option<(String, Vec<u8>)>) -> Bytes {
    match body {
        Some((ct, b)) => {
            push_header(&mut out, "Content-Type", ct.as_bytes());
            push_header(&mut out, "Content-Length", b.len().to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&b);
        }
        None => {
            push_header(&mut out, "Content-Length", b"0");
            out.extend_from_slice(b"\r\n");
        }
    }
    Bytes::from(out)
}

/// Builds a response to a request.
#[derive(Debug, Clone)]
pub struct ResponseBuilder<'m> {
    req: &'m Message,
    status: u16,
    reason: Cow<'m, str>,
    to_tag: Option<String>,
    received: Option<SocketAddr>,
    record_route: bool,
    headers: Vec<(String, String)>,
    body: Option<(String, Vec<u8>)>,
}

impl<'m> ResponseBuilder<'m> {
    /// Starts a response with this status and reason phrase.
    pub fn new(req: &'m Message, status: u16, reason: impl Into<Cow<'m, str>>) -> Self {
        ResponseBuilder {
            req,
            status,
            reason: reason.into(),
            to_tag: None,
            received: None,
            record_route: false,
            headers: Vec::new(),
            body: None,
        }
    }

    /// The tag to add to To when the request's To has none (ignored for 100 Trying,
    /// RFC 3261 §8.2.6.2).
    pub fn to_tag(mut self, tag: impl Into<String>) -> Self {
        self.to_tag = Some(tag.into());
        self
    }

    /// The address the request came from: adds `received` to the top Via when it differs
    /// from the sent-by host, and fills an empty `rport` (RFC 3261 §18.2.1, RFC 3581).
    /// Used when a transport did not already record this on the request.
    pub fn received_from(mut self, addr: SocketAddr) -> Self {
        self.received = Some(addr);
        self
    }

    /// Copies Record-Route (for dialog-creating responses, RFC 3261 §12.1.1).
    pub fn copy_record_route(mut self) -> Self {
        self.record_route = true;
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body and its Content-Type.
    pub fn body(mut self, content_type: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some((content_type.into(), body.into()));
        self
    }

    fn top_via(&self, value: &'m [u8]) -> Cow<'m, [u8]> {
        let Some(addr) = self.received else {
            return Cow::Borrowed(value);
        };
        let Ok(via) = self.req.via() else {
            return Cow::Borrowed(value);
        };
        // Only the first value of the first Via field is the top Via.
        let first = via.as_str();
        let rest = value.get(first.len()..).unwrap_or_default();
        let mut out = String::with_capacity(first.len() + 48);
        // Rewrite the parameters: drop a valueless rport and any stale received.
        let head_len = first.len() - via.params().as_str().len();
        out.push_str(first.get(..head_len).unwrap_or(first).trim_end());
        for p in via.params().iter() {
            if p.name.eq_ignore_ascii_case("received") || p.name.eq_ignore_ascii_case("rport") {
                continue;
            }
            out.push(';');
            out.push_str(p.name);
            if let Some(v) = p.value {
                out.push('=');
                if p.quoted {
                    let _ = write!(out, "\"{v}\"");
                } else {
                    out.push_str(v);
                }
            }
        }
        let ip = addr.ip();
        let sent_by_is_ip = via.host_str().trim_matches(['[', ']']).parse() == Ok(ip);
        if !sent_by_is_ip || via.rport().is_some() {
            let _ = write!(out, ";received={ip}");
        }
        if via.rport().is_some() {
            let _ = write!(out, ";rport={}", addr.port());
        }
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(rest);
        Cow::Owned(bytes)
    }

    /// Serialises the response.
    pub fn build(self) -> Bytes {
        let mut out = Vec::with_capacity(512);
        let _ = write!(
            StrSink(&mut out),
            "SIP/2.0 {} {}\r\n",
            self.status,
            self.reason
        );
        let mut first_via = true;
        for f in self.req.fields() {
            match f.name {
                HeaderName::Via => {
                    let v = if first_via {
                        first_via = false;
                        self.top_via(f.value)
                    } else {
                        Cow::Borrowed(f.value)
                    };
                    push_header(&mut out, "Via", &v);
                }
                HeaderName::RecordRoute if self.record_route => {
                    push_header(&mut out, "Record-Route", f.value)
                }
                _ => {}
            }
        }
        for name in [
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
        ] {
            let Some(v) = self.req.header_bytes(name) else {
                continue;
            };
            let mut value = v.to_vec();
            if name == HeaderName::To && self.status > 100 {
                if let Some(tag) = &self.to_tag {
                    if self.req.to().is_ok_and(|t| t.tag().is_none()) {
                        value.extend_from_slice(b";tag=");
                        value.extend_from_slice(tag.as_bytes());
                    }
                }
            }
            push_header(&mut out, name.as_str(), &value);
        }
        // RFC 3261 §8.2.6.1: a 100 Trying echoes the request's Timestamp.
        if self.status == 100 {
            if let Some(ts) = self.req.header_bytes(HeaderName::Timestamp) {
                push_header(&mut out, "Timestamp", ts);
            }
        }
        for (n, v) in &self.headers {
            push_header(&mut out, n, v.as_bytes());
        }
        finish(out, self.body)
    }
}

/// Adapter so `write!` can format into a byte vector.
struct StrSink<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for StrSink<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Builds a new request. Headers are written in the order they are added; Content-Length
/// is always written last.
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    body: Option<(String, Vec<u8>)>,
}

impl RequestBuilder {
    /// Starts a request line `METHOD uri SIP/2.0`.
    pub fn new(method: impl Into<String>, uri: impl Into<String>) -> Self {
        RequestBuilder {
            method: method.into(),
            uri: uri.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds `Via: SIP/2.0/<transport> <sent_by>;branch=<branch>;rport`.
    pub fn via(self, transport: &str, sent_by: &str, branch: &str) -> Self {
        self.header(
            "Via",
            format!("SIP/2.0/{transport} {sent_by};branch={branch};rport"),
        )
    }

    /// Sets the body and its Content-Type.
    pub fn body(mut self, content_type: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some((content_type.into(), body.into()));
        self
    }

    /// Serialises the request.
    pub fn build(self) -> Bytes {
        let mut out = Vec::with_capacity(512);
        let _ = write!(
            StrSink(&mut out),
            "{} {} SIP/2.0\r\n",
            self.method,
            self.uri
        );
        for (n, v) in &self.headers {
            push_header(&mut out, n, v.as_bytes());
        }
        finish(out, self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &[u8] = b"OPTIONS sip:a@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK1;rport, SIP/2.0/UDP p.example.com;branch=z9hG4bK0\r\n\
Via: SIP/2.0/TCP q.example.com;branch=z9hG4bKq\r\n\
From: <sip:b@example.com>;tag=f1\r\nTo: <sip:a@example.com>\r\nCall-ID: c1\r\nCSeq: 7 OPTIONS\r\n\
Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn response_copies_and_tags() {
        let req = Message::parse(Bytes::from_static(REQ)).expect("parse");
        let addr: SocketAddr = "198.51.100.7:40000".parse().expect("addr");
        let resp = ResponseBuilder::new(&req, 200, "OK")
            .to_tag("t9")
            .received_from(addr)
            .header("Allow", "INVITE, OPTIONS")
            .build();
        let m = Message::parse(resp).expect("reparse");
        assert_eq!(m.status(), Some(200));
        let vias: Vec<_> = m
            .vias()
            .map(|v| v.expect("via").as_str().to_owned())
            .collect();
        assert_eq!(vias.len(), 3);
        let top = m.via().expect("top");
        assert_eq!(top.received(), "198.51.100.7".parse().ok());
        assert_eq!(top.rport(), Some(Some(40000)));
        assert_eq!(top.branch(), Some("z9hG4bK1"));
        assert_eq!(m.to().expect("to").tag(), Some("t9"));
        assert_eq!(m.from().expect("from").tag(), Some("f1"));
        assert_eq!(m.cseq().expect("cseq").seq, 7);
        assert_eq!(m.call_id(), Ok("c1"));
        assert_eq!(m.header(HeaderName::Allow), Some("INVITE, OPTIONS"));

        let trying = ResponseBuilder::new(&req, 100, "Trying")
            .to_tag("x")
            .build();
        let m = Message::parse(trying).expect("reparse");
        assert_eq!(m.to().expect("to").tag(), None);
    }

    #[test]
    fn request_with_body() {
        let r = RequestBuilder::new("MESSAGE", "sip:bob@example.com")
            .via("UDP", "127.0.0.1:5060", "z9hG4bKabc")
            .header("From", "<sip:alice@example.com>;tag=1")
            .header("To", "<sip:bob@example.com>")
            .header("Call-ID", "x@y")
            .header("CSeq", "1 MESSAGE")
            .header("Max-Forwards", "70")
            .body("text/plain", "hello")
            .build();
        let m = Message::parse(r).expect("parse");
        assert_eq!(m.body(), b"hello");
        assert_eq!(m.content_length(), Ok(Some(5)));
        assert!(crate::validate::check_request(&m, &crate::validate::Policy::default()).is_ok());
    }
}
