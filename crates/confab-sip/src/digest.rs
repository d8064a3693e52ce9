//! Digest access authentication arithmetic for SIP (RFC 3261 §22.4, RFC 7616 §3.4,
//! RFC 8760).
//!
//! This module owns the algorithms SIP may name ([`Algorithm`]), the hashes ([`ha1`],
//! [`response`]), stateless nonces ([`NonceSecret`]) and the check of a client's answer against
//! a stored HA1 ([`verify`]). Header syntax is in [`crate::auth`].
//!
//! A server never sees passwords here: the management store keeps HA1 = `H(username:realm:
//! password)` per realm and per base algorithm (MD5, SHA-256, SHA-512-256), which is also what
//! legacy systems such as Kamailio store, so imported users keep their passwords. The `-sess`
//! variants use the same stored HA1 and combine it with the nonces while verifying.
//!
//! Nothing here reads a clock or draws random numbers: the current time and the salt of each
//! nonce are parameters.
//!
//! # What a server does with an Authorization header
//!
//! The order matters: cheap syntactic checks first, then the nonce (so forged nonces never
//! reach the store), then the lookup, and the response last, so that an unknown user and a
//! wrong password look the same from outside.
//!
//! ```
//! use confab_sip::auth::Credentials;
//! use confab_sip::digest::{self, Algorithm, NonceCheck, NonceSecret, Verification};
//!
//! #[derive(Debug, PartialEq)]
//! enum Outcome {
//!     Accept,
//!     /// Answer 401/407 with a fresh challenge (`stale=true` when asked).
//!     Challenge { stale: bool },
//!     BadRequest,
//! }
//!
//! const REALM: &str = "example.com";
//! const LIFETIME_SECS: u64 = 300;
//!
//! fn authenticate(
//!     header: &str,
//!     method: &str,
//!     request_uri: &str,
//!     now: u64,
//!     secret: &NonceSecret,
//!     stored_ha1: impl Fn(&str, &str, Algorithm) -> Option<String>,
//! ) -> Outcome {
//!     let fresh = Outcome::Challenge { stale: false };
//!     // 1. Syntax. (With several Authorization headers, take the one for our realm.)
//!     let Ok(creds) = Credentials::parse(header) else { return Outcome::BadRequest };
//!     // 2. Scheme and realm: anything else is not an answer to our challenge.
//!     if !creds.is_digest() || creds.realm().as_deref() != Some(REALM) {
//!         return fresh;
//!     }
//!     // 3. Only an algorithm we offered, so nobody can downgrade us to MD5.
//!     let Some(alg) = Algorithm::from_param(creds.algorithm()) else { return fresh };
//!     if alg != Algorithm::Sha256 {
//!         return fresh;
//!     }
//!     // 4. We offered qop="auth": refuse the RFC 2069 form, which has no client nonce.
//!     if creds.qop() != Some("auth") {
//!         return fresh;
//!     }
//!     // 5. The nonce: forged or garbled means a fresh challenge; expired is remembered and
//!     //    reported as stale only if the response turns out right.
//!     let Some(nonce) = creds.nonce() else { return Outcome::BadRequest };
//!     let stale = match secret.check(&nonce, now, LIFETIME_SECS) {
//!         NonceCheck::Valid => false,
//!         NonceCheck::Stale => true,
//!         NonceCheck::Invalid => return fresh,
//!     };
//!     // 6. The response must cover this request's Request-URI.
//!     if creds.uri().as_deref() != Some(request_uri) {
//!         return Outcome::BadRequest;
//!     }
//!     // 7. The stored HA1 for this user, realm and the *base* algorithm. An unknown user gets
//!     //    the same answer as a wrong password.
//!     let Some(username) = creds.username() else { return Outcome::BadRequest };
//!     let Some(ha1) = stored_ha1(&username, REALM, alg.base()) else { return fresh };
//!     // 8. The response itself, compared in constant time.
//!     match digest::verify(&creds, method, &ha1) {
//!         // 9. Servers that track nonce counts reject an nc already seen here.
//!         Verification::Ok if stale => Outcome::Challenge { stale: true },
//!         Verification::Ok => Outcome::Accept,
//!         Verification::Malformed(_) => Outcome::BadRequest,
//!         Verification::WrongResponse
//!         | Verification::UnsupportedAlgorithm
//!         | Verification::UnsupportedQop => fresh,
//!     }
//! }
//!
//! // The key is shared by every front-end of a pool; the salt comes from a CSPRNG and `now`
//! // from the clock, both outside this crate.
//! let secret = NonceSecret::new([7; 32]);
//! let now = 1_700_000_000;
//! let nonce = secret.issue(now, [1, 2, 3, 4, 5, 6, 7, 8]);
//! let ha1 = digest::ha1(Algorithm::Sha256, "alice", REALM, "correct horse");
//! let lookup = |user: &str, _realm: &str, alg: Algorithm| {
//!     (user == "alice" && alg == Algorithm::Sha256).then(|| ha1.clone())
//! };
//!
//! // What the phone sends back.
//! let uri = "sip:example.com";
//! let resp = digest::response(
//!     Algorithm::Sha256, &ha1, &nonce, Some("00000001"), Some("0a4f113b"), Some("auth"),
//!     "REGISTER", uri,
//! );
//! let header = format!(
//!     "Digest username=\"alice\", realm=\"example.com\", nonce=\"{nonce}\", uri=\"{uri}\", \
//!      response=\"{resp}\", algorithm=SHA-256, cnonce=\"0a4f113b\", qop=auth, nc=00000001"
//! );
//!
//! assert_eq!(authenticate(&header, "REGISTER", uri, now + 10, &secret, lookup), Outcome::Accept);
//! assert_eq!(
//!     authenticate(&header, "REGISTER", uri, now + 600, &secret, lookup),
//!     Outcome::Challenge { stale: true }
//! );
//! assert_eq!(
//!     authenticate(&header, "INVITE", uri, now + 10, &secret, lookup),
//!     Outcome::Challenge { stale: false }
//! );
//! ```

