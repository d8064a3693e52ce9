//! The SIP message view: one receive buffer ([`Bytes`]) plus the spans of its start line,
//! header fields and body. Parsing finds the spans and nothing else; typed values are parsed
//! on demand by the accessors in [`crate::headers`]. Nothing is copied and, for messages with
//! up to [`INLINE_HEADERS`] header fields, nothing is allocated.
//!
//! [`Message::parse`] takes a whole datagram (RFC 3261 §18.3: octets after Content-Length are
//! ignored). Streams go through [`crate::framing::StreamFramer`], which uses the same head
//! parser. A message that is well-framed but defective (a malformed request line, a bad
//! Content-Length) fails with a [`ParseError`] that still carries the parsed message, so that
//! a server can answer it with 400 rather than drop it.

use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use smallvec::SmallVec;

use crate::header_name::HeaderName;
use crate::lex::{self, CommaSplit};
use crate::method::Method;
use crate::uri::{Uri, UriError};

/// Header fields held without allocation; messages with more spill to the heap.
pub const INLINE_HEADERS: usize = 32;
/// Messages with more header fields than this are rejected.
pub const MAX_HEADERS: usize = 512;

/// A byte range in the message buffer. Offsets are `u32`: messages are bounded far below
/// 4 GiB by framing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

impl Span {
    pub(crate) fn new(start: usize, end: usize) -> Span {
        // Framing bounds messages far below u32::MAX; saturate rather than wrap regardless.
        let c = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        Span {
            start: c(start),
            end: c(end.max(start)),
        }
    }
    pub(crate) fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
    pub(crate) fn is_empty(self) -> bool {
        self.start == self.end
    }
}

/// One header field line (with any folded continuation lines).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub(crate) kind: HeaderName,
    /// The name as written.
    pub(crate) name: Span,
    /// The value without leading and trailing whitespace; may contain folded CR LF WSP.
    pub(crate) value: Span,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum StartLine {
    Request {
        method: Span,
        method_kind: Method,
        uri: Span,
        version: Span,
    },
    Response {
        version: Span,
        code: u16,
        reason: Span,
    },
}

/// What went wrong while parsing a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// Nothing but line breaks.
    Empty,
    /// The first line is neither a request line nor a status line.
    BadStartLine,
    /// The request line is not `Method SP Request-URI SP SIP-Version` with single spaces
    /// (RFC 4475 `lwsstart`, `trws`, `lwsruri`).
    BadRequestLine,
    /// The status line is malformed or the code is outside 100–699 (RFC 4475 `bigcode`).
    BadStatusLine,
    /// A header line has no colon, an empty or non-token name, or is a continuation line
    /// with nothing to continue.
    BadHeaderLine,
    /// More than [`MAX_HEADERS`] header fields.
    TooManyHeaders,
    /// The header section is not terminated by an empty line.
    Unterminated,
    /// Content-Length is not a decimal number that fits (RFC 4475 `ncl`).
    BadContentLength,
    /// More than one Content-Length header (RFC 4475 `mcl01`).
    DuplicateContentLength,
    /// Content-Length is larger than the octets received (RFC 4475 `clerr`).
    Truncated,
    /// A stream message without Content-Length (RFC 3261 §18.3 requires it on streams).
    MissingContentLength,
    /// The message exceeds the configured maximum size.
    TooLarge,
}

impl ParseErrorKind {
    /// A short reason phrase suitable for a 400 response.
    pub fn reason(self) -> &'static str {
        match self {
            ParseErrorKind::Empty => "Empty Message",
            ParseErrorKind::BadStartLine => "Bad Start Line",
            ParseErrorKind::BadRequestLine => "Malformed Request-Line",
            ParseErrorKind::BadStatusLine => "Malformed Status-Line",
            ParseErrorKind::BadHeaderLine => "Malformed Header Line",
            ParseErrorKind::TooManyHeaders => "Too Many Headers",
            ParseErrorKind::Unterminated => "Header Section Not Terminated",
            ParseErrorKind::BadContentLength => "Bad Content-Length",
            ParseErrorKind::DuplicateContentLength => "Duplicate Content-Length",
            ParseErrorKind::Truncated => "Content-Length Exceeds Message",
            ParseErrorKind::MissingContentLength => "Missing Content-Length",
            ParseErrorKind::TooLarge => "Message Too Large",
        }
    }
}

