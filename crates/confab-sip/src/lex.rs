//! Low-level lexing shared by the typed header parsers: a cursor over a header value,
//! SIP whitespace (which, inside a folded header value, includes CR and LF), tokens,
//! quoted strings and top-level comma splitting.
//!
//! Everything here borrows from its input and never allocates.

/// Builds a 256-entry octet-class table at compile time: `byte_table!(b => predicate)`.
macro_rules! byte_table {
    ($b:ident => $e:expr) => {{
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            let $b = i as u8;
            t[i] = $e;
            i += 1;
        }
        t
    }};
}
pub(crate) use byte_table;

/// RFC 3261 `token` characters, as a table: the parser asks this for every octet of every
/// header name.
static TOKEN: [bool; 256] = byte_table!(b => b.is_ascii_alphanumeric()
    || matches!(b, b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'));

/// RFC 3261 `token` characters.
#[inline(always)]
pub(crate) fn is_token_byte(b: u8) -> bool {
    TOKEN[b as usize]
}

/// Whitespace inside a header value: SP and HTAB, and the CR LF of a folded line
/// (the message parser guarantees that a CR LF inside a value is followed by SP or HTAB).
#[inline]
pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// True if every byte of `s` is a token character and `s` is not empty.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// Trims SIP linear whitespace on both ends.
pub(crate) fn trim_lws(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii() && is_lws(c as u8))
}

/// A forward-only cursor over a header value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }

    /// The text between two positions previously returned by [`Cursor::pos`].
    pub(crate) fn slice(&self, from: usize, to: usize) -> &'a str {
        self.s.get(from..to).unwrap_or("")
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.s.len()
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    pub(crate) fn bump(&mut self) {
        if self.pos < self.s.len() {
            self.pos += 1;
        }
    }

    /// Skips linear whitespace; returns whether any was skipped.
    pub(crate) fn skip_lws(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(b) if is_lws(b)) {
            self.pos += 1;
        }
        self.pos != start
    }

    /// Consumes `b` if it is next.
    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Skips whitespace, then consumes `b` (and whitespace after it) if it is next.
    pub(crate) fn eat_sep(&mut self, b: u8) -> bool {
        let save = self.pos;
        self.skip_lws();
        if self.eat(b) {
            self.skip_lws();
            true
        } else {
            self.pos = save;
            false
        }
    }

    /// Consumes bytes while `pred` holds (ASCII predicates only, so slicing stays on
    /// character boundaries).
    pub(crate) fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        let rest = self.s.as_bytes().get(start..).unwrap_or_default();
        let n = rest
            .iter()
            .position(|&b| !(b.is_ascii() && pred(b)))
            .unwrap_or(rest.len());
        self.pos = start + n;
        self.slice(start, self.pos)
    }

    /// Moves the cursor `n` octets forward (to the end at most). Callers advance over ASCII
    /// they have just matched, so the position stays on a character boundary.
    pub(crate) fn advance(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.s.len());
    }

    /// Consumes a non-empty token.
    pub(crate) fn token(&mut self) -> Option<&'a str> {
        let t = self.take_while(is_token_byte);
        (!t.is_empty()).then_some(t)
    }

    /// Consumes a quoted string starting at the cursor and returns its contents without the
    /// quotes, escapes left in place. `None` (cursor unchanged) when unterminated or not
    /// starting with a quote.
    pub(crate) fn quoted_string(&mut self) -> Option<&'a str> {
        if self.peek() != Some(b'"') {
            return None;
        }
        let bytes = self.s.as_bytes();
        let mut i = self.pos + 1;
        loop {
            let rest = bytes.get(i..)?;
            let at = i + memchr::memchr2(b'"', b'\\', rest)?;
            match bytes.get(at) {
                Some(b'"') => {
                    let inner = self.s.get(self.pos + 1..at)?;
                    self.pos = at + 1;
                    return Some(inner);
                }
                // A quoted-pair: skip the backslash and the octet it escapes.
                _ => i = at + 2,
            }
        }
    }
}

/// Resolves the quoted-pair escapes (`\"`, `\\`) of a quoted string's contents; borrows
/// when there are none.
pub(crate) fn unescape_quoted(raw: &str) -> std::borrow::Cow<'_, str> {
    if !raw.contains('\\') {
        return std::borrow::Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(ch) = chars.next() {
        if ch == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(ch);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Splits a header value at top-level commas: not inside a quoted string, not inside
/// `<…>`. Yields each element trimmed of whitespace; empty elements are yielded too
/// (callers decide whether `a,,b` is acceptable).
#[derive(Debug, Clone)]
pub(crate) struct CommaSplit<'a> {
    s: &'a str,
    pos: usize,
    done: bool,
}

impl<'a> CommaSplit<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        CommaSplit {
            s,
            pos: 0,
            done: false,
        }
    }
}

/// Position of the first top-level comma in `s`, if any.
pub(crate) fn find_top_level_comma(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    // Most values hold no comma at all: one vectorised search settles them.
    let first = memchr::memchr(b',', bytes)?;
    if memchr::memchr3(b'"', b'<', b'\\', bytes.get(..first).unwrap_or_default()).is_none() {
        return Some(first);
    }
    let mut in_quotes = false;
    let mut angle = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' if in_quotes => i += 1,
            b'"' if !angle => in_quotes = !in_quotes,
            b'<' if !in_quotes => angle = true,
            b'>' if !in_quotes => angle = false,
            b',' if !in_quotes && !angle => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

impl<'a> Iterator for CommaSplit<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.done {
            return None;
        }
        let rest = self.s.get(self.pos..).unwrap_or("");
        match find_top_level_comma(rest) {
            Some(i) => {
                self.pos += i + 1;
                Some(trim_lws(rest.get(..i).unwrap_or("")))
            }
            None => {
                self.done = true;
                Some(trim_lws(rest))
            }
        }
    }
}

/// Parses an unsigned decimal with no sign, at most `max`; `None` when empty, non-digit or
/// over `max`. Leading zeros are allowed (`0068`), overflow never wraps.
pub(crate) fn parse_decimal(s: &str, max: u64) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for b in s.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        if v > max {
            return None;
        }
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comma_split_respects_quotes_and_angles() {
        let v: Vec<_> = CommaSplit::new(r#""a, b" <sip:x@y;p=1,2>, <sip:z> ,"q\",r""#).collect();
        assert_eq!(v, [r#""a, b" <sip:x@y;p=1,2>"#, "<sip:z>", r#""q\",r""#]);
        let v: Vec<_> = CommaSplit::new("a,,b").collect();
        assert_eq!(v, ["a", "", "b"]);
    }

    #[test]
    fn quoted_string_handles_escapes_and_unterminated() {
        let mut c = Cursor::new(r#""J Rosenberg \\\"" rest"#);
        assert_eq!(c.quoted_string(), Some(r#"J Rosenberg \\\""#));
        assert_eq!(c.rest(), " rest");
        let mut c = Cursor::new(r#""Mr. J. User <sip:j.user@example.com>"#);
        assert_eq!(c.quoted_string(), None);
        assert_eq!(c.pos(), 0);
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal("0068", 255), Some(68));
        assert_eq!(parse_decimal("300", 255), None);
        assert_eq!(
            parse_decimal("36893488147419103232", u64::from(u32::MAX)),
            None
        );
        assert_eq!(parse_decimal("-1", 10), None);
        assert_eq!(parse_decimal("", 10), None);
    }
}
