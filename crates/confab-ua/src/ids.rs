//! Fresh identifiers: Via branches, tags, Call-IDs and client nonces, from `rand`'s
//! thread-local CSPRNG. Branches also carry a process-wide counter, so that two client
//! transactions of one process never share a branch even if the generator repeats.

use std::sync::atomic::{AtomicU64, Ordering};

use confab_sip::headers::MAGIC_COOKIE;

static BRANCH_COUNTER: AtomicU64 = AtomicU64::new(0);

/// An RFC 3261 branch: the magic cookie and 24 hex digits.
pub(crate) fn branch() -> String {
    let n = BRANCH_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{MAGIC_COOKIE}{:016x}{:08x}",
        rand::random::<u64>(),
        n & 0xffff_ffff
    )
}

/// A From or To tag: 16 hex digits.
pub(crate) fn tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A Call-ID: 32 hex digits (128 random bits, so no host part is needed for uniqueness).
pub(crate) fn call_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A client nonce for digest `qop=auth`: 16 hex digits.
pub(crate) fn cnonce() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let b = branch();
        assert!(b.starts_with("z9hG4bK") && b.len() == 7 + 24);
        assert_ne!(branch(), b);
        assert_eq!(tag().len(), 16);
        assert_eq!(call_id().len(), 32);
        assert_ne!(cnonce(), cnonce());
    }
}