/// A message that could not be parsed. Where the message was framed well enough to read its
/// headers, [`ParseError::partial`] gives it, so a server can answer a request with 400.
#[derive(Debug, Clone)]
pub struct ParseError {
    kind: ParseErrorKind,
    partial: Option<Box<Message>>,
}

impl ParseError {
    pub(crate) fn new(kind: ParseErrorKind) -> Self {
        ParseError {
            kind,
            partial: None,
        }
    }

    pub(crate) fn with_partial(kind: ParseErrorKind, msg: Message) -> Self {
        ParseError {
            kind,
            partial: Some(Box::new(msg)),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> ParseErrorKind {
        self.kind
    }

    /// The message as far as it could be read, if its header section was readable.
    pub fn partial(&self) -> Option<&Message> {
        self.partial.as_deref()
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.reason())
    }
}

impl std::error::Error for ParseError {}

/// Headers with a slot in [`CoreIndex`].
const CORE_SLOTS: usize = 10;

fn core_slot(kind: HeaderName) -> Option<usize> {
    Some(match kind {
        HeaderName::Via => 0,
        HeaderName::From => 1,
        HeaderName::To => 2,
        HeaderName::CallId => 3,
        HeaderName::CSeq => 4,
        HeaderName::Contact => 5,
        HeaderName::MaxForwards => 6,
        HeaderName::ContentLength => 7,
        HeaderName::ContentType => 8,
        HeaderName::Expires => 9,
        _ => return None,
    })
}

/// Where the first field of each header that every request has read lies, and which of them
/// appear more than once: filled while parsing, so that the core accessors and the
/// duplicate checks of validation need no scan of the header list.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CoreIndex {
    first: [u16; CORE_SLOTS],
    repeated: u16,
}

impl Default for CoreIndex {
    fn default() -> Self {
        CoreIndex {
            first: [u16::MAX; CORE_SLOTS],
            repeated: 0,
        }
    }
}

impl CoreIndex {
    fn note(&mut self, kind: HeaderName, field: usize) {
        let Some(slot) = core_slot(kind) else {
            return;
        };
        if let Some(first) = self.first.get_mut(slot) {
            if *first == u16::MAX {
                // MAX_HEADERS keeps field indexes below u16::MAX.
                *first = u16::try_from(field).unwrap_or(u16::MAX);
            } else {
                self.repeated |= 1 << slot;
            }
        }
    }

    /// `None` when `kind` has no slot; otherwise the index of its first field, if any.
    fn first(&self, kind: HeaderName) -> Option<Option<usize>> {
        let slot = core_slot(kind)?;
        let first = *self.first.get(slot)?;
        Some((first != u16::MAX).then_some(usize::from(first)))
    }

    /// `None` when `kind` has no slot; otherwise whether it appears more than once.
    fn repeated(&self, kind: HeaderName) -> Option<bool> {
        core_slot(kind).map(|slot| self.repeated & (1 << slot) != 0)
    }
}

/// The parsed head of a message: start line, header fields, where the body starts, and the
/// first defect found (if any) that still allowed the head to be read.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) start: StartLine,
    pub(crate) fields: SmallVec<[Field; INLINE_HEADERS]>,
    pub(crate) index: CoreIndex,
    pub(crate) body_start: usize,
    pub(crate) defect: Option<ParseErrorKind>,
}

/// Finds the end of the line starting at `pos`: (end of content, start of next line).
/// Accepts CR LF and, liberally, a bare LF.
fn line_at(buf: &[u8], pos: usize) -> Option<(usize, usize)> {
    let rest = buf.get(pos..)?;
    let nl = pos + memchr::memchr(b'\n', rest)?;
    let end = if nl > pos && buf.get(nl - 1) == Some(&b'\r') {
        nl - 1
    } else {
        nl
    };
    Some((end, nl + 1))
}

fn trim_end_ws(buf: &[u8], start: usize, mut end: usize) -> usize {
    while end > start && matches!(buf.get(end - 1), Some(b' ' | b'\t')) {
        end -= 1;
    }
    end
}

fn skip_ws(buf: &[u8], mut pos: usize, end: usize) -> usize {
    while pos < end && matches!(buf.get(pos), Some(b' ' | b'\t')) {
        pos += 1;
    }
    pos
}

