//! Proxy edits made by splicing spans of the received buffer, not by re-serialising the
//! message (RFC 3261 §16.6): push and pop Via, decrement Max-Forwards, push Record-Route,
//! pop Route, replace the Request-URI. The result is one new buffer, copied once.

use std::ops::Range;

use bytes::Bytes;

use crate::header_name::HeaderName;
use crate::lex::find_top_level_comma;
use crate::message::{Field, Message, StartLine};

/// Why an edit cannot be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditError {
    /// There is no value to pop.
    NothingToPop(HeaderName),
    /// Max-Forwards is 0 (the request must be answered 483) or malformed.
    MaxForwards,
    /// Two edits touch the same octets.
    Overlap,
    /// Not applicable to a response.
    NotARequest,
}

impl std::fmt::Display for EditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EditError::NothingToPop(h) => write!(f, "no {h} value to remove"),
            EditError::MaxForwards => f.write_str("Max-Forwards is 0 or malformed"),
            EditError::Overlap => f.write_str("two edits touch the same octets"),
            EditError::NotARequest => f.write_str("edit applies to requests only"),
        }
    }
}

impl std::error::Error for EditError {}

#[derive(Debug)]
struct Splice {
    at: Range<usize>,
    text: Vec<u8>,
}

/// A set of edits to one message, applied together by [`Edit::apply`].
#[derive(Debug)]
pub struct Edit<'m> {
    msg: &'m Message,
    splices: Vec<Splice>,
}

fn header_line(name: &str, value: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(name.len() + value.len() + 4);
    v.extend_from_slice(name.as_bytes());
    v.extend_from_slice(b": ");
    v.extend_from_slice(value.as_bytes());
    v.extend_from_slice(b"\r\n");
    v
}

impl<'m> Edit<'m> {
    /// Starts editing `msg`.
    pub fn new(msg: &'m Message) -> Self {
        Edit {
            msg,
            splices: Vec::with_capacity(4),
        }
    }

