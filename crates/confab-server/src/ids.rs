//! Random identifiers the front-end writes into SIP messages — digest nonce salts, tags,
//! Via branches, Call-IDs — and the clock readings in Unix seconds that nonces and stored
//! records use. Randomness comes from the operating system (`getrandom`); should it ever
//! fail, a keyed hash of a counter and the time is used instead, so that no request fails
//! for it (identifiers need uniqueness; only the nonce key needs secrecy, and it is drawn
//! once at start, see [`random_key`]).

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use confab_sip::headers::MAGIC_COOKIE;

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn fallback_word() -> u64 {
    static KEY: OnceLock<RandomState> = OnceLock::new();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    KEY.get_or_init(RandomState::new).hash_one((n, nanos))
}

/// `N` random bytes.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    if getrandom::fill(&mut out).is_err() {
        for chunk in out.chunks_mut(8) {
            let word = fallback_word().to_le_bytes();
            for (d, s) in chunk.iter_mut().zip(word) {
                *d = s;
            }
        }
    }
    out
}

/// A 32-byte key for [`confab_sip::digest::NonceSecret`].
pub fn random_key() -> [u8; 32] {
    random_bytes()
}

/// 16 lowercase hex digits of randomness.
pub fn token() -> String {
    format!("{:016x}", u64::from_le_bytes(random_bytes()))
}

/// A random number.
pub fn random_u32() -> u32 {
    u32::from_le_bytes(random_bytes())
}

/// A fresh RFC 3261 branch: the magic cookie and 16 random hex digits.
pub fn branch() -> String {
    format!("{MAGIC_COOKIE}{}", token())
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_differ() {
        assert_ne!(token(), token());
        let b = branch();
        assert!(b.starts_with("z9hG4bK") && b.len() == 23, "{b}");
        assert_ne!(random_key(), random_key());
        assert!(unix_now() > 1_600_000_000);
    }
}
