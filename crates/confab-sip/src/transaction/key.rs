//! Transaction identity: which transaction a message belongs to (RFC 3261 §17.1.3, §17.2.3).
//!
//! A [`TransactionKey`] owns everything it compares (no borrow of the message), so it can live
//! in a `HashMap` for the lifetime of its transaction. It is one shared, immutable buffer:
//! cloning it allocates nothing, so the layer keeps a transaction's key once however many of
//! its structures refer to the transaction.
//!
//! * Client side: the branch of the top Via plus the CSeq method. Confab generates the branch,
//!   so it always carries the RFC 3261 magic cookie.
//! * Server side, RFC 3261 peers: branch, sent-by of the top Via and the method, where ACK
//!   counts as INVITE. CANCEL keeps its own method: it is a transaction of its own, and the
//!   INVITE it cancels is the same key with the method INVITE (§9.2).
//! * Server side, RFC 2543 peers (no branch, or a branch that is not the cookie followed by an
//!   id): Request-URI, To tag, From tag, Call-ID, CSeq number and method, and the top Via as
//!   written. An ACK for a non-2xx response carries the To tag of that response rather than
//!   the INVITE's, so the layer matches it on the same fields without the To tag and then
//!   checks the tag against the response it sent.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, LazyLock};

use smallvec::SmallVec;

use crate::headers::{HeaderError, MAGIC_COOKIE};
use crate::message::Message;

/// Which side of a transaction this element plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// This element sent the request.
    Client,
    /// This element received the request.
    Server,
}

/// Identifies one transaction. Cheap to compare and hash, owns its text, and distinguishes
/// client from server transactions even when they share a branch (a request looping through
/// the same element).
///
/// Every field the key compares is encoded into one shared buffer (see `Encoder`): one
/// allocation when a key is made, none when it is cloned. The transaction map, the timer
/// queues and the events of one transaction all share the buffer, so a transaction's key is
/// stored once however many places name it.
///
/// The key also carries a hash of the encoding, made when the key is, with a per-process
/// random key: [`Hash`] writes only that, so maps re-read it as they grow rather than
/// hashing the encoding again (`shards.rs`), and unequal keys usually differ at the first
/// comparison.
#[derive(Clone)]
pub struct TransactionKey {
    repr: Arc<[u8]>,
    hash: u64,
}

impl PartialEq for TransactionKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.repr == other.repr
    }
}

impl Eq for TransactionKey {}

impl std::hash::Hash for TransactionKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// The per-process key of the keys' hashes.
static HASH_KEY: LazyLock<RandomState> = LazyLock::new(RandomState::new);

impl TransactionKey {
    fn from_encoding(repr: Arc<[u8]>) -> TransactionKey {
        let hash = HASH_KEY.hash_one(&*repr);
        TransactionKey { repr, hash }
    }

    /// The hash the key carries.
    pub(crate) fn hash_value(&self) -> u64 {
        self.hash
    }
}

/// The first octet of a key's encoding.
const SERVER: u8 = 1;
const RFC2543: u8 = 2;

/// Builds a key's encoding: a flags octet (role, form), then the fields in a fixed order,
/// each but the last prefixed with its length (LEB128), so that no two different sets of
/// fields encode alike; the method comes last and takes the rest.
///
/// * RFC 3261 keys: branch, sent-by (lower-cased `host[:port]`; empty for client keys,
///   which §17.1.3 does not match on), method.
/// * RFC 2543 keys: CSeq number (4 octets), To tag and From tag (length + 1, 0 for none),
///   Request-URI, Call-ID, top Via as written, method.
struct Encoder {
    buf: SmallVec<[u8; 128]>,
}

impl Encoder {
    fn new(flags: u8) -> Encoder {
        let mut buf = SmallVec::new();
        buf.push(flags);
        Encoder { buf }
    }

    fn len(&mut self, mut n: usize) {
        while n >= 0x80 {
            self.buf.push((n & 0x7f) as u8 | 0x80);
            n >>= 7;
        }
        self.buf.push(n as u8);
    }

    fn field(&mut self, s: &[u8]) {
        self.len(s.len());
        self.buf.extend_from_slice(s);
    }

    fn tag(&mut self, tag: Option<&str>) {
        match tag {
            Some(t) => {
                self.len(t.len() + 1);
                self.buf.extend_from_slice(t.as_bytes());
            }
            None => self.len(0),
        }
    }

