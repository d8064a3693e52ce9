//! Header field names: the well-known names as an enum, matched case-insensitively, with
//! the compact forms of RFC 3261 §7.3.3 and its extensions (`v f t i m l c k s e o u r b x y
//! d j a`), and the facts about each name that parsing and validation need.

macro_rules! header_names {
    ($( $variant:ident => $canon:literal, $($pat:literal)|+ ; )*) => {
        /// A header field name. Unknown names are [`HeaderName::Other`]; their text is kept in
        /// the message.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum HeaderName {
            $(
                #[doc = concat!("`", $canon, "`")]
                $variant,
            )*
            /// A name Confab does not know; matched by its text.
            Other,
        }

        impl HeaderName {
            /// The canonical (long-form) spelling, used when Confab writes the header.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other => "",
                }
            }

            /// Looks up a name given in any case, long or compact form: a jump on (length,
            /// first octet, last octet) to the one or two candidates, then one
            /// case-insensitive comparison.
            pub fn from_bytes(name: &[u8]) -> HeaderName {
                let (Some(first), Some(last)) = (name.first(), name.last()) else {
                    return HeaderName::Other;
                };
                match (name.len(), first.to_ascii_lowercase(), last.to_ascii_lowercase()) {
                    (1, b'a', b'a') if name.eq_ignore_ascii_case(b"a") => HeaderName::AcceptContact,
                    (1, b'b', b'b') if name.eq_ignore_ascii_case(b"b") => HeaderName::ReferredBy,
                    (1, b'c', b'c') if name.eq_ignore_ascii_case(b"c") => HeaderName::ContentType,
                    (1, b'd', b'd') if name.eq_ignore_ascii_case(b"d") => HeaderName::RequestDisposition,
                    (1, b'e', b'e') if name.eq_ignore_ascii_case(b"e") => HeaderName::ContentEncoding,
                    (1, b'f', b'f') if name.eq_ignore_ascii_case(b"f") => HeaderName::From,
                    (1, b'i', b'i') if name.eq_ignore_ascii_case(b"i") => HeaderName::CallId,
                    (1, b'j', b'j') if name.eq_ignore_ascii_case(b"j") => HeaderName::RejectContact,
                    (1, b'k', b'k') if name.eq_ignore_ascii_case(b"k") => HeaderName::Supported,
                    (1, b'l', b'l') if name.eq_ignore_ascii_case(b"l") => HeaderName::ContentLength,
                    (1, b'm', b'm') if name.eq_ignore_ascii_case(b"m") => HeaderName::Contact,
                    (1, b'o', b'o') if name.eq_ignore_ascii_case(b"o") => HeaderName::Event,
                    (1, b'r', b'r') if name.eq_ignore_ascii_case(b"r") => HeaderName::ReferTo,
                    (1, b's', b's') if name.eq_ignore_ascii_case(b"s") => HeaderName::Subject,
                    (1, b't', b't') if name.eq_ignore_ascii_case(b"t") => HeaderName::To,
                    (1, b'u', b'u') if name.eq_ignore_ascii_case(b"u") => HeaderName::AllowEvents,
                    (1, b'v', b'v') if name.eq_ignore_ascii_case(b"v") => HeaderName::Via,
                    (1, b'x', b'x') if name.eq_ignore_ascii_case(b"x") => HeaderName::SessionExpires,
                    (1, b'y', b'y') if name.eq_ignore_ascii_case(b"y") => HeaderName::Identity,
                    (2, b't', b'o') if name == b"To" || name.eq_ignore_ascii_case(b"to") => HeaderName::To,
                    (3, b'v', b'a') if name == b"Via" || name.eq_ignore_ascii_case(b"via") => HeaderName::Via,
                    (4, b'c', b'q') if name == b"CSeq" || name.eq_ignore_ascii_case(b"cseq") => HeaderName::CSeq,
                    (4, b'd', b'e') if name == b"Date" || name.eq_ignore_ascii_case(b"date") => HeaderName::Date,
                    (4, b'f', b'm') if name == b"From" || name.eq_ignore_ascii_case(b"from") => HeaderName::From,
                    (4, b'p', b'h') if name == b"Path" || name.eq_ignore_ascii_case(b"path") => HeaderName::Path,
                    (5, b'a', b'w') if name == b"Allow" || name.eq_ignore_ascii_case(b"allow") => HeaderName::Allow,
                    (5, b'e', b't') if name == b"Event" || name.eq_ignore_ascii_case(b"event") => HeaderName::Event,
                    (5, b'r', b'e') if name == b"Route" || name.eq_ignore_ascii_case(b"route") => HeaderName::Route,
                    (6, b'a', b't') if name == b"Accept" || name.eq_ignore_ascii_case(b"accept") => HeaderName::Accept,
                    (6, b'r', b'n') if name == b"Reason" || name.eq_ignore_ascii_case(b"reason") => HeaderName::ReasonHdr,
                    (6, b's', b'r') if name == b"Server" || name.eq_ignore_ascii_case(b"server") => HeaderName::Server,
                    (7, b'c', b'd') if name == b"Call-ID" || name.eq_ignore_ascii_case(b"call-id") => HeaderName::CallId,
                    (7, b'c', b't') if name == b"Contact" || name.eq_ignore_ascii_case(b"contact") => HeaderName::Contact,
                    (7, b'e', b's') if name == b"Expires" || name.eq_ignore_ascii_case(b"expires") => HeaderName::Expires,
                    (7, b'r', b'e') if name == b"Require" || name.eq_ignore_ascii_case(b"require") => HeaderName::Require,
                    (7, b's', b't') if name == b"Subject" || name.eq_ignore_ascii_case(b"subject") => HeaderName::Subject,
                    (7, b'w', b'g') if name == b"Warning" || name.eq_ignore_ascii_case(b"warning") => HeaderName::Warning,
                    (8, b'i', b'y') if name == b"Identity" || name.eq_ignore_ascii_case(b"identity") => HeaderName::Identity,
                    (8, b'p', b'y') if name == b"Priority" || name.eq_ignore_ascii_case(b"priority") => HeaderName::Priority,
                    (8, b'r', b'o') if name == b"Refer-To" || name.eq_ignore_ascii_case(b"refer-to") => HeaderName::ReferTo,
                    (8, b'r', b'o') if name == b"Reply-To" || name.eq_ignore_ascii_case(b"reply-to") => HeaderName::ReplyTo,
                    (8, b's', b'g') if name == b"SIP-ETag" || name.eq_ignore_ascii_case(b"sip-etag") => HeaderName::SipEtag,
                    (9, b'c', b'o') if name == b"Call-Info" || name.eq_ignore_ascii_case(b"call-info") => HeaderName::CallInfo,
                    (9, b's', b'd') if name == b"Supported" || name.eq_ignore_ascii_case(b"supported") => HeaderName::Supported,
                    (9, b't', b'p') if name == b"Timestamp" || name.eq_ignore_ascii_case(b"timestamp") => HeaderName::Timestamp,
                    (10, b'a', b'o') if name == b"Alert-Info" || name.eq_ignore_ascii_case(b"alert-info") => HeaderName::AlertInfo,
                    (10, b'e', b'o') if name == b"Error-Info" || name.eq_ignore_ascii_case(b"error-info") => HeaderName::ErrorInfo,
                    (10, b'u', b't') if name == b"User-Agent" || name.eq_ignore_ascii_case(b"user-agent") => HeaderName::UserAgent,
                    (11, b'i', b'o') if name == b"In-Reply-To" || name.eq_ignore_ascii_case(b"in-reply-to") => HeaderName::InReplyTo,
                    (11, b'm', b's') if name == b"Min-Expires" || name.eq_ignore_ascii_case(b"min-expires") => HeaderName::MinExpires,
                    (11, b'r', b'r') if name == b"Retry-After" || name.eq_ignore_ascii_case(b"retry-after") => HeaderName::RetryAfter,
                    (11, b'r', b'y') if name == b"Referred-By" || name.eq_ignore_ascii_case(b"referred-by") => HeaderName::ReferredBy,
                    (11, b'u', b'd') if name == b"Unsupported" || name.eq_ignore_ascii_case(b"unsupported") => HeaderName::Unsupported,
                    (12, b'a', b's') if name == b"Allow-Events" || name.eq_ignore_ascii_case(b"allow-events") => HeaderName::AllowEvents,
                    (12, b'c', b'e') if name == b"Content-Type" || name.eq_ignore_ascii_case(b"content-type") => HeaderName::ContentType,
                    (12, b'm', b'n') if name == b"MIME-Version" || name.eq_ignore_ascii_case(b"mime-version") => HeaderName::MimeVersion,
                    (12, b'm', b's') if name == b"Max-Forwards" || name.eq_ignore_ascii_case(b"max-forwards") => HeaderName::MaxForwards,
                    (12, b'o', b'n') if name == b"Organization" || name.eq_ignore_ascii_case(b"organization") => HeaderName::Organization,
                    (12, b'r', b'e') if name == b"Record-Route" || name.eq_ignore_ascii_case(b"record-route") => HeaderName::RecordRoute,
                    (12, b's', b'h') if name == b"SIP-If-Match" || name.eq_ignore_ascii_case(b"sip-if-match") => HeaderName::SipIfMatch,
                    (13, b'a', b'n') if name == b"Authorization" || name.eq_ignore_ascii_case(b"authorization") => HeaderName::Authorization,
                    (13, b'p', b'e') if name == b"Proxy-Require" || name.eq_ignore_ascii_case(b"proxy-require") => HeaderName::ProxyRequire,
                    (14, b'a', b't') if name == b"Accept-Contact" || name.eq_ignore_ascii_case(b"accept-contact") => HeaderName::AcceptContact,
                    (14, b'c', b'h') if name == b"Content-Length" || name.eq_ignore_ascii_case(b"content-length") => HeaderName::ContentLength,
                    (14, b'r', b't') if name == b"Reject-Contact" || name.eq_ignore_ascii_case(b"reject-contact") => HeaderName::RejectContact,
                    (15, b'a', b'e') if name == b"Accept-Language" || name.eq_ignore_ascii_case(b"accept-language") => HeaderName::AcceptLanguage,
                    (15, b'a', b'g') if name == b"Accept-Encoding" || name.eq_ignore_ascii_case(b"accept-encoding") => HeaderName::AcceptEncoding,
                    (15, b's', b's') if name == b"Session-Expires" || name.eq_ignore_ascii_case(b"session-expires") => HeaderName::SessionExpires,
                    (16, b'c', b'e') if name == b"Content-Language" || name.eq_ignore_ascii_case(b"content-language") => HeaderName::ContentLanguage,
                    (16, b'c', b'g') if name == b"Content-Encoding" || name.eq_ignore_ascii_case(b"content-encoding") => HeaderName::ContentEncoding,
                    (16, b'w', b'e') if name == b"WWW-Authenticate" || name.eq_ignore_ascii_case(b"www-authenticate") => HeaderName::WwwAuthenticate,
                    (18, b'p', b'e') if name == b"Proxy-Authenticate" || name.eq_ignore_ascii_case(b"proxy-authenticate") => HeaderName::ProxyAuthenticate,
                    (18, b's', b'e') if name == b"Subscription-State" || name.eq_ignore_ascii_case(b"subscription-state") => HeaderName::SubscriptionState,
                    (19, b'a', b'o') if name == b"Authentication-Info" || name.eq_ignore_ascii_case(b"authentication-info") => HeaderName::AuthenticationInfo,
                    (19, b'c', b'n') if name == b"Content-Disposition" || name.eq_ignore_ascii_case(b"content-disposition") => HeaderName::ContentDisposition,
                    (19, b'p', b'n') if name == b"Proxy-Authorization" || name.eq_ignore_ascii_case(b"proxy-authorization") => HeaderName::ProxyAuthorization,
                    (19, b'r', b'n') if name == b"Request-Disposition" || name.eq_ignore_ascii_case(b"request-disposition") => HeaderName::RequestDisposition,
                    _ => HeaderName::Other,
                }
            }
        }
    };
}

