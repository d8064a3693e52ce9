//! Header field names: the well-known names as an enum, matched case-insensitively, with
//! the compact forms of RFC 3261 §7.3.3 and its extensions (`v f t i m l c k s e o u r b x y
//! d j a`), and the facts about each name that parsing and validation need.

macro_rules! header_names {
    ($( $variant:ident => $canon:literal $(| $alias:literal)* ; )*) => {
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

            /// Looks up a name given in any case, long or compact form.
            pub fn from_bytes(name: &[u8]) -> HeaderName {
                let mut lower = [0u8; 24];
                let Some(dst) = lower.get_mut(..name.len()) else {
                    return HeaderName::Other;
                };
                for (d, s) in dst.iter_mut().zip(name) {
                    *d = s.to_ascii_lowercase();
                }
                match &*dst {
                    $(
                        x if x == lower_bytes!($canon) $(|| x == $alias.as_bytes())* => HeaderName::$variant,
                    )*
                    _ => HeaderName::Other,
                }
            }
        }
    };
}

// `match` on byte-string patterns needs literals; lowercase comparison through a helper
// keeps the table readable.
macro_rules! lower_bytes {
    ($s:literal) => {
        &const { $crate::header_name::lower_const::<{ $s.len() }>($s) }[..]
    };
}

pub(crate) const fn lower_const<const N: usize>(s: &str) -> [u8; N] {
    let b = s.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = b[i].to_ascii_lowercase();
        i += 1;
    }
    out
}

header_names! {
    Via => "Via" | "v";
    From => "From" | "f";
    To => "To" | "t";
    CallId => "Call-ID" | "i";
    CSeq => "CSeq";
    MaxForwards => "Max-Forwards";
    Contact => "Contact" | "m";
    Expires => "Expires";
    MinExpires => "Min-Expires";
    ContentLength => "Content-Length" | "l";
    ContentType => "Content-Type" | "c";
    ContentEncoding => "Content-Encoding" | "e";
    ContentDisposition => "Content-Disposition";
    ContentLanguage => "Content-Language";
    Route => "Route";
    RecordRoute => "Record-Route";
    Path => "Path";
    Require => "Require";
    ProxyRequire => "Proxy-Require";
    Supported => "Supported" | "k";
    Unsupported => "Unsupported";
    Allow => "Allow";
    Accept => "Accept";
    AcceptEncoding => "Accept-Encoding";
    AcceptLanguage => "Accept-Language";
    Event => "Event" | "o";
    AllowEvents => "Allow-Events" | "u";
    SubscriptionState => "Subscription-State";
    SipEtag => "SIP-ETag";
    SipIfMatch => "SIP-If-Match";
    Authorization => "Authorization";
    ProxyAuthorization => "Proxy-Authorization";
    WwwAuthenticate => "WWW-Authenticate";
    ProxyAuthenticate => "Proxy-Authenticate";
    AuthenticationInfo => "Authentication-Info";
    UserAgent => "User-Agent";
    Server => "Server";
    Date => "Date";
    Subject => "Subject" | "s";
    ReferTo => "Refer-To" | "r";
    ReferredBy => "Referred-By" | "b";
    SessionExpires => "Session-Expires" | "x";
    Identity => "Identity" | "y";
    RequestDisposition => "Request-Disposition" | "d";
    RejectContact => "Reject-Contact" | "j";
    AcceptContact => "Accept-Contact" | "a";
    Timestamp => "Timestamp";
    RetryAfter => "Retry-After";
    Warning => "Warning";
    Organization => "Organization";
    Priority => "Priority";
    MimeVersion => "MIME-Version";
    CallInfo => "Call-Info";
    AlertInfo => "Alert-Info";
    ErrorInfo => "Error-Info";
    InReplyTo => "In-Reply-To";
    ReplyTo => "Reply-To";
    ReasonHdr => "Reason";
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
        assert_eq!(HeaderName::from_bytes(b"MaX-fOrWaRdS"), HeaderName::MaxForwards);
        assert_eq!(HeaderName::from_bytes(b"v"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"V"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"l"), HeaderName::ContentLength);
        assert_eq!(HeaderName::from_bytes(b"call-id"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"sip-etag"), HeaderName::SipEtag);
        assert_eq!(HeaderName::from_bytes(b"www-authenticate"), HeaderName::WwwAuthenticate);
        assert_eq!(HeaderName::from_bytes(b"NewFangledHeader"), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(&[b'x'; 40]), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b""), HeaderName::Other);
        for c in b"vftimlckseourbxydja" {
            assert_ne!(HeaderName::from_bytes(&[*c]), HeaderName::Other, "{}", *c as char);
        }
    }
}
