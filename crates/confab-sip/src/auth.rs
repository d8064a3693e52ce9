//! Values of the `Authorization`, `Proxy-Authorization`, `WWW-Authenticate` and
//! `Proxy-Authenticate` header fields (RFC 3261 §20.7, §20.27, §20.28, §20.44 and §25.1,
//! RFC 7616 §3.3–§3.4, RFC 8760).
//!
//! This module owns their syntax only. [`Credentials::parse`] and [`Challenge::parse`] check a
//! whole value once and return a `Copy` view that answers questions about its parameters
//! without allocating; a parameter value is copied only when its quoted string contains `\`
//! escapes. [`format_challenge`] and [`format_credentials`] write values. The arithmetic —
//! hashes, nonces and checking a response — lives in [`crate::digest`].
//!
//! Accepted syntax, with whitespace that may include CR and LF so that folded lines parse:
//!
//! ```text
//! value      = scheme [ LWS ( auth-param *(COMMA auth-param) / token68 ) ]
//! auth-param = token LWS "=" LWS ( token / quoted-string )
//! ```
//!
//! `token68` (RFC 7235, used by `Bearer` in RFC 8898) is accepted for schemes other than
//! `Digest`. Parameter names compare case-insensitively and may appear only once, so that a
//! proxy and a registrar can never read different values out of the same header. Unknown
//! schemes parse like any other (RFC 4475 §3.1.2.12); callers check `is_digest()`.

use std::borrow::Cow;
use std::fmt;

use crate::digest::Algorithm;

/// Most auth-params accepted in one value. Real challenges and credentials carry about ten;
/// the bound keeps the duplicate check cheap on hostile input.
pub const MAX_PARAMS: usize = 64;

/// What is wrong with an authentication header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthParseErrorKind {
    /// The value is empty or only whitespace.
    Empty,
    /// The scheme is not a token, or is not followed by whitespace.
    InvalidScheme,
    /// A parameter name (a token) was expected.
    ExpectedParamName,
    /// `=` was expected after a parameter name.
    ExpectedEquals,
    /// A token or a quoted string was expected after `=`.
    ExpectedParamValue,
    /// A quoted string has no closing `"`.
    UnterminatedQuotedString,
    /// A quoted string holds a control character or an escape of CR, LF or a non-ASCII byte.
    InvalidQuotedString,
    /// `,` or the end of the value was expected after a parameter.
    ExpectedComma,
    /// A parameter name appears more than once.
    DuplicateParam,
    /// More than [`MAX_PARAMS`] parameters.
    TooManyParams,
}

impl AuthParseErrorKind {
    fn describe(self) -> &'static str {
        match self {
            Self::Empty => "empty authentication value",
            Self::InvalidScheme => "authentication scheme is not a token followed by whitespace",
            Self::ExpectedParamName => "expected a parameter name",
            Self::ExpectedEquals => "expected '=' after the parameter name",
            Self::ExpectedParamValue => "expected a token or a quoted string after '='",
            Self::UnterminatedQuotedString => "quoted string is not terminated",
            Self::InvalidQuotedString => "quoted string holds a control character or a bad escape",
            Self::ExpectedComma => "expected ',' between parameters",
            Self::DuplicateParam => "parameter appears more than once",
            Self::TooManyParams => "too many parameters",
        }
    }
}

/// Why an authentication header value did not parse, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthParseError {
    kind: AuthParseErrorKind,
    offset: usize,
}

impl AuthParseError {
    /// What is wrong.
    pub fn kind(&self) -> AuthParseErrorKind {
        self.kind
    }

    /// Byte offset into the value where the problem was found.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl fmt::Display for AuthParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind.describe(), self.offset)
    }
}

impl std::error::Error for AuthParseError {}

/// `tchar` of RFC 7230, a superset of the `token` characters of RFC 3261.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

