//! Counters of SIP traffic for `/metrics`: requests that started a server transaction, by
//! method, and responses sent in server transactions (the core's own answers and the ones
//! the proxy relays), by method and status code. Lock-free: one atomic per method, and per
//! method and code, counted by the transaction driver on paths it takes anyway.

use std::sync::atomic::{AtomicU64, Ordering};

/// The methods counted by name; everything else is `other`.
pub const METHODS: [&str; 15] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "REGISTER",
    "OPTIONS",
    "MESSAGE",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "INFO",
    "UPDATE",
    "REFER",
    "PRACK",
    "other",
];

const CODES: usize = 600; // 100 … 699

/// The counters.
#[derive(Debug)]
pub struct SipCounters {
    requests: [AtomicU64; METHODS.len()],
    responses: Box<[AtomicU64]>,
}

impl Default for SipCounters {
    fn default() -> Self {
        SipCounters {
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            responses: (0..METHODS.len() * CODES)
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }
}

/// A method as the counters know it: its index in [`METHODS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Method(usize);

impl Method {
    /// The method named `name` (`None`: unreadable), `other` when not in [`METHODS`].
    pub fn of(name: Option<&str>) -> Method {
        let other = METHODS.len() - 1;
        Method(
            name.and_then(|m| METHODS[..other].iter().position(|n| *n == m))
                .unwrap_or(other),
        )
    }
}

impl SipCounters {
    /// Counts a request of `method`.
    pub fn request(&self, method: Method) {
        self.requests[method.0].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a response with `status` to a request of `method`; a status outside 100–699 is
    /// not counted.
    pub fn response(&self, method: Method, status: u16) {
        let Some(code) = usize::from(status).checked_sub(100).filter(|c| *c < CODES) else {
            return;
        };
        self.responses[method.0 * CODES + code].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts the response in `bytes` (its status line) to a request of `method`.
    pub fn response_bytes(&self, method: Method, bytes: &[u8]) {
        if let Some(status) = status_of(bytes) {
            self.response(method, status);
        }
    }

    /// Requests by method, those counted at least once.
    pub fn requests(&self) -> Vec<(&'static str, u64)> {
        METHODS
            .iter()
            .zip(&self.requests)
            .map(|(m, n)| (*m, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Responses by method and status code, those counted at least once.
    pub fn responses(&self) -> Vec<(&'static str, u16, u64)> {
        let mut out = Vec::new();
        for (i, n) in self.responses.iter().enumerate() {
            let n = n.load(Ordering::Relaxed);
            if n > 0 {
                // i < METHODS.len() * CODES, so the code fits in a u16.
                let code = u16::try_from(i % CODES + 100).unwrap_or(0);
                out.push((METHODS[i / CODES], code, n));
            }
        }
        out
    }
}

/// The status code of a response as every builder writes it: `SIP/2.0 NNN `.
fn status_of(bytes: &[u8]) -> Option<u16> {
    let code = bytes.strip_prefix(b"SIP/2.0 ")?.get(..3)?;
    std::str::from_utf8(code).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_by_method_and_code() {
        let c = SipCounters::default();
        let m = |name| Method::of(Some(name));
        c.request(m("INVITE"));
        c.request(m("INVITE"));
        c.request(m("FOO"));
        c.request(Method::of(None));
        c.response(m("REGISTER"), 401);
        c.response_bytes(m("REGISTER"), b"SIP/2.0 200 OK\r\n");
        c.response_bytes(m("REGISTER"), b"SIP/2.0 200 OK\r\n");
        c.response(m("MESSAGE"), 99);
        c.response(m("MESSAGE"), 700);
        c.response_bytes(m("MESSAGE"), b"garbage");
        assert_eq!(c.requests(), vec![("INVITE", 2), ("other", 2)]);
        assert_eq!(
            c.responses(),
            vec![("REGISTER", 200, 2), ("REGISTER", 401, 1)]
        );
    }
}
