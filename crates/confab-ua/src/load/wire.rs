//! The text of what the generator sends, written into reusable buffers: Via branches that
//! name an operation's slot and transaction, the per-run marker in MESSAGE bodies and PIDF
//! notes, the lines every request starts with, and responses to relayed requests. Nothing
//! here allocates; reading back (branches, markers, notes) never panics on foreign input.

use std::fmt;
use std::io::Write;
use std::net::SocketAddr;

use confab_sip::headers::MAGIC_COOKIE;
use confab_sip::{HeaderName, Message};

/// `<prefix><n>`: a user's name, formatted without allocating.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Name<'a>(pub(crate) &'a str, pub(crate) u64);

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.0, self.1)
    }
}

/// Writes the branch of transaction `seq` of slot `slot` of the worker tagged `worker`.
pub(crate) fn write_branch(out: &mut Vec<u8>, worker: u32, slot: u32, seq: u32) {
    let _ = write!(out, "{MAGIC_COOKIE}{worker:08x}.{slot:x}.{seq:x}");
}

/// Reads a branch written by [`write_branch`] for the worker tagged `worker`: `(slot, seq)`.
pub(crate) fn parse_branch(branch: &str, worker: u32) -> Option<(u32, u32)> {
    let rest = branch.strip_prefix(MAGIC_COOKIE)?;
    let (tag, rest) = rest.split_once('.')?;
    if tag.len() != 8 || u32::from_str_radix(tag, 16).ok()? != worker {
        return None;
    }
    let (slot, seq) = rest.split_once('.')?;
    Some((hex_u32(slot)?, hex_u32(seq)?))
}