#[derive(Clone)]
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
    }

    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        self.s.get(start..self.pos).unwrap_or("")
    }

    fn err(&self, kind: AuthParseErrorKind) -> AuthParseError {
        AuthParseError {
            kind,
            offset: self.pos,
        }
    }

    /// One `name = value` at the cursor, which sits on the name.
    fn param(&mut self) -> Result<RawParam<'a>, AuthParseError> {
        let name = self.token();
        if name.is_empty() {
            return Err(self.err(AuthParseErrorKind::ExpectedParamName));
        }
        self.skip_ws();
        if self.peek() != Some(b'=') {
            return Err(self.err(AuthParseErrorKind::ExpectedEquals));
        }
        self.pos += 1;
        self.skip_ws();
        if self.peek() != Some(b'"') {
            let value = self.token();
            if value.is_empty() {
                return Err(self.err(AuthParseErrorKind::ExpectedParamValue));
            }
            return Ok(RawParam {
                name,
                value,
                escaped: false,
            });
        }
        self.pos += 1;
        let start = self.pos;
        let mut escaped = false;
        loop {
            match self.peek() {
                None => return Err(self.err(AuthParseErrorKind::UnterminatedQuotedString)),
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    self.pos += 1;
                    match self.peek() {
                        None => return Err(self.err(AuthParseErrorKind::UnterminatedQuotedString)),
                        // quoted-pair: any ASCII except CR and LF (RFC 3261 §25.1).
                        Some(b) if b.is_ascii() && b != b'\r' && b != b'\n' => self.pos += 1,
                        Some(_) => return Err(self.err(AuthParseErrorKind::InvalidQuotedString)),
                    }
                }
                Some(b) if b.is_ascii_control() && !is_ws(b) => {
                    return Err(self.err(AuthParseErrorKind::InvalidQuotedString))
                }
                Some(_) => self.pos += 1,
            }
        }
        let value = self.s.get(start..self.pos).unwrap_or("");
        self.pos += 1;
        Ok(RawParam {
            name,
            value,
            escaped,
        })
    }

    /// After a parameter: `Ok(true)` if a comma announces another one, `Ok(false)` at the end.
    fn separator(&mut self) -> Result<bool, AuthParseError> {
        self.skip_ws();
        match self.peek() {
            None => Ok(false),
            Some(b',') => {
                self.pos += 1;
                self.skip_ws();
                Ok(true)
            }
            Some(_) => Err(self.err(AuthParseErrorKind::ExpectedComma)),
        }
    }
}

/// A parameter as written: `value` is the token, or the text between the quotes.
#[derive(Clone, Copy)]
struct RawParam<'a> {
    name: &'a str,
    value: &'a str,
    escaped: bool,
}

impl<'a> RawParam<'a> {
    fn unescaped(&self) -> Cow<'a, str> {
        if !self.escaped {
            return Cow::Borrowed(self.value);
        }
        crate::lex::unescape_quoted(self.value)
    }
}

/// Walks the parameters of a value that has already been checked.
#[derive(Clone)]
struct RawParams<'a> {
    cursor: Cursor<'a>,
    done: bool,
}

impl<'a> Iterator for RawParams<'a> {
    type Item = RawParam<'a>;

    fn next(&mut self) -> Option<RawParam<'a>> {
        if self.done {
            return None;
        }
        let Ok(param) = self.cursor.param() else {
            self.done = true;
            return None;
        };
        if !matches!(self.cursor.separator(), Ok(true)) {
            self.done = true;
        }
        Some(param)
    }
}

/// How many parameters [`Index`] remembers: a digest `Authorization` has at most ten.
const INDEXED: usize = 12;

/// Where the parameters of a checked value start, with the length of each name, so that a
/// look-up by name compares names only and parses just the value it wants, instead of
/// walking every parameter again for each of the ten or so a verifier reads. Empty (and not
/// `complete`) for a value with more parameters, or longer than 64 KiB: look-ups then walk.
#[derive(Debug, Clone, Copy, Default)]
struct Index {
    complete: bool,
    len: u8,
    /// (offset of the name, length of the name).
    names: [(u16, u8); INDEXED],
}

impl Index {
    fn push(&mut self, at: usize, name_len: usize) {
        let slot = self.names.get_mut(usize::from(self.len));
        match (slot, u16::try_from(at), u8::try_from(name_len)) {
            (Some(slot), Ok(at), Ok(name_len)) => {
                *slot = (at, name_len);
                self.len += 1;
            }
            _ => self.complete = false,
        }
    }
}

/// The checked parts of a value, shared by [`Credentials`] and [`Challenge`].
#[derive(Debug, Clone, Copy)]
struct AuthValue<'a> {
    value: &'a str,
    scheme: &'a str,
    /// Where the first parameter starts; `value.len()` when there is none.
    params_at: usize,
    token68: Option<&'a str>,
    index: Index,
}

