//! The Date header (RFC 3261 §20.17): RFC 1123 dates, GMT only. RFC 4475 `baddate` (a
//! time zone other than GMT) is an error, and does not disturb the rest of the message.

use crate::lex::trim_lws;

/// A parsed `Date` value, always GMT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpDate {
    /// Year (four digits).
    pub year: u16,
    /// Month, 1–12.
    pub month: u8,
    /// Day of month, 1–31.
    pub day: u8,
    /// Hour, 0–23.
    pub hour: u8,
    /// Minute, 0–59.
    pub minute: u8,
    /// Second, 0–60 (leap second).
    pub second: u8,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

fn num(s: &str, len: usize, max: u64) -> Option<u8> {
    if s.len() != len {
        return None;
    }
    crate::lex::parse_decimal(s, max).and_then(|v| u8::try_from(v).ok())
}

impl HttpDate {
    /// Parses `Sat, 13 Nov 2010 23:29:00 GMT`.
    pub fn parse(s: &str) -> Result<HttpDate, &'static str> {
        let s = trim_lws(s);
        let (wkday, rest) = s.split_once(", ").ok_or("expected weekday")?;
        if !DAYS.contains(&wkday) {
            return Err("unknown weekday");
        }
        let mut parts = rest.split(' ');
        let mut next = || parts.next().ok_or("date too short");
        let day = num(next()?, 2, 31).filter(|d| *d >= 1).ok_or("bad day")?;
        let mon = next()?;
        let month = MONTHS
            .iter()
            .position(|m| *m == mon)
            .and_then(|m| u8::try_from(m + 1).ok())
            .ok_or("bad month")?;
        let year_s = next()?;
        if year_s.len() != 4 {
            return Err("bad year");
        }
        let year = crate::lex::parse_decimal(year_s, 9999)
            .and_then(|y| u16::try_from(y).ok())
            .ok_or("bad year")?;
        let mut hms = next()?.split(':');
        let mut hms_next = || hms.next().ok_or("bad time");
        let hour = num(hms_next()?, 2, 23).ok_or("bad hour")?;
        let minute = num(hms_next()?, 2, 59).ok_or("bad minute")?;
        let second = num(hms_next()?, 2, 60).ok_or("bad second")?;
        if next()? != "GMT" {
            return Err("time zone must be GMT");
        }
        if parts.next().is_some() {
            return Err("trailing text after date");
        }
        Ok(HttpDate {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let d = HttpDate::parse("Sat, 13 Nov 2010 23:29:00 GMT").expect("ok");
        assert_eq!((d.year, d.month, d.day, d.hour), (2010, 11, 13, 23));
        assert!(HttpDate::parse("Fri, 01 Jan 2010 16:00:00 EST").is_err());
        assert!(HttpDate::parse("Fri, 1 Jan 2010 16:00:00 GMT").is_err());
        assert!(HttpDate::parse("").is_err());
    }
}
