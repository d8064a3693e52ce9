//! Event (RFC 6665 §8.2.1) and Subscription-State (RFC 6665 §8.2.3).

use crate::lex::{is_token_byte, Cursor};

use super::params::{read_params, Params};
use super::scalar::delta_seconds;

/// The Event header: a package (`presence`, `dialog`, `presence.winfo`) and parameters.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// The event package and template, as written.
    pub package: &'a str,
    /// Parameters, e.g. `id`.
    pub params: Params<'a>,
}

impl<'a> Event<'a> {
    /// Parses an Event value.
    pub fn parse(s: &'a str) -> Result<Event<'a>, &'static str> {
        let mut c = Cursor::new(s);
        c.skip_lws();
        let package = c.take_while(is_token_byte);
        if package.is_empty() {
            return Err("expected event package");
        }
        let params = read_params(&mut c).ok_or("malformed Event parameters")?;
        Ok(Event { package, params })
    }

    /// The id parameter.
    pub fn id(&self) -> Option<&'a str> {
        self.params.get("id").flatten()
    }
}

/// The Subscription-State header.
#[derive(Debug, Clone, Copy)]
pub struct SubscriptionState<'a> {
    /// `active`, `pending`, `terminated` or an extension, as written.
    pub state: &'a str,
    /// Parameters: `reason`, `expires`, `retry-after`.
    pub params: Params<'a>,
}

impl<'a> SubscriptionState<'a> {
    /// Parses a Subscription-State value.
    pub fn parse(s: &'a str) -> Result<SubscriptionState<'a>, &'static str> {
        let mut c = Cursor::new(s);
        c.skip_lws();
        let state = c.token().ok_or("expected subscription state")?;
        let params = read_params(&mut c).ok_or("malformed Subscription-State parameters")?;
        for (name, v) in params.iter().map(|p| (p.name, p.value)) {
            if name.eq_ignore_ascii_case("expires") || name.eq_ignore_ascii_case("retry-after") {
                v.and_then(delta_seconds).ok_or("invalid delta-seconds")?;
            }
        }
        Ok(SubscriptionState { state, params })
    }

    /// The reason parameter (`deactivated`, `timeout`, `noresource` …).
    pub fn reason(&self) -> Option<&'a str> {
        self.params.get("reason").flatten()
    }
    /// The expires parameter.
    pub fn expires(&self) -> Option<u32> {
        self.params.get("expires").flatten().and_then(delta_seconds)
    }
    /// The retry-after parameter.
    pub fn retry_after(&self) -> Option<u32> {
        self.params
            .get("retry-after")
            .flatten()
            .and_then(delta_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_and_state() {
        let e = Event::parse("presence.winfo;id=7").expect("ok");
        assert_eq!((e.package, e.id()), ("presence.winfo", Some("7")));
        let s = SubscriptionState::parse("terminated;reason=deactivated").expect("ok");
        assert_eq!((s.state, s.reason()), ("terminated", Some("deactivated")));
        let s = SubscriptionState::parse("active;expires=3600").expect("ok");
        assert_eq!(s.expires(), Some(3600));
        assert!(SubscriptionState::parse("active;expires=x").is_err());
        assert!(Event::parse("").is_err());
    }
}
