//! Passwords and the credentials made from them. A password lives only as long as the
//! operation that sets it: the store receives the digest HA1 values
//! `H(user:realm:password)` for each algorithm in [`ALGORITHMS`], with the user's domain as
//! the realm, and never the password.

use std::fmt;

use confab_store::{Address, Credential};
use confab_ua::credentials::{ha1, Algorithm};

use crate::OpsError;

/// The digest algorithms a password is stored under, strongest first: SHA-512-256 and SHA-256
/// (RFC 7616, RFC 8760) for clients that offer them, MD5 for the many that only speak RFC 3261.
pub const ALGORITHMS: [Algorithm; 3] = [Algorithm::Sha512_256, Algorithm::Sha256, Algorithm::Md5];

/// Fewer characters than this is accepted with a warning.
pub const RECOMMENDED_LENGTH: usize = 8;

/// The longest password accepted, in characters.
pub const MAX_LENGTH: usize = 1024;

/// A password an operator gave, checked. It never prints itself.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Checks a password: not empty, at most [`MAX_LENGTH`] characters, no control characters
    /// (no SIP client lets its user type a line break or a tab into a password field, so one
    /// here is a mistake in how the password was passed).
    pub fn new(text: String) -> Result<Password, OpsError> {
        let refuse = |reason| Err(OpsError::Password { reason });
        if text.is_empty() {
            return refuse("it is empty; give at least one character (8 or more recommended)");
        }
        if text.chars().count() > MAX_LENGTH {
            return refuse("it is longer than 1024 characters");
        }
        if text.chars().any(char::is_control) {
            return refuse(
                "it contains a line break, tab or other control character; give it on one line \
                 (with --password-stdin, one trailing line break is removed)",
            );
        }
        Ok(Password(text))
    }

    /// A warning for a password that is accepted but weak, to show the operator.
    pub fn warning(&self) -> Option<String> {
        let length = self.0.chars().count();
        (length < RECOMMENDED_LENGTH).then(|| {
            format!(
                "the password has only {length} character(s); {RECOMMENDED_LENGTH} or more are \
                 recommended, since anyone who can reach the server can try to guess it"
            )
        })
    }

    /// The credentials to store for `address`: one HA1 per algorithm of [`ALGORITHMS`], with
    /// the user part as the digest user name and the domain as the realm.
    pub(crate) fn credentials(&self, address: &Address) -> Vec<Credential> {
        ALGORITHMS
            .iter()
            .map(|&algorithm| Credential {
                realm: address.domain().to_owned(),
                algorithm: algorithm.as_str().to_owned(),
                ha1: ha1(algorithm, address.user(), address.domain(), &self.0),
            })
            .collect()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(…)")
    }
}