impl<'a> AuthValue<'a> {
    fn parse(value: &'a str) -> Result<Self, AuthParseError> {
        let mut c = Cursor { s: value, pos: 0 };
        c.skip_ws();
        if c.peek().is_none() {
            return Err(c.err(AuthParseErrorKind::Empty));
        }
        let scheme = c.token();
        if scheme.is_empty() || c.peek().is_some_and(|b| !is_ws(b)) {
            return Err(c.err(AuthParseErrorKind::InvalidScheme));
        }
        c.skip_ws();
        let params_at = c.pos;
        let mut bare = AuthValue {
            value,
            scheme,
            params_at,
            token68: None,
            index: Index {
                complete: true,
                ..Index::default()
            },
        };
        if c.peek().is_none() {
            return Ok(bare);
        }
        match check_params(&mut c, &mut bare.index) {
            Ok(()) => Ok(bare),
            Err(e) if scheme.eq_ignore_ascii_case("Digest") => Err(e),
            Err(e) => match token68(value.get(params_at..).unwrap_or("")) {
                Some(t) => Ok(AuthValue {
                    params_at: value.len(),
                    token68: Some(t),
                    index: Index {
                        complete: true,
                        ..Index::default()
                    },
                    ..bare
                }),
                None => Err(e),
            },
        }
    }

    fn raw_params(&self) -> RawParams<'a> {
        RawParams {
            cursor: Cursor {
                s: self.value,
                pos: self.params_at,
            },
            done: self.params_at >= self.value.len(),
        }
    }

    fn raw(&self, name: &str) -> Option<RawParam<'a>> {
        if !self.index.complete {
            return self
                .raw_params()
                .find(|p| p.name.eq_ignore_ascii_case(name));
        }
        let names = self.index.names.get(..usize::from(self.index.len))?;
        names.iter().find_map(|&(at, len)| {
            let at = usize::from(at);
            let written = self.value.get(at..at + usize::from(len))?;
            if !written.eq_ignore_ascii_case(name) {
                return None;
            }
            // Checked when the value was parsed: this cannot fail.
            Cursor {
                s: self.value,
                pos: at,
            }
            .param()
            .ok()
        })
    }

    fn param(&self, name: &str) -> Option<Cow<'a, str>> {
        self.raw(name).map(|p| p.unescaped())
    }

    fn raw_value(&self, name: &str) -> Option<&'a str> {
        self.raw(name).map(|p| p.value)
    }

    fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("Digest")
    }
}

fn check_params(c: &mut Cursor<'_>, index: &mut Index) -> Result<(), AuthParseError> {
    let mut names = [""; MAX_PARAMS];
    let mut count = 0;
    loop {
        let at = c.pos;
        let param = c.param()?;
        index.push(at, param.name.len());
        let err = |kind| AuthParseError { kind, offset: at };
        let seen = names.get(..count).unwrap_or(&[]);
        if seen.iter().any(|n| n.eq_ignore_ascii_case(param.name)) {
            return Err(err(AuthParseErrorKind::DuplicateParam));
        }
        let Some(slot) = names.get_mut(count) else {
            return Err(err(AuthParseErrorKind::TooManyParams));
        };
        *slot = param.name;
        count += 1;
        if !c.separator()? {
            return Ok(());
        }
    }
}

/// `token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`, then whitespace.
fn token68(rest: &str) -> Option<&str> {
    let t = rest.trim_end_matches([' ', '\t', '\r', '\n']);
    let body = t.trim_end_matches('=');
    let ok = !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        });
    ok.then_some(t)
}

/// The parameters of a value, in order, as `(name, value)` with quotes and escapes removed.
#[derive(Clone)]
pub struct Params<'a> {
    inner: RawParams<'a>,
}

impl<'a> Iterator for Params<'a> {
    type Item = (&'a str, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|p| (p.name, p.unescaped()))
    }
}

impl fmt::Debug for Params<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

/// The accessors Credentials and Challenge share: both wrap one checked [`AuthValue`].
macro_rules! common_getters {
    () => {
        /// The scheme as written, e.g. `Digest`.
        pub fn scheme(&self) -> &'a str {
            self.v.scheme
        }

        /// Whether the scheme is `Digest` (compared case-insensitively).
        pub fn is_digest(&self) -> bool {
            self.v.is_digest()
        }

        /// A parameter by name (case-insensitive), unquoted and unescaped.
        pub fn param(&self, name: &str) -> Option<Cow<'a, str>> {
            self.v.param(name)
        }

        /// All parameters in order.
        pub fn params(&self) -> Params<'a> {
            Params {
                inner: self.v.raw_params(),
            }
        }
    };
}

/// The value of an `Authorization` or `Proxy-Authorization` header field: what a client
/// answers to a challenge.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    v: AuthValue<'a>,
}

impl<'a> Credentials<'a> {
    /// Checks the whole value; does not allocate.
    pub fn parse(value: &'a str) -> Result<Self, AuthParseError> {
        AuthValue::parse(value).map(|v| Credentials { v })
    }

    common_getters!();