use std::fmt;

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};
use subtle::ConstantTimeEq;

use crate::auth::Credentials;

/// A hash algorithm of the Digest scheme (RFC 7616 §3.3, RFC 8760 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5`, the RFC 3261 default; kept for existing clients and imported credentials.
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256`.
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
    /// `SHA-512-256` (SHA-512/256).
    Sha512_256,
    /// `SHA-512-256-sess`.
    Sha512_256Sess,
}

impl Algorithm {
    /// Every algorithm, strongest first.
    pub const ALL: [Algorithm; 6] = [
        Algorithm::Sha512_256,
        Algorithm::Sha512_256Sess,
        Algorithm::Sha256,
        Algorithm::Sha256Sess,
        Algorithm::Md5,
        Algorithm::Md5Sess,
    ];

    /// Parses an `algorithm` value, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }

    /// The algorithm of an `algorithm` parameter that may be absent: absent means MD5.
    pub fn from_param(param: Option<&str>) -> Option<Self> {
        match param {
            None => Some(Algorithm::Md5),
            Some(s) => Self::parse(s),
        }
    }

    /// The name as written in headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
            Algorithm::Sha512_256 => "SHA-512-256",
            Algorithm::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// Whether this is a `-sess` variant, whose HA1 also covers nonce and cnonce.
    pub fn is_sess(self) -> bool {
        matches!(
            self,
            Algorithm::Md5Sess | Algorithm::Sha256Sess | Algorithm::Sha512_256Sess
        )
    }

    /// The algorithm without `-sess`: the one whose HA1 the store keeps.
    pub fn base(self) -> Self {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => Algorithm::Md5,
            Algorithm::Sha256 | Algorithm::Sha256Sess => Algorithm::Sha256,
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => Algorithm::Sha512_256,
        }
    }

    /// Length of a hash in lowercase hex: 32 for MD5, 64 for the others.
    pub fn hex_len(self) -> usize {
        match self.base() {
            Algorithm::Md5 => 32,
            _ => 64,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

fn hash_joined<D: Digest>(parts: &[&str]) -> String {
    let mut h = D::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(part.as_bytes());
    }
    hex(&h.finalize())
}

/// `H(p1:p2:…)` in lowercase hex.
fn h(alg: Algorithm, parts: &[&str]) -> String {
    match alg.base() {
        Algorithm::Md5 => hash_joined::<Md5>(parts),
        Algorithm::Sha256 => hash_joined::<Sha256>(parts),
        _ => hash_joined::<Sha512_256>(parts),
    }
}

/// HA1 = `H(username:realm:password)` in lowercase hex, what the store keeps. For `-sess`
/// algorithms this is still the base HA1; [`response`] and [`verify`] add nonce and cnonce.
pub fn ha1(alg: Algorithm, username: &str, realm: &str, password: &str) -> String {
    h(alg, &[username, realm, password])
}

/// The request digest (RFC 7616 §3.4.1, RFC 3261 §22.4) in lowercase hex.
///
/// `ha1_hex` is the base HA1 (upper-case hex is accepted); for `-sess` algorithms it becomes
/// `H(HA1:nonce:cnonce)`. HA2 is `H(method:digest_uri)`. With `qop` the digest is
/// `H(HA1:nonce:nc:cnonce:qop:HA2)`, without it the RFC 2069 form `H(HA1:nonce:HA2)`.
///
/// This is the arithmetic only: `qop` must be `None` or `auth` (`auth-int` would also hash
/// the body), `nc` and `cnonce` must be given with `qop` and `cnonce` with a `-sess`
/// algorithm; a missing one is hashed as empty. [`verify`] checks all of that first.
#[allow(clippy::too_many_arguments)] // the RFC's inputs, in the RFC's order
pub fn response(
    alg: Algorithm,
    ha1_hex: &str,
    nonce: &str,
    nc: Option<&str>,
    cnonce: Option<&str>,
    qop: Option<&str>,
    method: &str,
    digest_uri: &str,
) -> String {
    let base = ha1_hex.to_ascii_lowercase();
    let ha1 = if alg.is_sess() {
        h(alg, &[&base, nonce, cnonce.unwrap_or("")])
    } else {
        base
    };
    let ha2 = h(alg, &[method, digest_uri]);
    match qop {
        Some(qop) => h(
            alg,
            &[
                &ha1,
                nonce,
                nc.unwrap_or(""),
                cnonce.unwrap_or(""),
                qop,
                &ha2,
            ],
        ),
        None => h(alg, &[&ha1, nonce, &ha2]),
    }
}

/// `nc` as a client writes it: 8 lowercase hex digits.
pub fn nc_hex(nc: u32) -> String {
    format!("{nc:08x}")
}

/// Verdict of [`verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The response matches the stored HA1.
    Ok,
    /// Well-formed, but the response does not match: wrong password (or wrong HA1).
    WrongResponse,
    /// A required parameter is missing or malformed (or the stored HA1 does not fit the
    /// algorithm, which is the caller's mistake); the text says which.
    Malformed(&'static str),
    /// The `algorithm` is not one of [`Algorithm`].
    UnsupportedAlgorithm,
    /// The `qop` is not `auth` (`auth-int` is not supported).
    UnsupportedQop,
}

