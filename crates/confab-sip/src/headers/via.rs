//! The Via header (RFC 3261 §20.42, §18.2.1): sent-protocol, sent-by and the parameters
//! that route responses back (branch, received, rport, maddr, ttl).

use crate::lex::Cursor;
use crate::uri::{parse_host_port, Host};

use super::params::{read_params_with, Params};

/// The RFC 3261 branch magic cookie.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// One Via value.
#[derive(Debug, Clone, Copy)]
pub struct Via<'a> {
    raw: &'a str,
    protocol: &'a str,
    version: &'a str,
    transport: &'a str,
    host: Host<'a>,
    host_str: &'a str,
    port: Option<u16>,
    params: Params<'a>,
    branch: Option<&'a str>,
    received: Option<&'a str>,
    rport: Option<Option<u16>>,
    maddr: Option<&'a str>,
    ttl: Option<u8>,
}

/// Octets of a sent-by host name or IPv4 address, as a table.
static HOST: [bool; 256] =
    crate::lex::byte_table!(b => b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));

fn is_host_byte(b: u8) -> bool {
    HOST[usize::from(b)]
}

impl<'a> Via<'a> {
    /// Parses one Via value (one element of a comma-separated Via header).
    pub fn parse(s: &'a str) -> Result<Via<'a>, &'static str> {
        let mut c = Cursor::new(s);
        c.skip_lws();
        let protocol = c.token().ok_or("expected protocol name")?;
        if !c.eat_sep(b'/') {
            return Err("expected / after protocol name");
        }
        let version = c.token().ok_or("expected protocol version")?;
        if !c.eat_sep(b'/') {
            return Err("expected / after protocol version");
        }
        let transport = c.token().ok_or("expected transport")?;
        if !c.skip_lws() {
            return Err("expected whitespace before sent-by");
        }
        let host_start = c.pos();
        if c.peek() == Some(b'[') {
            c.take_while(|b| b != b']');
            if !c.eat(b']') {
                return Err("unterminated IPv6 reference in sent-by");
            }
        } else {
            c.take_while(is_host_byte);
        }
        let host_str = c.slice(host_start, c.pos());
        if host_str.is_empty() {
            return Err("expected sent-by host");
        }
        let (host, _) = parse_host_port(host_str).map_err(|_| "invalid sent-by host")?;
        let mut port = None;
        if c.eat_sep(b':') {
            let digits = c.take_while(|b| b.is_ascii_digit());
            let p = crate::lex::parse_decimal(digits, u64::from(u16::MAX))
                .ok_or("invalid sent-by port")?;
            port = Some(u16::try_from(p).map_err(|_| "invalid sent-by port")?);
        }
        let (mut branch, mut received, mut rport, mut maddr, mut ttl) =
            (None, None, None, None, None);
        let params = read_params_with(&mut c, |p| {
            let name = p.name;
            if name.eq_ignore_ascii_case("branch") {
                match p.value {
                    Some(v) if !v.is_empty() && !p.quoted => branch = Some(v),
                    _ => return Err("branch must be a token"),
                }
            } else if name.eq_ignore_ascii_case("received") {
                let v = p.value.ok_or("received without value")?;
                received_addr(v).ok_or("received is not an IP address")?;
                received = Some(v);
            } else if name.eq_ignore_ascii_case("rport") {
                rport = Some(match p.value {
                    None => None,
                    Some(v) => Some(
                        crate::lex::parse_decimal(v, u64::from(u16::MAX))
                            .and_then(|n| u16::try_from(n).ok())
                            .ok_or("rport out of range")?,
                    ),
                });
            } else if name.eq_ignore_ascii_case("ttl") {
                let v = p.value.ok_or("ttl without value")?;
                let n = crate::lex::parse_decimal(v, 255).ok_or("ttl out of range")?;
                ttl = u8::try_from(n).ok();
            } else if name.eq_ignore_ascii_case("maddr") {
                maddr = Some(p.value.ok_or("maddr without value")?);
            }
            Ok(())
        })?;
        Ok(Via {
            raw: s,
            protocol,
            version,
            transport,
            host,
            host_str,
            port,
            params,
            branch,
            received,
            rport,
            maddr,
            ttl,
        })
    }

