//! Media types: Content-Type and the media ranges of Accept (RFC 3261 §20.1, §20.15).

use crate::lex::Cursor;

use super::params::{read_params, Params};

/// A media type or range (`application/sdp`, `text/*`, `*/*`) with parameters.
#[derive(Debug, Clone, Copy)]
pub struct MediaType<'a> {
    /// The type (`application`), as written.
    pub type_: &'a str,
    /// The subtype (`sdp`), as written.
    pub subtype: &'a str,
    /// Parameters such as `charset` or `q`.
    pub params: Params<'a>,
}

impl<'a> MediaType<'a> {
    /// Parses `type "/" subtype *( ";" param )`.
    pub fn parse(s: &'a str) -> Result<MediaType<'a>, &'static str> {
        let mut c = Cursor::new(s);
        c.skip_lws();
        let type_ = c.token().ok_or("expected media type")?;
        if !c.eat_sep(b'/') {
            return Err("expected / in media type");
        }
        let subtype = c.token().ok_or("expected media subtype")?;
        let params = read_params(&mut c).ok_or("malformed media type parameters")?;
        Ok(MediaType {
            type_,
            subtype,
            params,
        })
    }

    /// True if this type (or range, with `*`) covers `type_/subtype` (case-insensitive).
    pub fn matches(&self, type_: &str, subtype: &str) -> bool {
        (self.type_ == "*" || self.type_.eq_ignore_ascii_case(type_))
            && (self.subtype == "*" || self.subtype.eq_ignore_ascii_case(subtype))
    }

    /// True if this is exactly `type_/subtype` (case-insensitive), ignoring parameters.
    pub fn is(&self, type_: &str, subtype: &str) -> bool {
        self.type_.eq_ignore_ascii_case(type_) && self.subtype.eq_ignore_ascii_case(subtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_match() {
        let m = MediaType::parse("application/sdp").expect("ok");
        assert!(m.is("application", "SDP"));
        let m = MediaType::parse("text / plain ; charset=UTF-8").expect("ok");
        assert_eq!(m.params.get("charset"), Some(Some("UTF-8")));
        let r = MediaType::parse("text/*;q=0.5").expect("ok");
        assert!(r.matches("text", "html"));
        assert!(!r.matches("application", "sdp"));
        assert!(MediaType::parse("*/*").expect("ok").matches("a", "b"));
        assert!(MediaType::parse("application").is_err());
        assert!(MediaType::parse("a/b c").is_err());
    }
}