fn hex_u32(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

const MARKER: &str = "confab-load run=";

/// Writes the MESSAGE body of operation `op` of run `run`.
pub(crate) fn write_marker(out: &mut Vec<u8>, run: u64, op: u64) {
    let _ = write!(out, "{MARKER}{run:016x} op={op}");
}

/// The length of [`write_marker`]'s text.
pub(crate) fn marker_len(op: u64) -> usize {
    MARKER.len() + 16 + " op=".len() + decimal_len(op)
}

fn decimal_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

/// Reads a MESSAGE body written by [`write_marker`]: `(run, op)`; `None` for any other body.
pub(crate) fn parse_marker(body: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(body).ok()?;
    let rest = text.strip_prefix(MARKER)?;
    let (run, rest) = rest.split_at_checked(16)?;
    if !run.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let op = rest.strip_prefix(" op=")?;
    if op.is_empty() || !op.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((u64::from_str_radix(run, 16).ok()?, op.parse().ok()?))
}

/// Writes the note of a PUBLISH of the subscribe scenario: the run, the operation's number
/// and its send time in µs since the measured phase started.
pub(crate) fn write_note(out: &mut Vec<u8>, run: u64, op: u64, sent_us: u64) {
    let _ = write!(out, "{MARKER}{run:016x} seq={op} t={sent_us}");
}

/// Reads a note written by [`write_note`] anywhere in `body` (a PIDF document, which may
/// carry it more than once and carry other runs' too): `(op, sent_us)` of the first one of
/// run `run`; `None` when there is none.
pub(crate) fn parse_note(body: &[u8], run: u64) -> Option<(u64, u64)> {
    let mut rest = body;
    while let Some(at) = find(rest, MARKER.as_bytes()) {
        rest = &rest[at + MARKER.len()..];
        if let Some(found) = note_fields(rest).filter(|&(r, _, _)| r == run) {
            return Some((found.1, found.2));
        }
    }
    None
}

/// `<run hex> seq=<op> t=<µs>` at the start of `text`, ended by anything but a digit.
fn note_fields(text: &[u8]) -> Option<(u64, u64, u64)> {
    let run = text.get(..16)?;
    if !run.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let run = u64::from_str_radix(std::str::from_utf8(run).ok()?, 16).ok()?;
    let rest = text.get(16..)?.strip_prefix(b" seq=")?;
    let (op, rest) = leading_number(rest)?;
    let rest = rest.strip_prefix(b" t=")?;
    let (sent, _) = leading_number(rest)?;
    Some((run, op, sent))
}

/// The decimal number `text` starts with, and what follows it.
fn leading_number(text: &[u8]) -> Option<(u64, &[u8])> {
    let len = text.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 {
        return None;
    }
    let n = std::str::from_utf8(&text[..len]).ok()?.parse().ok()?;
    Some((n, &text[len..]))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Writes the request line and the Via of a request from `local` with `branch` already
/// written by the caller into `branch` form: `METHOD uri SIP/2.0`, `Via: …;rport`,
/// `Max-Forwards: 70`.
pub(crate) fn write_head(
    out: &mut Vec<u8>,
    method: &str,
    uri: fmt::Arguments<'_>,
    local: SocketAddr,
    worker: u32,
    slot: u32,
    seq: u32,
) {
    let _ = write!(
        out,
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch="
    );
    write_branch(out, worker, slot, seq);
    out.extend_from_slice(b";rport\r\nMax-Forwards: 70\r\n");
}

/// Writes `Content-Length`, the empty line and the body (with its `Content-Type` when there
/// is one).
pub(crate) fn write_body(out: &mut Vec<u8>, body: Option<(&str, &[u8])>) {
    match body {
        Some((content_type, body)) => {
            let _ = write!(
                out,
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            out.extend_from_slice(body);
        }
        None => out.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
    }
}

/// What a response to a relayed request says beyond what it copies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reply<'a> {
    pub(crate) status: u16,
    pub(crate) reason: &'a str,
    /// Added to To when the request's has no tag.
    pub(crate) to_tag: Option<u64>,
    /// Copy Record-Route (a dialog-creating response).
    pub(crate) record_route: bool,
    /// `Contact: <sip:USER@ADDR>`.
    pub(crate) contact: Option<(&'a str, SocketAddr)>,
    pub(crate) body: Option<(&'a str, &'a [u8])>,
}

/// Writes a response to `req` (RFC 3261 §8.2.6): its Vias, From, To (with a tag), Call-ID
/// and CSeq, Record-Route if asked, then what `r` adds.
pub(crate) fn write_response(out: &mut Vec<u8>, req: &Message, r: &Reply<'_>) {
    let _ = write!(out, "SIP/2.0 {} {}\r\n", r.status, r.reason);
    for f in req.fields() {
        let name = match f.name {
            HeaderName::Via => "Via",
            HeaderName::RecordRoute if r.record_route => "Record-Route",
            _ => continue,
        };
        line(out, name, f.value);
    }
    for name in [
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
    ] {
        let Some(value) = req.header_bytes(name) else {
            continue;
        };
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        if name == HeaderName::To {
            if let Some(tag) = r.to_tag {
                if req.to().is_ok_and(|t| t.tag().is_none()) {
                    let _ = write!(out, ";tag={tag:x}");
                }
            }
        }
        out.extend_from_slice(b"\r\n");
    }
    if let Some((user, addr)) = r.contact {
        let _ = write!(out, "Contact: <sip:{user}@{addr}>\r\n");
    }
    write_body(out, r.body);
}

fn line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn branches_name_slot_and_transaction_of_this_worker_only() {
        let mut out = Vec::new();
        write_branch(&mut out, 0xdead_beef, 17, 0x1_0000);
        let b = std::str::from_utf8(&out).expect("utf8");
        assert_eq!(b, "z9hG4bKdeadbeef.11.10000");
        assert_eq!(parse_branch(b, 0xdead_beef), Some((17, 0x1_0000)));
        assert_eq!(parse_branch(b, 1), None, "another worker's");
        for foreign in [
            "z9hG4bK776asdhds",
            "z9hG4bKdeadbeef.11",
            "z9hG4bKdeadbeef..1",
            "z9hG4bKdeadbeef.11.1.2",
            "z9hG4bKdeadbeef.+1.2",
            "z9hG4bKdeadbeef.111111111.2",
            "deadbeef.1.2",
        ] {
            assert_eq!(parse_branch(foreign, 0xdead_beef), None, "{foreign}");
        }
    }

    #[test]
    fn markers_carry_run_and_operation() {
        let mut out = Vec::new();
        write_marker(&mut out, 0x0123_4567_89ab_cdef, 42);
        assert_eq!(out.len(), marker_len(42));
        assert_eq!(parse_marker(&out), Some((0x0123_4567_89ab_cdef, 42)));
        for op in [0, 9, 10, 99_999, u64::MAX] {
            let mut out = Vec::new();
            write_marker(&mut out, 7, op);
            assert_eq!(out.len(), marker_len(op));
            assert_eq!(parse_marker(&out), Some((7, op)));
        }
        for foreign in [
            &b"hello"[..],
            b"confab-load",
            b"confab-load run=0123456789abcdef",
            b"confab-load run=0123456789abcdef op=",
            b"confab-load run=0123456789abcdef op=1x",
            b"confab-load run=0123456789abcdeg op=1",
            b"confab-load run=\xff\xfe",
            b"confab-load run=0123456789abcdef op=99999999999999999999999",
        ] {
            assert_eq!(parse_marker(foreign), None, "{foreign:?}");
        }
    }

    #[test]
    fn notes_carry_run_operation_and_send_time() {
        let mut note = Vec::new();
        write_note(&mut note, 0x0123_4567_89ab_cdef, 42, 1_234_567);
        assert_eq!(
            std::str::from_utf8(&note).expect("utf8"),
            "confab-load run=0123456789abcdef seq=42 t=1234567"
        );
        let doc = |notes: &[&[u8]]| {
            let mut d = b"<?xml version=\"1.0\"?><presence><tuple id=\"presence\">".to_vec();
            for n in notes {
                d.extend_from_slice(b"<note>");
                d.extend_from_slice(n);
                d.extend_from_slice(b"</note>");
            }
            d.extend_from_slice(b"</tuple></presence>");
            d
        };
        assert_eq!(
            parse_note(&doc(&[&note]), 0x0123_4567_89ab_cdef),
            Some((42, 1_234_567))
        );
        assert_eq!(parse_note(&doc(&[&note]), 7), None, "another run's");
        // Another run's note first, then this run's: this run's is found.
        let mut other = Vec::new();
        write_note(&mut other, 7, 1, 2);
        assert_eq!(parse_note(&doc(&[&other, &note]), 7), Some((1, 2)));
        assert_eq!(
            parse_note(&doc(&[&other, &note]), 0x0123_4567_89ab_cdef),
            Some((42, 1_234_567))
        );
        for foreign in [
            &b""[..],
            b"<presence/>",
            b"confab-load run=",
            b"confab-load run=0123456789abcdef",
            b"confab-load run=0123456789abcdef seq= t=1",
            b"confab-load run=0123456789abcdef seq=1 t=",
            b"confab-load run=0123456789abcdef seq=1t=2",
            b"confab-load run=0123456789abcdeg seq=1 t=2",
            b"confab-load run=0123456789abcdef seq=99999999999999999999999 t=2",
            b"confab-load run=\xff\xfe\xfd",
        ] {
            assert_eq!(
                parse_note(foreign, 0x0123_4567_89ab_cdef),
                None,
                "{foreign:?}"
            );
        }
    }

    #[test]
    fn responses_copy_what_rfc_3261_says_and_add_a_tag() {
        let req = Message::parse(Bytes::from_static(
            b"INVITE sip:bob@127.0.0.1:4000 SIP/2.0\r\n\
              v: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKp;rport\r\n\
              Via: SIP/2.0/UDP 127.0.0.1:4001;branch=z9hG4bKa\r\n\
              Record-Route: <sip:127.0.0.1:5060;transport=udp;lr>\r\n\
              From: <sip:alice@localhost>;tag=a\r\nTo: <sip:bob@localhost>\r\n\
              Call-ID: c1\r\nCSeq: 2 INVITE\r\nContent-Length: 0\r\n\r\n",
        ))
        .expect("parses");
        let mut out = Vec::new();
        let addr: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        write_response(
            &mut out,
            &req,
            &Reply {
                status: 200,
                reason: "OK",
                to_tag: Some(0xabc),
                record_route: true,
                contact: Some(("bob", addr)),
                body: Some(("application/sdp", b"v=0\r\n")),
            },
        );
        let resp = Message::parse(Bytes::from(out)).expect("the response parses");
        assert_eq!(resp.status(), Some(200));
        let vias: Vec<_> = resp.vias().flatten().map(|v| v.branch()).collect();
        assert_eq!(vias, [Some("z9hG4bKp"), Some("z9hG4bKa")]);
        assert_eq!(resp.to().expect("To").tag(), Some("abc"));
        assert_eq!(resp.record_routes().count(), 1);
        assert_eq!(resp.cseq().expect("CSeq").seq, 2);
        assert_eq!(resp.body(), b"v=0\r\n");
        let contact = resp.contacts().next().expect("one").expect("valid");
        assert_eq!(
            contact.address().expect("address").uri().as_str(),
            "sip:bob@127.0.0.1:4000"
        );

        // A 200 to a BYE: no Record-Route, and the To tag is kept.
        let bye = Message::parse(Bytes::from_static(
            b"BYE sip:bob@127.0.0.1:4000 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKq\r\n\
              Record-Route: <sip:127.0.0.1:5060;lr>\r\n\
              From: <sip:alice@localhost>;tag=a\r\nTo: <sip:bob@localhost>;tag=b\r\n\
              Call-ID: c1\r\nCSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n",
        ))
        .expect("parses");
        let mut out = Vec::new();
        write_response(
            &mut out,
            &bye,
            &Reply {
                status: 200,
                reason: "OK",
                to_tag: Some(1),
                record_route: false,
                contact: None,
                body: None,
            },
        );
        let resp = Message::parse(Bytes::from(out)).expect("parses");
        assert_eq!(resp.to().expect("To").tag(), Some("b"));
        assert_eq!(resp.record_routes().count(), 0);
    }

    #[test]
    fn request_heads_are_well_formed() {
        let mut out = Vec::new();
        let local: SocketAddr = "[::1]:5070".parse().expect("addr");
        write_head(
            &mut out,
            "REGISTER",
            format_args!("sip:{}", "localhost"),
            local,
            1,
            2,
            3,
        );
        out.extend_from_slice(
            b"From: <sip:u1@localhost>;tag=1\r\nTo: <sip:u1@localhost>\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\n",
        );
        write_body(&mut out, None);
        let req = Message::parse(Bytes::from(out)).expect("parses");
        assert_eq!(req.request_uri_str(), Some("sip:localhost"));
        let via = req.via().expect("Via");
        assert_eq!(via.host_str(), "[::1]");
        assert_eq!(parse_branch(via.branch().expect("branch"), 1), Some((2, 3)));
        assert_eq!(format!("{}", Name("user", 12)), "user12");
    }
}
