//! Address headers: From, To, Contact, Route, Record-Route, Path, Refer-To (RFC 3261
//! §20.10, §25.1). Both `name-addr` (`"Bob" <sip:bob@b.example>;tag=1`) and `addr-spec`
//! (`sip:bob@b.example;tag=1`) forms; in the latter, everything after the URI's first `;`
//! is a header parameter, not a URI parameter (RFC 4475 `cparam01`, `regbadct`).

use std::borrow::Cow;

use crate::lex::{is_lws, Cursor};
use crate::uri::Uri;

use super::params::{read_params_with, Params};
use super::scalar::delta_seconds;

/// A display name as written: a quoted string (without its quotes, escapes kept) or a
/// sequence of tokens separated by whitespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisplayName<'a> {
    raw: &'a str,
    quoted: bool,
}

impl<'a> DisplayName<'a> {
    /// The name as written, quotes removed.
    pub fn as_raw(&self) -> &'a str {
        self.raw
    }
    /// True if it was a quoted string.
    pub fn is_quoted(&self) -> bool {
        self.quoted
    }
    /// The name with quoted-pair escapes resolved (allocates only if there are escapes).
    pub fn text(&self) -> Cow<'a, str> {
        if self.quoted {
            crate::lex::unescape_quoted(self.raw)
        } else {
            Cow::Borrowed(self.raw)
        }
    }
}

/// An address with optional display name and header parameters.
#[derive(Debug, Clone, Copy)]
pub struct NameAddr<'a> {
    raw: &'a str,
    display: Option<DisplayName<'a>>,
    uri: Uri<'a>,
    bracketed: bool,
    params: Params<'a>,
    tag: Option<&'a str>,
}

impl<'a> NameAddr<'a> {
    /// Parses one address value.
    pub fn parse(s: &'a str) -> Result<NameAddr<'a>, &'static str> {
        Self::parse_with(s, |_| Ok(()))
    }

    /// Parses one address value, handing each header parameter to `seen` as it is read so
    /// that callers check the parameters they know in the same pass.
    pub(crate) fn parse_with(
        s: &'a str,
        mut seen: impl FnMut(super::Param<'a>) -> Result<(), &'static str>,
    ) -> Result<NameAddr<'a>, &'static str> {
        let mut c = Cursor::new(s);
        c.skip_lws();
        let start = c.pos();
        let mut display = None;
        let bracketed;
        match c.peek() {
            Some(b'"') => {
                let q = c
                    .quoted_string()
                    .ok_or("unterminated quoted display name")?;
                display = Some(DisplayName {
                    raw: q,
                    quoted: true,
                });
                c.skip_lws();
                if c.peek() != Some(b'<') {
                    return Err("expected < after display name");
                }
                bracketed = true;
            }
            Some(b'<') => bracketed = true,
            _ => {
                let mut probe = c;
                let mut end = start;
                let mut tokens = 0;
                while probe.token().is_some() {
                    tokens += 1;
                    end = probe.pos();
                    probe.skip_lws();
                }
                if tokens > 0 && probe.peek() == Some(b'<') {
                    display = Some(DisplayName {
                        raw: c.slice(start, end),
                        quoted: false,
                    });
                    c = probe;
                    bracketed = true;
                } else {
                    bracketed = false;
                }
            }
        }
        let uri_str;
        if bracketed {
            c.bump(); // '<'
            let rest = c.rest();
            let close = memchr::memchr(b'>', rest.as_bytes()).ok_or("missing > after URI")?;
            uri_str = rest.get(..close).unwrap_or("");
            c.advance(close + 1);
        } else {
            let from = c.pos();
            c.take_while(|b| b != b';' && !is_lws(b));
            uri_str = c.slice(from, c.pos());
            if memchr::memchr2(b'?', b',', uri_str.as_bytes()).is_some() {
                return Err("a URI with headers or commas must be enclosed in <>");
            }
        }
        let uri = Uri::parse(uri_str).map_err(|_| "invalid URI")?;
        let mut tag = None;
        let params = read_params_with(&mut c, |p| {
            if p.name.eq_ignore_ascii_case("tag") {
                tag = Some(p.value.filter(|_| !p.quoted).ok_or("tag must be a token")?);
            }
            seen(p)
        })?;
        Ok(NameAddr {
            raw: s,
            display,
            uri,
            bracketed,
            params,
            tag,
        })
    }

    /// The value as written.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }
    /// The display name, if any.
    pub fn display_name(&self) -> Option<DisplayName<'a>> {
        self.display
    }
    /// The URI.
    pub fn uri(&self) -> &Uri<'a> {
        &self.uri
    }
    /// True if the URI was enclosed in `<>`.
    pub fn is_name_addr(&self) -> bool {
        self.bracketed
    }
    /// The header parameters (after the URI; never the URI's own parameters).
    pub fn params(&self) -> Params<'a> {
        self.params
    }
    /// The tag parameter (From, To).
    pub fn tag(&self) -> Option<&'a str> {
        self.tag
    }
}