fn is_version(v: &[u8]) -> bool {
    // "SIP/" 1*DIGIT "." 1*DIGIT, name case-insensitive.
    let Some((name, num)) = v.split_at_checked(4) else {
        return false;
    };
    if !name.eq_ignore_ascii_case(b"SIP/") {
        return false;
    }
    let mut parts = num.splitn(2, |b| *b == b'.');
    let major = parts.next().unwrap_or_default();
    let minor = parts.next().unwrap_or_default();
    !major.is_empty()
        && !minor.is_empty()
        && major.iter().all(u8::is_ascii_digit)
        && minor.iter().all(u8::is_ascii_digit)
}

/// Parses the start line in `buf[start..end]`. Always returns a start line when the line has
/// a recognisable shape, together with the defect that makes it invalid, if any.
fn parse_start_line(
    buf: &[u8],
    start: usize,
    end: usize,
) -> Result<(StartLine, Option<ParseErrorKind>), ParseErrorKind> {
    let line = buf.get(start..end).ok_or(ParseErrorKind::BadStartLine)?;
    if line
        .get(..4)
        .is_some_and(|v| v.eq_ignore_ascii_case(b"SIP/"))
    {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let sp = memchr::memchr(b' ', line).ok_or(ParseErrorKind::BadStatusLine)?;
        let version = Span::new(start, start + sp);
        let after = line.get(sp + 1..).unwrap_or_default();
        let code_len = after.iter().take_while(|b| b.is_ascii_digit()).count();
        if code_len != 3 || !matches!(after.get(3), None | Some(b' ')) {
            return Err(ParseErrorKind::BadStatusLine);
        }
        let code = after
            .iter()
            .take(3)
            .fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0'));
        if !(100..=699).contains(&code) {
            return Err(ParseErrorKind::BadStatusLine);
        }
        let reason_start = (start + sp + 1 + 4).min(end);
        let defect = (!is_version(line.get(..sp).unwrap_or_default()))
            .then_some(ParseErrorKind::BadStatusLine);
        return Ok((
            StartLine::Response {
                version,
                code,
                reason: Span::new(reason_start, end),
            },
            defect,
        ));
    }
    // Request-Line = Method SP Request-URI SP SIP-Version
    let first = memchr::memchr(b' ', line).ok_or(ParseErrorKind::BadStartLine)?;
    let last = memchr::memrchr(b' ', line).ok_or(ParseErrorKind::BadStartLine)?;
    let method = line.get(..first).unwrap_or_default();
    if method.is_empty() || !method.iter().all(|b| lex::is_token_byte(*b)) {
        return Err(ParseErrorKind::BadStartLine);
    }
    let method_kind = std::str::from_utf8(method)
        .map(Method::from_token)
        .unwrap_or(Method::Extension);
    let (uri, version) = if last > first {
        (
            Span::new(start + first + 1, start + last),
            Span::new(start + last + 1, end),
        )
    } else {
        (Span::new(start + first + 1, end), Span::new(end, end))
    };
    let uri_bytes = buf.get(uri.range()).unwrap_or_default();
    let version_bytes = buf.get(version.range()).unwrap_or_default();
    let bad = last == first
        || uri_bytes.is_empty()
        || uri_bytes.iter().any(|b| matches!(b, b' ' | b'\t'))
        || !is_version(version_bytes);
    Ok((
        StartLine::Request {
            method: Span::new(start, start + first),
            method_kind,
            uri,
            version,
        },
        bad.then_some(ParseErrorKind::BadRequestLine),
    ))
}