    /// The `token68` form (`Bearer eyJ…`), for schemes other than `Digest`.
    pub fn token68(&self) -> Option<&'a str> {
        self.v.token68
    }

    /// `username`.
    pub fn username(&self) -> Option<Cow<'a, str>> {
        self.param("username")
    }

    /// `realm`.
    pub fn realm(&self) -> Option<Cow<'a, str>> {
        self.param("realm")
    }

    /// `nonce`, as the server issued it.
    pub fn nonce(&self) -> Option<Cow<'a, str>> {
        self.param("nonce")
    }

    /// `uri`, the digest-uri the response covers.
    pub fn uri(&self) -> Option<Cow<'a, str>> {
        self.param("uri")
    }

    /// `response`, the request digest in hex.
    pub fn response(&self) -> Option<Cow<'a, str>> {
        self.param("response")
    }

    /// `algorithm` as written (absent means MD5; see [`Algorithm::from_param`]).
    pub fn algorithm(&self) -> Option<&'a str> {
        self.v.raw_value("algorithm")
    }

    /// `cnonce`.
    pub fn cnonce(&self) -> Option<Cow<'a, str>> {
        self.param("cnonce")
    }

    /// `opaque`, echoed from the challenge.
    pub fn opaque(&self) -> Option<Cow<'a, str>> {
        self.param("opaque")
    }

    /// `qop` as written; some clients quote it, and the quotes are removed.
    pub fn qop(&self) -> Option<&'a str> {
        self.v.raw_value("qop")
    }

    /// `nc`, the nonce count: exactly 8 hex digits, otherwise `None`.
    pub fn nc(&self) -> Option<u32> {
        let nc = self.v.raw_value("nc")?;
        if nc.len() != 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(nc, 16).ok()
    }
}

/// The value of a `WWW-Authenticate` or `Proxy-Authenticate` header field: what a server
/// asks for.
#[derive(Debug, Clone, Copy)]
pub struct Challenge<'a> {
    v: AuthValue<'a>,
}

impl<'a> Challenge<'a> {
    /// Checks the whole value; does not allocate.
    pub fn parse(value: &'a str) -> Result<Self, AuthParseError> {
        AuthValue::parse(value).map(|v| Challenge { v })
    }

    common_getters!();

    /// The `token68` form, for schemes other than `Digest`.
    pub fn token68(&self) -> Option<&'a str> {
        self.v.token68
    }

    /// `realm`.
    pub fn realm(&self) -> Option<Cow<'a, str>> {
        self.param("realm")
    }

    /// `nonce`.
    pub fn nonce(&self) -> Option<Cow<'a, str>> {
        self.param("nonce")
    }

    /// `opaque`, which the client must echo.
    pub fn opaque(&self) -> Option<Cow<'a, str>> {
        self.param("opaque")
    }

    /// `domain`: space-separated URIs of the protection space.
    pub fn domain(&self) -> Option<Cow<'a, str>> {
        self.param("domain")
    }

    /// `stale=true` (case-insensitive): the nonce expired but the credentials were right, so
    /// the client may retry with the new nonce without asking the user again.
    pub fn stale(&self) -> bool {
        self.v
            .raw_value("stale")
            .is_some_and(|s| s.eq_ignore_ascii_case("true"))
    }

    /// `algorithm` as written (absent means MD5; see [`Algorithm::from_param`]).
    pub fn algorithm(&self) -> Option<&'a str> {
        self.v.raw_value("algorithm")
    }

    /// The tokens of `qop="auth,auth-int"`; empty when the challenge has no `qop` (the
    /// RFC 2069 form, which `param("qop").is_none()` tells apart).
    pub fn qop_options(&self) -> QopOptions<'a> {
        QopOptions {
            inner: self.v.raw_value("qop").map(|q| q.split(',')),
        }
    }
}

/// Iterator over the `qop` options of a [`Challenge`].
#[derive(Debug, Clone)]
pub struct QopOptions<'a> {
    inner: Option<std::str::Split<'a, char>>,
}

impl<'a> Iterator for QopOptions<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        loop {
            let part = self.inner.as_mut()?.next()?;
            let part = part.trim_matches([' ', '\t', '\r', '\n']);
            if !part.is_empty() {
                return Some(part);
            }
        }
    }
}

/// What a server puts in a `WWW-Authenticate` or `Proxy-Authenticate` challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChallengeParams<'x> {
    /// Protection space, usually the SIP domain.
    pub realm: &'x str,
    /// From [`crate::digest::NonceSecret::issue`].
    pub nonce: &'x str,
    /// Data the client must echo, if any.
    pub opaque: Option<&'x str>,
    /// Hash algorithm asked for; one challenge per algorithm, most preferred first (RFC 8760).
    pub algorithm: Algorithm,
    /// Offer `qop="auth"`; servers should, since without it there is no cnonce.
    pub qop_auth: bool,
    /// The nonce of the request expired but its response was right (see
    /// [`Challenge::stale`]).
    pub stale: bool,
}

