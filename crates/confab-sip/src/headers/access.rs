//! Typed accessors on [`Message`]: each reads the header fields it needs and parses them on
//! demand, borrowing from the message. Required headers return `Result<T, HeaderError>`
//! (absence is [`Problem::Missing`]); optional ones return `Result<Option<T>, HeaderError>`;
//! list headers return iterators over their comma-separated values.

use crate::auth::{Challenge, Credentials};
use crate::header_name::HeaderName;
use crate::message::{Field, Message};

use super::{
    scalar, CSeq, Contact, Event, HeaderError, HttpDate, MediaType, NameAddr, Problem,
    SubscriptionState, Via,
};

impl Message {
    fn field_str(&self, f: &Field) -> Result<&str, HeaderError> {
        self.str_at(f.value)
            .ok_or(HeaderError::new(f.kind, Problem::NotUtf8))
    }

    /// The value of the only field named `name`: `Ok(None)` when absent, an error when it is
    /// repeated or not UTF-8.
    fn single(&self, name: HeaderName) -> Result<Option<&str>, HeaderError> {
        let Some(first) = self.first_field(name) else {
            return Ok(None);
        };
        if self.is_repeated(name) {
            return Err(HeaderError::new(name, Problem::Duplicate));
        }
        self.field_str(first).map(Some)
    }

    fn required(&self, name: HeaderName) -> Result<&str, HeaderError> {
        self.single(name)?
            .ok_or(HeaderError::new(name, Problem::Missing))
    }

    /// Parses every comma-separated value of every field named `name`. Empty elements are
    /// skipped, except for Via where they make the header malformed.
    fn parse_values<'a, T: 'a>(
        &'a self,
        name: HeaderName,
        parse: impl Fn(&'a str) -> Result<T, &'static str> + Copy + 'a,
    ) -> impl Iterator<Item = Result<T, HeaderError>> + 'a {
        let keep_empty = name == HeaderName::Via;
        self.fields_of(name).flat_map(move |f| {
            let (values, err) = match self.field_str(f) {
                Ok(s) => (Some(crate::lex::CommaSplit::new(s)), None),
                Err(e) => (None, Some(Err(e))),
            };
            values
                .into_iter()
                .flatten()
                .filter(move |v| keep_empty || !v.is_empty())
                .map(move |v| parse(v).map_err(|e| HeaderError::malformed(name, e)))
                .chain(err)
        })
    }