/// Parses the head of a message. With `need_terminator` (streams) a head without its empty
/// line is an error; for a datagram the head may run to the end of the buffer (recorded as a
/// defect, so the request can still be answered).
// Inlined so that the head is built in place in the caller's frame instead of being moved.
#[inline(always)]
pub(crate) fn parse_head(buf: &[u8], need_terminator: bool) -> Result<Head, ParseErrorKind> {
    // RFC 3261 §7.5: ignore CRLFs before the start line.
    let mut pos = 0;
    while matches!(buf.get(pos), Some(b'\r' | b'\n')) {
        pos += 1;
    }
    if pos >= buf.len() {
        return Err(ParseErrorKind::Empty);
    }
    let (line_end, next) = line_at(buf, pos).ok_or(ParseErrorKind::Unterminated)?;
    let (start, mut defect) = parse_start_line(buf, pos, line_end)?;
    pos = next;

    let mut fields: SmallVec<[Field; INLINE_HEADERS]> = SmallVec::new();
    let mut index = CoreIndex::default();
    let body_start;
    // One searcher for every line end of the head: building a searcher per line costs more
    // than the search on lines this short.
    let mut newlines = memchr::memchr_iter(b'\n', buf.get(pos..).unwrap_or_default());
    let base = pos;
    loop {
        let line = newlines.next().map(|nl| {
            let nl = base + nl;
            let end = if nl > pos && buf.get(nl - 1) == Some(&b'\r') {
                nl - 1
            } else {
                nl
            };
            (end, nl + 1)
        });
        let (end, next) = match line {
            Some(l) => l,
            None if need_terminator => return Err(ParseErrorKind::Unterminated),
            None => {
                // A datagram whose header section runs to its end.
                if pos < buf.len() {
                    let end = buf.len();
                    add_line(buf, &mut fields, &mut index, pos, end)?;
                }
                defect.get_or_insert(ParseErrorKind::Unterminated);
                body_start = buf.len();
                break;
            }
        };
        if end == pos {
            body_start = next;
            break;
        }
        add_line(buf, &mut fields, &mut index, pos, end)?;
        pos = next;
    }
    Ok(Head {
        start,
        fields,
        index,
        body_start,
        defect,
    })
}

/// Adds header line `buf[pos..end]` (ending at `next`) as a new field or as the continuation
/// of the previous one.
fn add_line(
    buf: &[u8],
    fields: &mut SmallVec<[Field; INLINE_HEADERS]>,
    index: &mut CoreIndex,
    pos: usize,
    end: usize,
) -> Result<(), ParseErrorKind> {
    if matches!(buf.get(pos), Some(b' ' | b'\t')) {
        let last = fields.last_mut().ok_or(ParseErrorKind::BadHeaderLine)?;
        let content = skip_ws(buf, pos, end);
        if content < end {
            if last.value.is_empty() {
                last.value.start = Span::new(content, content).start;
            }
            last.value.end = Span::new(0, trim_end_ws(buf, content, end)).end;
        }
        return Ok(());
    }
    if fields.len() >= MAX_HEADERS {
        return Err(ParseErrorKind::TooManyHeaders);
    }
    // field-name = token, then optional whitespace, then the colon (RFC 3261 §7.3.1).
    let line = buf.get(pos..end).ok_or(ParseErrorKind::BadHeaderLine)?;
    let name_len = line.iter().take_while(|b| lex::is_token_byte(**b)).count();
    let name_end = pos + name_len;
    let colon = skip_ws(buf, name_end, end);
    if name_len == 0 || buf.get(colon) != Some(&b':') || colon >= end {
        return Err(ParseErrorKind::BadHeaderLine);
    }
    let name = buf.get(pos..name_end).unwrap_or_default();
    let value_start = skip_ws(buf, colon + 1, end);
    let value_end = trim_end_ws(buf, value_start, end);
    let kind = HeaderName::from_bytes(name);
    index.note(kind, fields.len());
    fields.push(Field {
        kind,
        name: Span::new(pos, name_end),
        value: Span::new(value_start, value_end),
    });
    Ok(())
}

/// The Content-Length of a head: `Ok(None)` when absent.
pub(crate) fn content_length(
    buf: &[u8],
    fields: &[Field],
) -> Result<Option<usize>, ParseErrorKind> {
    let mut found = None;
    for f in fields
        .iter()
        .filter(|f| f.kind == HeaderName::ContentLength)
    {
        if found.is_some() {
            return Err(ParseErrorKind::DuplicateContentLength);
        }
        let v = buf.get(f.value.range()).unwrap_or_default();
        let v = std::str::from_utf8(v).map_err(|_| ParseErrorKind::BadContentLength)?;
        let n =
            lex::parse_decimal(v, u64::from(u32::MAX)).ok_or(ParseErrorKind::BadContentLength)?;
        found = Some(usize::try_from(n).map_err(|_| ParseErrorKind::BadContentLength)?);
    }
    Ok(found)
}

/// A parsed SIP request or response, borrowing nothing: it owns (a reference count on) its
/// receive buffer.
#[derive(Clone)]
pub struct Message {
    buf: Bytes,
    start: StartLine,
    fields: SmallVec<[Field; INLINE_HEADERS]>,
    index: CoreIndex,
    body: Span,
}

