//! Single-number and small headers: CSeq (RFC 3261 §20.16), Max-Forwards, Expires,
//! Min-Expires, Content-Length, Call-ID. Numbers over their range are errors, never wrapped
//! (RFC 4475 `scalar02`).

use crate::lex::{self, Cursor};
use crate::method::Method;

/// The CSeq header: sequence number and method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// The sequence number (RFC 3261: less than 2³¹).
    pub seq: u32,
    /// The method token as written.
    pub method: &'a str,
}

impl<'a> CSeq<'a> {
    /// Parses `1*DIGIT LWS Method`.
    pub fn parse(s: &'a str) -> Result<CSeq<'a>, &'static str> {
        let mut c = Cursor::new(s);
        c.skip_lws();
        let digits = c.take_while(|b| b.is_ascii_digit());
        if digits.is_empty() {
            return Err("expected sequence number");
        }
        let seq = lex::parse_decimal(digits, (1 << 31) - 1).ok_or("sequence number over 2^31")?;
        if !c.skip_lws() {
            return Err("expected whitespace after sequence number");
        }
        let method = c.token().ok_or("expected method")?;
        c.skip_lws();
        if !c.is_empty() {
            return Err("trailing text after method");
        }
        Ok(CSeq {
            seq: u32::try_from(seq).map_err(|_| "sequence number over 2^31")?,
            method,
        })
    }

    /// The method, classified.
    pub fn method_kind(&self) -> Method {
        Method::from_token(self.method)
    }
}

/// Parses delta-seconds (`Expires`, `Min-Expires`, `expires=`): a decimal up to 2³²−1.
pub(crate) fn delta_seconds(s: &str) -> Option<u32> {
    lex::parse_decimal(lex::trim_lws(s), u64::from(u32::MAX)).and_then(|v| u32::try_from(v).ok())
}

/// Parses Max-Forwards: a decimal 0–255.
pub(crate) fn max_forwards(s: &str) -> Option<u8> {
    lex::parse_decimal(lex::trim_lws(s), 255).and_then(|v| u8::try_from(v).ok())
}

/// Octets of a Call-ID `word` (RFC 3261 §25.1), as a table: every request's Call-ID is
/// checked.
static WORD: [bool; 256] = crate::lex::byte_table!(b => b.is_ascii_alphanumeric()
|| matches!(
    b,
    b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~' | b'(' | b')'
        | b'<' | b'>' | b':' | b'\\' | b'"' | b'/' | b'[' | b']' | b'?' | b'{' | b'}'
));

/// Checks a Call-ID: `word [ "@" word ]`, no whitespace.
pub(crate) fn call_id(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let (left, right) = match memchr::memchr(b'@', b) {
        Some(at) => (b.get(..at)?, Some(b.get(at + 1..)?)),
        None => (b, None),
    };
    let word = |w: &[u8]| !w.is_empty() && w.iter().all(|&c| WORD[usize::from(c)]);
    (word(left) && right.is_none_or(word)).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cseq() {
        assert_eq!(
            CSeq::parse("0009\r\n  INVITE"),
            Ok(CSeq {
                seq: 9,
                method: "INVITE"
            })
        );
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        assert!(CSeq::parse("2147483648 REGISTER").is_err());
        assert!(CSeq::parse("2147483647 REGISTER").is_ok());
        assert!(CSeq::parse("1INVITE").is_err());
        assert!(CSeq::parse("1 INVITE x").is_err());
        assert!(CSeq::parse("-1 INVITE").is_err());
    }

    #[test]
    fn scalars() {
        assert_eq!(max_forwards("0068"), Some(68));
        assert_eq!(max_forwards("300"), None);
        assert_eq!(delta_seconds("4294967295"), Some(u32::MAX));
        assert_eq!(delta_seconds("10000000000000000000000"), None);
        assert_eq!(
            call_id("a84b4c76e66710@pc33.atlanta.com"),
            Some("a84b4c76e66710@pc33.atlanta.com")
        );
        assert_eq!(call_id("a b"), None);
        assert_eq!(call_id(""), None);
    }
}