/// Recomputes the response of Digest credentials from the stored HA1 and compares it with the
/// one sent, in constant time.
///
/// `stored_ha1` must be the HA1 for the credentials' user, realm and
/// `Algorithm::from_param(creds.algorithm())` — its [`Algorithm::base`], since `-sess` uses the
/// base HA1. `method` is the request's method (for ACK and CANCEL, that of the INVITE is not
/// used: each request carries its own). Checking the nonce ([`NonceSecret::check`]), realm,
/// username, digest-uri and nonce count is the caller's job; see the module example.
pub fn verify(creds: &Credentials<'_>, method: &str, stored_ha1: &str) -> Verification {
    use Verification::Malformed;

    if !creds.is_digest() {
        return Malformed("scheme is not Digest");
    }
    let Some(alg) = Algorithm::from_param(creds.algorithm()) else {
        return Verification::UnsupportedAlgorithm;
    };
    if creds.username().is_none() {
        return Malformed("missing username");
    }
    if creds.realm().is_none() {
        return Malformed("missing realm");
    }
    let Some(nonce) = creds.nonce() else {
        return Malformed("missing nonce");
    };
    let Some(uri) = creds.uri() else {
        return Malformed("missing uri");
    };
    let Some(given) = creds.response() else {
        return Malformed("missing response");
    };
    let nc = creds.param("nc");
    let cnonce = creds.cnonce();
    let qop = creds.qop();
    match qop {
        None => {
            if nc.is_some() || cnonce.is_some() {
                return Malformed("nc and cnonce are only allowed with qop");
            }
            if alg.is_sess() {
                return Malformed("a -sess algorithm needs qop and cnonce");
            }
        }
        Some(q) if q.eq_ignore_ascii_case("auth") => {
            if nc.is_none() {
                return Malformed("missing nc");
            }
            if creds.nc().is_none() {
                return Malformed("nc is not 8 hex digits");
            }
            if cnonce.is_none() {
                return Malformed("missing cnonce");
            }
        }
        Some(_) => return Verification::UnsupportedQop,
    }
    if !is_hex_of_len(&given, alg.hex_len()) {
        return Malformed("response is not a hash of the algorithm");
    }
    if !is_hex_of_len(stored_ha1, alg.hex_len()) {
        return Malformed("stored HA1 is not a hash of the credentials' algorithm");
    }
    let expected = response(
        alg,
        stored_ha1,
        &nonce,
        nc.as_deref(),
        cnonce.as_deref(),
        qop,
        method,
        &uri,
    );
    let given = given.to_ascii_lowercase();
    if bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
        Verification::Ok
    } else {
        Verification::WrongResponse
    }
}

