//! SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966); URIs of other schemes are kept opaque.
//!
//! This module owns URI syntax and URI comparison. [`Uri::parse`] checks the whole text once
//! against the RFC 3261 §25.1 grammar (RFC 3966 for `tel:`) and records where each component
//! lies; every getter then hands back a slice of the input, so neither parsing nor reading
//! allocates. Components stay %-escaped as on the wire; [`unescape`] decodes one when a caller
//! needs its bytes. `Uri`'s [`PartialEq`] follows RFC 3261 §19.1.4 (RFC 3966 §4 for `tel:`),
//! decoding escapes on the fly so that comparison does not allocate either.
//!
//! It also owns `hostport` ([`parse_host_port`]), which the Via sent-by parser shares.

use std::borrow::Cow;
use std::fmt;
use std::iter::FusedIterator;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The scheme of a URI, matched case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `sip:` (RFC 3261).
    Sip,
    /// `sips:` (RFC 3261), SIP over TLS on every hop.
    Sips,
    /// `tel:` (RFC 3966), a telephone number.
    Tel,
    /// Any other scheme; the text after the colon is kept opaque.
    Other,
}

/// The host of a SIP or SIPS URI (or of a Via sent-by).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    /// A domain name as written (case preserved, trailing dot kept).
    Name(&'a str),
    /// A dotted-quad IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 address, written between `[` and `]`.
    Ipv6(Ipv6Addr),
}

/// Why a text is not a URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriError {
    /// The text is empty.
    Empty,
    /// The bytes handed over as a URI are not UTF-8 (set by callers that hold bytes).
    NotUtf8,
    /// The URI is wrapped in `<` `>`, which belong to the name-addr around it.
    AngleBrackets,
    /// There is no `:` ending a scheme.
    MissingScheme,
    /// The scheme is not a letter followed by letters, digits, `+`, `-` or `.`.
    BadScheme,
    /// Nothing follows the `scheme:` of a URI of an unknown scheme.
    EmptyOpaque,
    /// A space, tab, CR, LF or other whitespace character appears in the URI.
    Whitespace,
    /// A control character appears in the URI unescaped.
    ControlChar,
    /// A `sip:`, `sips:` or `tel:` URI holds a non-ASCII character unescaped.
    NonAscii,
    /// A `%` is not followed by two hexadecimal digits.
    BadEscape,
    /// The user part before `@` is empty or holds a character it may not.
    BadUser,
    /// The password after `user:` holds a character it may not.
    BadPassword,
    /// There is no host.
    MissingHost,
    /// The host is neither a valid hostname nor a dotted-quad IPv4 address.
    BadHost,
    /// An IPv6 address is written without the `[` `]` around it.
    UnbracketedIpv6,
    /// The text between `[` and `]` is not an IPv6 address, or `]` is missing.
    BadIpv6,
    /// The port is empty, longer than five digits, not a number, or above 65535.
    BadPort,
    /// A URI parameter has an empty name or a character a parameter may not hold.
    BadParam,
    /// The headers after `?` are not `name=value` pairs joined by `&`.
    BadHeaders,
    /// The number of a `tel:` URI is empty or holds a character a number may not.
    BadNumber,
    /// The URI is longer than [`MAX_URI_LEN`] (65535) bytes.
    TooLong,
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msg = match self {
            UriError::Empty => "empty URI",
            UriError::NotUtf8 => "URI is not valid UTF-8",
            UriError::AngleBrackets => "URI must not be enclosed in '<' '>'",
            UriError::MissingScheme => "URI has no scheme such as \"sip:\"",
            UriError::BadScheme => "URI scheme must be a letter, then letters, digits, + - .",
            UriError::EmptyOpaque => "URI has nothing after its scheme",
            UriError::Whitespace => "URI contains whitespace",
            UriError::ControlChar => "URI contains a control character",
            UriError::NonAscii => "non-ASCII character in a sip, sips or tel URI: escape it as %XX",
            UriError::BadEscape => "'%' in URI is not followed by two hexadecimal digits",
            UriError::BadUser => "invalid user part before '@' in URI",
            UriError::BadPassword => "invalid password in the user part of URI",
            UriError::MissingHost => "URI has no host",
            UriError::BadHost => "host is not a valid hostname or IPv4 address",
            UriError::UnbracketedIpv6 => "IPv6 address must be enclosed in '[' ']'",
            UriError::BadIpv6 => "invalid IPv6 address between '[' and ']'",
            UriError::BadPort => "invalid port: expected 1 to 5 digits, at most 65535",
            UriError::BadParam => "invalid URI parameter: expected ;name or ;name=value",
            UriError::BadHeaders => "invalid URI headers: expected ?name=value&name=value",
            UriError::BadNumber => "invalid telephone number in tel URI",
            UriError::TooLong => "URI is longer than 65535 bytes",
        };
        f.write_str(msg)
    }
}

impl std::error::Error for UriError {}

/// The longest text, in bytes, that [`Uri::parse`] accepts: a `Uri` records where its
/// components lie as 16-bit offsets into its text, which keeps it small to copy.
pub const MAX_URI_LEN: usize = u16::MAX as usize;

/// A parsed URI borrowing its text: a zero-copy view that never allocates.
///
/// Equality ([`PartialEq`]) is URI equivalence as defined by RFC 3261 §19.1.4 for SIP and
/// SIPS and RFC 3966 §4 for tel, not textual equality. It is not transitive (a parameter
/// present in only one URI is ignored), so `Uri` is deliberately not `Eq` or `Hash`.
///
/// A `Uri` is small (at most 64 bytes) because it is copied a lot, inside the name-addrs
/// of From, To, Contact and Route: it keeps its text and the byte offsets of its
/// components in that text, and each getter slices the text again, in constant time.
/// That limits a URI to [`MAX_URI_LEN`] bytes.
#[derive(Clone, Copy)]
pub struct Uri<'a> {
    raw: &'a str,
    /// The host of a sip or sips URI; a name lies at `host_start..host_end` of `raw`.
    host: HostRepr,
    scheme: Scheme,
    /// Which of the optional components are present: `HAS_*` bits.
    flags: u8,
    /// Where the `:` ending the scheme is; the opaque part starts after it.
    colon: u16,
    /// The user part (or tel number) is `colon + 1..user_end`.
    user_end: u16,
    /// The password is `user_end + 1..password_end`.
    password_end: u16,
    /// The host as written is `host_start..host_end`.
    host_start: u16,
    host_end: u16,
    port: u16,
    /// The parameter text after the first `;` is `params_start..params_end`, empty when
    /// there is none.
    params_start: u16,
    params_end: u16,
    /// The headers after `?` are `headers_start..`.
    headers_start: u16,
}

/// The host of a [`Uri`], without a borrow: a name is a range of the URI's text.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HostRepr {
    None,
    Name,
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
}

/// [`Uri::flags`]: there is a user part (or a tel number).
const HAS_USER: u8 = 1;
/// [`Uri::flags`]: there is a password.
const HAS_PASSWORD: u8 = 1 << 1;
/// [`Uri::flags`]: there is a port.
const HAS_PORT: u8 = 1 << 2;
/// [`Uri::flags`]: there are headers.
const HAS_HEADERS: u8 = 1 << 3;

/// An offset into a URI's text, narrowed to 16 bits. Only a text longer than
/// [`MAX_URI_LEN`] bytes can have offsets that do not fit, and [`Uri::parse`] refuses it.
#[inline]
fn offset(i: usize) -> u16 {
    i as u16
}

impl<'a> Uri<'a> {
    /// Parses `s` as a URI. `sip:`, `sips:` and `tel:` URIs are checked against their
    /// grammar; any other scheme only needs a valid scheme name and non-empty text after it.
    ///
    /// A text longer than [`MAX_URI_LEN`] bytes that is otherwise a valid URI is refused
    /// with [`UriError::TooLong`].
    pub fn parse(s: &'a str) -> Result<Self, UriError> {
        if s.is_empty() {
            return Err(UriError::Empty);
        }
        if s.starts_with('<') {
            return Err(UriError::AngleBrackets);
        }
        let chars = scan_chars(s)?;
        let colon = s
            .bytes()
            .position(|b| b == b':')
            .ok_or(UriError::MissingScheme)?;
        let (scheme_str, opaque) = split_around(s, colon);
        let scheme = scheme_kind(scheme_str)?;
        if scheme != Scheme::Other && !chars.ascii {
            return Err(UriError::NonAscii);
        }
        if chars.percent && !is_valid_escapes(s) {
            return Err(UriError::BadEscape);
        }
        let uri = Uri {
            raw: s,
            host: HostRepr::None,
            scheme,
            flags: 0,
            colon: offset(colon),
            user_end: 0,
            password_end: 0,
            host_start: 0,
            host_end: 0,
            port: 0,
            params_start: 0,
            params_end: 0,
            headers_start: 0,
        };
        let uri = match scheme {
            Scheme::Sip | Scheme::Sips => uri.parse_sip(colon + 1)?,
            Scheme::Tel => uri.parse_tel(colon + 1)?,
            Scheme::Other if opaque.is_empty() => return Err(UriError::EmptyOpaque),
            Scheme::Other => uri,
        };
        // Checked last so that a longer text that is not a URI gets the error saying why.
        if s.len() > MAX_URI_LEN {
            return Err(UriError::TooLong);
        }
        Ok(uri)
    }