    fn sent_by(&mut self, host: &str, port: Option<u16>) {
        let mut digits = [0u8; 6];
        let port = match port {
            Some(p) => {
                let mut at = digits.len();
                let mut p = p;
                loop {
                    at -= 1;
                    digits[at] = b'0' + (p % 10) as u8;
                    p /= 10;
                    if p == 0 {
                        break;
                    }
                }
                at -= 1;
                digits[at] = b':';
                &digits[at..]
            }
            None => &[][..],
        };
        self.len(host.len() + port.len());
        self.buf
            .extend(host.bytes().map(|b| b.to_ascii_lowercase()));
        self.buf.extend_from_slice(port);
    }

    fn finish(mut self, method: &[u8]) -> TransactionKey {
        self.buf.extend_from_slice(method);
        TransactionKey::from_encoding(Arc::from(&self.buf[..]))
    }
}

/// Reads a key's encoding back, in the order [`Encoder`] wrote it.
struct Decoder<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Decoder<'a> {
    fn new(key: &'a TransactionKey) -> Decoder<'a> {
        Decoder {
            buf: &key.repr,
            at: 1,
        }
    }

    fn len(&mut self) -> usize {
        let mut n = 0usize;
        for shift in (0..usize::BITS).step_by(7) {
            let Some(&b) = self.buf.get(self.at) else {
                break;
            };
            self.at += 1;
            n |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
        }
        n
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let end = (self.at + n).min(self.buf.len());
        let s = self.buf.get(self.at..end).unwrap_or_default();
        self.at = end;
        s
    }

    fn field(&mut self) -> &'a str {
        let n = self.len();
        text(self.bytes(n))
    }

    fn tag(&mut self) -> Option<&'a str> {
        match self.len() {
            0 => None,
            n => Some(text(self.bytes(n - 1))),
        }
    }

    fn cseq(&mut self) -> u32 {
        let b = self.bytes(4);
        b.try_into().map(u32::from_le_bytes).unwrap_or_default()
    }

    /// Where the method starts.
    fn method_start(mut self, form_2543: bool) -> usize {
        if form_2543 {
            self.cseq();
            self.tag();
            self.tag();
            for _ in 0..3 {
                self.field();
            }
        } else {
            self.field();
            self.field();
        }
        self.at
    }
}

/// Every field was written from a `&str`; a slice of one is text.
fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or_default()
}

/// Why a message cannot be tied to a transaction. A driver answers such a request with 400
/// (statelessly) or drops it, and drops such a response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// A header the key needs is missing or malformed (Via, CSeq, Call-ID, From, To).
    Header(HeaderError),
    /// The Request-URI or method is not UTF-8.
    BadRequestLine,
    /// A response, or a request Confab sends, whose top Via has no RFC 3261 branch.
    NoBranch,
    /// The CSeq method differs from the request method (RFC 4475 `mismatch01`).
    MethodMismatch,
    /// A response was given where a request was expected, or the reverse.
    WrongDirection,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Header(e) => e.fmt(f),
            KeyError::BadRequestLine => f.write_str("Request-URI or method is not UTF-8"),
            KeyError::NoBranch => f.write_str("top Via has no RFC 3261 branch"),
            KeyError::MethodMismatch => f.write_str("CSeq method differs from the request method"),
            KeyError::WrongDirection => f.write_str("request and response confused"),
        }
    }
}

impl std::error::Error for KeyError {}

impl From<HeaderError> for KeyError {
    fn from(e: HeaderError) -> Self {
        KeyError::Header(e)
    }
}

/// True when `branch` is an RFC 3261 transaction id: the cookie and at least one more
/// character. The bare cookie (RFC 4475 `badbranch`) is not one.
pub(crate) fn is_transaction_branch(branch: &str) -> bool {
    branch.len() > MAGIC_COOKIE.len() && branch.starts_with(MAGIC_COOKIE)
}

/// The request method as written, checked against the CSeq method.
fn checked_method(msg: &Message) -> Result<&str, KeyError> {
    let method = msg.method_str().ok_or(if msg.is_request() {
        KeyError::BadRequestLine
    } else {
        KeyError::WrongDirection
    })?;
    if msg.cseq()?.method != method {
        return Err(KeyError::MethodMismatch);
    }
    Ok(method)
}

/// The method a server transaction is keyed on: ACK belongs to its INVITE (§17.2.3).
fn transaction_method(method: &str) -> &str {
    if method == "ACK" {
        "INVITE"
    } else {
        method
    }
}