/// One Contact value: an address, or `*` (remove all bindings, RFC 3261 §10.2.2).
// A borrowed view, built on the stack and never stored in bulk: boxing would allocate.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy)]
pub enum Contact<'a> {
    /// `Contact: *`.
    Wildcard,
    /// An address with its parameters.
    Address(NameAddr<'a>),
}

impl<'a> Contact<'a> {
    /// Parses one Contact value and checks its `q` and `expires` parameters.
    pub fn parse(s: &'a str) -> Result<Contact<'a>, &'static str> {
        if crate::lex::trim_lws(s) == "*" {
            return Ok(Contact::Wildcard);
        }
        let a = NameAddr::parse_with(s, |p| {
            if p.name.eq_ignore_ascii_case("q") {
                p.value.and_then(qvalue).ok_or("invalid q value")?;
            } else if p.name.eq_ignore_ascii_case("expires") {
                p.value
                    .and_then(delta_seconds)
                    .ok_or("invalid expires parameter")?;
            }
            Ok(())
        })?;
        Ok(Contact::Address(a))
    }

    /// The address; `None` for `*`.
    pub fn address(&self) -> Option<&NameAddr<'a>> {
        match self {
            Contact::Wildcard => None,
            Contact::Address(a) => Some(a),
        }
    }

    /// The q parameter in thousandths (`q=0.33` is 330).
    pub fn q(&self) -> Option<u16> {
        self.address()?.params().get("q").flatten().and_then(qvalue)
    }

    /// The expires parameter in seconds.
    pub fn expires(&self) -> Option<u32> {
        self.address()?
            .params()
            .get("expires")
            .flatten()
            .and_then(delta_seconds)
    }
}

/// Parses a qvalue (`0`, `0.5`, `0.333`, `1`, `1.000`) into thousandths.
pub(crate) fn qvalue(s: &str) -> Option<u16> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1].get(i).copied().unwrap_or(0);
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let a = NameAddr::parse(
            "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8",
        )
        .expect("ok");
        assert_eq!(
            a.display_name().map(|d| d.text().into_owned()).as_deref(),
            Some("J Rosenberg \\\"")
        );
        assert_eq!(a.tag(), Some("98asjd8"));
        assert_eq!(a.uri().as_str(), "sip:jdrosen@example.com");

        let a = NameAddr::parse("caller<sip:caller@example.com>;tag=323").expect("lwsdisp");
        assert_eq!(a.display_name().map(|d| d.as_raw()), Some("caller"));

        let a = NameAddr::parse("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n")
            .expect("ok");
        assert_eq!(a.uri().as_str(), "sip:vivekg@chair-dnrc.example.com");
        assert_eq!(a.tag(), Some("1918181833n"));
        assert!(!a.is_name_addr());

        let a = NameAddr::parse("sip:+19725552222@gw1.example.net;unknownparam").expect("cparam01");
        assert_eq!(a.uri().as_str(), "sip:+19725552222@gw1.example.net");
        assert!(a.params().has("unknownparam"));

        let a =
            NameAddr::parse("<sip:+19725552222@gw1.example.net;unknownparam>").expect("cparam02");
        assert_eq!(
            a.uri().as_str(),
            "sip:+19725552222@gw1.example.net;unknownparam"
        );
        assert!(a.params().is_empty());

        let a = NameAddr::parse("A B C <sip:x@y>").expect("tokens");
        assert_eq!(a.display_name().map(|d| d.as_raw()), Some("A B C"));
    }

    #[test]
    fn rejects() {
        for s in [
            "\"Mr. J. User <sip:j.user@example.com>",
            "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
            "\"Watson, Thomas\" < sip:t.watson@example.org >",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "\"Joe\" <sip:joe@example.org>;;;;",
            "<sip:x@y",
            "",
        ] {
            assert!(NameAddr::parse(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn contacts() {
        assert!(matches!(Contact::parse(" * "), Ok(Contact::Wildcard)));
        let c = Contact::parse("<sip:a@b>;q=0.33;expires=60").expect("ok");
        assert_eq!(c.q(), Some(330));
        assert_eq!(c.expires(), Some(60));
        assert!(
            Contact::parse("<sip:user@host129.example.com>\r\n  ;expires=280297596632815").is_err()
        );
        assert!(Contact::parse("<sip:a@b>;q=1.5").is_err());
        assert_eq!(qvalue("1.000"), Some(1000));
        assert_eq!(qvalue("0"), Some(0));
        assert_eq!(qvalue("0.0001"), None);
    }
}