    /// `[userinfo "@"] hostport uri-parameters [headers]`, from byte `base` of the text
    /// (just after the scheme's colon).
    #[inline(always)]
    fn parse_sip(mut self, base: usize) -> Result<Self, UriError> {
        let s = self.raw;
        let opaque = s.get(base..).unwrap_or_default();
        let bytes = opaque.as_bytes();
        // `;` and `?` are legal in the user part (RFC 4475 §3.1.1.9), and `@` is legal
        // nowhere after it, so the first `@` ends the userinfo.
        let at = if bytes.contains(&b'@') {
            find_byte(bytes, 0, b'@')
        } else {
            None
        };
        let mut flags = 0;
        let host_start = match at {
            Some(at) => {
                let info = bytes.get(..at).unwrap_or_default();
                // `:` is not a user character: the first byte that is not one must start
                // the password, or end the userinfo.
                let user_end = info
                    .iter()
                    .position(|&b| !has_class(b, USER))
                    .unwrap_or(info.len());
                let password = match info.get(user_end) {
                    None => None,
                    Some(b':') => Some(info.get(user_end + 1..).unwrap_or_default()),
                    Some(_) => return Err(UriError::BadUser),
                };
                if user_end == 0 {
                    return Err(UriError::BadUser);
                }
                if let Some(p) = password {
                    if !p.iter().all(|&b| has_class(b, PASSWORD)) {
                        return Err(UriError::BadPassword);
                    }
                    flags |= HAS_PASSWORD;
                    self.password_end = offset(base + at);
                }
                flags |= HAS_USER;
                self.user_end = offset(base + user_end);
                base + at + 1
            }
            None => base,
        };
        let after_user = s.get(host_start..).unwrap_or_default();
        let hp = host_port(after_user, true)?;
        let tail_start = host_start + hp.len;
        let tail = after_user.get(hp.len..).unwrap_or_default();
        let ((params_start, params_end), headers) = check_params(tail, true)?;
        if let Some(h) = headers {
            check_headers(tail.get(h..).unwrap_or_default())?;
            flags |= HAS_HEADERS;
            self.headers_start = offset(tail_start + h);
        }
        self.host = match hp.host {
            Host::Name(_) => HostRepr::Name,
            Host::Ipv4(a) => HostRepr::Ipv4(a),
            Host::Ipv6(a) => HostRepr::Ipv6(a),
        };
        self.host_start = offset(host_start);
        self.host_end = offset(host_start + hp.host_len);
        if let Some(port) = hp.port {
            flags |= HAS_PORT;
            self.port = port;
        }
        self.params_start = offset(tail_start + params_start);
        self.params_end = offset(tail_start + params_end);
        self.flags = flags;
        Ok(self)
    }

    /// `telephone-subscriber *(";" param)`, from byte `base` of the text (just after the
    /// scheme's colon).
    #[inline(always)]
    fn parse_tel(mut self, base: usize) -> Result<Self, UriError> {
        let opaque = self.raw.get(base..).unwrap_or_default();
        let split = find_byte(opaque.as_bytes(), 0, b';').unwrap_or(opaque.len());
        let (number, params) = opaque.split_at_checked(split).unwrap_or((opaque, ""));
        if !is_tel_number(number) {
            return Err(UriError::BadNumber);
        }
        let ((params_start, params_end), _) = check_params(params, false)?;
        let tail_start = base + number.len();
        self.flags = HAS_USER;
        self.user_end = offset(tail_start);
        self.params_start = offset(tail_start + params_start);
        self.params_end = offset(tail_start + params_end);
        Ok(self)
    }

    /// `raw[start..end]`; the offsets always bound a piece of `raw`.
    #[inline]
    fn slice(&self, start: u16, end: u16) -> &'a str {
        self.raw
            .get(usize::from(start)..usize::from(end))
            .unwrap_or_default()
    }

    /// `raw[start..end]` when the component `flag` is present.
    #[inline]
    fn part(&self, flag: u8, start: usize, end: u16) -> Option<&'a str> {
        if self.flags & flag == 0 {
            return None;
        }
        self.raw.get(start..usize::from(end))
    }

    /// The parameter text after the first `;`, empty when there is none.
    #[inline]
    fn params_str(&self) -> &'a str {
        self.slice(self.params_start, self.params_end)
    }

    /// The whole URI as written.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// The scheme, recognised case-insensitively.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The scheme as written, without the colon.
    pub fn scheme_str(&self) -> &'a str {
        self.raw.get(..usize::from(self.colon)).unwrap_or_default()
    }

    /// Whether this is a `sips:` URI.
    pub fn is_sips(&self) -> bool {
        self.scheme == Scheme::Sips
    }

    /// For sip and sips, the user part of the userinfo, still %-escaped; for tel, the
    /// telephone number with its visual separators; `None` otherwise.
    pub fn user(&self) -> Option<&'a str> {
        self.part(HAS_USER, usize::from(self.colon) + 1, self.user_end)
    }

    /// The password after `user:`, still %-escaped (`Some("")` for `user:@host`).
    pub fn password(&self) -> Option<&'a str> {
        self.part(
            HAS_PASSWORD,
            usize::from(self.user_end) + 1,
            self.password_end,
        )
    }

    /// The host of a sip or sips URI; `None` for tel and other schemes.
    pub fn host(&self) -> Option<Host<'a>> {
        match self.host {
            HostRepr::None => None,
            HostRepr::Name => Some(Host::Name(self.slice(self.host_start, self.host_end))),
            HostRepr::Ipv4(a) => Some(Host::Ipv4(a)),
            HostRepr::Ipv6(a) => Some(Host::Ipv6(a)),
        }
    }

    /// The host as written, an IPv6 address with its brackets.
    pub fn host_str(&self) -> Option<&'a str> {
        if self.host == HostRepr::None {
            return None;
        }
        Some(self.slice(self.host_start, self.host_end))
    }

    /// The port, when one is written.
    pub fn port(&self) -> Option<u16> {
        (self.flags & HAS_PORT != 0).then_some(self.port)
    }

    /// The URI parameters in order, as `(name, value)` still %-escaped; a flag parameter
    /// such as `;lr` has no value.
    pub fn params(&self) -> UriParams<'a> {
        UriParams::new(self.params_str())
    }

    /// The first parameter named `name`, compared case-insensitively after %-unescaping:
    /// `Some(None)` for a flag such as `;lr`, `Some(Some(value))` for `;name=value`.
    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        self.params()
            .find(|(n, _)| eq_unescaped(n, name, true))
            .map(|(_, v)| v)
    }

    /// The value of the `transport` parameter, such as `tcp`.
    pub fn transport(&self) -> Option<&'a str> {
        self.param("transport").flatten()
    }

    /// The value of the `user` parameter, such as `phone`.
    pub fn user_param(&self) -> Option<&'a str> {
        self.param("user").flatten()
    }

    /// The value of the `method` parameter.
    pub fn method_param(&self) -> Option<&'a str> {
        self.param("method").flatten()
    }

    /// The value of the `maddr` parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.param("maddr").flatten()
    }

    /// The `ttl` parameter, when present and a number from 0 to 255.
    pub fn ttl(&self) -> Option<u8> {
        let v = self.param("ttl").flatten()?;
        if v.is_empty() || v.len() > 3 || !v.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        v.parse().ok()
    }

    /// Whether the `lr` (loose routing) parameter is present.
    pub fn lr(&self) -> bool {
        self.param("lr").is_some()
    }

    /// The headers after `?`, still %-escaped.
    pub fn headers(&self) -> Option<&'a str> {
        if self.flags & HAS_HEADERS == 0 {
            return None;
        }
        self.raw.get(usize::from(self.headers_start)..)
    }

    /// The headers after `?` as `(name, value)` pairs, still %-escaped.
    pub fn header_fields(&self) -> UriHeaders<'a> {
        UriHeaders {
            rest: self.headers(),
        }
    }

    /// Everything after `scheme:`.
    pub fn opaque(&self) -> &'a str {
        self.raw
            .get(usize::from(self.colon) + 1..)
            .unwrap_or_default()
    }
}

