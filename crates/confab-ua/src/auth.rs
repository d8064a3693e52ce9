//! The client side of digest authentication (RFC 3261 §22, RFC 7616, RFC 8760): choosing a
//! challenge, answering it, counting nonce uses, and deciding when credentials have been
//! refused. The arithmetic and header syntax are `confab_sip`'s ([`confab_sip::digest`],
//! [`confab_sip::auth`]); this module owns the policy.
//!
//! * **Choice.** Of the challenges in a 401 (`WWW-Authenticate`) or 407
//!   (`Proxy-Authenticate`), the strongest algorithm this user agent can answer wins
//!   (SHA-512-256, SHA-256, MD5, each before its `-sess` variant), provided its `qop` is
//!   absent or offers `auth` (`auth-int` is not supported).
//! * **Reuse.** The last challenge of each kind is cached with its nonce count, so that later
//!   requests answer it before being asked (REGISTER with the `WWW-Authenticate` one, every
//!   other method with the `Proxy-Authenticate` one), each use with the next `nc` and a fresh
//!   `cnonce`. A server that no longer accepts the nonce challenges again, and that
//!   challenge is answered as usual.
//! * **Refusal.** Within one [`Exchange`] (one request and its retries), a challenge of a
//!   kind already answered means the credentials were refused ([`UaError::AuthRejected`]),
//!   except once when it says `stale=true`: the nonce expired but the credentials were right.

use confab_sip::auth::{format_credentials, Challenge, CredentialsParams};
use confab_sip::digest::{self, Algorithm};
use confab_sip::Message;

use crate::config::Secret;
use crate::error::UaError;
use crate::ids;

/// Most requests one exchange sends before giving up.
const MAX_ROUNDS: u8 = 5;

/// Which header pair a challenge came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// 401: `WWW-Authenticate`, answered in `Authorization`.
    Www,
    /// 407: `Proxy-Authenticate`, answered in `Proxy-Authorization`.
    Proxy,
}

impl Kind {
    fn index(self) -> usize {
        match self {
            Kind::Www => 0,
            Kind::Proxy => 1,
        }
    }

    fn header(self) -> &'static str {
        match self {
            Kind::Www => "Authorization",
            Kind::Proxy => "Proxy-Authorization",
        }
    }

    fn of_status(status: u16) -> Option<Kind> {
        match status {
            401 => Some(Kind::Www),
            407 => Some(Kind::Proxy),
            _ => None,
        }
    }
}

/// A challenge, owned.
#[derive(Debug, Clone)]
struct Cached {
    realm: String,
    nonce: String,
    opaque: Option<String>,
    algorithm: Algorithm,
    qop_auth: bool,
    /// Uses of this nonce so far.
    nc: u32,
}

/// Credentials and cached challenges of one user agent.
#[derive(Debug)]
pub(crate) struct Authenticator {
    username: String,
    secret: Option<Secret>,
    cache: [Option<Cached>; 2],
}

/// One request and its retries.
#[derive(Debug, Default)]
pub(crate) struct Exchange {
    /// Kinds whose credentials the next attempt carries.
    kinds: Vec<Kind>,
    answered: [bool; 2],
    stale_retried: [bool; 2],
    rounds: u8,
}

impl Authenticator {
    pub(crate) fn new(username: String, secret: Option<Secret>) -> Self {
        Authenticator {
            username,
            secret,
            cache: [None, None],
        }
    }

    /// Starts an exchange for `method`, carrying cached credentials where this method
    /// uses them.
    pub(crate) fn begin(&self, method: &str) -> Exchange {
        let kind = if method == "REGISTER" {
            Kind::Www
        } else {
            Kind::Proxy
        };
        let mut ex = Exchange::default();
        if self.secret.is_some() && self.cache[kind.index()].is_some() {
            ex.kinds.push(kind);
        }
        ex
    }

    /// An exchange that answers only challenges, never preemptively (in-dialog requests).
    pub(crate) fn begin_plain(&self) -> Exchange {
        Exchange::default()
    }