    fn first(&self, name: HeaderName) -> Option<&'m Field> {
        self.msg.raw_fields().iter().find(|f| f.kind == name)
    }

    /// Where the header section ends (the position of the empty line).
    fn headers_end(&self) -> usize {
        self.msg
            .raw_fields()
            .last()
            .map(|f| self.msg.line_span(f).end as usize)
            .unwrap_or_else(|| self.msg.body_span().start as usize)
    }

    fn insert(&mut self, at: usize, text: Vec<u8>) {
        self.splices.push(Splice { at: at..at, text });
    }

    /// Inserts a new topmost Via (its value, e.g. `SIP/2.0/UDP p.example.com;branch=…`).
    pub fn push_via(&mut self, value: &str) -> &mut Self {
        let at = self
            .first(HeaderName::Via)
            .or_else(|| self.msg.raw_fields().first())
            .map(|f| f.name.start as usize)
            .unwrap_or_else(|| self.headers_end());
        self.insert(at, header_line("Via", value));
        self
    }

    /// Removes the first value of the first field named `name`: the whole line when it holds
    /// one value, else the value and its comma.
    fn pop_first_value(&mut self, name: HeaderName) -> Result<&mut Self, EditError> {
        let f = self.first(name).ok_or(EditError::NothingToPop(name))?;
        let value = self.msg.bytes_at(f.value);
        let text = std::str::from_utf8(value).map_err(|_| EditError::NothingToPop(name))?;
        let at = match find_top_level_comma(text) {
            None => self.msg.line_span(f).range(),
            Some(comma) => {
                let mut end = comma + 1;
                while matches!(value.get(end), Some(b' ' | b'\t' | b'\r' | b'\n')) {
                    end += 1;
                }
                let start = f.value.start as usize;
                start..start + end
            }
        };
        self.splices.push(Splice {
            at,
            text: Vec::new(),
        });
        Ok(self)
    }

    /// Removes the topmost Via (a proxy does this to a response before forwarding it).
    pub fn pop_via(&mut self) -> Result<&mut Self, EditError> {
        self.pop_first_value(HeaderName::Via)
    }

    /// Removes the first Route value (RFC 3261 §16.4, §16.12 loose routing).
    pub fn pop_route(&mut self) -> Result<&mut Self, EditError> {
        self.pop_first_value(HeaderName::Route)
    }

    /// Decrements Max-Forwards, or adds `Max-Forwards: 70` when absent (RFC 3261 §16.6).
    pub fn decrement_max_forwards(&mut self) -> Result<&mut Self, EditError> {
        match self.first(HeaderName::MaxForwards) {
            Some(f) => {
                let n = match self.msg.max_forwards() {
                    Ok(Some(n)) if n > 0 => n - 1,
                    _ => return Err(EditError::MaxForwards),
                };
                self.splices.push(Splice {
                    at: f.value.range(),
                    text: n.to_string().into_bytes(),
                });
            }
            None => {
                let at = self.headers_end();
                self.insert(at, header_line("Max-Forwards", "70"));
            }
        }
        Ok(self)
    }

    /// Inserts a new topmost Record-Route value (e.g. `<sip:p.example.com;lr>`).
    pub fn push_record_route(&mut self, value: &str) -> &mut Self {
        let at = self
            .first(HeaderName::RecordRoute)
            .map(|f| f.name.start as usize)
            .unwrap_or_else(|| self.headers_end());
        self.insert(at, header_line("Record-Route", value));
        self
    }

    /// Removes every field named `name` whose value `remove` selects, whole lines (a proxy
    /// removes the Proxy-Authorization meant for its own realm, RFC 3261 §22.3).
    pub fn remove_fields(&mut self, name: HeaderName, remove: impl Fn(&[u8]) -> bool) -> &mut Self {
        for f in self.msg.raw_fields().iter().filter(|f| f.kind == name) {
            if remove(self.msg.bytes_at(f.value)) {
                self.splices.push(Splice {
                    at: self.msg.line_span(f).range(),
                    text: Vec::new(),
                });
            }
        }
        self
    }

    /// Replaces the Request-URI.
    pub fn set_request_uri(&mut self, uri: &str) -> Result<&mut Self, EditError> {
        match self.msg.start_line() {
            StartLine::Request { uri: span, .. } => {
                self.splices.push(Splice {
                    at: span.range(),
                    text: uri.as_bytes().to_vec(),
                });
                Ok(self)
            }
            StartLine::Response { .. } => Err(EditError::NotARequest),
        }
    }

    /// Builds the edited message: the received octets with every splice applied, in one
    /// copy. Content-Length is unchanged because the body is.
    pub fn apply(mut self) -> Result<Bytes, EditError> {
        // Insertions at a position go before a replacement that starts there.
        self.splices.sort_by_key(|s| (s.at.start, s.at.end));
        let src = self.msg.as_bytes();
        let extra: usize = self.splices.iter().map(|s| s.text.len()).sum();
        let mut out = Vec::with_capacity(src.len() + extra);
        let mut pos = 0;
        for s in &self.splices {
            if s.at.start < pos {
                return Err(EditError::Overlap);
            }
            out.extend_from_slice(src.get(pos..s.at.start).ok_or(EditError::Overlap)?);
            out.extend_from_slice(&s.text);
            pos = s.at.end;
        }
        out.extend_from_slice(src.get(pos..).unwrap_or_default());
        Ok(Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:bob@b.example SIP/2.0\r\n\
Via: SIP/2.0/UDP a.example;branch=z9hG4bK1, SIP/2.0/UDP x.example;branch=z9hG4bK0\r\n\
Max-Forwards: 10\r\n\
Route: <sip:p1.example;lr>,\r\n <sip:p2.example;lr>\r\n\
Route: <sip:p3.example;lr>\r\n\
From: <sip:a@a.example>;tag=1\r\nTo: <sip:bob@b.example>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
Content-Length: 4\r\n\r\nbody";

    #[test]
    fn proxy_edits() {
        let m = Message::parse(Bytes::from_static(INVITE)).expect("parse");
        let mut e = Edit::new(&m);
        e.push_via("SIP/2.0/UDP p.example;branch=z9hG4bKp")
            .push_record_route("<sip:p.example;lr>")
            .decrement_max_forwards()
            .and_then(|e| e.pop_route())
            .and_then(|e| e.set_request_uri("sip:bob@192.0.2.9:5060"))
            .expect("edits");
        let out = Message::parse(e.apply().expect("apply")).expect("reparse");
        assert_eq!(out.request_uri_str(), Some("sip:bob@192.0.2.9:5060"));
        let vias: Vec<_> = out
            .vias()
            .map(|v| v.expect("via").branch().map(str::to_owned))
            .collect();
        assert_eq!(
            vias,
            [
                Some("z9hG4bKp".into()),
                Some("z9hG4bK1".into()),
                Some("z9hG4bK0".into())
            ]
        );
        assert_eq!(out.max_forwards(), Ok(Some(9)));
        let routes: Vec<_> = out
            .routes()
            .map(|r| r.expect("route").uri().as_str().to_owned())
            .collect();
        assert_eq!(routes, ["sip:p2.example;lr", "sip:p3.example;lr"]);
        let rr: Vec<_> = out
            .record_routes()
            .map(|r| r.expect("rr").uri().as_str().to_owned())
            .collect();
        assert_eq!(rr, ["sip:p.example;lr"]);
        assert_eq!(out.body(), b"body");

        // Pop the Via we pushed, as on the response path.
        let mut e = Edit::new(&out);
        e.pop_via().expect("pop");
        let back = Message::parse(e.apply().expect("apply")).expect("reparse");
        assert_eq!(back.via().expect("via").branch(), Some("z9hG4bK1"));
        // Whole-line pop: pop twice more leaves no Via.
        let mut e = Edit::new(&back);
        e.pop_via().expect("pop");
        let one = Message::parse(e.apply().expect("apply")).expect("reparse");
        assert_eq!(one.vias().count(), 1);
    }

    #[test]
    fn remove_selected_fields() {
        let m = Message::parse(Bytes::from_static(
            b"INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\n\
Proxy-Authorization: Digest realm=\"ours\", username=\"a\"\r\n\
Proxy-Authorization: Digest realm=\"theirs\", username=\"a\"\r\nContent-Length: 0\r\n\r\n",
        ))
        .expect("parse");
        let mut e = Edit::new(&m);
        e.remove_fields(HeaderName::ProxyAuthorization, |v| {
            v.windows(6).any(|w| w == b"\"ours\"")
        })
        .push_via("SIP/2.0/UDP p;branch=z9hG4bKp");
        let out = Message::parse(e.apply().expect("apply")).expect("reparse");
        let left: Vec<_> = out
            .proxy_authorization()
            .map(|c| c.expect("parses").realm())
            .collect();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].as_deref(), Some("theirs"));
        assert_eq!(out.vias().count(), 2);
    }

    #[test]
    fn max_forwards_zero_and_absent() {
        let m = Message::parse(Bytes::from_static(
            b"OPTIONS sip:a@b SIP/2.0\r\nMax-Forwards: 0\r\nContent-Length: 0\r\n\r\n",
        ))
        .expect("parse");
        assert_eq!(
            Edit::new(&m).decrement_max_forwards().err(),
            Some(EditError::MaxForwards)
        );
        let m = Message::parse(Bytes::from_static(
            b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n",
        ))
        .expect("parse");
        let mut e = Edit::new(&m);
        e.decrement_max_forwards().expect("add");
        let out = Message::parse(e.apply().expect("apply")).expect("reparse");
        assert_eq!(out.max_forwards(), Ok(Some(70)));
        assert_eq!(
            Edit::new(&out).pop_route().err(),
            Some(EditError::NothingToPop(HeaderName::Route))
        );
    }
}