    /// The value as written.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }
    /// The protocol name (`SIP`).
    pub fn protocol(&self) -> &'a str {
        self.protocol
    }
    /// The protocol version (`2.0`).
    pub fn version(&self) -> &'a str {
        self.version
    }
    /// The transport token as written (`UDP`, `TCP`, `TLS`, `WS`, `WSS`, `SCTP`, or an
    /// extension); compare case-insensitively.
    pub fn transport(&self) -> &'a str {
        self.transport
    }
    /// The sent-by host.
    pub fn host(&self) -> Host<'a> {
        self.host
    }
    /// The sent-by host as written (IPv6 in brackets).
    pub fn host_str(&self) -> &'a str {
        self.host_str
    }
    /// The sent-by port, if given.
    pub fn port(&self) -> Option<u16> {
        self.port
    }
    /// All parameters.
    pub fn params(&self) -> Params<'a> {
        self.params
    }
    /// The branch parameter.
    pub fn branch(&self) -> Option<&'a str> {
        self.branch
    }
    /// True when the branch is the RFC 3261 magic cookie followed by at least one more
    /// character, i.e. the sender is an RFC 3261 element and the branch alone identifies the
    /// transaction (§17.2.3). A bare cookie (RFC 4475 `badbranch`) identifies nothing.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE))
    }
    /// The received parameter, without brackets.
    pub fn received(&self) -> Option<std::net::IpAddr> {
        self.received.and_then(received_addr)
    }
    /// The rport parameter: `Some(None)` when present without a value (a request asking for
    /// symmetric response routing, RFC 3581), `Some(Some(p))` when filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.rport
    }
    /// The maddr parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.maddr
    }
    /// The ttl parameter.
    pub fn ttl(&self) -> Option<u8> {
        self.ttl
    }
}

fn received_addr(v: &str) -> Option<std::net::IpAddr> {
    let v = v
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(v);
    v.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_whitespace_everywhere() {
        let v = Via::parse("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").expect("ok");
        assert_eq!(
            (v.protocol(), v.version(), v.transport()),
            ("SIP", "2.0", "UDP")
        );
        assert_eq!(v.host_str(), "192.0.2.2");
        assert_eq!(v.branch(), Some("390skdjuw"));
        assert!(!v.has_rfc3261_branch());
        let v = Via::parse(
            "SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8",
        )
        .expect("ok");
        assert_eq!(v.host_str(), "spindle.example.com");
        assert_eq!(v.branch(), Some("z9hG4bK9ikj8"));
    }

    #[test]
    fn ports_rport_received_ipv6() {
        let v = Via::parse("SIP/2.0/UDP [2001:db8::9:1]:5070;received=2001:db8::9:255;rport")
            .expect("ok");
        assert_eq!(v.port(), Some(5070));
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.received(), "2001:db8::9:255".parse().ok());
        let v = Via::parse("SIP/2.0/UDP 10.0.0.1 : 5060;rport=1234;ttl=16;maddr=224.2.0.1")
            .expect("ok");
        assert_eq!(v.port(), Some(5060));
        assert_eq!(v.rport(), Some(Some(1234)));
        assert_eq!(v.ttl(), Some(16));
        assert_eq!(v.maddr(), Some("224.2.0.1"));
    }

    #[test]
    fn rejects() {
        for s in [
            "SIP/2.0/UDP 192.0.2.15;;",
            "SIP/2.0/UDP",
            "SIP/2.0 192.0.2.1",
            "SIP/2.0/UDP 192.0.2.1:99999",
            "SIP/2.0/UDP [2001:db8::1;branch=z9hG4bK1",
            "SIP/2.0/UDP h;ttl=300",
            "SIP/2.0/UDP h;received=not-an-ip",
            "SIP/2.0/UDP h;branch=",
            "",
        ] {
            assert!(Via::parse(s).is_err(), "{s:?}");
        }
    }
}