    /// The authorization headers for the next attempt of `method` to `uri`.
    pub(crate) fn headers(
        &mut self,
        ex: &Exchange,
        method: &str,
        uri: &str,
    ) -> Vec<(&'static str, String)> {
        let Some(secret) = &self.secret else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(ex.kinds.len());
        for kind in &ex.kinds {
            let Some(cached) = self.cache[kind.index()].as_mut() else {
                continue;
            };
            if let Some(value) = answer(cached, &self.username, secret, method, uri) {
                out.push((kind.header(), value));
            }
        }
        out
    }

    /// Looks at a final response: `Ok(true)` when the request should be sent again with
    /// [`Authenticator::headers`], `Ok(false)` when the response is the answer.
    pub(crate) fn on_final(
        &mut self,
        ex: &mut Exchange,
        response: &Message,
    ) -> Result<bool, UaError> {
        let status = response.status().unwrap_or_default();
        let Some(kind) = Kind::of_status(status) else {
            return Ok(false);
        };
        let Some(secret) = &self.secret else {
            return Err(UaError::NoCredentials { status });
        };
        let i = kind.index();
        let Some(challenge) = pick(response, kind, secret) else {
            return Err(UaError::AuthUnsupported {
                status,
                why: "no Digest challenge with an algorithm and qop this user agent supports",
            });
        };
        ex.rounds += 1;
        if ex.answered[i] {
            let stale_once = challenge.1 && !ex.stale_retried[i];
            if !stale_once || ex.rounds >= MAX_ROUNDS {
                self.cache[i] = None;
                return Err(UaError::AuthRejected { status });
            }
            ex.stale_retried[i] = true;
        }
        ex.answered[i] = true;
        if !ex.kinds.contains(&kind) {
            ex.kinds.push(kind);
        }
        self.cache[i] = Some(challenge.0);
        Ok(true)
    }
}

/// The best challenge of `kind` in `response` that `secret` can answer, and its `stale`.
fn pick(response: &Message, kind: Kind, secret: &Secret) -> Option<(Cached, bool)> {
    let challenges: Vec<Challenge<'_>> = match kind {
        Kind::Www => response.www_authenticate().filter_map(Result::ok).collect(),
        Kind::Proxy => response
            .proxy_authenticate()
            .filter_map(Result::ok)
            .collect(),
    };
    let usable = |c: &&Challenge<'_>| -> Option<(Algorithm, bool)> {
        if !c.is_digest() {
            return None;
        }
        let alg = Algorithm::from_param(c.algorithm())?;
        let has_qop = c.param("qop").is_some();
        let qop_auth = c.qop_options().any(|q| q.eq_ignore_ascii_case("auth"));
        if has_qop && !qop_auth {
            return None;
        }
        // -sess needs a cnonce, which only qop carries.
        if alg.is_sess() && !qop_auth {
            return None;
        }
        // Can we produce HA1 for it? (Any realm: the check is on the algorithm.)
        secret.ha1(alg, "", "")?;
        c.realm()?;
        c.nonce()?;
        Some((alg, qop_auth))
    };
    let (best, (algorithm, qop_auth)) = Algorithm::ALL.iter().find_map(|want| {
        challenges
            .iter()
            .find_map(|c| usable(&c).filter(|(a, _)| a == want).map(|u| (c, u)))
    })?;
    Some((
        Cached {
            realm: best.realm()?.into_owned(),
            nonce: best.nonce()?.into_owned(),
            opaque: best.opaque().map(|o| o.into_owned()),
            algorithm,
            qop_auth,
            nc: 0,
        },
        best.stale(),
    ))
}

