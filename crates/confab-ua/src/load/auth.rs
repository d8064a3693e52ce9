//! Digest authentication as the simulated users do it (RFC 3261 §22, RFC 7616, RFC 8760):
//! which challenge of a 401 or 407 to answer, the credentials for one request, nonce counts,
//! when a challenge means the credentials were refused, and the HA1 each user computes once.
//! The arithmetic and header syntax are `confab_sip`'s ([`confab_sip::digest`],
//! [`confab_sip::auth`]).
//!
//! * **Choice**: the first challenge, in the order the server sent them, that is Digest with
//!   an algorithm `confab_sip` computes, a realm and a nonce, and either no `qop` or one
//!   offering `auth` (`auth-int` is not supported; `-sess` needs `qop`).
//! * **Refusal**: within one operation, a challenge after one already answered there means
//!   the credentials were refused — except once when it says `stale=true`. A challenge to
//!   credentials sent preemptively (a cached nonce) is answered: the server may have
//!   forgotten the nonce.

use confab_sip::auth::{format_credentials, Challenge, CredentialsParams};
use confab_sip::digest::{self, Algorithm};
use confab_sip::Message;

/// A challenge, owned, with the uses of its nonce so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cached {
    pub(crate) realm: Box<str>,
    pub(crate) nonce: Box<str>,
    pub(crate) opaque: Option<Box<str>>,
    pub(crate) algorithm: Algorithm,
    pub(crate) qop_auth: bool,
    /// Nonce count of the last use.
    pub(crate) nc: u32,
}

/// The challenge to answer among those of a 401 (`WWW-Authenticate`) or 407
/// (`Proxy-Authenticate`) response, and whether it says `stale=true`.
pub(crate) fn pick(response: &Message, status: u16) -> Option<(Cached, bool)> {
    let usable = |c: &Challenge<'_>| -> Option<(Cached, bool)> {
        if !c.is_digest() {
            return None;
        }
        let algorithm = Algorithm::from_param(c.algorithm())?;
        let offers_qop = c.param("qop").is_some();
        let qop_auth = c.qop_options().any(|q| q.eq_ignore_ascii_case("auth"));
        if !qop_auth && (offers_qop || algorithm.is_sess()) {
            return None;
        }
        Some((
            Cached {
                realm: c.realm()?.into(),
                nonce: c.nonce()?.into(),
                opaque: c.opaque().map(|o| o.into()),
                algorithm,
                qop_auth,
                nc: 0,
            },
            c.stale(),
        ))
    };
    match status {
        401 => response
            .www_authenticate()
            .filter_map(Result::ok)
            .find_map(|c| usable(&c)),
        407 => response
            .proxy_authenticate()
            .filter_map(Result::ok)
            .find_map(|c| usable(&c)),
        _ => None,
    }
}

/// The challenges one operation has met.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Round {
    answered: bool,
    stale_answered: bool,
}

impl Round {
    /// True when a challenge (`stale` or not) is to be answered; false when it means the
    /// credentials were refused.
    pub(crate) fn answer(&mut self, stale: bool) -> bool {
        if !self.answered {
            self.answered = true;
            true
        } else if stale && !self.stale_answered {
            self.stale_answered = true;
            true
        } else {
            false
        }
    }
}

/// A user's HA1 for one base algorithm and realm, kept inline (no allocation per user).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ha1 {
    algorithm: Algorithm,
    realm: u16,
    len: u8,
    hex: [u8; 64],
}

impl Ha1 {
    /// HA1 = H(user:realm:password) for the base of `algorithm`; `realm_id` names the realm
    /// in the worker's list of realms.
    pub(crate) fn compute(
        algorithm: Algorithm,
        realm_id: u16,
        user: &str,
        realm: &str,
        password: &str,
    ) -> Ha1 {
        let base = algorithm.base();
        let text = digest::ha1(base, user, realm, password);
        let mut hex = [0u8; 64];
        let len = text.len().min(64);
        hex[..len].copy_from_slice(&text.as_bytes()[..len]);
        Ha1 {
            algorithm: base,
            realm: realm_id,
            len: len as u8,
            hex,
        }
    }

    /// True when this HA1 answers `algorithm` in realm `realm_id`.
    pub(crate) fn fits(&self, algorithm: Algorithm, realm_id: u16) -> bool {
        self.algorithm == algorithm.base() && self.realm == realm_id
    }

    /// The HA1 in lowercase hex.
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.hex[..usize::from(self.len)]).unwrap_or_default()
    }
}