impl fmt::Debug for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // What `#[derive(Debug)]` printed when every component was a field of its own.
        f.debug_struct("Uri")
            .field("raw", &self.raw)
            .field("scheme", &self.scheme)
            .field("scheme_str", &self.scheme_str())
            .field("opaque", &self.opaque())
            .field("user", &self.user())
            .field("password", &self.password())
            .field("host", &self.host())
            .field("host_str", &self.host_str())
            .field("port", &self.port())
            .field("params", &self.params_str())
            .field("headers", &self.headers())
            .finish()
    }
}

impl PartialEq for Uri<'_> {
    fn eq(&self, other: &Self) -> bool {
        if self.scheme != other.scheme {
            return false;
        }
        match self.scheme {
            Scheme::Sip | Scheme::Sips => sip_eq(self, other),
            Scheme::Tel => tel_eq(self, other),
            Scheme::Other => {
                self.scheme_str().eq_ignore_ascii_case(other.scheme_str())
                    && self.opaque() == other.opaque()
            }
        }
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw)
    }
}

/// Iterator over URI parameters, from [`Uri::params`].
#[derive(Debug, Clone)]
pub struct UriParams<'a> {
    rest: Option<&'a str>,
}

impl<'a> UriParams<'a> {
    fn new(params: &'a str) -> Self {
        UriParams {
            rest: (!params.is_empty()).then_some(params),
        }
    }
}

impl<'a> Iterator for UriParams<'a> {
    type Item = (&'a str, Option<&'a str>);

    fn next(&mut self) -> Option<Self::Item> {
        let item = next_item(&mut self.rest, ';')?;
        Some(match item.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (item, None),
        })
    }
}

impl FusedIterator for UriParams<'_> {}

/// Iterator over the `name=value` headers of a URI, from [`Uri::header_fields`].
#[derive(Debug, Clone)]
pub struct UriHeaders<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for UriHeaders<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let item = next_item(&mut self.rest, '&')?;
        Some(item.split_once('=').unwrap_or((item, "")))
    }
}

impl FusedIterator for UriHeaders<'_> {}

/// Takes the text before the next `sep` off `rest`; `None` once `rest` is used up.
fn next_item<'a>(rest: &mut Option<&'a str>, sep: char) -> Option<&'a str> {
    let text = rest.take()?;
    match text.split_once(sep) {
        Some((item, tail)) => {
            *rest = Some(tail);
            Some(item)
        }
        None => Some(text),
    }
}

/// Parses `hostport`: a hostname, a dotted-quad IPv4 address or `[` IPv6 `]`, then an
/// optional `:port`. Spaces and tabs are allowed around that colon, as Via's sent-by
/// allows them; [`Uri::parse`] has already refused any whitespace in a URI.
pub fn parse_host_port(s: &str) -> Result<(Host<'_>, Option<u16>), UriError> {
    host_port(s, false).map(|hp| (hp.host, hp.port))
}

/// A `hostport` read from the start of a text.
struct HostPort<'a> {
    host: Host<'a>,
    port: Option<u16>,
    /// Length of the host as written (an IPv6 reference with its brackets).
    host_len: usize,
    /// Length of the whole `hostport`.
    len: usize,
}

/// Reads the `hostport` at the start of `s`. With `in_uri` it ends at the first `;` or `?`
/// (the URI parameters or headers after it); otherwise it is the whole of `s`.
fn host_port(s: &str, in_uri: bool) -> Result<HostPort<'_>, UriError> {
    let bytes = s.as_bytes();
    let ends = |b: u8| in_uri && (b == b';' || b == b'?');
    if bytes.first() == Some(&b'[') {
        let close = match bytes.iter().position(|&b| b == b']' || ends(b)) {
            Some(i) if bytes.get(i) == Some(&b']') => i,
            _ => return Err(UriError::BadIpv6),
        };
        let addr = s.get(1..close).ok_or(UriError::BadIpv6)?;
        let host = Host::Ipv6(parse_ipv6(addr)?);
        return with_port(s, host, close + 1, in_uri);
    }
    let name = scan_host_name(bytes);
    match bytes.get(name.len) {
        None | Some(b' ' | b'\t') => {}
        Some(b':') => {
            // More than one `:` and nothing but hex digits, `:` and `.`: an IPv6 address
            // someone forgot to bracket. The name holds no `:`, so look after it.
            let end = hostport_end(bytes, name.len, in_uri);
            let hostport = bytes.get(..end).unwrap_or(bytes);
            if find_byte(hostport, name.len + 1, b':').is_some()
                && hostport
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            {
                return Err(UriError::UnbracketedIpv6);
            }
        }
        Some(&b) if ends(b) => {}
        // The name runs on to the first `:`, space or tab, so it holds this byte.
        Some(_) => return Err(UriError::BadHost),
    }
    let host = match name.kind {
        _ if name.len == 0 => return Err(UriError::MissingHost),
        NameKind::Name => Host::Name(s.get(..name.len).unwrap_or(s)),
        NameKind::Ipv4(addr) => Host::Ipv4(addr),
        NameKind::Bad => return Err(UriError::BadHost),
    };
    with_port(s, host, name.len, in_uri)
}

/// Finishes a `hostport` whose host takes the first `host_len` bytes of `s`.
#[inline]
fn with_port<'a>(
    s: &'a str,
    host: Host<'a>,
    host_len: usize,
    in_uri: bool,
) -> Result<HostPort<'a>, UriError> {
    let bytes = s.as_bytes();
    let len = hostport_end(bytes, host_len, in_uri);
    let mut after = bytes.get(host_len..len).unwrap_or_default();
    if after.is_empty() {
        return Ok(HostPort {
            host,
            port: None,
            host_len,
            len,
        });
    }
    while let [b' ' | b'\t', rest @ ..] = after {
        after = rest;
    }
    let [b':', port @ ..] = after else {
        return Err(UriError::BadHost);
    };
    let mut port = port;
    while let [b' ' | b'\t', rest @ ..] = port {
        port = rest;
    }
    Ok(HostPort {
        host,
        port: Some(parse_port(port)?),
        host_len,
        len,
    })
}

/// Where the `hostport` in `bytes` ends, searching from `from`: at the first `;` or `?` in
/// a URI, at the end of the text otherwise.
fn hostport_end(bytes: &[u8], from: usize, in_uri: bool) -> usize {
    if !in_uri {
        return bytes.len();
    }
    bytes
        .get(from..)
        .and_then(|rest| rest.iter().position(|&b| b == b';' || b == b'?'))
        .map_or(bytes.len(), |i| from + i)
}

/// Decodes `%XX` escapes; a `%` not followed by two hexadecimal digits is kept as is.
/// Borrows `s` when it holds no `%`.
pub fn unescape(s: &str) -> Cow<'_, [u8]> {
    if s.contains('%') {
        Cow::Owned(Unescaped::new(s).collect())
    } else {
        Cow::Borrowed(s.as_bytes())
    }
}

/// Whether every `%` in `s` is followed by two hexadecimal digits.
pub fn is_valid_escapes(s: &str) -> bool {
    let mut rest = s.as_bytes();
    while let Some(i) = rest.iter().position(|&b| b == b'%') {
        match rest.get(i + 1..) {
            Some([h, l, tail @ ..]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                rest = tail;
            }
            _ => return false,
        }
    }
    true
}

/// The bytes of a %-escaped text, decoded one at a time so that comparing needs no buffer.
#[derive(Clone)]
struct Unescaped<'a> {
    rest: &'a [u8],
}

impl<'a> Unescaped<'a> {
    fn new(s: &'a str) -> Self {
        Unescaped { rest: s.as_bytes() }
    }
}

impl Iterator for Unescaped<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let (&b, tail) = self.rest.split_first()?;
        if b == b'%' {
            if let [h, l, after @ ..] = tail {
                if let (Some(h), Some(l)) = (hex_value(*h), hex_value(*l)) {
                    self.rest = after;
                    return Some(h << 4 | l);
                }
            }
        }
        self.rest = tail;
        Some(b)
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Compares two escaped texts by their decoded bytes, ASCII case-insensitively if `ci`.
fn eq_unescaped(a: &str, b: &str, ci: bool) -> bool {
    let fold = |c: u8| if ci { c.to_ascii_lowercase() } else { c };
    Unescaped::new(a).map(fold).eq(Unescaped::new(b).map(fold))
}

/// The first `needle` in `bytes` at or after `from`.
fn find_byte(bytes: &[u8], from: usize, needle: u8) -> Option<usize> {
    let rest = bytes.get(from..)?;
    rest.iter().position(|&b| b == needle).map(|i| from + i)
}

/// The text before and after the ASCII separator at byte `i` of `s`.
fn split_around(s: &str, i: usize) -> (&str, &str) {
    match (s.get(..i), s.get(i + 1..)) {
        (Some(before), Some(after)) => (before, after),
        _ => (s, ""),
    }
}

/// What [`scan_chars`] found out about a URI that has no whitespace or control character.
struct CharScan {
    /// Whether it holds a `%` (so its escapes need checking).
    percent: bool,
    /// Whether it is all ASCII.
    ascii: bool,
}