fn is_hex_of_len(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// How far in the future a nonce's timestamp may lie and still be accepted, for front-ends
/// of one pool whose clocks differ slightly.
pub const MAX_CLOCK_SKEW_SECS: u64 = 10;

const TAG_LEN: usize = 16;
/// Octets of a nonce from [`NonceSecret::issue`]: issue time, salt, tag.
pub const NONCE_BYTES: usize = 8 + 8 + TAG_LEN;
/// Length of the nonces [`NonceSecret::issue`] produces.
pub const NONCE_LEN: usize = 2 * NONCE_BYTES;
/// Keeps these tags apart from any other use of the same key.
const NONCE_CONTEXT: &[u8] = b"confab-sip digest nonce v1";

/// Key for stateless nonces: any front-end holding the same key can check a nonce another one
/// issued, and no per-nonce state is kept.
///
/// A nonce is 64 lowercase hex digits: the issue time (seconds since the Unix epoch, 8 bytes
/// big-endian), an 8-byte salt, and the first 16 bytes of HMAC-SHA-256 over a context string,
/// the time and the salt. Replay within the lifetime is not prevented by the nonce alone;
/// servers that need that track the nonce count per nonce.
#[derive(Clone)]
pub struct NonceSecret {
    mac: Hmac<Sha256>,
}

/// Verdict of [`NonceSecret::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// Issued with this key and still within its lifetime.
    Valid,
    /// Issued with this key, but older than the lifetime: if the response is right, answer
    /// with a new challenge carrying `stale=true`.
    Stale,
    /// Not issued with this key, garbled, or dated in the future.
    Invalid,
}

impl NonceSecret {
    /// A key of 32 random bytes, shared by the front-ends of a pool.
    pub fn new(key: [u8; 32]) -> Self {
        // HMAC pads a short key with zeros to the block size; doing it here lets the
        // infallible constructor be used.
        let mut block = [0u8; 64];
        for (dst, src) in block.iter_mut().zip(key) {
            *dst = src;
        }
        NonceSecret {
            mac: <Hmac<Sha256> as KeyInit>::new(&block.into()),
        }
    }

    /// A nonce dated `now_unix_secs`; `salt` must be fresh random bytes so that nonces issued
    /// in the same second differ.
    pub fn issue(&self, now_unix_secs: u64, salt: [u8; 8]) -> String {
        let time = now_unix_secs.to_be_bytes();
        let mut raw = [0u8; NONCE_BYTES];
        let tag = self.tag(time, salt);
        let parts = time.iter().chain(&salt).chain(&tag);
        for (dst, src) in raw.iter_mut().zip(parts) {
            *dst = *src;
        }
        hex(&raw)
    }

