//! Building the requests and responses a user agent sends: [`Local`] holds what every
//! message says about this user agent (Via sent-by, Contact, From, User-Agent), [`Outgoing`]
//! is a request outside any dialog, and [`next_hop`] decides where a request goes.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use confab_sip::builder::{RequestBuilder, ResponseBuilder};
use confab_sip::{Host, Message, Scheme, Uri};

use crate::config::{AorParts, Transport, UaConfig};
use crate::error::UaError;
use crate::ids;

/// Methods this user agent understands, for Allow.
pub(crate) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, NOTIFY, INFO";

/// What every message says about this user agent, fixed at bind time.
#[derive(Debug, Clone)]
pub(crate) struct Local {
    pub transport: Transport,
    /// The bound address: Via sent-by and Contact host.
    pub addr: SocketAddr,
    /// The Contact URI, e.g. `sip:alice@127.0.0.1:5070;transport=tcp`.
    pub contact_uri: String,
    /// The AOR as configured.
    pub aor: String,
    /// From without tag: `"Alice" <sip:alice@example.com>`.
    pub from: String,
    pub user_agent: String,
    pub server: Option<SocketAddr>,
    /// Request-URI of REGISTER.
    pub domain_uri: String,
}

impl Local {
    pub(crate) fn new(config: &UaConfig, parts: &AorParts, addr: SocketAddr) -> Local {
        let host = match addr.ip() {
            IpAddr::V4(ip) => format!("{ip}:{}", addr.port()),
            IpAddr::V6(ip) => format!("[{ip}]:{}", addr.port()),
        };
        let user = parts
            .user
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let transport = match config.transport {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
        };
        let from = match &config.display_name {
            Some(name) => format!("{} <{}>", quote(name), config.aor),
            None => format!("<{}>", config.aor),
        };
        Local {
            transport: config.transport,
            addr,
            contact_uri: format!("sip:{user}{host}{transport}"),
            aor: config.aor.clone(),
            from,
            user_agent: config.user_agent.clone(),
            server: config.server,
            domain_uri: parts.domain_uri.clone(),
        }
    }

    /// `<contact-uri>`.
    pub(crate) fn contact(&self) -> String {
        format!("<{}>", self.contact_uri)
    }

    /// The Via sent-by: the bound address.
    pub(crate) fn sent_by(&self) -> String {
        match self.addr.ip() {
            IpAddr::V4(ip) => format!("{ip}:{}", self.addr.port()),
            IpAddr::V6(ip) => format!("[{ip}]:{}", self.addr.port()),
        }
    }

    /// A request line with a fresh Via branch (and `rport`) and Max-Forwards.
    pub(crate) fn start(&self, method: &str, uri: &str) -> RequestBuilder {
        RequestBuilder::new(method, uri)
            .via(self.transport.via_token(), &self.sent_by(), &ids::branch())
            .header("Max-Forwards", "70")
    }

    /// A response to `request` with this user agent's Server header and, if given, a To
    /// tag; `received`/`rport` are filled in from `source` (RFC 3261 §18.2.1, RFC 3581).
    pub(crate) fn response<'m>(
        &self,
        request: &'m Message,
        status: u16,
        reason: &'m str,
        to_tag: &str,
        source: SocketAddr,
    ) -> ResponseBuilder<'m> {
        ResponseBuilder::new(request, status, reason)
            .to_tag(to_tag)
            .received_from(source)
            .header("Server", self.user_agent.clone())
    }
}

/// A display name as a quoted-string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A request outside any dialog, kept so that it can be sent again with credentials (a
/// new branch and the next CSeq; same Call-ID and From tag, RFC 3261 §22.2).
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub method: String,
    pub uri: String,
    /// The To header value.
    pub to: String,
    pub call_id: String,
    pub from_tag: String,
    pub cseq: u32,
    /// Whether to add Contact (REGISTER has its own in `headers`).
    pub contact: bool,
    pub headers: Vec<(String, String)>,
    pub body: Option<(String, Vec<u8>)>,
}