    /// The topmost Via value: the first value of the first Via field.
    pub fn via(&self) -> Result<Via<'_>, HeaderError> {
        let f = self
            .first_field(HeaderName::Via)
            .ok_or(HeaderError::new(HeaderName::Via, Problem::Missing))?;
        let s = self.field_str(f)?;
        let first = crate::lex::CommaSplit::new(s).next().unwrap_or("");
        Via::parse(first).map_err(|e| HeaderError::malformed(HeaderName::Via, e))
    }

    /// Every Via value, top first.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'_>, HeaderError>> + '_ {
        self.parse_values(HeaderName::Via, Via::parse)
    }

    fn addr(&self, name: HeaderName) -> Result<NameAddr<'_>, HeaderError> {
        NameAddr::parse(self.required(name)?).map_err(|e| HeaderError::malformed(name, e))
    }

    /// The From header.
    pub fn from(&self) -> Result<NameAddr<'_>, HeaderError> {
        self.addr(HeaderName::From)
    }

    /// The To header.
    pub fn to(&self) -> Result<NameAddr<'_>, HeaderError> {
        self.addr(HeaderName::To)
    }

    /// The Call-ID.
    pub fn call_id(&self) -> Result<&str, HeaderError> {
        let v = self.required(HeaderName::CallId)?;
        scalar::call_id(v).ok_or(HeaderError::malformed(
            HeaderName::CallId,
            "not a word[@word]",
        ))
    }

    /// The CSeq header.
    pub fn cseq(&self) -> Result<CSeq<'_>, HeaderError> {
        CSeq::parse(self.required(HeaderName::CSeq)?)
            .map_err(|e| HeaderError::malformed(HeaderName::CSeq, e))
    }

    /// Max-Forwards (0–255).
    pub fn max_forwards(&self) -> Result<Option<u8>, HeaderError> {
        self.single(HeaderName::MaxForwards)?
            .map(|v| {
                scalar::max_forwards(v).ok_or(HeaderError::new(
                    HeaderName::MaxForwards,
                    Problem::OutOfRange,
                ))
            })
            .transpose()
    }

    fn delta(&self, name: HeaderName) -> Result<Option<u32>, HeaderError> {
        self.single(name)?
            .map(|v| scalar::delta_seconds(v).ok_or(HeaderError::new(name, Problem::OutOfRange)))
            .transpose()
    }

    /// Expires, in seconds.
    pub fn expires(&self) -> Result<Option<u32>, HeaderError> {
        self.delta(HeaderName::Expires)
    }

    /// Min-Expires, in seconds.
    pub fn min_expires(&self) -> Result<Option<u32>, HeaderError> {
        self.delta(HeaderName::MinExpires)
    }

    /// Content-Length as written (the parser has already checked it frames the message).
    pub fn content_length(&self) -> Result<Option<u32>, HeaderError> {
        self.delta(HeaderName::ContentLength)
    }

    /// Every Contact value.
    pub fn contacts(&self) -> impl Iterator<Item = Result<Contact<'_>, HeaderError>> + '_ {
        self.parse_values(HeaderName::Contact, Contact::parse)
    }

    /// The Content-Type.
    pub fn content_type(&self) -> Result<Option<MediaType<'_>>, HeaderError> {
        self.single(HeaderName::ContentType)?
            .map(|v| {
                MediaType::parse(v).map_err(|e| HeaderError::malformed(HeaderName::ContentType, e))
            })
            .transpose()
    }

    /// Every Route value, in order.
    pub fn routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, HeaderError>> + '_ {
        self.parse_values(HeaderName::Route, NameAddr::parse)
    }

    /// Every Record-Route value, in order.
    pub fn record_routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, HeaderError>> + '_ {
        self.parse_values(HeaderName::RecordRoute, NameAddr::parse)
    }

    /// Every Path value (RFC 3327), in order.
    pub fn paths(&self) -> impl Iterator<Item = Result<NameAddr<'_>, HeaderError>> + '_ {
        self.parse_values(HeaderName::Path, NameAddr::parse)
    }

    /// Option tags or method names of a token-list header, empty elements skipped.
    pub fn tokens(&self, name: HeaderName) -> impl Iterator<Item = &str> + '_ {
        self.values(name).filter(|v| !v.is_empty())
    }

    /// Require option tags.
    pub fn require(&self) -> impl Iterator<Item = &str> + '_ {
        self.tokens(HeaderName::Require)
    }
    /// Proxy-Require option tags.
    pub fn proxy_require(&self) -> impl Iterator<Item = &str> + '_ {
        self.tokens(HeaderName::ProxyRequire)
    }
    /// Supported option tags.
    pub fn supported(&self) -> impl Iterator<Item = &str> + '_ {
        self.tokens(HeaderName::Supported)
    }
    /// Unsupported option tags.
    pub fn unsupported(&self) -> impl Iterator<Item = &str> + '_ {
        self.tokens(HeaderName::Unsupported)
    }
    /// Allowed methods.
    pub fn allow(&self) -> impl Iterator<Item = &str> + '_ {
        self.tokens(HeaderName::Allow)
    }

    /// Accept media ranges. An Accept header that is present but empty accepts nothing
    /// (RFC 3261 §20.1); absence means `application/sdp`.
    pub fn accept(&self) -> impl Iterator<Item = Result<MediaType<'_>, HeaderError>> + '_ {
        self.parse_values(HeaderName::Accept, MediaType::parse)
    }

    /// The Event header.
    pub fn event(&self) -> Result<Option<Event<'_>>, HeaderError> {
        self.single(HeaderName::Event)?
            .map(|v| Event::parse(v).map_err(|e| HeaderError::malformed(HeaderName::Event, e)))
            .transpose()
    }

    /// The Subscription-State header.
    pub fn subscription_state(&self) -> Result<Option<SubscriptionState<'_>>, HeaderError> {
        self.single(HeaderName::SubscriptionState)?
            .map(|v| {
                SubscriptionState::parse(v)
                    .map_err(|e| HeaderError::malformed(HeaderName::SubscriptionState, e))
            })
            .transpose()
    }

    fn entity_tag(&self, name: HeaderName) -> Result<Option<&str>, HeaderError> {
        self.single(name)?
            .map(|v| {
                crate::lex::is_token(v)
                    .then_some(v)
                    .ok_or(HeaderError::malformed(name, "entity tag must be a token"))
            })
            .transpose()
    }

    /// SIP-ETag (RFC 3903).
    pub fn sip_etag(&self) -> Result<Option<&str>, HeaderError> {
        self.entity_tag(HeaderName::SipEtag)
    }

    /// SIP-If-Match (RFC 3903).
    pub fn sip_if_match(&self) -> Result<Option<&str>, HeaderError> {
        self.entity_tag(HeaderName::SipIfMatch)
    }

    fn auth_values<'a, T: 'a>(
        &'a self,
        name: HeaderName,
        parse: impl Fn(&'a str) -> Result<T, crate::auth::AuthParseError> + 'a,
    ) -> impl Iterator<Item = Result<T, HeaderError>> + 'a {
        self.fields_of(name).map(move |f| {
            let s = self.field_str(f)?;
            parse(s).map_err(|_| HeaderError::malformed(name, "malformed credentials or challenge"))
        })
    }

    /// Authorization credentials, one per field.
    pub fn authorization(&self) -> impl Iterator<Item = Result<Credentials<'_>, HeaderError>> + '_ {
        self.auth_values(HeaderName::Authorization, Credentials::parse)
    }

    /// Proxy-Authorization credentials, one per field.
    pub fn proxy_authorization(
        &self,
    ) -> impl Iterator<Item = Result<Credentials<'_>, HeaderError>> + '_ {
        self.auth_values(HeaderName::ProxyAuthorization, Credentials::parse)
    }

    /// WWW-Authenticate challenges, one per field.
    pub fn www_authenticate(
        &self,
    ) -> impl Iterator<Item = Result<Challenge<'_>, HeaderError>> + '_ {
        self.auth_values(HeaderName::WwwAuthenticate, Challenge::parse)
    }

    /// Proxy-Authenticate challenges, one per field.
    pub fn proxy_authenticate(
        &self,
    ) -> impl Iterator<Item = Result<Challenge<'_>, HeaderError>> + '_ {
        self.auth_values(HeaderName::ProxyAuthenticate, Challenge::parse)
    }

    /// User-Agent, as written.
    pub fn user_agent(&self) -> Option<&str> {
        self.header(HeaderName::UserAgent)
    }

    /// The Date header.
    pub fn date(&self) -> Result<Option<HttpDate>, HeaderError> {
        self.single(HeaderName::Date)?
            .map(|v| HttpDate::parse(v).map_err(|e| HeaderError::malformed(HeaderName::Date, e)))
            .transpose()
    }

    /// Reads every typed header once and discards the results: used by the fuzz targets so
    /// that every parser sees every input.
    #[doc(hidden)]
    pub fn fuzz_touch_all(&self) {
        let _ = (
            self.via(),
            self.from(),
            self.to(),
            self.call_id(),
            self.cseq(),
        );
        let _ = (self.max_forwards(), self.expires(), self.min_expires());
        let _ = (self.content_length(), self.content_type(), self.event());
        let _ = (
            self.subscription_state(),
            self.sip_etag(),
            self.sip_if_match(),
            self.date(),
        );
        let _ = self.request_uri();
        self.vias().for_each(drop);
        self.contacts().for_each(|c| {
            if let Ok(c) = c {
                let _ = (c.q(), c.expires());
            }
        });
        self.routes()
            .chain(self.record_routes())
            .chain(self.paths())
            .for_each(drop);
        self.accept().for_each(drop);
        let _ = self
            .require()
            .chain(self.supported())
            .chain(self.allow())
            .count();
        self.authorization()
            .chain(self.proxy_authorization())
            .for_each(drop);
        self.www_authenticate()
            .chain(self.proxy_authenticate())
            .for_each(drop);
        let _ = (self.user_agent(), self.body().len(), self.reason());
    }
}