/// The credentials answering `c` for one request (`method` to digest-uri `uri`), counting
/// the nonce's use; `cnonce` is the client nonce to use with `qop=auth`.
pub(crate) fn credentials(
    c: &mut Cached,
    username: &str,
    ha1: &str,
    method: &str,
    uri: &str,
    cnonce: &str,
) -> String {
    c.nc = c.nc.saturating_add(1);
    let nc = c.qop_auth.then(|| digest::nc_hex(c.nc));
    let (cnonce, qop) = if c.qop_auth {
        (Some(cnonce), Some("auth"))
    } else {
        (None, None)
    };
    let response = digest::response(
        c.algorithm,
        ha1,
        &c.nonce,
        nc.as_deref(),
        cnonce,
        qop,
        method,
        uri,
    );
    format_credentials(&CredentialsParams {
        username,
        realm: &c.realm,
        nonce: &c.nonce,
        uri,
        response: &response,
        algorithm: c.algorithm,
        cnonce,
        nc: qop.map(|_| c.nc),
        qop,
        opaque: c.opaque.as_deref(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::tests::challenge_response;
    use confab_sip::auth::Credentials;
    use confab_sip::digest::Verification;

    #[test]
    fn the_first_usable_challenge_wins_in_the_servers_order() {
        let r = challenge_response(
            &[
                "Basic realm=\"r\"",
                "Digest realm=\"r\", nonce=\"n0\", algorithm=SHA-256, qop=\"auth-int\"",
                "Digest realm=\"r\", nonce=\"n1\", algorithm=MD5, qop=\"auth,auth-int\"",
                "Digest realm=\"r\", nonce=\"n2\", algorithm=SHA-256, qop=\"auth\"",
            ],
            407,
        );
        let (c, stale) = pick(&r, 407).expect("usable");
        assert_eq!(
            (&*c.nonce, c.algorithm, c.qop_auth, stale),
            ("n1", Algorithm::Md5, true, false)
        );
        // The other kind's header is not looked at.
        assert!(pick(&r, 401).is_none());

        let r = challenge_response(&[
                "Digest realm=\"r\", nonce=\"s\", algorithm=SHA-256, qop=\"auth\", stale=true, opaque=\"o\"",
                "Digest realm=\"r\", nonce=\"m\", algorithm=MD5, qop=\"auth\"",
            ], 401);
        let (c, stale) = pick(&r, 401).expect("usable");
        assert_eq!(
            (&*c.nonce, c.algorithm, stale),
            ("s", Algorithm::Sha256, true)
        );
        assert_eq!(c.opaque.as_deref(), Some("o"));

        let none = challenge_response(
            &[
                "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-999",
                "Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess",
                "Digest nonce=\"n\", qop=\"auth\"",
            ],
            407,
        );
        assert!(pick(&none, 407).is_none());
    }

    #[test]
    fn a_second_challenge_is_a_refusal_unless_stale_once() {
        let mut r = Round::default();
        assert!(r.answer(false), "first challenge of the operation");
        assert!(!r.answer(false), "credentials refused");
        let mut r = Round::default();
        assert!(r.answer(false));
        assert!(r.answer(true), "stale once");
        assert!(!r.answer(true), "stale twice");
        let mut r = Round::default();
        assert!(r.answer(true), "a stale cached nonce");
        assert!(!r.answer(false));
    }

    /// RFC 2617 §3.5: Mufasa's MD5 request digest.
    #[test]
    fn md5_credentials_match_rfc_2617() {
        let ha1 = Ha1::compute(
            Algorithm::Md5,
            0,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        assert_eq!(ha1.as_str(), "939e7578ed9e3c518a452acee763bce9");
        assert!(ha1.fits(Algorithm::Md5, 0) && !ha1.fits(Algorithm::Sha256, 0));
        assert!(ha1.fits(Algorithm::Md5Sess, 0) && !ha1.fits(Algorithm::Md5, 1));
        let mut c = Cached {
            realm: "testrealm@host.com".into(),
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
            opaque: Some("5ccc069c403ebaf9f0171e9517f40e41".into()),
            algorithm: Algorithm::Md5,
            qop_auth: true,
            nc: 0,
        };
        let value = credentials(
            &mut c,
            "Mufasa",
            ha1.as_str(),
            "GET",
            "/dir/index.html",
            "0a4f113b",
        );
        let creds = Credentials::parse(&value).expect("parses");
        assert_eq!(
            creds.response().as_deref(),
            Some("6629fae49393a05397450978507c4ef1")
        );
        assert_eq!(creds.nc(), Some(1));
        assert_eq!(creds.qop(), Some("auth"));
        assert_eq!(creds.cnonce().as_deref(), Some("0a4f113b"));
        assert_eq!(
            creds.opaque().as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
        assert_eq!(creds.uri().as_deref(), Some("/dir/index.html"));
        // The next use counts up.
        let again = credentials(
            &mut c,
            "Mufasa",
            ha1.as_str(),
            "GET",
            "/dir/index.html",
            "x",
        );
        assert_eq!(Credentials::parse(&again).expect("parses").nc(), Some(2));
    }

    /// RFC 7616 §3.9.1: the same user with SHA-256.
    #[test]
    fn sha256_credentials_match_rfc_7616() {
        let realm = "http-auth@example.org";
        let ha1 = Ha1::compute(Algorithm::Sha256, 3, "Mufasa", realm, "Circle of Life");
        assert_eq!(ha1.as_str().len(), 64);
        let mut c = Cached {
            realm: realm.into(),
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v".into(),
            opaque: Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS".into()),
            algorithm: Algorithm::Sha256,
            qop_auth: true,
            nc: 0,
        };
        let value = credentials(
            &mut c,
            "Mufasa",
            ha1.as_str(),
            "GET",
            "/dir/index.html",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        );
        let creds = Credentials::parse(&value).expect("parses");
        assert_eq!(
            creds.response().as_deref(),
            Some("753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")
        );
        assert_eq!(creds.algorithm(), Some("SHA-256"));
        assert_eq!(
            digest::verify(&creds, "GET", ha1.as_str()),
            Verification::Ok
        );
    }

    #[test]
    fn without_qop_the_rfc_2069_form_is_sent() {
        let ha1 = Ha1::compute(Algorithm::Md5, 0, "u", "r", "p");
        let mut c = Cached {
            realm: "r".into(),
            nonce: "n".into(),
            opaque: None,
            algorithm: Algorithm::Md5,
            qop_auth: false,
            nc: 0,
        };
        let value = credentials(&mut c, "u", ha1.as_str(), "REGISTER", "sip:r", "unused");
        let creds = Credentials::parse(&value).expect("parses");
        assert!(creds.qop().is_none() && creds.cnonce().is_none() && creds.param("nc").is_none());
        assert_eq!(
            digest::verify(&creds, "REGISTER", ha1.as_str()),
            Verification::Ok
        );
    }
}