/// The credentials answering `c` for one request, counting the use.
fn answer(
    c: &mut Cached,
    username: &str,
    secret: &Secret,
    method: &str,
    uri: &str,
) -> Option<String> {
    let ha1 = secret.ha1(c.algorithm, username, &c.realm)?;
    c.nc = c.nc.saturating_add(1);
    let (nc, cnonce, qop) = if c.qop_auth {
        (
            Some(digest::nc_hex(c.nc)),
            Some(ids::cnonce()),
            Some("auth"),
        )
    } else {
        (None, None, None)
    };
    let response = digest::response(
        c.algorithm,
        &ha1,
        &c.nonce,
        nc.as_deref(),
        cnonce.as_deref(),
        qop,
        method,
        uri,
    );
    Some(format_credentials(&CredentialsParams {
        username,
        realm: &c.realm,
        nonce: &c.nonce,
        uri,
        response: &response,
        algorithm: c.algorithm,
        cnonce: cnonce.as_deref(),
        nc: qop.map(|_| c.nc),
        qop,
        opaque: c.opaque.as_deref(),
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::Bytes;
    use confab_sip::auth::Credentials;
    use confab_sip::digest::Verification;

    /// A 401 (WWW-Authenticate) or 407 (Proxy-Authenticate) carrying `challenges`; the load
    /// generator's tests use it too.
    pub(crate) fn challenge_response(challenges: &[&str], status: u16) -> Message {
        let name = if status == 401 {
            "WWW-Authenticate"
        } else {
            "Proxy-Authenticate"
        };
        let mut text = format!(
            "SIP/2.0 {status} Unauthorized\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
             From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n"
        );
        for c in challenges {
            text.push_str(&format!("{name}: {c}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        Message::parse(Bytes::from(text)).expect("parses")
    }

    #[test]
    fn picks_strongest_and_counts() {
        let resp = challenge_response(
            &[
                "Digest realm=\"r\", nonce=\"n1\", algorithm=MD5, qop=\"auth\"",
                "Digest realm=\"r\", nonce=\"n1\", algorithm=SHA-256, qop=\"auth\"",
            ],
            401,
        );
        let secret = Secret::Password("pw".into());
        let mut a = Authenticator::new("alice".into(), Some(secret));
        let mut ex = a.begin("REGISTER");
        assert!(ex.kinds.is_empty());
        assert!(a.on_final(&mut ex, &resp).expect("answerable"));
        let h = a.headers(&ex, "REGISTER", "sip:r");
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].0, "Authorization");
        let creds = Credentials::parse(&h[0].1).expect("parses");
        assert_eq!(creds.algorithm(), Some("SHA-256"));
        assert_eq!(creds.nc(), Some(1));
        let ha1 = digest::ha1(Algorithm::Sha256, "alice", "r", "pw");
        assert_eq!(digest::verify(&creds, "REGISTER", &ha1), Verification::Ok);

        // The next exchange answers before being asked, with the next nonce count.
        let ex2 = a.begin("REGISTER");
        let h = a.headers(&ex2, "REGISTER", "sip:r");
        let creds = Credentials::parse(&h[0].1).expect("parses");
        assert_eq!(creds.nc(), Some(2));
        // Other methods wait for a 407.
        assert!(a.begin("MESSAGE").kinds.is_empty());
    }

    #[test]
    fn stale_once_then_rejected() {
        let fresh = challenge_response(&["Digest realm=\"r\", nonce=\"n\", qop=\"auth\""], 401);
        let stale = challenge_response(
            &["Digest realm=\"r\", nonce=\"m\", qop=\"auth\", stale=true"],
            401,
        );
        let mut a = Authenticator::new("u".into(), Some(Secret::Password("p".into())));
        let mut ex = a.begin("REGISTER");
        assert!(a.on_final(&mut ex, &fresh).expect("first"));
        assert!(a.on_final(&mut ex, &stale).expect("stale once"));
        assert!(matches!(
            a.on_final(&mut ex, &stale),
            Err(UaError::AuthRejected { status: 401 })
        ));
        // The refused challenge is forgotten.
        assert!(a.begin("REGISTER").kinds.is_empty());
    }

    #[test]
    fn unsupported_and_missing_secret() {
        let intonly =
            challenge_response(&["Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\""], 407);
        let mut a = Authenticator::new("u".into(), Some(Secret::Password("p".into())));
        let mut ex = a.begin("MESSAGE");
        assert!(matches!(
            a.on_final(&mut ex, &intonly),
            Err(UaError::AuthUnsupported { status: 407, .. })
        ));
        let ha1_md5 = Secret::Ha1(vec![(Algorithm::Md5, "0".repeat(32))]);
        let sha = challenge_response(&["Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256"], 407);
        let mut a = Authenticator::new("u".into(), Some(ha1_md5));
        assert!(a.on_final(&mut a.begin("MESSAGE"), &sha).is_err());
        let mut none = Authenticator::new("u".into(), None);
        assert!(matches!(
            none.on_final(&mut Exchange::default(), &sha),
            Err(UaError::NoCredentials { status: 407 })
        ));
    }
}