header_names! {
    Via => "Via", b"via" | b"v";
    From => "From", b"from" | b"f";
    To => "To", b"to" | b"t";
    CallId => "Call-ID", b"call-id" | b"i";
    CSeq => "CSeq", b"cseq";
    MaxForwards => "Max-Forwards", b"max-forwards";
    Contact => "Contact", b"contact" | b"m";
    Expires => "Expires", b"expires";
    MinExpires => "Min-Expires", b"min-expires";
    ContentLength => "Content-Length", b"content-length" | b"l";
    ContentType => "Content-Type", b"content-type" | b"c";
    ContentEncoding => "Content-Encoding", b"content-encoding" | b"e";
    ContentDisposition => "Content-Disposition", b"content-disposition";
    ContentLanguage => "Content-Language", b"content-language";
    Route => "Route", b"route";
    RecordRoute => "Record-Route", b"record-route";
    Path => "Path", b"path";
    Require => "Require", b"require";
    ProxyRequire => "Proxy-Require", b"proxy-require";
    Supported => "Supported", b"supported" | b"k";
    Unsupported => "Unsupported", b"unsupported";
    Allow => "Allow", b"allow";
    Accept => "Accept", b"accept";
    AcceptEncoding => "Accept-Encoding", b"accept-encoding";
    AcceptLanguage => "Accept-Language", b"accept-language";
    Event => "Event", b"event" | b"o";
    AllowEvents => "Allow-Events", b"allow-events" | b"u";
    SubscriptionState => "Subscription-State", b"subscription-state";
    SipEtag => "SIP-ETag", b"sip-etag";
    SipIfMatch => "SIP-If-Match", b"sip-if-match";
    Authorization => "Authorization", b"authorization";
    ProxyAuthorization => "Proxy-Authorization", b"proxy-authorization";
    WwwAuthenticate => "WWW-Authenticate", b"www-authenticate";
    ProxyAuthenticate => "Proxy-Authenticate", b"proxy-authenticate";
    AuthenticationInfo => "Authentication-Info", b"authentication-info";
    UserAgent => "User-Agent", b"user-agent";
    Server => "Server", b"server";
    Date => "Date", b"date";
    Subject => "Subject", b"subject" | b"s";
    ReferTo => "Refer-To", b"refer-to" | b"r";
    ReferredBy => "Referred-By", b"referred-by" | b"b";
    SessionExpires => "Session-Expires", b"session-expires" | b"x";
    Identity => "Identity", b"identity" | b"y";
    RequestDisposition => "Request-Disposition", b"request-disposition" | b"d";
    RejectContact => "Reject-Contact", b"reject-contact" | b"j";
    AcceptContact => "Accept-Contact", b"accept-contact" | b"a";
    Timestamp => "Timestamp", b"timestamp";
    RetryAfter => "Retry-After", b"retry-after";
    Warning => "Warning", b"warning";
    Organization => "Organization", b"organization";
    Priority => "Priority", b"priority";
    MimeVersion => "MIME-Version", b"mime-version";
    CallInfo => "Call-Info", b"call-info";
    AlertInfo => "Alert-Info", b"alert-info";
    ErrorInfo => "Error-Info", b"error-info";
    InReplyTo => "In-Reply-To", b"in-reply-to";
    ReplyTo => "Reply-To", b"reply-to";
    ReasonHdr => "Reason", b"reason";
}