impl TransactionKey {
    /// The server transaction a received request belongs to (RFC 3261 §17.2.3), with the RFC
    /// 2543 fallback when the top Via has no usable branch. An ACK yields the key of its
    /// INVITE.
    pub fn for_request(msg: &Message) -> Result<TransactionKey, KeyError> {
        let method = transaction_method(checked_method(msg)?);
        let via = msg.via()?;
        if let Some(branch) = via.branch().filter(|b| is_transaction_branch(b)) {
            let mut key = Encoder::new(SERVER);
            key.field(branch.as_bytes());
            key.sent_by(via.host_str(), via.port());
            return Ok(key.finish(method.as_bytes()));
        }
        let request_uri = msg.request_uri_str().ok_or(KeyError::BadRequestLine)?;
        let mut key = Encoder::new(SERVER | RFC2543);
        key.buf.extend_from_slice(&msg.cseq()?.seq.to_le_bytes());
        key.tag(msg.to()?.tag());
        key.tag(msg.from()?.tag());
        key.field(request_uri.as_bytes());
        key.field(msg.call_id()?.as_bytes());
        key.field(crate::lex::trim_lws(via.as_str()).as_bytes());
        Ok(key.finish(method.as_bytes()))
    }

    /// The client transaction a received response belongs to (RFC 3261 §17.1.3): top Via
    /// branch and CSeq method.
    pub fn for_response(msg: &Message) -> Result<TransactionKey, KeyError> {
        if msg.is_request() {
            return Err(KeyError::WrongDirection);
        }
        let cseq = msg.cseq()?;
        Self::client(msg, cseq.method)
    }

    /// The client transaction key of a request this element sends.
    pub(crate) fn for_outgoing(msg: &Message) -> Result<TransactionKey, KeyError> {
        let method = checked_method(msg)?;
        Self::client(msg, method)
    }

    fn client(msg: &Message, method: &str) -> Result<TransactionKey, KeyError> {
        let via = msg.via()?;
        let branch = via
            .branch()
            .filter(|b| is_transaction_branch(b))
            .ok_or(KeyError::NoBranch)?;
        let mut key = Encoder::new(0);
        key.field(branch.as_bytes());
        key.field(b"");
        Ok(key.finish(method.as_bytes()))
    }

    fn flags(&self) -> u8 {
        self.repr.first().copied().unwrap_or_default()
    }

    fn method_start(&self) -> usize {
        Decoder::new(self).method_start(self.is_rfc2543())
    }

    /// The same transaction identity with another method: the INVITE a CANCEL targets.
    pub(crate) fn with_method(&self, method: &str) -> TransactionKey {
        let prefix = self.repr.get(..self.method_start()).unwrap_or_default();
        let mut repr = Vec::with_capacity(prefix.len() + method.len());
        repr.extend_from_slice(prefix);
        repr.extend_from_slice(method.as_bytes());
        TransactionKey::from_encoding(Arc::from(repr))
    }

    /// For RFC 2543 keys: the key without its To tag, under which an ACK finds its INVITE.
    pub(crate) fn without_to_tag(&self) -> Option<TransactionKey> {
        if !self.is_rfc2543() {
            return None;
        }
        let mut d = Decoder::new(self);
        d.cseq();
        let before = d.at;
        d.tag();
        let (head, rest) = (
            self.repr.get(..before).unwrap_or_default(),
            self.repr.get(d.at..).unwrap_or_default(),
        );
        let mut repr = Vec::with_capacity(head.len() + 1 + rest.len());
        repr.extend_from_slice(head);
        repr.push(0);
        repr.extend_from_slice(rest);
        Some(TransactionKey::from_encoding(Arc::from(repr)))
    }

    /// For RFC 2543 keys: the To tag of the request.
    pub(crate) fn to_tag(&self) -> Option<&str> {
        if !self.is_rfc2543() {
            return None;
        }
        let mut d = Decoder::new(self);
        d.cseq();
        d.tag()
    }

    /// True when `other` is this very key, not merely an equal one: the same shared buffer.
    /// A transaction's key is made once, when the transaction is, so this tells a
    /// transaction from a later one with the same identity.
    pub(crate) fn is(&self, other: &TransactionKey) -> bool {
        Arc::ptr_eq(&self.repr, &other.repr)
    }

