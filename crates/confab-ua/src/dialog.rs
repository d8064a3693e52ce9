//! Dialogs (RFC 3261 §12): the state an INVITE and its 2xx establish, from either side, and
//! the requests sent inside one — the ACK for a 2xx (§13.2.2.4) and BYE or any other
//! in-dialog request (§12.2.1.1). Loose routing only: the Request-URI is the remote target
//! and the route set goes into Route headers; the first route (or the remote target when
//! there is none) is where the request is sent.

use std::net::SocketAddr;

use bytes::Bytes;
use confab_sip::header_name::HeaderName;
use confab_sip::{Message, Uri};
use tokio::sync::watch;

use crate::request::{uri_addr, Local};

/// Identifies a dialog: Call-ID and the two tags, ours first.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

impl DialogId {
    /// The dialog a request received inside it belongs to: its To tag is ours.
    pub(crate) fn of_request(request: &Message) -> Option<DialogId> {
        Some(DialogId {
            call_id: request.call_id().ok()?.to_owned(),
            local_tag: request.to().ok()?.tag()?.to_owned(),
            remote_tag: request.from().ok()?.tag()?.to_owned(),
        })
    }
}

/// Where a call stands, as its [`crate::Call`] handle sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallState {
    /// The INVITE is out (or in) and has no final response yet.
    Early,
    /// A 2xx was sent or received; for the callee, the ACK has not arrived yet.
    Answered,
    /// The ACK for the 2xx was sent (caller) or received (callee).
    Confirmed,
    /// The call is over.
    Ended(EndReason),
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// This side sent BYE.
    LocalBye,
    /// The other side sent BYE.
    RemoteBye,
    /// The INVITE was cancelled before it was answered.
    Cancelled,
    /// The INVITE was answered with this final failure status.
    Rejected(u16),
    /// The callee's 2xx was never acknowledged (RFC 3261 §13.3.1.4); a BYE was sent.
    NoAck,
    /// The INVITE got no final response in time.
    TimedOut,
    /// The user agent shut down.
    Shutdown,
}

/// One dialog.
#[derive(Debug)]
pub(crate) struct Dialog {
    pub id: DialogId,
    /// From of our requests, with our tag.
    local: String,
    /// To of our requests, with their tag.
    remote: String,
    remote_target: String,
    /// Route values in the order they go into our requests.
    route_set: Vec<String>,
    local_cseq: u32,
    pub state: watch::Sender<CallState>,
}

fn header(msg: &Message, name: HeaderName) -> Result<String, &'static str> {
    msg.header(name).map(str::to_owned).ok_or("missing header")
}

fn contact_uri(msg: &Message) -> Result<String, &'static str> {
    let contact = msg
        .contacts()
        .next()
        .ok_or("no Contact")?
        .map_err(|_| "bad Contact")?;
    let addr = contact.address().ok_or("Contact is *")?;
    Ok(addr.uri().as_str().to_owned())
}