/// Refuses whitespace and control characters, in the order they appear, and notes whether
/// `s` holds a `%` or anything outside ASCII.
fn scan_chars(s: &str) -> Result<CharScan, UriError> {
    let bytes = s.as_bytes();
    // Without early exit so that it vectorises: does any byte need a closer look?
    let flagged = bytes.iter().fold(false, |acc, &b| {
        acc | (b <= b' ') | (b >= 0x7f) | (b == b'%')
    });
    if !flagged {
        return Ok(CharScan {
            percent: false,
            ascii: true,
        });
    }
    // Usually only a `%` did, so check again without it before looking byte by byte.
    if !bytes
        .iter()
        .fold(false, |acc, &b| acc | (b <= b' ') | (b >= 0x7f))
    {
        return Ok(CharScan {
            percent: true,
            ascii: true,
        });
    }
    let mut percent = false;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            // `char::is_whitespace` for ASCII: HT, LF, VT, FF, CR and SP.
            b'\t'..=b'\r' | b' ' => return Err(UriError::Whitespace),
            0..=0x1f | 0x7f => return Err(UriError::ControlChar),
            b'%' => percent = true,
            0x80.. => {
                // Everything before is ASCII, so `i` starts a character; Unicode has more
                // whitespace and control characters, such as NBSP and NEL.
                for c in s.get(i..).unwrap_or("").chars() {
                    if c.is_whitespace() {
                        return Err(UriError::Whitespace);
                    }
                    if c.is_control() {
                        return Err(UriError::ControlChar);
                    }
                }
                return Ok(CharScan {
                    percent: true,
                    ascii: false,
                });
            }
            _ => {}
        }
    }
    Ok(CharScan {
        percent,
        ascii: true,
    })
}

fn scheme_kind(scheme: &str) -> Result<Scheme, UriError> {
    let [first, rest @ ..] = scheme.as_bytes() else {
        return Err(UriError::BadScheme);
    };
    if !first.is_ascii_alphabetic()
        || !rest
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return Err(UriError::BadScheme);
    }
    Ok(if scheme.eq_ignore_ascii_case("sip") {
        Scheme::Sip
    } else if scheme.eq_ignore_ascii_case("sips") {
        Scheme::Sips
    } else if scheme.eq_ignore_ascii_case("tel") {
        Scheme::Tel
    } else {
        Scheme::Other
    })
}

// Character classes of RFC 3261 §25.1, looked up in one table. `%` is accepted in each
// escaped class because `Uri::parse` has already checked that every `%` starts a valid
// escape.

/// `user` characters.
const USER: u8 = 1;
/// `password` characters.
const PASSWORD: u8 = 1 << 1;
/// `paramchar` (in a parameter's name or value).
const PARAM: u8 = 1 << 2;
/// `hnv-unreserved / unreserved / escaped` (in a header's name or value).
const HEADER: u8 = 1 << 3;
/// A letter, digit or `-`: what a `domainlabel` is made of.
const LABEL: u8 = 1 << 4;

static CLASSES: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut table = [0; 256];
    let mut i = 0;
    while i < table.len() {
        let b = i as u8;
        let mut class = 0;
        if is_user_char(b) {
            class |= USER;
        }
        if is_password_char(b) {
            class |= PASSWORD;
        }
        if is_param_char(b) {
            class |= PARAM;
        }
        if is_header_char(b) {
            class |= HEADER;
        }
        if b.is_ascii_alphanumeric() || b == b'-' {
            class |= LABEL;
        }
        table[i] = class;
        i += 1;
    }
    table
}

fn has_class(b: u8, class: u8) -> bool {
    CLASSES[usize::from(b)] & class != 0
}

const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

const fn is_user_char(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'%' | b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/'
        )
}

const fn is_password_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'%' | b'&' | b'=' | b'+' | b'$' | b',')
}

const fn is_param_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'%' | b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$')
}

const fn is_header_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'%' | b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$')
}

fn is_visual_separator(b: u8) -> bool {
    matches!(b, b'-' | b'.' | b'(' | b')')
}

/// Checks `*(";" name ["=" value])` at the start of `tail` and returns where the text after
/// the first `;` lies in `tail` (an empty range when there is none). An empty value
/// (`;name=`) is accepted, an empty name is not. With `headers`, a `?` ends the parameters
/// and where the text after it starts is returned too; otherwise a `?` is an error.
fn check_params(tail: &str, headers: bool) -> Result<((usize, usize), Option<usize>), UriError> {
    let bytes = tail.as_bytes();
    match bytes.first() {
        None => return Ok(((0, 0), None)),
        Some(b'?') if headers => return Ok(((0, 0), Some(1))),
        Some(b';') => {}
        Some(_) => return Err(UriError::BadParam),
    }
    let mut end = bytes.len();
    let mut has_name = false;
    let mut in_value = false;
    for (i, &b) in bytes.iter().enumerate().skip(1) {
        if has_class(b, PARAM) {
            has_name |= !in_value;
            continue;
        }
        match b {
            b';' if has_name => {
                has_name = false;
                in_value = false;
            }
            b'=' if has_name && !in_value => in_value = true,
            b'?' if headers => {
                end = i;
                break;
            }
            _ => return Err(UriError::BadParam),
        }
    }
    // This also refuses a lone or trailing `;`.
    if !has_name {
        return Err(UriError::BadParam);
    }
    Ok(((1, end), (end < bytes.len()).then_some(end + 1)))
}

/// Checks `hname "=" hvalue *("&" hname "=" hvalue)` with a non-empty name.
fn check_headers(headers: &str) -> Result<(), UriError> {
    let mut has_name = false;
    let mut in_value = false;
    for &b in headers.as_bytes() {
        if has_class(b, HEADER) {
            has_name |= !in_value;
            continue;
        }
        match b {
            b'=' if has_name && !in_value => in_value = true,
            b'&' if in_value => {
                has_name = false;
                in_value = false;
            }
            _ => return Err(UriError::BadHeaders),
        }
    }
    if in_value {
        Ok(())
    } else {
        Err(UriError::BadHeaders)
    }
}

/// RFC 3966 `global-number-digits` (`+` then digits) or `local-number-digits` (hex digits,
/// `*`, `#`, and %-escapes such as `%23`), either with visual separators.
fn is_tel_number(number: &str) -> bool {
    let (digits, global) = match number.strip_prefix('+') {
        Some(d) => (d, true),
        None => (number, false),
    };
    let mut has_digit = false;
    for b in digits.bytes() {
        let digit = if global {
            b.is_ascii_digit()
        } else {
            b.is_ascii_hexdigit() || matches!(b, b'*' | b'#' | b'%')
        };
        if !digit && !is_visual_separator(b) {
            return false;
        }
        has_digit |= digit;
    }
    has_digit
}

/// What [`scan_host_name`] found at the start of a `hostport`.
struct NameScan {
    /// Length of the leading run of letters, digits, `-` and `.`.
    len: usize,
    kind: NameKind,
}

/// What the run of hostname characters at the start of a `hostport` is.
enum NameKind {
    /// `*(domainlabel ".") toplabel ["."]`, where a toplabel starts with a letter (which
    /// keeps a hostname from being mistaken for an IPv4 address).
    Name,
    /// Only digits and dots, and a dotted-quad IPv4 address.
    Ipv4(Ipv4Addr),
    /// Neither (or empty).
    Bad,
}

/// Reads the leading run of letters, digits, `-` and `.` of `bytes` and checks it, in one
/// pass when it is a valid hostname or IPv4 address.
fn scan_host_name(bytes: &[u8]) -> NameScan {
    if bytes.first().is_some_and(u8::is_ascii_digit) {
        if let Some((addr, len)) = scan_ipv4(bytes) {
            return NameScan {
                len,
                kind: NameKind::Ipv4(addr),
            };
        }
    }
    let mut i = 0;
    let mut top = 0;
    loop {
        let start = i;
        while bytes.get(i).is_some_and(|&b| has_class(b, LABEL)) {
            i += 1;
        }
        let label = bytes.get(start..i).unwrap_or_default();
        match (label.first(), label.last()) {
            (Some(&first), Some(&last)) if first != b'-' && last != b'-' => top = first,
            // An empty label is only the end of a name with a trailing dot.
            (None, _) if start > 0 && bytes.get(i) != Some(&b'.') => break,
            _ => return scan_bad_name(bytes),
        }
        if bytes.get(i) == Some(&b'.') {
            i += 1;
        } else {
            break;
        }
    }
    NameScan {
        len: i,
        // The run is not an IPv4 address (checked above), so it must be a hostname.
        kind: if top.is_ascii_alphabetic() {
            NameKind::Name
        } else {
            NameKind::Bad
        },
    }
}