/// One header field as written: its name and its value (without surrounding whitespace).
#[derive(Debug, Clone, Copy)]
pub struct HeaderField<'a> {
    /// The well-known name, or [`HeaderName::Other`].
    pub name: HeaderName,
    /// The name as written (e.g. `v` or `VIA`).
    pub raw_name: &'a [u8],
    /// The value as written, possibly spanning folded lines.
    pub value: &'a [u8],
}

impl<'a> HeaderField<'a> {
    /// The value as text; `None` if it is not UTF-8.
    pub fn value_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.value).ok()
    }
}

impl Message {
    /// Parses one datagram. Octets after the body announced by Content-Length are ignored
    /// (RFC 4475 `dblreq`); without Content-Length the body is the rest of the datagram.
    pub fn parse(buf: Bytes) -> Result<Message, ParseError> {
        let head = parse_head(&buf, false).map_err(ParseError::new)?;
        let available = buf.len() - head.body_start.min(buf.len());
        let mut defect = head.defect;
        let body_len = match content_length(&buf, &head.fields) {
            Ok(Some(n)) if n <= available => n,
            Ok(Some(_)) => {
                defect.get_or_insert(ParseErrorKind::Truncated);
                available
            }
            Ok(None) => available,
            Err(k) => {
                defect.get_or_insert(k);
                available
            }
        };
        let msg = Message::from_head(buf, head, body_len);
        match defect {
            None => Ok(msg),
            Some(kind) => Err(ParseError::with_partial(kind, msg)),
        }
    }

    #[inline(always)]
    pub(crate) fn from_head(buf: Bytes, head: Head, body_len: usize) -> Message {
        Message {
            start: head.start,
            fields: head.fields,
            index: head.index,
            body: Span::new(head.body_start, head.body_start + body_len),
            buf,
        }
    }

    pub(crate) fn start_line(&self) -> &StartLine {
        &self.start
    }

    pub(crate) fn raw_fields(&self) -> &[Field] {
        &self.fields
    }

    pub(crate) fn body_span(&self) -> Span {
        self.body
    }

    /// The whole header line(s) of a field, including the final line ending (for edits).
    pub(crate) fn line_span(&self, f: &Field) -> Span {
        let end = f.value.end as usize;
        let line_end = self
            .buf
            .get(end..)
            .and_then(|rest| memchr::memchr(b'\n', rest))
            .map_or(self.buf.len(), |i| end + i + 1);
        Span::new(f.name.start as usize, line_end)
    }

    pub(crate) fn bytes_at(&self, span: Span) -> &[u8] {
        self.buf.get(span.range()).unwrap_or_default()
    }

    pub(crate) fn str_at(&self, span: Span) -> Option<&str> {
        std::str::from_utf8(self.bytes_at(span)).ok()
    }

    /// The message as a shared buffer (no copy), without octets that followed its body in
    /// the datagram.
    pub fn to_bytes(&self) -> Bytes {
        self.buf.slice(..self.body.end as usize)
    }