impl Outgoing {
    /// A new request to `target` with a fresh Call-ID and From tag; To is `<target>`.
    pub(crate) fn new(method: &str, target: &str) -> Outgoing {
        Outgoing {
            method: method.to_owned(),
            uri: target.to_owned(),
            to: format!("<{target}>"),
            call_id: ids::call_id(),
            from_tag: ids::tag(),
            cseq: 1,
            contact: false,
            headers: Vec::new(),
            body: None,
        }
    }

    /// Serialises the request with the given authorization headers.
    pub(crate) fn build(&self, local: &Local, auth: &[(&'static str, String)]) -> Bytes {
        let mut b = local
            .start(&self.method, &self.uri)
            .header("From", format!("{};tag={}", local.from, self.from_tag))
            .header("To", self.to.clone())
            .header("Call-ID", self.call_id.clone())
            .header("CSeq", format!("{} {}", self.cseq, self.method));
        if self.contact {
            b = b.header("Contact", local.contact());
        }
        for (name, value) in auth {
            b = b.header(*name, value.clone());
        }
        for (name, value) in &self.headers {
            b = b.header(name.clone(), value.clone());
        }
        b = b.header("User-Agent", local.user_agent.clone());
        if let Some((ct, body)) = &self.body {
            b = b.body(ct.clone(), body.clone());
        }
        b.build()
    }
}

/// Checks that `target` is a URI a request can be addressed to.
pub(crate) fn check_target(target: &str) -> Result<(), UaError> {
    match Uri::parse(target) {
        Ok(_) => Ok(()),
        Err(e) => Err(UaError::InvalidUri {
            uri: target.to_owned(),
            why: e.to_string(),
        }),
    }
}

/// The address of a SIP URI whose host is an IP address (default port 5060, 5061 for
/// sips); `None` for a host name, which would need DNS.
pub(crate) fn uri_addr(uri: &Uri<'_>) -> Option<SocketAddr> {
    let default_port = if uri.scheme() == Scheme::Sips {
        5061
    } else {
        5060
    };
    let ip = match uri.host()? {
        Host::Ipv4(ip) => IpAddr::V4(ip),
        Host::Ipv6(ip) => IpAddr::V6(ip),
        Host::Name(_) => return None,
    };
    Some(SocketAddr::new(ip, uri.port().unwrap_or(default_port)))
}

/// Where a request outside a dialog goes: the configured server, else the Request-URI's
/// address.
pub(crate) fn next_hop(local: &Local, request_uri: &str) -> Result<SocketAddr, UaError> {
    if let Some(server) = local.server {
        return Ok(server);
    }
    Uri::parse(request_uri)
        .ok()
        .as_ref()
        .and_then(uri_addr)
        .ok_or_else(|| UaError::NoRoute(request_uri.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_and_outgoing() {
        let config = UaConfig {
            display_name: Some("Alice \"A\"".into()),
            ..UaConfig::new("sip:alice@example.com")
        };
        let parts = config.validate().expect("valid");
        let local = Local::new(&config, &parts, "127.0.0.1:5070".parse().expect("addr"));
        assert_eq!(local.contact_uri, "sip:alice@127.0.0.1:5070");
        assert_eq!(local.from, "\"Alice \\\"A\\\"\" <sip:alice@example.com>");
        assert_eq!(local.domain_uri, "sip:example.com");

        let mut out = Outgoing::new("MESSAGE", "sip:bob@127.0.0.1:5080");
        out.body = Some(("text/plain".into(), b"hi".to_vec()));
        let msg = Message::parse(out.build(&local, &[])).expect("parses");
        let via = msg.via().expect("via");
        assert_eq!(via.host_str(), "127.0.0.1");
        assert_eq!(via.port(), Some(5070));
        assert_eq!(via.rport(), Some(None));
        assert!(via.has_rfc3261_branch());
        assert_eq!(msg.body(), b"hi");
        assert_eq!(msg.from().expect("from").tag(), Some(out.from_tag.as_str()));
        let hop = next_hop(&local, &out.uri).expect("hop");
        assert_eq!(hop, "127.0.0.1:5080".parse().expect("addr"));
        assert!(matches!(
            next_hop(&local, "sip:bob@example.com"),
            Err(UaError::NoRoute(_))
        ));
    }
}