    /// Whether `nonce` was issued with this key, at most `lifetime_secs` before
    /// `now_unix_secs`. The tag is compared in constant time, before the time is looked at.
    pub fn check(&self, nonce: &str, now_unix_secs: u64, lifetime_secs: u64) -> NonceCheck {
        let Some(raw) = decode_lower_hex::<NONCE_BYTES>(nonce) else {
            return NonceCheck::Invalid;
        };
        let (time, rest) = raw.split_at(8);
        let (salt, tag) = rest.split_at(8);
        let mut time_bytes = [0u8; 8];
        time_bytes.copy_from_slice(time);
        let mut salt_bytes = [0u8; 8];
        salt_bytes.copy_from_slice(salt);
        let expected = self.tag(time_bytes, salt_bytes);
        if !bool::from(expected.ct_eq(tag)) {
            return NonceCheck::Invalid;
        }
        let issued = u64::from_be_bytes(time_bytes);
        if issued > now_unix_secs.saturating_add(MAX_CLOCK_SKEW_SECS) {
            NonceCheck::Invalid
        } else if now_unix_secs.saturating_sub(issued) > lifetime_secs {
            NonceCheck::Stale
        } else {
            NonceCheck::Valid
        }
    }

    fn tag(&self, time: [u8; 8], salt: [u8; 8]) -> [u8; TAG_LEN] {
        let mut mac = self.mac.clone();
        mac.update(NONCE_CONTEXT);
        mac.update(&time);
        mac.update(&salt);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        for (dst, src) in tag.iter_mut().zip(full) {
            *dst = src;
        }
        tag
    }
}

impl fmt::Debug for NonceSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NonceSecret { .. }")
    }
}

/// Decodes exactly `2 * N` lowercase hex digits; upper case is refused so that each nonce has
/// one spelling.
/// The octets of a nonce in the form [`NonceSecret::issue`] writes (64 lowercase hex digits),
/// or `None` for anything else. They begin with the issue time, big-endian, so nonces sort
/// by the time they were issued: a compact key for a server that tracks nonce counts.
pub fn nonce_octets(nonce: &str) -> Option<[u8; NONCE_BYTES]> {
    decode_lower_hex(nonce)
}