    /// Client or server.
    pub fn role(&self) -> Role {
        if self.flags() & SERVER != 0 {
            Role::Server
        } else {
            Role::Client
        }
    }

    /// The method of the request that created the transaction (INVITE for an ACK's key).
    pub fn method(&self) -> &str {
        text(self.repr.get(self.method_start()..).unwrap_or_default())
    }

    /// The branch, for RFC 3261 keys.
    pub fn branch(&self) -> Option<&str> {
        (!self.is_rfc2543()).then(|| Decoder::new(self).field())
    }

    /// True when the transaction is matched the RFC 2543 way.
    pub fn is_rfc2543(&self) -> bool {
        self.flags() & RFC2543 != 0
    }
}

impl fmt::Display for TransactionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = match self.role() {
            Role::Client => "client",
            Role::Server => "server",
        };
        let method = self.method();
        let mut d = Decoder::new(self);
        if self.is_rfc2543() {
            let cseq = d.cseq();
            d.tag();
            d.tag();
            d.field();
            let call_id = d.field();
            return write!(f, "{role} {method} rfc2543 call-id {call_id} cseq {cseq}");
        }
        let branch = d.field();
        match d.field() {
            "" => write!(f, "{role} {method} {branch}"),
            sent_by => write!(f, "{role} {method} {branch} from {sent_by}"),
        }
    }
}

impl fmt::Debug for TransactionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransactionKey({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn key(via: &str, extra: &str) -> TransactionKey {
        let msg = Message::parse(Bytes::from(format!(
            "OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP {via}\r\n\
             From: <sip:b@example.com>;tag=f1\r\nTo: <sip:a@example.com>{extra}\r\n\
             Call-ID: c1\r\nCSeq: 7 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )))
        .expect("parses");
        TransactionKey::for_request(&msg).expect("a key")
    }

    #[test]
    fn fields_never_run_into_each_other() {
        // Concatenated, branch and sent-by would read alike; length prefixes keep them apart.
        let a = key("ab.example;branch=z9hG4bKx", "");
        let b = key("b.example;branch=z9hG4bKxa", "");
        assert_ne!(a, b);
        assert_eq!(a.branch(), Some("z9hG4bKx"));
        assert_eq!(b.branch(), Some("z9hG4bKxa"));
        assert_eq!(a.method(), "OPTIONS");
        assert_eq!(a.to_string(), "server OPTIONS z9hG4bKx from ab.example");
    }

    #[test]
    fn sent_by_is_lower_cased_with_its_port() {
        let a = key("Client.EXAMPLE:5070;branch=z9hG4bK1", "");
        assert_eq!(a, key("client.example:5070;branch=z9hG4bK1", ""));
        assert_ne!(a, key("client.example;branch=z9hG4bK1", ""));
        assert_eq!(
            a.to_string(),
            "server OPTIONS z9hG4bK1 from client.example:5070"
        );
    }

    #[test]
    fn rfc2543_keys_read_back_and_drop_their_to_tag() {
        let tagged = key("client.example", ";tag=t9");
        assert!(tagged.is_rfc2543());
        assert_eq!((tagged.to_tag(), tagged.branch()), (Some("t9"), None));
        assert_eq!(tagged.method(), "OPTIONS");
        let bare = tagged.without_to_tag().expect("rfc2543");
        assert_eq!(bare, key("client.example", ""));
        assert_eq!(bare.to_tag(), None);
        assert_eq!(bare.with_method("INVITE").method(), "INVITE");
        assert_eq!(bare.to_string(), "server OPTIONS rfc2543 call-id c1 cseq 7");
    }

    #[test]
    fn long_fields_take_longer_length_prefixes() {
        let branch = format!("z9hG4bK{}", "b".repeat(300));
        let k = key(&format!("h.example;branch={branch}"), "");
        assert_eq!(k.branch(), Some(branch.as_str()));
        assert_eq!(k.method(), "OPTIONS");
        let invite = k.with_method("INVITE");
        assert_eq!(
            (invite.branch(), invite.method()),
            (Some(branch.as_str()), "INVITE")
        );
    }

    #[test]
    fn clones_are_the_same_key_and_equal_keys_are_not() {
        let a = key("h.example;branch=z9hG4bK1", "");
        let b = key("h.example;branch=z9hG4bK1", "");
        assert!(a.is(&a.clone()));
        assert!(a == b && !a.is(&b));
    }
}