impl HeaderName {
    /// Headers whose value is a comma-separated list that may also be split over several
    /// header lines (RFC 3261 §7.3.1). Authentication headers are not: their commas separate
    /// parameters of one value.
    pub fn is_list(self) -> bool {
        matches!(
            self,
            HeaderName::Via
                | HeaderName::Contact
                | HeaderName::Route
                | HeaderName::RecordRoute
                | HeaderName::Path
                | HeaderName::Require
                | HeaderName::ProxyRequire
                | HeaderName::Supported
                | HeaderName::Unsupported
                | HeaderName::Allow
                | HeaderName::Accept
                | HeaderName::AcceptEncoding
                | HeaderName::AcceptLanguage
                | HeaderName::AllowEvents
                | HeaderName::ContentEncoding
                | HeaderName::ContentLanguage
                | HeaderName::CallInfo
                | HeaderName::AlertInfo
                | HeaderName::ErrorInfo
                | HeaderName::InReplyTo
                | HeaderName::Warning
                | HeaderName::ReasonHdr
        )
    }

    /// Headers that may appear at most once with one value; a second one makes a request
    /// invalid (RFC 4475 §3.3.8, `multi01`).
    pub fn is_single(self) -> bool {
        matches!(
            self,
            HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
                | HeaderName::MaxForwards
                | HeaderName::ContentLength
                | HeaderName::ContentType
                | HeaderName::Expires
                | HeaderName::MinExpires
                | HeaderName::Event
                | HeaderName::SubscriptionState
                | HeaderName::SipEtag
                | HeaderName::SipIfMatch
                | HeaderName::Date
        )
    }
}

impl std::fmt::Display for HeaderName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::HeaderName;

    #[test]
    fn long_compact_and_case() {
        assert_eq!(
            HeaderName::from_bytes(b"MaX-fOrWaRdS"),
            HeaderName::MaxForwards
        );
        assert_eq!(HeaderName::from_bytes(b"v"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"V"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"l"), HeaderName::ContentLength);
        assert_eq!(HeaderName::from_bytes(b"call-id"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"sip-etag"), HeaderName::SipEtag);
        assert_eq!(
            HeaderName::from_bytes(b"www-authenticate"),
            HeaderName::WwwAuthenticate
        );
        assert_eq!(
            HeaderName::from_bytes(b"NewFangledHeader"),
            HeaderName::Other
        );
        assert_eq!(HeaderName::from_bytes(&[b'x'; 40]), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b""), HeaderName::Other);
        for c in b"vftimlckseourbxydja" {
            assert_ne!(
                HeaderName::from_bytes(&[*c]),
                HeaderName::Other,
                "{}",
                *c as char
            );
        }
    }
}
