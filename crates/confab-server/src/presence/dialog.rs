//! The dialog of one subscription, from the notifier's side (RFC 6665 §4.2, RFC 3261 §12.1.1):
//! made from the SUBSCRIBE that created it, kept across refreshes, written behind in a line
//! format of its own, and used to build every NOTIFY sent inside it.

use bytes::Bytes;
use confab_sip::builder::RequestBuilder;
use confab_sip::{HeaderName, Message};

use crate::forward::{prepend_routes, Listeners};
use crate::ids;
use crate::location::{format_flow, parse_flow};
use crate::transport::Source;

/// The notifier's side of a subscription dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    /// Call-ID.
    pub call_id: String,
    /// Our tag (the To tag of our 2xx).
    pub local_tag: String,
    /// The subscriber's tag (its From tag).
    pub remote_tag: String,
    /// Our URI: the To URI of the SUBSCRIBE (the presentity).
    pub local_uri: String,
    /// The subscriber's From header value, tag included.
    pub remote: String,
    /// Where NOTIFYs go: the subscriber's Contact URI.
    pub remote_target: String,
    /// The route set: the SUBSCRIBE's Record-Route values, in order.
    pub route_set: Vec<String>,
    /// The CSeq number of our last NOTIFY.
    pub local_cseq: u32,
    /// The CSeq number of the subscriber's last SUBSCRIBE.
    pub remote_cseq: u32,
    /// The connection or address the SUBSCRIBE came from: NOTIFYs go back that way when the
    /// route set is empty (a client behind NAT, or on a WebSocket, is reachable only there).
    pub flow: Source,
    /// The Event header's `id` parameter, repeated in every NOTIFY.
    pub event_id: Option<String>,
}

/// Why a SUBSCRIBE cannot make a dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadSubscribe(pub &'static str);

impl Dialog {
    /// The dialog a SUBSCRIBE creates, with `local_tag` as our tag.
    pub fn from_subscribe(
        req: &Message,
        source: &Source,
        local_tag: &str,
    ) -> Result<Dialog, BadSubscribe> {
        let from = req.from().map_err(|_| BadSubscribe("Bad From Header"))?;
        let remote_tag = from.tag().ok_or(BadSubscribe("Missing From Tag"))?;
        let to = req.to().map_err(|_| BadSubscribe("Bad To Header"))?;
        let call_id = req.call_id().map_err(|_| BadSubscribe("Bad Call-ID"))?;
        let cseq = req.cseq().map_err(|_| BadSubscribe("Bad CSeq"))?;
        let contact = match req.contacts().next() {
            Some(Ok(c)) => c,
            _ => return Err(BadSubscribe("Missing Contact")),
        };
        let target = contact
            .address()
            .ok_or(BadSubscribe("Bad Contact"))?
            .uri()
            .as_str()
            .to_owned();
        let mut route_set = Vec::new();
        for rr in req.record_routes() {
            let rr = rr.map_err(|_| BadSubscribe("Bad Record-Route"))?;
            route_set.push(rr.as_str().to_owned());
        }
        let event_id = req
            .event()
            .ok()
            .flatten()
            .and_then(|e| e.id())
            .map(str::to_owned);
        Ok(Dialog {
            call_id: call_id.to_owned(),
            local_tag: local_tag.to_owned(),
            remote_tag: remote_tag.to_owned(),
            local_uri: to.uri().as_str().to_owned(),
            remote: req
                .header(HeaderName::From)
                .unwrap_or_default()
                .trim()
                .to_owned(),
            remote_target: target,
            route_set,
            local_cseq: ids::random_u32() % 10_000,
            remote_cseq: cseq.seq,
            flow: *source,
            event_id,
        })
    }

    /// The id a subscription is known by: our tag and the Call-ID.
    pub fn id(&self) -> String {
        subscription_id(&self.local_tag, &self.call_id)
    }

    /// The NOTIFY for this dialog, with the next CSeq: `event` package, `state` the
    /// Subscription-State value, and an optional (content type, body).
    pub fn notify(
        &mut self,
        listeners: &Listeners,
        event: &str,
        state: &str,
        body: Option<(&str, &[u8])>,
        next_hop: &Source,
    ) -> Bytes {
        self.local_cseq = self.local_cseq.wrapping_add(1);
        let event = match &self.event_id {
            Some(id) => format!("{event};id={id}"),
            None => event.to_owned(),
        };
        let mut b = RequestBuilder::new("NOTIFY", self.remote_target.clone())
            .header("Via", listeners.via(next_hop, &ids::branch()))
            .header("Max-Forwards", "70")
            .header(
                "From",
                format!("<{}>;tag={}", self.local_uri, self.local_tag),
            )
            .header("To", self.remote.clone())
            .header("Call-ID", self.call_id.clone())
            .header("CSeq", format!("{} NOTIFY", self.local_cseq))
            .header("Contact", listeners.contact(next_hop))
            .header("Event", event)
            .header("Subscription-State", state.to_owned());
        if let Some((content_type, body)) = body {
            b = b.body(content_type.to_owned(), body.to_vec());
        }
        prepend_routes(b.build(), &self.route_set)
    }

    /// The dialog in its stored form: one field per line.
    pub fn to_stored(&self) -> String {
        let mut out = String::with_capacity(256);
        for field in [
            "v1",
            &self.call_id,
            &self.local_tag,
            &self.remote_tag,
            &self.local_uri,
            &self.remote,
            &self.remote_target,
            &self.local_cseq.to_string(),
            &self.remote_cseq.to_string(),
            &format_flow(&self.flow),
            self.event_id.as_deref().unwrap_or(""),
            &self.route_set.len().to_string(),
        ] {
            out.push_str(field);
            out.push('\n');
        }
        for r in &self.route_set {
            out.push_str(r);
            out.push('\n');
        }
        out
    }

    /// A dialog from its stored form; `None` when it is not one this build wrote.
    pub fn from_stored(text: &str) -> Option<Dialog> {
        let mut lines = text.split('\n');
        if lines.next()? != "v1" {
            return None;
        }
        let mut next = || lines.next().map(str::to_owned);
        let call_id = next()?;
        let local_tag = next()?;
        let remote_tag = next()?;
        let local_uri = next()?;
        let remote = next()?;
        let remote_target = next()?;
        let local_cseq = next()?.parse().ok()?;
        let remote_cseq = next()?.parse().ok()?;
        let flow = parse_flow(&next()?)?;
        let event_id = Some(next()?).filter(|s| !s.is_empty());
        let routes: usize = next()?.parse().ok()?;
        let mut route_set = Vec::with_capacity(routes.min(16));
        for _ in 0..routes {
            route_set.push(next()?);
        }
        if [&call_id, &local_tag, &remote_tag, &remote_target]
            .iter()
            .any(|s| s.is_empty())
        {
            return None;
        }
        Some(Dialog {
            call_id,
            local_tag,
            remote_tag,
            local_uri,
            remote,
            remote_target,
            route_set,
            local_cseq,
            remote_cseq,
            flow,
            event_id,
        })
    }
}

/// The id of the subscription with our tag `local_tag` in dialog `call_id`.
pub fn subscription_id(local_tag: &str, call_id: &str) -> String {
    format!("{local_tag}:{call_id}")
}