fn decode_lower_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    fn nibble(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        }
    }
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (dst, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        let &[hi, lo] = pair else { return None };
        *dst = (nibble(hi)? << 4) | nibble(lo)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7616 §3.9.1.
    const USER: &str = "Mufasa";
    const PASSWORD: &str = "Circle of Life";
    const REALM: &str = "http-auth@example.org";
    const NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    const OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";
    const URI: &str = "/dir/index.html";

    fn rfc7616_header(algorithm: &str, response: &str) -> String {
        format!(
            "Digest username=\"{USER}\",\r\n   realm=\"{REALM}\",\r\n   uri=\"{URI}\",\r\n   \
             algorithm={algorithm},\r\n   nonce=\"{NONCE}\",\r\n   nc=00000001,\r\n   \
             cnonce=\"{CNONCE}\",\r\n   qop=auth,\r\n   response=\"{response}\",\r\n   \
             opaque=\"{OPAQUE}\""
        )
    }

    fn rfc7616_response(alg: Algorithm) -> String {
        let ha1 = ha1(alg, USER, REALM, PASSWORD);
        response(
            alg,
            &ha1,
            NONCE,
            Some("00000001"),
            Some(CNONCE),
            Some("auth"),
            "GET",
            URI,
        )
    }

    fn check(header: &str, method: &str, ha1: &str) -> Verification {
        verify(&Credentials::parse(header).expect("parses"), method, ha1)
    }

    #[test]
    fn rfc7616_md5_example() {
        let expected = "8ca523f5e9506fed4657c9700eebdbec";
        assert_eq!(rfc7616_response(Algorithm::Md5), expected);
        let header = rfc7616_header("MD5", expected);
        let stored = ha1(Algorithm::Md5, USER, REALM, PASSWORD);
        assert_eq!(check(&header, "GET", &stored), Verification::Ok);
        let wrong = ha1(Algorithm::Md5, USER, REALM, "Circle of life");
        assert_eq!(check(&header, "GET", &wrong), Verification::WrongResponse);
        assert_eq!(check(&header, "PUT", &stored), Verification::WrongResponse);
    }

    #[test]
    fn rfc7616_sha256_example() {
        let expected = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1";
        assert_eq!(rfc7616_response(Algorithm::Sha256), expected);
        let header = rfc7616_header("SHA-256", expected);
        let stored = ha1(Algorithm::Sha256, USER, REALM, PASSWORD);
        assert_eq!(check(&header, "GET", &stored), Verification::Ok);
        // Upper-case hex from either side still matches.
        let upper = rfc7616_header("sha-256", &expected.to_ascii_uppercase());
        assert_eq!(
            check(&upper, "GET", &stored.to_ascii_uppercase()),
            Verification::Ok
        );
        // An MD5 HA1 for SHA-256 credentials is the caller's mistake, and said so.
        let md5 = ha1(Algorithm::Md5, USER, REALM, PASSWORD);
        assert!(matches!(
            check(&header, "GET", &md5),
            Verification::Malformed(_)
        ));
    }

    #[test]
    fn rfc2617_example() {
        let header = "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
                      nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", \
                      qop=auth, nc=00000001, cnonce=\"0a4f113b\", \
                      response=\"6629fae49393a05397450978507c4ef1\", \
                      opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";
        let stored = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        assert_eq!(check(header, "GET", &stored), Verification::Ok);
    }

    #[test]
    fn sha512_256_matches_an_independent_computation() {
        let alg = Algorithm::Sha512_256;
        assert_eq!(
            ha1(alg, USER, REALM, PASSWORD),
            "fb174f5c3c7802721517cae13b98e2b8dae2e0118cb705d94ee29946319204ce"
        );
        let expected = "430d05014cecc49cab6fbe03176d41a1da86cbfe24a16580e22aaad928d960d0";
        assert_eq!(rfc7616_response(alg), expected);
        let stored = ha1(alg, USER, REALM, PASSWORD);
        let header = rfc7616_header("SHA-512-256", expected);
        assert_eq!(check(&header, "GET", &stored), Verification::Ok);
    }

    #[test]
    fn sess_variants_combine_ha1_with_the_nonces() {
        let cases = [
            (Algorithm::Md5Sess, "e783283f46242139c486a698fec7211d"),
            (
                Algorithm::Sha256Sess,
                "2fd51b3a77ad75bad6afad6003e818d767133c46d9e2749e7f5232ae1ea3efd7",
            ),
            (
                Algorithm::Sha512_256Sess,
                "3f2a34f923c38b0fb26dce2fdfc2ce326c23cecf86fbb1444f3e51fbbc2cb92e",
            ),
        ];
        for (alg, expected) in cases {
            assert_eq!(rfc7616_response(alg), expected, "{alg}");
            // The store keeps the base HA1, which is the same for the -sess variant.
            let stored = ha1(alg.base(), USER, REALM, PASSWORD);
            assert_eq!(stored, ha1(alg, USER, REALM, PASSWORD));
            let header = rfc7616_header(alg.as_str(), expected);
            assert_eq!(check(&header, "GET", &stored), Verification::Ok, "{alg}");
            let other_cnonce = header.replace(CNONCE, "0a4f113b");
            assert_eq!(
                check(&other_cnonce, "GET", &stored),
                Verification::WrongResponse
            );
        }
    }

    #[test]
    fn rfc2069_form_without_qop() {
        let stored = ha1(Algorithm::Md5, USER, REALM, PASSWORD);
        let expected = "7b2cc3b30e75b4777ea31027084363fd";
        let computed = response(Algorithm::Md5, &stored, NONCE, None, None, None, "GET", URI);
        assert_eq!(computed, expected);
        let header = format!(
            "Digest username=\"{USER}\", realm=\"{REALM}\", nonce=\"{NONCE}\", uri=\"{URI}\", \
             response=\"{expected}\""
        );
        assert_eq!(check(&header, "GET", &stored), Verification::Ok);
        let sess = format!("{header}, algorithm=MD5-sess");
        assert!(matches!(
            check(&sess, "GET", &stored),
            Verification::Malformed(_)
        ));
        let stray = format!("{header}, cnonce=\"x\"");
        assert!(matches!(
            check(&stray, "GET", &stored),
            Verification::Malformed(_)
        ));
    }

    #[test]
    fn rejects_what_it_cannot_verify() {
        let stored = ha1(Algorithm::Md5, USER, REALM, PASSWORD);
        let good = rfc7616_header("MD5", "8ca523f5e9506fed4657c9700eebdbec");
        assert_eq!(
            check(&good.replace("MD5", "SHA-1"), "GET", &stored),
            Verification::UnsupportedAlgorithm
        );
        assert_eq!(
            check(&good.replace("qop=auth", "qop=auth-int"), "GET", &stored),
            Verification::UnsupportedQop
        );
        let regaut01 = "NoOneKnowsThisScheme opaque-data=here";
        assert_eq!(
            check(regaut01, "GET", &stored),
            Verification::Malformed("scheme is not Digest")
        );
        let drops = [
            ("username=\"Mufasa\",", "missing username"),
            ("realm=\"http-auth@example.org\",", "missing realm"),
            ("uri=\"/dir/index.html\",", "missing uri"),
            ("nc=00000001,", "missing nc"),
            ("qop=auth,", "nc and cnonce are only allowed with qop"),
        ];
        for (drop, why) in drops {
            assert_eq!(
                check(&good.replace(drop, ""), "GET", &stored),
                Verification::Malformed(why)
            );
        }
        let cases = [
            (
                good.replace("nc=00000001", "nc=1"),
                "nc is not 8 hex digits",
            ),
            (
                good.replace("8ca523f5e9506fed4657c9700eebdbec", "8ca523f5"),
                "response is not a hash of the algorithm",
            ),
            (
                good.replace(
                    "8ca523f5e9506fed4657c9700eebdbec",
                    "zca523f5e9506fed4657c9700eebdbec",
                ),
                "response is not a hash of the algorithm",
            ),
        ];
        for (header, why) in cases {
            assert_eq!(check(&header, "GET", &stored), Verification::Malformed(why));
        }
        assert!(matches!(
            check(&good, "GET", "not hex"),
            Verification::Malformed(_)
        ));
    }

    #[test]
    fn algorithm_names() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::parse(alg.as_str()), Some(alg));
            assert_eq!(
                Algorithm::parse(&alg.as_str().to_ascii_lowercase()),
                Some(alg)
            );
            assert_eq!(alg.to_string(), alg.as_str());
            assert_eq!(alg.is_sess(), alg.as_str().ends_with("-sess"));
            assert_eq!(ha1(alg, "u", "r", "p").len(), alg.hex_len());
            assert!(!alg.base().is_sess());
        }
        assert_eq!(Algorithm::from_param(None), Some(Algorithm::Md5));
        assert_eq!(
            Algorithm::from_param(Some("sha-512-256-SESS")),
            Some(Algorithm::Sha512_256Sess)
        );
        assert_eq!(Algorithm::from_param(Some("SHA-512/256")), None);
        assert_eq!(Algorithm::parse("AKAv1-MD5"), None);
        assert_eq!(Algorithm::parse(""), None);
        assert_eq!(nc_hex(26), "0000001a");
    }

    const NOW: u64 = 1_700_000_000;

    fn secret() -> NonceSecret {
        NonceSecret::new([0x42; 32])
    }

    #[test]
    fn nonces_are_valid_within_their_lifetime_then_stale() {
        let s = secret();
        let nonce = s.issue(NOW, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(nonce.len(), NONCE_LEN);
        assert!(nonce
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert!(nonce.starts_with(&format!("{NOW:016x}0102030405060708")));
        assert_eq!(s.check(&nonce, NOW, 300), NonceCheck::Valid);
        assert_eq!(s.check(&nonce, NOW + 300, 300), NonceCheck::Valid);
        assert_eq!(s.check(&nonce, NOW + 301, 300), NonceCheck::Stale);
        assert_eq!(s.check(&nonce, u64::MAX, 300), NonceCheck::Stale);
        // Another front-end whose clock is slightly behind still accepts it.
        assert_eq!(
            s.check(&nonce, NOW - MAX_CLOCK_SKEW_SECS, 300),
            NonceCheck::Valid
        );
        assert_eq!(
            s.check(&nonce, NOW - MAX_CLOCK_SKEW_SECS - 1, 300),
            NonceCheck::Invalid
        );
        assert_ne!(nonce, s.issue(NOW, [1, 2, 3, 4, 5, 6, 7, 9]));
    }

    #[test]
    fn forged_and_garbled_nonces_are_invalid() {
        let s = secret();
        let nonce = s.issue(NOW, [9; 8]);
        assert_eq!(
            NonceSecret::new([0x43; 32]).check(&nonce, NOW, 300),
            NonceCheck::Invalid
        );
        // Flip each hex digit in turn: time, salt and tag are all covered.
        for i in 0..nonce.len() {
            let mut bytes = nonce.clone().into_bytes();
            bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
            let tampered = String::from_utf8(bytes).expect("ascii");
            assert_eq!(
                s.check(&tampered, NOW, 300),
                NonceCheck::Invalid,
                "digit {i}"
            );
        }
        // Re-dating an old nonce to look fresh breaks the tag.
        let old = s.issue(NOW - 1000, [9; 8]);
        let redated = format!("{NOW:016x}{}", &old[16..]);
        assert_eq!(s.check(&redated, NOW, 300), NonceCheck::Invalid);
        for garbled in [
            "",
            "abc",
            &nonce[..NONCE_LEN - 1],
            &format!("{nonce}0"),
            &nonce.to_ascii_uppercase(),
            &format!("{}g", &nonce[..NONCE_LEN - 1]),
            &"\u{e9}".repeat(NONCE_LEN / 2),
        ] {
            assert_eq!(
                s.check(garbled, NOW, 300),
                NonceCheck::Invalid,
                "{garbled:?}"
            );
        }
        // Dated in the future beyond the skew, even with a good tag.
        let future = s.issue(NOW + MAX_CLOCK_SKEW_SECS + 1, [0; 8]);
        assert_eq!(s.check(&future, NOW, 300), NonceCheck::Invalid);
        assert_eq!(format!("{s:?}"), "NonceSecret { .. }");
    }

    #[test]
    fn padded_key_equals_hmac_of_the_short_key() {
        let key = [0x5a; 32];
        let mut direct = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any length");
        direct.update(b"x");
        let mut padded = NonceSecret::new(key).mac;
        padded.update(b"x");
        assert_eq!(
            direct.finalize().into_bytes(),
            padded.finalize().into_bytes()
        );
    }

    #[test]
    fn issued_nonce_round_trips_through_headers() {
        use crate::auth::CredentialsParams;
        use crate::auth::{format_challenge, format_credentials, Challenge, ChallengeParams};

        let s = secret();
        let nonce = s.issue(NOW, [7; 8]);
        for alg in Algorithm::ALL {
            let challenge = format_challenge(&ChallengeParams {
                realm: "example.com",
                nonce: &nonce,
                opaque: Some("xyz"),
                algorithm: alg,
                qop_auth: true,
                stale: false,
            });
            let c = Challenge::parse(&challenge).expect("parses");
            let alg_seen = Algorithm::from_param(c.algorithm()).expect("known");
            assert_eq!(alg_seen, alg);
            assert!(c.qop_options().any(|q| q == "auth"));
            let nonce_seen = c.nonce().expect("nonce");
            let stored = ha1(alg.base(), "alice", "example.com", "pw");
            let resp = response(
                alg,
                &stored,
                &nonce_seen,
                Some(&nc_hex(1)),
                Some("cn"),
                Some("auth"),
                "REGISTER",
                "sip:example.com",
            );
            let header = format_credentials(&CredentialsParams {
                username: "alice",
                realm: "example.com",
                nonce: &nonce_seen,
                uri: "sip:example.com",
                response: &resp,
                algorithm: alg,
                cnonce: Some("cn"),
                nc: Some(1),
                qop: Some("auth"),
                opaque: c.opaque().as_deref(),
            });
            let creds = Credentials::parse(&header).expect("parses");
            assert_eq!(
                s.check(&creds.nonce().expect("n"), NOW + 1, 60),
                NonceCheck::Valid
            );
            assert_eq!(
                verify(&creds, "REGISTER", &stored),
                Verification::Ok,
                "{alg}"
            );
            let wrong = ha1(alg.base(), "alice", "example.com", "pW");
            assert_eq!(
                verify(&creds, "REGISTER", &wrong),
                Verification::WrongResponse
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn check_and_verify_never_panic(value in ".{0,200}", now in proptest::prelude::any::<u64>()) {
            let s = secret();
            let _ = s.check(&value, now, 300);
            let stored = ha1(Algorithm::Md5, "u", "r", "p");
            if let Ok(c) = Credentials::parse(&value) {
                let _ = verify(&c, "GET", &stored);
            }
            let digestish = format!("Digest {value}");
            if let Ok(c) = Credentials::parse(&digestish) {
                let _ = verify(&c, "GET", &stored);
            }
        }
    }
}
