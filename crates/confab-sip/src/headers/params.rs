//! Header parameters: `*( SEMI generic-param )` with whitespace allowed around `;` and `=`,
//! values that are tokens, hosts (including IPv6 with or without brackets, RFC 5118 §4.5) or
//! quoted strings.

use crate::lex::{is_token_byte, Cursor};

/// One parameter. The value is as written, without surrounding quotes (escapes kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    /// The name as written (compare case-insensitively).
    pub name: &'a str,
    /// The value, if any; quotes removed.
    pub value: Option<&'a str>,
    /// Whether the value was a quoted string.
    pub quoted: bool,
}

fn is_value_byte(b: u8) -> bool {
    is_token_byte(b) || matches!(b, b':' | b'[' | b']')
}

/// Reads one `name [= value]` at the cursor (after the `;`).
pub(crate) fn read_param<'a>(c: &mut Cursor<'a>) -> Option<Param<'a>> {
    c.skip_lws();
    let name = c.token()?;
    if !c.eat_sep(b'=') {
        return Some(Param {
            name,
            value: None,
            quoted: false,
        });
    }
    if c.peek() == Some(b'"') {
        let v = c.quoted_string()?;
        return Some(Param {
            name,
            value: Some(v),
            quoted: true,
        });
    }
    let v = c.take_while(is_value_byte);
    if v.is_empty() {
        return None;
    }
    Some(Param {
        name,
        value: Some(v),
        quoted: false,
    })
}

/// Validates a parameter list starting at the cursor (which must be at `;` or at the end,
/// after optional whitespace) and returns it as [`Params`]. Stops at the end of input; any
/// other trailing text is an error.
pub(crate) fn read_params<'a>(c: &mut Cursor<'a>) -> Option<Params<'a>> {
    read_params_with(c, |_| Ok(())).ok()
}

/// Like [`read_params`], handing each parameter to `seen` as it is read, so that callers
/// pick out the ones they know in the same pass.
pub(crate) fn read_params_with<'a>(
    c: &mut Cursor<'a>,
    mut seen: impl FnMut(Param<'a>) -> Result<(), &'static str>,
) -> Result<Params<'a>, &'static str> {
    c.skip_lws();
    let start = c.pos();
    while c.eat(b';') {
        let p = read_param(c).ok_or("malformed header parameters")?;
        seen(p)?;
        c.skip_lws();
    }
    if !c.is_empty() {
        return Err("unexpected text after parameters");
    }
    Ok(Params {
        raw: c.slice(start, c.pos()),
    })
}

/// A validated parameter list (`;a=1;b;c="x"`), iterated without allocation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Params<'a> {
    raw: &'a str,
}

impl<'a> Params<'a> {
    /// The list as written, starting at its first `;` (empty when there are none).
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// Iterates over the parameters in order.
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter {
            c: Cursor::new(self.raw),
        }
    }

    /// Looks a parameter up by name (case-insensitive): `Some(None)` for a flag such as
    /// `;lr`, `None` when absent.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value)
    }

    /// True if the parameter is present, with or without a value.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// True when there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

impl<'a> IntoIterator for Params<'a> {
    type Item = Param<'a>;
    type IntoIter = ParamIter<'a>;
    fn into_iter(self) -> ParamIter<'a> {
        self.iter()
    }
}

/// Iterator over [`Params`].
#[derive(Debug, Clone)]
pub struct ParamIter<'a> {
    c: Cursor<'a>,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = Param<'a>;
    fn next(&mut self) -> Option<Param<'a>> {
        self.c.skip_lws();
        if !self.c.eat(b';') {
            return None;
        }
        read_param(&mut self.c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_with_whitespace_and_quotes() {
        let mut c = Cursor::new(" ;   tag    = 1918181833n ; x ;q=\"a;b\"");
        let p = read_params(&mut c).expect("valid");
        let v: Vec<_> = p.iter().map(|p| (p.name, p.value)).collect();
        assert_eq!(
            v,
            [
                ("tag", Some("1918181833n")),
                ("x", None),
                ("q", Some("a;b"))
            ]
        );
        assert_eq!(p.get("TAG"), Some(Some("1918181833n")));
        assert_eq!(p.get("x"), Some(None));
        assert_eq!(p.get("y"), None);
    }

    #[test]
    fn bad_params() {
        for s in [";;", ";", "; =x", ";a=", ";a=\"open", "junk", ";a b"] {
            assert!(read_params(&mut Cursor::new(s)).is_none(), "{s:?}");
        }
    }

    #[test]
    fn ipv6_values() {
        let p = read_params(&mut Cursor::new(
            ";received=2001:db8::9:255;branch=z9hG4bKas3",
        ))
        .expect("valid");
        assert_eq!(p.get("received"), Some(Some("2001:db8::9:255")));
        let p = read_params(&mut Cursor::new(";received=[2001:db8::9:255]")).expect("valid");
        assert_eq!(p.get("received"), Some(Some("[2001:db8::9:255]")));
    }
}