impl Dialog {
    /// The caller's dialog from its INVITE and a 2xx (route set: Record-Route reversed).
    pub(crate) fn uac(
        invite: &Message,
        response: &Message,
        state: watch::Sender<CallState>,
    ) -> Result<Dialog, &'static str> {
        let mut route_set: Vec<String> = response
            .record_routes()
            .map(|r| r.map(|r| r.as_str().to_owned()))
            .collect::<Result<_, _>>()
            .map_err(|_| "bad Record-Route")?;
        route_set.reverse();
        let to = response.to().map_err(|_| "bad To")?;
        let from = invite.from().map_err(|_| "bad From")?;
        Ok(Dialog {
            id: DialogId {
                call_id: invite.call_id().map_err(|_| "bad Call-ID")?.to_owned(),
                local_tag: from.tag().ok_or("no From tag")?.to_owned(),
                remote_tag: to.tag().ok_or("no To tag")?.to_owned(),
            },
            local: header(invite, HeaderName::From)?,
            remote: header(response, HeaderName::To)?,
            remote_target: contact_uri(response)?,
            route_set,
            local_cseq: invite.cseq().map_err(|_| "bad CSeq")?.seq,
            state,
        })
    }

    /// The callee's dialog from the INVITE and the tag of its 2xx (route set:
    /// Record-Route in order).
    pub(crate) fn uas(
        invite: &Message,
        local_tag: &str,
        state: watch::Sender<CallState>,
    ) -> Result<Dialog, &'static str> {
        let route_set = invite
            .record_routes()
            .map(|r| r.map(|r| r.as_str().to_owned()))
            .collect::<Result<_, _>>()
            .map_err(|_| "bad Record-Route")?;
        let from = invite.from().map_err(|_| "bad From")?;
        let to = header(invite, HeaderName::To)?;
        let local = if invite.to().map_err(|_| "bad To")?.tag().is_some() {
            to
        } else {
            format!("{to};tag={local_tag}")
        };
        Ok(Dialog {
            id: DialogId {
                call_id: invite.call_id().map_err(|_| "bad Call-ID")?.to_owned(),
                local_tag: local_tag.to_owned(),
                remote_tag: from.tag().ok_or("no From tag")?.to_owned(),
            },
            local,
            remote: header(invite, HeaderName::From)?,
            remote_target: contact_uri(invite)?,
            route_set,
            local_cseq: 0,
            state,
        })
    }

    /// Takes a new remote target from a target-refresh request (re-INVITE, RFC 3261
    /// §12.2.2).
    pub(crate) fn refresh_target(&mut self, request: &Message) {
        if let Ok(target) = contact_uri(request) {
            self.remote_target = target;
        }
    }

    /// Makes the next request's CSeq follow `seq` (a subscription's dialog made by a NOTIFY
    /// learns our SUBSCRIBE's CSeq from its 2xx).
    pub(crate) fn raise_local_cseq(&mut self, seq: u32) {
        self.local_cseq = self.local_cseq.max(seq);
    }

    /// Where requests in this dialog go: the first route, else the remote target, else
    /// `fallback` when that is a host name.
    pub(crate) fn next_hop(&self, fallback: Option<SocketAddr>) -> Option<SocketAddr> {
        let first = match self.route_set.first() {
            Some(route) => confab_sip::headers::NameAddr::parse(route)
                .ok()
                .and_then(|r| uri_addr(r.uri())),
            None => Uri::parse(&self.remote_target)
                .ok()
                .as_ref()
                .and_then(uri_addr),
        };
        first.or(fallback)
    }

    /// The ACK for the 2xx to `invite` (RFC 3261 §13.2.2.4): CSeq number of the INVITE,
    /// a new branch, the INVITE's credentials.
    pub(crate) fn ack(&self, invite: &Message, local: &Local) -> Bytes {
        let seq = invite.cseq().map(|c| c.seq).unwrap_or_default();
        let mut b = self.start("ACK", seq, local);
        for f in invite.fields() {
            if matches!(
                f.name,
                HeaderName::Authorization | HeaderName::ProxyAuthorization
            ) {
                if let Some(v) = f.value_str() {
                    b = b.header(f.name.as_str(), v);
                }
            }
        }
        b.header("User-Agent", local.user_agent.clone()).build()
    }

    /// A new request in the dialog with the next CSeq.
    pub(crate) fn request(
        &mut self,
        method: &str,
        local: &Local,
        headers: &[(String, String)],
        body: Option<&(String, Vec<u8>)>,
    ) -> Bytes {
        self.local_cseq = self.local_cseq.wrapping_add(1).max(1);
        let mut b = self.start(method, self.local_cseq, local);
        if method == "INVITE" || method == "UPDATE" {
            b = b.header("Contact", local.contact());
        }
        for (n, v) in headers {
            b = b.header(n.clone(), v.clone());
        }
        b = b.header("User-Agent", local.user_agent.clone());
        if let Some((ct, bytes)) = body {
            b = b.body(ct.clone(), bytes.clone());
        }
        b.build()
    }

    fn start(&self, method: &str, seq: u32, local: &Local) -> confab_sip::builder::RequestBuilder {
        let mut b = local.start(method, &self.remote_target);
        for route in &self.route_set {
            b = b.header("Route", route.clone());
        }
        b.header("From", self.local.clone())
            .header("To", self.remote.clone())
            .header("Call-ID", self.id.call_id.clone())
            .header("CSeq", format!("{seq} {method}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UaConfig;

    fn parse(s: &str) -> Message {
        Message::parse(Bytes::from(s.replace('\n', "\r\n"))).expect("parses")
    }

    #[test]
    fn uac_dialog_routes_and_ack() {
        let invite = parse(
            "INVITE sip:bob@example.com SIP/2.0\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKa\n\
             From: <sip:alice@example.com>;tag=la\nTo: <sip:bob@example.com>\n\
             Call-ID: c1\nCSeq: 7 INVITE\nContact: <sip:alice@127.0.0.1:5070>\n\
             Proxy-Authorization: Digest username=\"alice\"\nContent-Length: 0\n\n",
        );
        let ok = parse(
            "SIP/2.0 200 OK\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKa\n\
             Record-Route: <sip:127.0.0.2:5060;lr>, <sip:127.0.0.3:5062;lr>\n\
             From: <sip:alice@example.com>;tag=la\nTo: <sip:bob@example.com>;tag=rb\n\
             Call-ID: c1\nCSeq: 7 INVITE\nContact: <sip:bob@127.0.0.9:5090>\n\
             Content-Length: 0\n\n",
        );
        let (tx, _rx) = watch::channel(CallState::Early);
        let mut d = Dialog::uac(&invite, &ok, tx).expect("dialog");
        assert_eq!(d.id.remote_tag, "rb");
        assert_eq!(d.next_hop(None), "127.0.0.3:5062".parse().ok());
        let config = UaConfig::new("sip:alice@example.com");
        let parts = config.validate().expect("valid");
        let local = Local::new(&config, &parts, "127.0.0.1:5070".parse().expect("addr"));
        let ack = Message::parse(d.ack(&invite, &local)).expect("ack");
        assert_eq!(ack.request_uri_str(), Some("sip:bob@127.0.0.9:5090"));
        assert_eq!(ack.cseq().expect("cseq").seq, 7);
        assert_eq!(ack.cseq().expect("cseq").method, "ACK");
        let routes: Vec<_> = ack.values(HeaderName::Route).collect();
        assert_eq!(
            routes,
            ["<sip:127.0.0.3:5062;lr>", "<sip:127.0.0.2:5060;lr>"]
        );
        assert!(ack.has(HeaderName::ProxyAuthorization));
        assert_ne!(ack.via().expect("via").branch(), Some("z9hG4bKa"));
        let bye = Message::parse(d.request("BYE", &local, &[], None)).expect("bye");
        assert_eq!(bye.cseq().expect("cseq").seq, 8);
        assert_eq!(bye.to().expect("to").tag(), Some("rb"));
    }

    #[test]
    fn uas_dialog() {
        let invite = parse(
            "INVITE sip:bob@127.0.0.9:5090 SIP/2.0\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKa\n\
             Record-Route: <sip:127.0.0.2:5060;lr>\n\
             From: <sip:alice@example.com>;tag=la\nTo: <sip:bob@example.com>\n\
             Call-ID: c1\nCSeq: 7 INVITE\nContact: <sip:alice@127.0.0.1:5070>\n\
             Content-Length: 0\n\n",
        );
        let (tx, _rx) = watch::channel(CallState::Early);
        let d = Dialog::uas(&invite, "lb", tx).expect("dialog");
        assert_eq!(d.id.remote_tag, "la");
        assert_eq!(d.local, "<sip:bob@example.com>;tag=lb");
        assert_eq!(d.next_hop(None), "127.0.0.2:5060".parse().ok());
    }
}