/// Writes a Digest challenge, e.g.
/// `Digest realm="example.com", nonce="…", algorithm=SHA-256, qop="auth", stale=true`.
pub fn format_challenge(c: &ChallengeParams<'_>) -> String {
    let mut w = Writer::new(64 + c.realm.len() + c.nonce.len());
    w.quoted("realm", c.realm);
    w.quoted("nonce", c.nonce);
    if let Some(opaque) = c.opaque {
        w.quoted("opaque", opaque);
    }
    w.token("algorithm", c.algorithm.as_str());
    if c.qop_auth {
        w.quoted("qop", "auth");
    }
    if c.stale {
        w.token("stale", "true");
    }
    w.out
}

/// What a client puts in an `Authorization` or `Proxy-Authorization` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialsParams<'x> {
    /// User name in the realm.
    pub username: &'x str,
    /// Realm of the challenge answered.
    pub realm: &'x str,
    /// Nonce of the challenge answered.
    pub nonce: &'x str,
    /// digest-uri: the Request-URI of the request.
    pub uri: &'x str,
    /// From [`crate::digest::response`].
    pub response: &'x str,
    /// Algorithm of the challenge answered.
    pub algorithm: Algorithm,
    /// Client nonce; required with `qop`.
    pub cnonce: Option<&'x str>,
    /// Nonce count; required with `qop`; written as 8 lowercase hex digits.
    pub nc: Option<u32>,
    /// `auth` when the challenge offered it; written unquoted.
    pub qop: Option<&'x str>,
    /// Echo of the challenge's `opaque`.
    pub opaque: Option<&'x str>,
}

/// Writes Digest credentials, e.g. `Digest username="alice", realm="example.com", nonce="…",
/// uri="sip:example.com", response="…", algorithm=SHA-256, cnonce="…", qop=auth, nc=00000001`.
pub fn format_credentials(c: &CredentialsParams<'_>) -> String {
    let mut w = Writer::new(128 + c.nonce.len() + c.uri.len() + c.response.len());
    w.quoted("username", c.username);
    w.quoted("realm", c.realm);
    w.quoted("nonce", c.nonce);
    w.quoted("uri", c.uri);
    w.quoted("response", c.response);
    w.token("algorithm", c.algorithm.as_str());
    if let Some(cnonce) = c.cnonce {
        w.quoted("cnonce", cnonce);
    }
    if let Some(opaque) = c.opaque {
        w.quoted("opaque", opaque);
    }
    if let Some(qop) = c.qop {
        if is_token(qop) {
            w.token("qop", qop);
        } else {
            w.quoted("qop", qop);
        }
    }
    if let Some(nc) = c.nc {
        w.token("nc", &format!("{nc:08x}"));
    }
    w.out
}

/// Builds `Digest name=value, name="value", …`.
struct Writer {
    out: String,
    first: bool,
}

impl Writer {
    fn new(capacity: usize) -> Self {
        let mut out = String::with_capacity(capacity);
        out.push_str("Digest");
        Writer { out, first: true }
    }

    fn name(&mut self, name: &str) {
        self.out.push_str(if self.first { " " } else { ", " });
        self.first = false;
        self.out.push_str(name);
        self.out.push('=');
    }

    fn token(&mut self, name: &str, value: &str) {
        self.name(name);
        self.out.push_str(value);
    }