    /// The message as received, without octets that followed its body in the datagram.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.body.end as usize).unwrap_or_default()
    }

    /// True for a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// True for a response.
    pub fn is_response(&self) -> bool {
        !self.is_request()
    }

    /// The method of a request.
    pub fn method(&self) -> Option<Method> {
        match self.start {
            StartLine::Request { method_kind, .. } => Some(method_kind),
            StartLine::Response { .. } => None,
        }
    }

    /// The method token of a request, as written.
    pub fn method_str(&self) -> Option<&str> {
        match self.start {
            StartLine::Request { method, .. } => self.str_at(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI as written.
    pub fn request_uri_str(&self) -> Option<&str> {
        match self.start {
            StartLine::Request { uri, .. } => self.str_at(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI, parsed.
    pub fn request_uri(&self) -> Option<Result<Uri<'_>, UriError>> {
        match self.start {
            StartLine::Request { uri, .. } => Some(match self.str_at(uri) {
                Some(s) => Uri::parse(s),
                None => Err(UriError::NotUtf8),
            }),
            StartLine::Response { .. } => None,
        }
    }

    /// The SIP-Version as written (`SIP/2.0`).
    pub fn version(&self) -> &[u8] {
        match self.start {
            StartLine::Request { version, .. } | StartLine::Response { version, .. } => {
                self.bytes_at(version)
            }
        }
    }

    /// True when the version is SIP/2.0 (case-insensitive name).
    pub fn is_sip_2_0(&self) -> bool {
        self.version().eq_ignore_ascii_case(b"SIP/2.0")
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase of a response, as octets (it may be empty).
    pub fn reason_bytes(&self) -> Option<&[u8]> {
        match self.start {
            StartLine::Response { reason, .. } => Some(self.bytes_at(reason)),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase of a response as text; `None` for requests or non-UTF-8 phrases.
    pub fn reason(&self) -> Option<&str> {
        self.reason_bytes()
            .and_then(|b| std::str::from_utf8(b).ok())
    }

    /// All header fields in order.
    pub fn fields(&self) -> impl Iterator<Item = HeaderField<'_>> + '_ {
        self.fields.iter().map(|f| HeaderField {
            name: f.kind,
            raw_name: self.bytes_at(f.name),
            value: self.bytes_at(f.value),
        })
    }

    /// Number of header fields.
    pub fn field_count(&self) -> usize {
        self.fields.len()
    }

    pub(crate) fn fields_of(&self, name: HeaderName) -> impl Iterator<Item = &Field> + '_ {
        let from = match self.index.first(name) {
            Some(None) => self.fields.len(),
            Some(Some(i)) => i,
            None => 0,
        };
        self.fields
            .get(from..)
            .unwrap_or_default()
            .iter()
            .filter(move |f| f.kind == name)
    }

    /// The first field named `name`.
    pub(crate) fn first_field(&self, name: HeaderName) -> Option<&Field> {
        match self.index.first(name) {
            Some(i) => i.and_then(|i| self.fields.get(i)),
            None => self.fields_of(name).next(),
        }
    }

    /// True if more than one field is named `name`.
    pub(crate) fn is_repeated(&self, name: HeaderName) -> bool {
        match self.index.repeated(name) {
            Some(r) => r,
            None => self.fields_of(name).nth(1).is_some(),
        }
    }

    /// Number of header fields with this name (each line counts once).
    pub fn count(&self, name: HeaderName) -> usize {
        self.fields_of(name).count()
    }

    /// True if a field with this name is present.
    pub fn has(&self, name: HeaderName) -> bool {
        self.first_field(name).is_some()
    }

    /// The value of the first field with this name, as octets.
    pub fn header_bytes(&self, name: HeaderName) -> Option<&[u8]> {
        self.first_field(name).map(|f| self.bytes_at(f.value))
    }

    /// The value of the first field with this name; `None` if absent or not UTF-8.
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        self.header_bytes(name)
            .and_then(|b| std::str::from_utf8(b).ok())
    }

    /// Values of all fields with this name, by the name's text (case-insensitive; compact
    /// forms of known names match their long forms). For names Confab does not know.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        let kind = HeaderName::from_bytes(name.as_bytes());
        self.fields
            .iter()
            .filter(move |f| {
                if kind == HeaderName::Other {
                    f.kind == HeaderName::Other
                        && self.bytes_at(f.name).eq_ignore_ascii_case(name.as_bytes())
                } else {
                    f.kind == kind
                }
            })
            .map(|f| self.bytes_at(f.value))
    }

    /// Every comma-separated value of every field with this name, in order (RFC 3261 §7.3.1:
    /// `Route: a, b` and `Route: a` + `Route: b` are the same). Fields that are not UTF-8 are
    /// skipped. Only meaningful for list headers ([`HeaderName::is_list`]).
    pub fn values(&self, name: HeaderName) -> impl Iterator<Item = &str> + '_ {
        self.fields_of(name)
            .filter_map(|f| self.str_at(f.value))
            .flat_map(CommaSplit::new)
    }

    /// The body (exactly Content-Length octets when present).
    pub fn body(&self) -> &[u8] {
        self.bytes_at(self.body)
    }

    /// The body as a shared slice of the receive buffer.
    pub fn body_bytes(&self) -> Bytes {
        self.buf.slice(self.body.range())
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Message");
        match self.start {
            StartLine::Request { .. } => {
                d.field("method", &self.method_str());
                d.field("uri", &self.request_uri_str());
            }
            StartLine::Response { code, .. } => {
                d.field("status", &code);
            }
        }
        d.field("fields", &self.fields.len())
            .field("body_len", &self.body().len())
            .finish()
    }
}