/// The run of hostname characters at the start of `bytes`, which is not a valid host.
fn scan_bad_name(bytes: &[u8]) -> NameScan {
    NameScan {
        len: bytes
            .iter()
            .position(|&b| !has_class(b, LABEL) && b != b'.')
            .unwrap_or(bytes.len()),
        kind: NameKind::Bad,
    }
}

/// `1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT`, each at most 255 (leading zeros
/// allowed), at the start of `bytes` and followed by neither a hostname character nor a
/// dot: the address and its length.
fn scan_ipv4(bytes: &[u8]) -> Option<(Ipv4Addr, usize)> {
    let mut addr = 0u32;
    let mut octet = 0u32;
    let mut digits = 0;
    let mut dots = 0;
    let mut len = bytes.len();
    for (i, &b) in bytes.iter().enumerate() {
        if b.is_ascii_digit() {
            digits += 1;
            if digits > 3 {
                return None;
            }
            octet = octet * 10 + u32::from(b - b'0');
        } else if b == b'.' {
            if digits == 0 || octet > 255 || dots == 3 {
                return None;
            }
            addr = addr << 8 | octet;
            octet = 0;
            digits = 0;
            dots += 1;
        } else if has_class(b, LABEL) {
            return None;
        } else {
            len = i;
            break;
        }
    }
    if dots == 3 && digits > 0 && octet <= 255 {
        Some((Ipv4Addr::from(addr << 8 | octet), len))
    } else {
        None
    }
}

/// The text between `[` and `]`. RFC 3261's ABNF allows `:::` before an IPv4 tail where
/// `::` is meant; RFC 5118 §4.10 asks to accept it, so it is read as `::`.
fn parse_ipv6(s: &str) -> Result<Ipv6Addr, UriError> {
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    let (head, tail) = s.split_once(":::").ok_or(UriError::BadIpv6)?;
    if tail.contains(':') || !tail.contains('.') {
        return Err(UriError::BadIpv6);
    }
    // The longest valid text is 45 bytes, so a stack buffer avoids allocating.
    let mut buf = [0u8; 48];
    let mut len = 0;
    for part in [head, "::", tail] {
        let end = len + part.len();
        buf.get_mut(len..end)
            .ok_or(UriError::BadIpv6)?
            .copy_from_slice(part.as_bytes());
        len = end;
    }
    buf.get(..len)
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|text| text.parse().ok())
        .ok_or(UriError::BadIpv6)
}

/// 1 to 5 digits, at most 65535 (leading zeros allowed).
fn parse_port(s: &[u8]) -> Result<u16, UriError> {
    if s.is_empty() || s.len() > 5 {
        return Err(UriError::BadPort);
    }
    let mut port = 0u32;
    for &b in s {
        if !b.is_ascii_digit() {
            return Err(UriError::BadPort);
        }
        port = port * 10 + u32::from(b - b'0');
    }
    u16::try_from(port).map_err(|_| UriError::BadPort)
}

/// RFC 3261 §19.1.4. Both URIs are known to be sip, or both sips.
fn sip_eq(a: &Uri<'_>, b: &Uri<'_>) -> bool {
    let userinfo_eq = |x: Option<&str>, y: Option<&str>| match (x, y) {
        (None, None) => true,
        (Some(x), Some(y)) => eq_unescaped(x, y, false),
        _ => false,
    };
    if !userinfo_eq(a.user(), b.user()) || !userinfo_eq(a.password(), b.password()) {
        return false;
    }
    let host_eq = match (a.host(), b.host()) {
        (Some(Host::Name(x)), Some(Host::Name(y))) => x.eq_ignore_ascii_case(y),
        (x, y) => x == y,
    };
    if !host_eq || a.port() != b.port() {
        return false;
    }
    // These parameters must match even when only one URI has them.
    const MUST_MATCH: [&str; 5] = ["user", "ttl", "method", "maddr", "transport"];
    for name in MUST_MATCH {
        match (a.param(name), b.param(name)) {
            (None, None) => {}
            (Some(x), Some(y)) if param_value_eq(x, y) => {}
            _ => return false,
        }
    }
    // Any other parameter is compared only when both URIs have it.
    for (name, _) in a.params() {
        if MUST_MATCH.iter().any(|m| eq_unescaped(name, m, true)) {
            continue;
        }
        if let (Some(x), Some(y)) = (a.param(name), b.param(name)) {
            if !param_value_eq(x, y) {
                return false;
            }
        }
    }
    headers_subset(a, b) && headers_subset(b, a)
}

fn param_value_eq(x: Option<&str>, y: Option<&str>) -> bool {
    match (x, y) {
        (None, None) => true,
        (Some(x), Some(y)) => eq_unescaped(x, y, true),
        _ => false,
    }
}

/// Whether every header of `a` is in `b`. Names are compared case-insensitively; values,
/// which may hold case-sensitive text such as a URI's user part, case-sensitively.
fn headers_subset(a: &Uri<'_>, b: &Uri<'_>) -> bool {
    a.header_fields().all(|(name, value)| {
        b.header_fields()
            .any(|(n, v)| eq_unescaped(name, n, true) && eq_unescaped(value, v, false))
    })
}

/// RFC 3966 §4: same kind of number with the same digits once visual separators are
/// dropped, and the same set of parameters, all compared case-insensitively.
fn tel_eq(a: &Uri<'_>, b: &Uri<'_>) -> bool {
    let (Some(x), Some(y)) = (a.user(), b.user()) else {
        return false;
    };
    if x.starts_with('+') != y.starts_with('+') || !eq_digits(x, y) {
        return false;
    }
    let subset = |a: &Uri<'_>, b: &Uri<'_>| {
        a.params()
            .all(|(name, _)| match (a.param(name), b.param(name)) {
                (Some(Some(x)), Some(Some(y))) => {
                    let digits = eq_unescaped(name, "ext", true)
                        || (eq_unescaped(name, "phone-context", true) && x.starts_with('+'));
                    if digits {
                        eq_digits(x, y)
                    } else {
                        eq_unescaped(x, y, true)
                    }
                }
                (Some(None), Some(None)) => true,
                _ => false,
            })
    };
    subset(a, b) && subset(b, a)
}