    /// Escapes `"` and `\`. Control characters other than HTAB cannot be carried in a
    /// quoted-string (a CR or LF would end the header field), so they are dropped.
    fn quoted(&mut self, name: &str, value: &str) {
        self.name(name);
        self.out.push('"');
        for ch in value.chars() {
            match ch {
                '"' | '\\' => {
                    self.out.push('\\');
                    self.out.push(ch);
                }
                '\t' => self.out.push(ch),
                c if c.is_ascii_control() => {}
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC3261_AUTHORIZATION: &str = "Digest username=\"bob\",\r\n \
        realm=\"biloxi.com\",\r\n\tnonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n  \
        uri=\"sip:bob@biloxi.com\",\r\n qop=auth,\r\n nc=00000001,\r\n cnonce=\"0a4f113b\",\r\n \
        response=\"6629fae49393a05397450978507c4ef1\",\r\n \
        opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";

    #[test]
    fn parses_folded_rfc3261_credentials() {
        let c = Credentials::parse(RFC3261_AUTHORIZATION).expect("parses");
        assert!(c.is_digest());
        assert_eq!(c.scheme(), "Digest");
        assert_eq!(c.username().as_deref(), Some("bob"));
        assert_eq!(c.realm().as_deref(), Some("biloxi.com"));
        assert_eq!(
            c.nonce().as_deref(),
            Some("dcd98b7102dd2f0e8b11d0f600bfb0c093")
        );
        assert_eq!(c.uri().as_deref(), Some("sip:bob@biloxi.com"));
        assert_eq!(
            c.response().as_deref(),
            Some("6629fae49393a05397450978507c4ef1")
        );
        assert_eq!(c.cnonce().as_deref(), Some("0a4f113b"));
        assert_eq!(
            c.opaque().as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
        assert_eq!(c.qop(), Some("auth"));
        assert_eq!(c.nc(), Some(1));
        assert_eq!(c.algorithm(), None);
        assert!(matches!(c.username(), Some(Cow::Borrowed(_))));
        let names: Vec<&str> = c.params().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["username", "realm", "nonce", "uri", "qop", "nc", "cnonce", "response", "opaque"]
        );
    }

    /// Look-ups through the index of parameter names and by walking the value agree, with
    /// few parameters (indexed) and with more than the index holds (walked).
    #[test]
    fn indexed_and_walked_lookups_agree() {
        for extra in [0, 3, 20] {
            let mut value = RFC3261_AUTHORIZATION.replace("username", "UserName");
            for i in 0..extra {
                value.push_str(&format!(", x{i}=\"v\\\"{i}\""));
            }
            let c = Credentials::parse(&value).expect("parses");
            assert_eq!(c.v.index.complete, 9 + extra <= INDEXED, "{extra}");
            let walked = |name: &str| {
                c.v.raw_params()
                    .find(|p| p.name.eq_ignore_ascii_case(name))
                    .map(|p| p.unescaped())
            };
            assert_eq!(c.username().as_deref(), Some("bob"));
            assert_eq!(c.param("USERNAME"), walked("username"));
            for name in [
                "realm", "nonce", "nc", "response", "opaque", "missing", "x2", "x19",
            ] {
                assert_eq!(c.param(name), walked(name), "{name} with {extra} more");
            }
            if extra > 2 {
                assert_eq!(c.param("x2").as_deref(), Some("v\"2"));
            }
        }
    }

    #[test]
    fn names_and_schemes_compare_case_insensitively() {
        let c = Credentials::parse("dIgEsT USERNAME=\"a\" , Realm = r,NONCE=n").expect("parses");
        assert!(c.is_digest());
        assert_eq!(c.scheme(), "dIgEsT");
        assert_eq!(c.username().as_deref(), Some("a"));
        assert_eq!(c.param("realm").as_deref(), Some("r"));
        assert_eq!(c.nonce().as_deref(), Some("n"));
    }

    #[test]
    fn unescapes_quoted_pairs_only_when_needed() {
        let c = Credentials::parse(r#"Digest username="a\"b\\c", realm="plain""#).expect("parses");
        assert_eq!(c.username(), Some(Cow::Owned(String::from(r#"a"b\c"#))));
        assert!(matches!(c.realm(), Some(Cow::Borrowed("plain"))));
        let c = Credentials::parse("Digest username=\"\u{e9}l\u{e8}ve, \\\u{7f}\"").expect("utf-8");
        assert_eq!(c.username().as_deref(), Some("\u{e9}l\u{e8}ve, \u{7f}"));
    }

    #[test]
    fn quoted_values_are_not_split_at_commas_or_equals() {
        let c = Credentials::parse(r#"Digest uri="sip:a@b;x=1,y", qop="auth""#).expect("parses");
        assert_eq!(c.uri().as_deref(), Some("sip:a@b;x=1,y"));
        assert_eq!(c.qop(), Some("auth"));
    }

    #[test]
    fn unknown_scheme_parses_regaut01() {
        let c = Credentials::parse("NoOneKnowsThisScheme opaque-data=here").expect("parses");
        assert_eq!(c.scheme(), "NoOneKnowsThisScheme");
        assert!(!c.is_digest());
        assert_eq!(c.param("opaque-data").as_deref(), Some("here"));
        assert_eq!(c.username(), None);
    }

    #[test]
    fn token68_and_bare_schemes() {
        let c = Credentials::parse("Bearer eyJhbGciOi.J9-_~+/==  ").expect("parses");
        assert_eq!(c.token68(), Some("eyJhbGciOi.J9-_~+/=="));
        assert_eq!(c.params().count(), 0);
        let c = Credentials::parse("  Negotiate ").expect("parses");
        assert_eq!(c.scheme(), "Negotiate");
        assert_eq!(c.token68(), None);
        assert_eq!(c.params().count(), 0);
        // Digest has no token68 form.
        let e = Credentials::parse("Digest realm=").expect_err("rejected");
        assert_eq!(e.kind(), AuthParseErrorKind::ExpectedParamValue);
    }

    #[test]
    fn nc_needs_exactly_eight_hex_digits() {
        let nc = |v: &str| {
            Credentials::parse(&format!("Digest nc={v}"))
                .ok()
                .and_then(|c| c.nc())
        };
        assert_eq!(nc("00000001"), Some(1));
        assert_eq!(nc("0000001A"), Some(26));
        assert_eq!(nc("ffffffff"), Some(u32::MAX));
        assert_eq!(nc("1"), None);
        assert_eq!(nc("000000001"), None);
        assert_eq!(nc("+0000001"), None);
        assert_eq!(nc("0000000g"), None);
    }

    #[test]
    fn rejects_malformed_values() {
        use AuthParseErrorKind::*;
        let cases: &[(&str, AuthParseErrorKind)] = &[
            ("", Empty),
            (" \r\n ", Empty),
            ("\"Digest\" realm=a", InvalidScheme),
            ("Digest,realm=a", InvalidScheme),
            ("Digest realm=a,", ExpectedParamName),
            ("Digest realm=a,,nonce=b", ExpectedParamName),
            ("Digest realm", ExpectedEquals),
            ("Digest realm=", ExpectedParamValue),
            ("Digest realm=,nonce=b", ExpectedParamValue),
            ("Digest realm=\"abc", UnterminatedQuotedString),
            ("Digest realm=\"abc\\", UnterminatedQuotedString),
            ("Digest realm=\"a\0b\"", InvalidQuotedString),
            ("Digest realm=\"a\\\r\n b\"", InvalidQuotedString),
            ("Digest realm=\"a\" nonce=\"b\"", ExpectedComma),
            ("Digest realm=\"a\"nonce=\"b\"", ExpectedComma),
            ("Digest realm=a b", ExpectedComma),
            ("Digest realm=a, REALM=b", DuplicateParam),
            ("Foo a=1, b=2, a=3", DuplicateParam),
        ];
        for (value, kind) in cases {
            let err = Credentials::parse(value).expect_err(value);
            assert_eq!(err.kind(), *kind, "{value:?}");
            assert_eq!(Challenge::parse(value).expect_err(value), err);
            assert!(!err.to_string().is_empty());
        }
        let e = Credentials::parse("Digest realm=a, REALM=b").expect_err("duplicate");
        assert_eq!(e.offset(), 16);
        assert_eq!(e.to_string(), "parameter appears more than once at byte 16");
    }

    #[test]
    fn bounds_the_number_of_params() {
        let many = |n: usize| {
            let params: Vec<String> = (0..n).map(|i| format!("p{i}=v")).collect();
            format!("Digest {}", params.join(", "))
        };
        assert!(Credentials::parse(&many(MAX_PARAMS)).is_ok());
        let e = Credentials::parse(&many(MAX_PARAMS + 1)).expect_err("too many");
        assert_eq!(e.kind(), AuthParseErrorKind::TooManyParams);
    }

    #[test]
    fn parses_challenges() {
        let value = "Digest realm=\"atlanta.com\",\r\n domain=\"sip:ss1.carrier.com sip:a.com\", \
                     qop=\"auth, auth-int\",\r\n nonce=\"f84f1cec41e6cbe5aea9c8e88d359\",\r\n \
                     opaque=\"\", stale=TRUE, algorithm=SHA-256";
        let c = Challenge::parse(value).expect("parses");
        assert!(c.is_digest());
        assert_eq!(c.realm().as_deref(), Some("atlanta.com"));
        assert_eq!(c.domain().as_deref(), Some("sip:ss1.carrier.com sip:a.com"));
        assert_eq!(c.nonce().as_deref(), Some("f84f1cec41e6cbe5aea9c8e88d359"));
        assert_eq!(c.opaque().as_deref(), Some(""));
        assert!(c.stale());
        assert_eq!(c.algorithm(), Some("SHA-256"));
        assert_eq!(c.qop_options().collect::<Vec<_>>(), ["auth", "auth-int"]);

        let c = Challenge::parse("Digest realm=x, nonce=y, stale=false").expect("parses");
        assert!(!c.stale());
        assert_eq!(c.qop_options().count(), 0);
        assert_eq!(c.param("qop"), None);
        let c = Challenge::parse("Digest realm=x, qop=\",auth,,\"").expect("parses");
        assert_eq!(c.qop_options().collect::<Vec<_>>(), ["auth"]);
    }

    #[test]
    fn formats_challenges_that_parse_back() {
        let text = format_challenge(&ChallengeParams {
            realm: "example.com",
            nonce: "abc123",
            opaque: None,
            algorithm: Algorithm::Sha256,
            qop_auth: true,
            stale: true,
        });
        assert_eq!(
            text,
            "Digest realm=\"example.com\", nonce=\"abc123\", algorithm=SHA-256, qop=\"auth\", \
             stale=true"
        );
        let text = format_challenge(&ChallengeParams {
            realm: "we\"ird\\realm\r\nVia: injected",
            nonce: "n",
            opaque: Some("o p"),
            algorithm: Algorithm::Md5,
            qop_auth: false,
            stale: false,
        });
        assert_eq!(
            text,
            "Digest realm=\"we\\\"ird\\\\realmVia: injected\", nonce=\"n\", opaque=\"o p\", \
             algorithm=MD5"
        );
        let c = Challenge::parse(&text).expect("parses");
        assert_eq!(c.realm().as_deref(), Some("we\"ird\\realmVia: injected"));
        assert_eq!(c.opaque().as_deref(), Some("o p"));
        assert_eq!(c.algorithm(), Some("MD5"));
        assert!(!c.stale());
        assert_eq!(c.qop_options().count(), 0);
    }

    #[test]
    fn formats_credentials_that_parse_back() {
        let params = CredentialsParams {
            username: "alice",
            realm: "example.com",
            nonce: "abc",
            uri: "sip:example.com",
            response: "0123456789abcdef0123456789abcdef",
            algorithm: Algorithm::Md5Sess,
            cnonce: Some("c\"n"),
            nc: Some(0x1a),
            qop: Some("auth"),
            opaque: Some("op"),
        };
        let text = format_credentials(&params);
        assert_eq!(
            text,
            "Digest username=\"alice\", realm=\"example.com\", nonce=\"abc\", \
             uri=\"sip:example.com\", response=\"0123456789abcdef0123456789abcdef\", \
             algorithm=MD5-sess, cnonce=\"c\\\"n\", opaque=\"op\", qop=auth, nc=0000001a"
        );
        let c = Credentials::parse(&text).expect("parses");
        assert_eq!(c.username().as_deref(), Some("alice"));
        assert_eq!(c.realm().as_deref(), Some("example.com"));
        assert_eq!(c.nonce().as_deref(), Some("abc"));
        assert_eq!(c.uri().as_deref(), Some("sip:example.com"));
        assert_eq!(c.response().as_deref(), Some(params.response));
        assert_eq!(c.algorithm(), Some("MD5-sess"));
        assert_eq!(c.cnonce().as_deref(), Some("c\"n"));
        assert_eq!(c.opaque().as_deref(), Some("op"));
        assert_eq!(c.qop(), Some("auth"));
        assert_eq!(c.nc(), Some(0x1a));

        let bare = format_credentials(&CredentialsParams {
            cnonce: None,
            nc: None,
            qop: None,
            opaque: None,
            algorithm: Algorithm::Md5,
            ..params
        });
        let c = Credentials::parse(&bare).expect("parses");
        assert_eq!(c.qop(), None);
        assert_eq!(c.nc(), None);
        assert_eq!(c.params().count(), 6);
    }

    #[test]
    fn parse_is_copy_and_debug() {
        let c = Credentials::parse("Digest realm=a").expect("parses");
        let d = c;
        assert_eq!(c.realm(), d.realm());
        assert!(format!("{c:?}").contains("realm=a"));
        assert!(format!("{:?}", c.params()).contains("realm"));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(value in ".{0,200}") {
            exercise(&value);
        }

        #[test]
        fn parse_never_panics_on_header_like_input(
            value in "[ \t\r\nDdigestBearrn=,\"\\\\a-z0-9\u{e9}\u{0}]{0,120}"
        ) {
            exercise(&value);
        }
    }

    fn exercise(value: &str) {
        if let Ok(c) = Credentials::parse(value) {
            let _ = (
                c.scheme(),
                c.is_digest(),
                c.token68(),
                c.algorithm(),
                c.qop(),
                c.nc(),
            );
            let _ = (c.username(), c.realm(), c.nonce(), c.uri(), c.response());
            let _ = (c.cnonce(), c.opaque());
            for (name, v) in c.params() {
                assert!(!name.is_empty());
                let _ = v.len();
                assert!(c.param(name).is_some());
            }
        }
        if let Ok(c) = Challenge::parse(value) {
            let _ = (c.realm(), c.nonce(), c.opaque(), c.domain(), c.stale());
            let _ = (c.algorithm(), c.qop_options().count(), c.params().count());
        }
    }
}