/// Compares phone digits ignoring visual separators, case-insensitively, after unescaping.
fn eq_digits(a: &str, b: &str) -> bool {
    let digits = |s| {
        Unescaped::new(s)
            .filter(|&c| !is_visual_separator(c))
            .map(|c| c.to_ascii_lowercase())
    };
    digits(a).eq(digits(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn uri(s: &str) -> Uri<'_> {
        match Uri::parse(s) {
            Ok(u) => u,
            Err(e) => panic!("{s:?} should parse, got {e}"),
        }
    }

    fn err(s: &str) -> UriError {
        match Uri::parse(s) {
            Ok(u) => panic!("{s:?} should be rejected, parsed as {u:?}"),
            Err(e) => e,
        }
    }

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().expect("test address")
    }

    #[test]
    fn uri_is_small() {
        assert!(std::mem::size_of::<Uri<'static>>() <= 64);
        let long = format!("sip:{}", "a".repeat(MAX_URI_LEN - 4));
        assert_eq!(uri(&long).host_str().map(str::len), Some(MAX_URI_LEN - 4));
        let too_long = format!("sip:{}", "a".repeat(MAX_URI_LEN - 3));
        assert_eq!(err(&too_long), UriError::TooLong);
        let long_params = format!("sip:h;x={}?a=b", "v".repeat(MAX_URI_LEN - 13));
        let u = uri(&long_params);
        assert_eq!(u.headers(), Some("a=b"));
        assert_eq!(u.param("x").flatten().map(str::len), Some(MAX_URI_LEN - 13));
        assert_eq!(
            err(&format!("sip:h;x={}?a=b", "v".repeat(MAX_URI_LEN))),
            UriError::TooLong
        );
        // Errors other than length are reported as before.
        assert_eq!(
            err(&format!("sip:h;x={} ", "v".repeat(MAX_URI_LEN))),
            UriError::Whitespace
        );
        assert_eq!(
            err(&format!("foo:{}", "é".repeat(MAX_URI_LEN))),
            UriError::TooLong
        );
    }

    #[test]
    fn full_sip_uri_components() {
        let u = uri("sip:alice:secret@atlanta.com:5061;transport=tcp;lr;ttl=15?subject=hi&x=");
        assert_eq!(u.scheme(), Scheme::Sip);
        assert_eq!(u.scheme_str(), "sip");
        assert_eq!(u.user(), Some("alice"));
        assert_eq!(u.password(), Some("secret"));
        assert_eq!(u.host(), Some(Host::Name("atlanta.com")));
        assert_eq!(u.host_str(), Some("atlanta.com"));
        assert_eq!(u.port(), Some(5061));
        let params: Vec<_> = u.params().collect();
        assert_eq!(
            params,
            [
                ("transport", Some("tcp")),
                ("lr", None),
                ("ttl", Some("15"))
            ]
        );
        assert_eq!(u.param("TRANSPORT"), Some(Some("tcp")));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(u.param("maddr"), None);
        assert_eq!(u.transport(), Some("tcp"));
        assert!(u.lr());
        assert_eq!(u.ttl(), Some(15));
        assert_eq!(u.maddr(), None);
        assert_eq!(u.headers(), Some("subject=hi&x="));
        let headers: Vec<_> = u.header_fields().collect();
        assert_eq!(headers, [("subject", "hi"), ("x", "")]);
        assert_eq!(
            u.opaque(),
            "alice:secret@atlanta.com:5061;transport=tcp;lr;ttl=15?subject=hi&x="
        );
        assert_eq!(u.to_string(), u.as_str());
        assert!(!u.is_sips());
    }

    #[test]
    fn minimal_and_sips() {
        let u = uri("SIPS:example.com");
        assert_eq!(u.scheme(), Scheme::Sips);
        assert!(u.is_sips());
        assert_eq!(u.scheme_str(), "SIPS");
        assert_eq!(u.user(), None);
        assert_eq!(u.password(), None);
        assert_eq!(u.port(), None);
        assert_eq!(u.params().next(), None);
        assert_eq!(u.headers(), None);
        let u =
            uri("sip:+19725552222@gw1.example.net;user=phone;maddr=239.255.255.1;method=INVITE");
        assert_eq!(u.user(), Some("+19725552222"));
        assert_eq!(u.user_param(), Some("phone"));
        assert_eq!(u.maddr(), Some("239.255.255.1"));
        assert_eq!(u.method_param(), Some("INVITE"));
        assert_eq!(uri("sip:a@b.c:5060").host_str(), Some("b.c"));
        assert_eq!(uri("sip:user:@host").password(), Some(""));
        assert_eq!(
            uri("sip:host.example.com.").host(),
            Some(Host::Name("host.example.com."))
        );
        assert_eq!(uri("sip:h;ttl=300").ttl(), None);
        assert_eq!(uri("sip:h;n=").param("n"), Some(Some("")));
    }

    #[test]
    fn rfc4475_user_parts() {
        // semiuri: `;` in the user part.
        let u = uri("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user(), Some("user;par=u%40example.net"));
        assert_eq!(u.host(), Some(Host::Name("example.com")));
        assert_eq!(u.params().count(), 0);
        // esc01
        let u = uri("sip:sips%3Auser%40example.com@example.net");
        assert_eq!(u.user(), Some("sips%3Auser%40example.com"));
        assert_eq!(u.host(), Some(Host::Name("example.net")));
        assert_eq!(
            &*unescape(u.user().unwrap_or_default()),
            b"sips:user@example.com"
        );
        assert_eq!(u, uri("sip:sips%3auser%40example%2Ecom@example.net"));
        assert_eq!(uri("sip:%75se%72@example.com"), uri("sip:user@example.com"));
        assert_eq!(
            uri("sip:I%20have%20spaces@example.net").user(),
            Some("I%20have%20spaces")
        );
        // escnull
        let u = uri("sip:null-%00-null@example.com");
        assert_eq!(&*unescape(u.user().unwrap_or_default()), b"null-\0-null");
        assert_eq!(uri("sip:%00%00@host5.example.com").user(), Some("%00%00"));
        // esc02: escaped parameter names and values.
        let u = uri("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31");
        assert!(u.lr());
        assert_eq!(u.param("name"), Some(Some("v%61lue%25%34%31")));
        assert_eq!(u, uri("sip:caller@host5.example.net;lr;name=value%2541"));
        // intmeth: every user and password character at once.
        let u = uri(
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
        );
        assert_eq!(
            u.user(),
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(
            u.password(),
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
        assert_eq!(u.host(), Some(Host::Name("example.com")));
        // escruri / regescrt: escaped headers are fine in a URI (whether a Request-URI may
        // carry headers is the message layer's call).
        let u = uri("sip:user@example.com?Route=%3Csip:example.com%3E");
        assert_eq!(u.headers(), Some("Route=%3Csip:example.com%3E"));
        assert_eq!(
            uri("sip:+19725552222@gw1.example.net;unknownparam").param("unknownparam"),
            Some(None)
        );
    }

    #[test]
    fn rfc4475_invalid() {
        assert_eq!(err("<sip:user@example.com>"), UriError::AngleBrackets);
        assert_eq!(err("sip:user@example.com; lr"), UriError::Whitespace);
        assert_eq!(err(" sip:t.watson@example.org "), UriError::Whitespace);
        assert_eq!(err("sip:user@example.com\r\n"), UriError::Whitespace);
        assert_eq!(err("sip:user@example.org>"), UriError::BadHost);
    }

    #[test]
    fn other_schemes_are_opaque() {
        for (s, scheme, opaque) in [
            ("http://www.example.com", "http", "//www.example.com"),
            ("isbn:2983792873", "isbn", "2983792873"),
            ("name:John_Smith", "name", "John_Smith"),
            (
                "nobodyKnowsThisScheme:totallyopaquecontent",
                "nobodyKnowsThisScheme",
                "totallyopaquecontent",
            ),
            (
                "soap.beep://192.0.2.103:3002",
                "soap.beep",
                "//192.0.2.103:3002",
            ),
            ("urn:x+y-z.1:é", "urn", "x+y-z.1:é"),
        ] {
            let u = uri(s);
            assert_eq!(u.scheme(), Scheme::Other, "{s}");
            assert_eq!(u.scheme_str(), scheme);
            assert_eq!(u.opaque(), opaque);
            assert_eq!(
                (u.user(), u.host(), u.host_str(), u.port()),
                (None, None, None, None)
            );
            assert_eq!(
                (u.params().next(), u.param("x"), u.headers()),
                (None, None, None)
            );
        }
        assert_eq!(uri("HTTP://www.example.com"), uri("http://www.example.com"));
        assert_ne!(uri("http://www.example.com"), uri("http://WWW.example.com"));
        assert_ne!(
            uri("http://www.example.com"),
            uri("https://www.example.com")
        );
        assert_eq!(err("foo:"), UriError::EmptyOpaque);
        assert_eq!(err("1foo:bar"), UriError::BadScheme);
        assert_eq!(err(":bar"), UriError::BadScheme);
        assert_eq!(err("fo_o:bar"), UriError::BadScheme);
        assert_eq!(err("example.com"), UriError::MissingScheme);
        assert_eq!(err("foo:a b"), UriError::Whitespace);
        assert_eq!(err("foo:a%zz"), UriError::BadEscape);
        assert_eq!(err("foo:a\u{7f}"), UriError::ControlChar);
    }

    #[test]
    fn rfc5118_hosts() {
        let u = uri("sip:[2001:db8::10]");
        assert_eq!(u.host(), Some(Host::Ipv6(v6("2001:db8::10"))));
        assert_eq!(u.host_str(), Some("[2001:db8::10]"));
        assert_eq!(u.port(), None);
        assert_eq!(err("sip:2001:db8::10"), UriError::UnbracketedIpv6);
        assert_eq!(err("sip:[2001:db8::10"), UriError::BadIpv6);
        let u = uri("sip:[2001:db8::10:5070]");
        assert_eq!(u.host(), Some(Host::Ipv6(v6("2001:db8::10:5070"))));
        assert_eq!(u.port(), None);
        let u = uri("sip:[2001:db8::10]:5070");
        assert_eq!(u.host(), Some(Host::Ipv6(v6("2001:db8::10"))));
        assert_eq!(u.host_str(), Some("[2001:db8::10]"));
        assert_eq!(u.port(), Some(5070));
        let u = uri("sip:ted@[::ffff:192.0.2.2]");
        assert_eq!(u.host(), Some(Host::Ipv6(v6("::ffff:192.0.2.2"))));
        assert_eq!(u.user(), Some("ted"));
        let bug = uri("sip:user@[2001:db8:::192.0.2.1]");
        let good = uri("sip:user@[2001:db8::192.0.2.1]");
        assert_eq!(bug.host(), Some(Host::Ipv6(v6("2001:db8::c000:201"))));
        assert_eq!(bug, good);
        assert_eq!(bug.host_str(), Some("[2001:db8:::192.0.2.1]"));
        assert_eq!(
            uri("sip:[:::192.0.2.1]").host(),
            Some(Host::Ipv6(v6("::192.0.2.1")))
        );
        // `:::` is only the ABNF bug before an IPv4 tail.
        assert_eq!(err("sip:[2001:db8:::10]"), UriError::BadIpv6);
        assert_eq!(err("sip:[2001::::1.2.3.4]"), UriError::BadIpv6);
        assert_eq!(err("sip:[2001:db8::10]x"), UriError::BadHost);
        assert_eq!(err("sip:[2001:db8::10]:"), UriError::BadPort);
        assert_eq!(err("sip:[fe80::1%25eth0]"), UriError::BadIpv6);
        assert_eq!(err("sip:[]"), UriError::BadIpv6);
        // RFC 5954: IPv6 references compare as addresses.
        assert_eq!(
            uri("sip:[2001:db8::10]"),
            uri("sip:[2001:0db8:0:0:0:0:0:0010]")
        );
    }

    #[test]
    fn hosts_and_ports() {
        assert_eq!(
            uri("sip:192.0.2.4").host(),
            Some(Host::Ipv4(Ipv4Addr::new(192, 0, 2, 4)))
        );
        assert_eq!(
            uri("sip:010.0.2.4").host(),
            Some(Host::Ipv4(Ipv4Addr::new(10, 0, 2, 4)))
        );
        assert_eq!(uri("sip:a-b.3com.example:0").port(), Some(0));
        assert_eq!(uri("sip:h:65535").port(), Some(65535));
        assert_eq!(uri("sip:h:05060").port(), Some(5060));
        assert_eq!(uri("sip:x").host(), Some(Host::Name("x")));
        for bad in [
            "sip:256.1.1.1",
            "sip:1.2.3",
            "sip:1.2.3.4.5",
            "sip:1..2.3",
            "sip:-a.com",
            "sip:a-.com",
            "sip:a..com",
            "sip:.a.com",
            "sip:a.com..",
            "sip:a.1",
            "sip:a_b.com",
            "sip:a.com/path",
            "sip:user@host@host",
            "sip:%61.com",
        ] {
            assert!(matches!(Uri::parse(bad), Err(UriError::BadHost)), "{bad}");
        }
        for bad in [
            "sip:h:",
            "sip:h:65536",
            "sip:h:123456",
            "sip:h:5o60",
            "sip:h:+50",
            "sip:h:5060:1",
        ] {
            assert_eq!(err(bad), UriError::BadPort, "{bad}");
        }
        assert_eq!(err("sip:"), UriError::MissingHost);
        assert_eq!(err("sip:user@"), UriError::MissingHost);
        assert_eq!(err("sip:user@;lr"), UriError::MissingHost);
        assert_eq!(err("sip::5060"), UriError::MissingHost);
    }

    #[test]
    fn parse_host_port_for_via() {
        assert_eq!(
            parse_host_port("pc33.atlanta.com"),
            Ok((Host::Name("pc33.atlanta.com"), None))
        );
        assert_eq!(
            parse_host_port("192.0.2.1:5060"),
            Ok((Host::Ipv4(Ipv4Addr::new(192, 0, 2, 1)), Some(5060)))
        );
        assert_eq!(
            parse_host_port("[2001:db8::9:1]:6050"),
            Ok((Host::Ipv6(v6("2001:db8::9:1")), Some(6050)))
        );
        assert_eq!(
            parse_host_port("[::ffff:192.0.2.10]:19823"),
            Ok((Host::Ipv6(v6("::ffff:c000:20a")), Some(19823)))
        );
        assert_eq!(
            parse_host_port("host : 5060"),
            Ok((Host::Name("host"), Some(5060)))
        );
        assert_eq!(
            parse_host_port("[::1]\t:\t5060"),
            Ok((Host::Ipv6(Ipv6Addr::LOCALHOST), Some(5060)))
        );
        assert_eq!(
            parse_host_port("2001:db8::9:255"),
            Err(UriError::UnbracketedIpv6)
        );
        assert_eq!(parse_host_port(""), Err(UriError::MissingHost));
        assert_eq!(parse_host_port("host "), Err(UriError::BadHost));
        assert_eq!(parse_host_port("ho st"), Err(UriError::BadHost));
        assert_eq!(parse_host_port("host:5060 "), Err(UriError::BadPort));
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(err(""), UriError::Empty);
        assert_eq!(err("sip:us er@host"), UriError::Whitespace);
        assert_eq!(err("sip:user@host\t"), UriError::Whitespace);
        assert_eq!(err("sip:a\u{0}b@host"), UriError::ControlChar);
        assert_eq!(err("sip:jos\u{e9}@host"), UriError::NonAscii);
        assert_eq!(err("tel:+1\u{2011}2"), UriError::NonAscii);
        assert_eq!(err("sip:user%4@host"), UriError::BadEscape);
        assert_eq!(err("sip:user%zz@host"), UriError::BadEscape);
        assert_eq!(err("sip:host;p=%"), UriError::BadEscape);
        assert_eq!(err("sip:@host"), UriError::BadUser);
        assert_eq!(err("sip::pw@host"), UriError::BadUser);
        assert_eq!(err("sip:us<r@host"), UriError::BadUser);
        assert_eq!(err("sip:host;maddr=[::1]@x"), UriError::BadUser);
        assert_eq!(err("sip:user:p;w@host"), UriError::BadPassword);
        assert_eq!(err("sip:user:a:b@host"), UriError::BadPassword);
        for bad in [
            "sip:h;;lr",
            "sip:h;",
            "sip:h;lr;",
            "sip:h;=x",
            "sip:h;a=b=c",
            "sip:h;a=<",
            "sip:h;?x=y",
        ] {
            assert_eq!(err(bad), UriError::BadParam, "{bad}");
        }
        for bad in [
            "sip:h?",
            "sip:h?a",
            "sip:h?=b",
            "sip:h?a=b&",
            "sip:h?a=b&&c=d",
            "sip:h?a=b;c",
            "sip:h?a=b?c=d&e",
        ] {
            assert_eq!(err(bad), UriError::BadHeaders, "{bad}");
        }
        assert_eq!(
            uri("sip:h?a=b?c").headers(),
            Some("a=b?c"),
            "'?' is legal in a header value"
        );
        assert_eq!(err("sip:h?a=b?c=d"), UriError::BadHeaders, "'=' is not");
        assert_eq!(
            UriError::BadPort.to_string(),
            "invalid port: expected 1 to 5 digits, at most 65535"
        );
    }

    #[test]
    fn rfc3261_equal_pairs() {
        for (a, b) in [
            (
                "sip:%61lice@atlanta.com;transport=TCP",
                "sip:alice@AtLanTa.CoM;Transport=tcp",
            ),
            ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
            ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
            (
                "sip:carol@chicago.com;newparam=5",
                "sip:carol@chicago.com;security=on",
            ),
            (
                "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
                "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
            ),
            (
                "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
                "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
            ),
            ("SIP:alice@atlanta.com", "sip:alice@ATLANTA.com"),
            ("sip:alice@atlanta.com;lr", "sip:alice@atlanta.com;LR"),
            ("sip:a:p%41ss@h", "sip:a:pAss@h"),
        ] {
            assert_eq!(uri(a), uri(b), "{a} == {b}");
            assert_eq!(uri(b), uri(a), "{b} == {a}");
        }
    }

    #[test]
    fn rfc3261_unequal_pairs() {
        for (a, b) in [
            (
                "SIP:ALICE@AtLanTa.CoM;Transport=udp",
                "sip:alice@AtLanTa.CoM;Transport=UDP",
            ),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
            (
                "sip:bob@biloxi.com",
                "sip:bob@biloxi.com:6000;transport=tcp",
            ),
            (
                "sip:carol@chicago.com",
                "sip:carol@chicago.com?Subject=next%20meeting",
            ),
            ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
            (
                "sip:carol@chicago.com;security=on",
                "sip:carol@chicago.com;security=off",
            ),
            ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
            ("sip:alice@atlanta.com", "sip:atlanta.com"),
            ("sip:alice:pw@atlanta.com", "sip:alice@atlanta.com"),
            ("sip:h;user=phone", "sip:h"),
            ("sip:h;ttl=1", "sip:h"),
            ("sip:h;method=INVITE", "sip:h"),
            ("sip:h;maddr=1.2.3.4", "sip:h"),
            ("sip:h;lr", "sip:h;lr=on"),
            ("sip:h?a=1", "sip:h?a=1&b=2"),
            ("sip:h?subject=X", "sip:h?subject=x"),
            ("sip:[::1]", "sip:127.0.0.1"),
            ("sip:alice@atlanta.com", "tel:+1234"),
            ("sip:alice@atlanta.com", "http://alice@atlanta.com"),
        ] {
            assert_ne!(uri(a), uri(b), "{a} != {b}");
            assert_ne!(uri(b), uri(a), "{b} != {a}");
        }
    }

    #[test]
    fn tel_uris() {
        let u = uri("tel:+1-201-555-0123");
        assert_eq!(u.scheme(), Scheme::Tel);
        assert_eq!(u.user(), Some("+1-201-555-0123"));
        assert_eq!(
            (u.host(), u.host_str(), u.port(), u.password()),
            (None, None, None, None)
        );
        let u = uri("tel:7042;phone-context=example.com;ext=12");
        assert_eq!(u.user(), Some("7042"));
        assert_eq!(u.param("Phone-Context"), Some(Some("example.com")));
        assert_eq!(u.params().count(), 2);
        assert_eq!(uri("tel:*67#;phone-context=+1").user(), Some("*67#"));
        assert_eq!(uri("tel:%2367;phone-context=+1").user(), Some("%2367"));
        assert_eq!(
            uri("TEL:863-1234;phone-context=+1-914-555").scheme(),
            Scheme::Tel
        );
        for bad in [
            "tel:", "tel:+", "tel:-", "tel:+12a", "tel:12g", "tel:+1 2", "tel:?x=1",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(err("tel:+12a"), UriError::BadNumber);
        assert_eq!(err("tel:+12?x=1"), UriError::BadNumber);
        assert_eq!(err("tel:+12;a?x=1"), UriError::BadParam);
        assert_eq!(err("tel:+12;;a"), UriError::BadParam);

        assert_eq!(uri("tel:+1-201-555-0123"), uri("tel:+1(201)555.0123"));
        assert_eq!(
            uri("tel:+12015550123;ext=1-2;isub=ab"),
            uri("TEL:+12015550123;ISUB=AB;ext=12")
        );
        assert_eq!(
            uri("tel:7042;phone-context=EXAMPLE.com"),
            uri("tel:70-42;phone-context=example.com")
        );
        assert_eq!(
            uri("tel:863-1234;phone-context=+1-914-555"),
            uri("tel:8631234;phone-context=+1914555")
        );
        assert_eq!(
            uri("tel:abc;phone-context=x.y"),
            uri("tel:ABC;phone-context=x.y")
        );
        assert_ne!(uri("tel:+1234"), uri("tel:1234;phone-context=+1"));
        assert_ne!(uri("tel:+1234"), uri("tel:+1235"));
        assert_ne!(uri("tel:+1234"), uri("tel:+1234;ext=5"));
        assert_ne!(uri("tel:+1234;ext=5"), uri("tel:+1234;ext=6"));
        assert_ne!(uri("tel:+1234;x"), uri("tel:+1234;x=1"));
        assert_ne!(
            uri("tel:7042;phone-context=a.example.com"),
            uri("tel:7042;phone-context=aexample.com")
        );
    }

    #[test]
    fn unescape_and_escape_checks() {
        assert!(matches!(unescape("plain"), Cow::Borrowed(b"plain")));
        assert_eq!(&*unescape("a%20b%2fc"), b"a b/c");
        assert!(matches!(unescape("a%20"), Cow::Owned(_)));
        assert_eq!(&*unescape("100%"), b"100%");
        assert_eq!(&*unescape("%zz%4"), b"%zz%4");
        assert_eq!(&*unescape("%%41"), b"%A");
        assert_eq!(&*unescape("%FF"), [0xff]);
        assert!(is_valid_escapes(""));
        assert!(is_valid_escapes("a%20b%aF"));
        assert!(!is_valid_escapes("%"));
        assert!(!is_valid_escapes("a%2"));
        assert!(!is_valid_escapes("%g0"));
        assert!(!is_valid_escapes("%20%"));
    }

    fn label() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9-]{0,4}[a-z0-9])?"
    }

    fn host_strategy() -> impl Strategy<Value = (String, Host<'static>)> {
        prop_oneof![
            (
                proptest::collection::vec(label(), 0..3),
                "[a-zA-Z]([a-zA-Z0-9-]{0,4}[a-zA-Z0-9])?"
            )
                .prop_map(|(labels, top)| {
                    let mut name = String::new();
                    for l in labels {
                        name.push_str(&l);
                        name.push('.');
                    }
                    name.push_str(&top);
                    // `Host::Name` borrows; tests compare it by text below instead.
                    (name, Host::Name(""))
                }),
            any::<[u8; 4]>().prop_map(|o| {
                let a = Ipv4Addr::from(o);
                (a.to_string(), Host::Ipv4(a))
            }),
            any::<[u16; 8]>().prop_map(|g| {
                let a = Ipv6Addr::from(g);
                (format!("[{a}]"), Host::Ipv6(a))
            }),
        ]
    }

    prop_compose! {
        fn sip_uri()(
            sips in any::<bool>(),
            user in proptest::option::of("([a-zA-Z0-9_.!~*'()&=+$,;?/-]|%[0-9a-fA-F]{2}){1,8}"),
            password in proptest::option::of("([a-zA-Z0-9_.!~*'()&=+$,-]|%[0-9a-fA-F]{2}){0,8}"),
            host in host_strategy(),
            port in proptest::option::of(any::<u16>()),
            params in proptest::collection::vec(
                ("[a-zA-Z][a-zA-Z0-9-]{0,6}", proptest::option::of("([\\[\\]a-zA-Z0-9/:&+$._~-]|%[0-9a-f]{2}){0,8}")),
                0..4,
            ),
            headers in proptest::collection::vec(("[a-zA-Z][a-zA-Z0-9-]{0,6}", "([\\[\\]a-zA-Z0-9/?:+$._~-]|%[0-9a-f]{2}){0,8}"), 0..3),
        ) -> (String, bool, Option<String>, Option<String>, (String, Host<'static>), Option<u16>, Vec<(String, Option<String>)>, Vec<(String, String)>) {
            let password = if user.is_some() { password } else { None };
            let mut s = String::from(if sips { "sips:" } else { "sip:" });
            if let Some(u) = &user {
                s.push_str(u);
                if let Some(p) = &password {
                    s.push(':');
                    s.push_str(p);
                }
                s.push('@');
            }
            s.push_str(&host.0);
            if let Some(p) = port {
                s.push_str(&format!(":{p}"));
            }
            for (n, v) in &params {
                s.push(';');
                s.push_str(n);
                if let Some(v) = v {
                    s.push('=');
                    s.push_str(v);
                }
            }
            for (i, (n, v)) in headers.iter().enumerate() {
                s.push(if i == 0 { '?' } else { '&' });
                s.push_str(&format!("{n}={v}"));
            }
            (s, sips, user, password, host, port, params, headers)
        }
    }

    fn exercise(u: &Uri<'_>) {
        let _ = (
            u.scheme(),
            u.user(),
            u.password(),
            u.host(),
            u.host_str(),
            u.port(),
        );
        let _ = (
            u.headers(),
            u.opaque(),
            u.ttl(),
            u.lr(),
            u.transport(),
            u.maddr(),
        );
        let _ = (u.params().count(), u.header_fields().count(), u.param("x"));
        assert_eq!(u.to_string(), u.as_str());
        let copy = *u;
        assert!(copy == *u, "a URI equals itself: {u}");
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            if let Ok(u) = Uri::parse(&s) {
                exercise(&u);
            }
            let _ = parse_host_port(&s);
            let _ = unescape(&s);
            let _ = is_valid_escapes(&s);
        }

        #[test]
        fn parse_never_panics_on_uri_like_text(
            scheme in "(sip|sips|tel|SIP|x)",
            rest in "[a-z0-9:@;=?&%\\[\\].+()#*/ -]{0,40}",
        ) {
            let s = format!("{scheme}:{rest}");
            if let Ok(u) = Uri::parse(&s) {
                exercise(&u);
                if let Ok(v) = Uri::parse(u.as_str()) {
                    let _ = u == v;
                }
            }
        }

        #[test]
        fn generated_sip_uri_round_trips(
            (s, sips, user, password, (host_text, host), port, params, headers) in sip_uri()
        ) {
            let u = Uri::parse(&s).map_err(|e| TestCaseError::fail(format!("{s}: {e}")))?;
            prop_assert_eq!(u.as_str(), s.as_str());
            prop_assert_eq!(u.scheme(), if sips { Scheme::Sips } else { Scheme::Sip });
            prop_assert_eq!(u.user(), user.as_deref());
            prop_assert_eq!(u.password(), password.as_deref());
            prop_assert_eq!(u.host_str(), Some(host_text.as_str()));
            match host {
                Host::Name(_) => prop_assert_eq!(u.host(), Some(Host::Name(&host_text))),
                ip => prop_assert_eq!(u.host(), Some(ip)),
            }
            prop_assert_eq!(u.port(), port);
            let got: Vec<_> = u.params().collect();
            let want: Vec<_> = params.iter().map(|(n, v)| (n.as_str(), v.as_deref())).collect();
            prop_assert_eq!(got, want);
            let got: Vec<_> = u.header_fields().collect();
            let want: Vec<_> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            prop_assert_eq!(got, want);
            let copy = u;
            prop_assert!(u == copy);

            // Scheme and host case do not matter; user case does.
            if user.is_none() {
                let rest = u.opaque().replacen(&host_text, &host_text.to_ascii_uppercase(), 1);
                let shout = format!("{}:{rest}", u.scheme_str().to_ascii_uppercase());
                let v = Uri::parse(&shout).map_err(|e| TestCaseError::fail(format!("{shout}: {e}")))?;
                prop_assert!(u == v, "{} != {}", s, shout);
            }
        }
    }
}
