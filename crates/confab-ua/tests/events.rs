//! The subscriber and publisher (RFC 6665, RFC 3903) against a scripted notifier: a raw UDP
//! socket on loopback that answers and sends exactly what each test says, so that the
//! orderings a real server rarely produces (a NOTIFY before the 2xx, a NOTIFY for a
//! subscription the user agent dropped, the wrong Event) are tested too.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{bind, fast, WAIT};
use confab_sip::builder::ResponseBuilder;
use confab_sip::{HeaderName, Message};
use confab_ua::{PublishRequest, SubscriptionState, Transport, UaConfig, UaError, UserAgent};
use tokio::net::UdpSocket;

/// The scripted notifier: one socket, the requests it received, the NOTIFYs it sends.
struct Notifier {
    socket: UdpSocket,
    cseq: u32,
}

impl Notifier {
    async fn bind() -> Notifier {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        Notifier { socket, cseq: 0 }
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("addr")
    }

    /// A user agent whose server (outbound proxy) is this notifier.
    async fn ua(&self, aor: &str) -> UserAgent {
        bind(UaConfig {
            server: Some(self.addr()),
            ..fast(aor, Transport::Udp)
        })
        .await
    }

    /// The next request, skipping responses.
    async fn request(&self) -> (Message, SocketAddr) {
        loop {
            let (msg, from) = self.recv().await;
            if msg.is_request() {
                return (msg, from);
            }
        }
    }

    /// The next response, skipping requests (retransmissions).
    async fn response(&self) -> Message {
        loop {
            let (msg, _) = self.recv().await;
            if !msg.is_request() {
                return msg;
            }
        }
    }

    async fn recv(&self) -> (Message, SocketAddr) {
        let mut buf = vec![0u8; 65536];
        let (n, from) = tokio::time::timeout(WAIT, self.socket.recv_from(&mut buf))
            .await
            .expect("something arrives in time")
            .expect("recv");
        buf.truncate(n);
        (Message::parse(Bytes::from(buf)).expect("parses"), from)
    }

    async fn send(&self, bytes: Bytes, to: SocketAddr) {
        self.socket.send_to(&bytes, to).await.expect("send");
    }

    /// Answers `request` with `status`, our tag `tag`, Contact and the extra headers.
    async fn answer(
        &self,
        request: &Message,
        to: SocketAddr,
        status: u16,
        tag: &str,
        headers: &[(&str, &str)],
    ) {
        let mut b = ResponseBuilder::new(request, status, "Whatever")
            .to_tag(tag)
            .header("Contact", format!("<sip:notifier@{}>", self.addr()));
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        self.send(b.build(), to).await;
    }

    /// Sends a NOTIFY in the dialog of `subscribe` (our tag `tag`) and returns its
    /// response.
    async fn notify(
        &mut self,
        subscribe: &Message,
        to: SocketAddr,
        tag: &str,
        event: &str,
        state: &str,
        body: &str,
    ) -> Message {
        self.cseq += 1;
        let from = subscribe.header(HeaderName::From).expect("From");
        let to_uri = subscribe.header(HeaderName::To).expect("To");
        let target = subscribe
            .contacts()
            .next()
            .expect("Contact")
            .expect("valid")
            .address()
            .expect("not *")
            .uri()
            .as_str()
            .to_owned();
        let text = format!(
            "NOTIFY {target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch=z9hG4bK-n{cseq}-{tag}\r\n\
             Max-Forwards: 70\r\n\
             From: {to_uri};tag={tag}\r\n\
             To: {from}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} NOTIFY\r\n\
             Contact: <sip:notifier@{me}>\r\n\
             Event: {event}\r\n\
             Subscription-State: {state}\r\n\
             Content-Type: application/pidf+xml\r\n\
             Content-Length: {len}\r\n\r\n{body}",
            me = self.addr(),
            cseq = self.cseq,
            call_id = subscribe.call_id().expect("Call-ID"),
            len = body.len(),
        );
        self.send(Bytes::from(text), to).await;
        self.response().await
    }
}

#[tokio::test]
async fn a_subscription_follows_its_notifies_and_refreshes_in_its_dialog() {
    let mut notifier = Notifier::bind().await;
    let watcher = notifier.ua("sip:watcher@example.com").await;
    let subscribing = watcher.subscribe(
        "sip:alice@example.com",
        "presence",
        "application/pidf+xml",
        600,
    );
    let script = async {
        let (sub, from) = notifier.request().await;
        assert_eq!(sub.method_str(), Some("SUBSCRIBE"));
        assert_eq!(sub.header(HeaderName::Event), Some("presence"));
        assert_eq!(sub.header(HeaderName::Accept), Some("application/pidf+xml"));
        assert_eq!(sub.expires().expect("valid"), Some(600));
        assert!(sub.contacts().next().is_some(), "SUBSCRIBE has a Contact");
        notifier
            .answer(&sub, from, 200, "n1", &[("Expires", "300")])
            .await;
        let r = notifier
            .notify(
                &sub,
                from,
                "n1",
                "presence",
                "active;expires=300",
                "<open/>",
            )
            .await;
        assert_eq!(r.status(), Some(200));
        (sub, from)
    };
    let (subscription, (sub, from)) = tokio::join!(subscribing, script);
    let mut subscription = subscription.expect("subscribed");
    assert_eq!(subscription.status(), 200);
    assert_eq!(subscription.expires(), 300);
    let first = subscription.next_notify(WAIT).await.expect("NOTIFY");
    assert_eq!(first.state, SubscriptionState::Active);
    assert_eq!(first.expires, Some(300));
    assert_eq!(first.body_str(), Some("<open/>"));
    assert_eq!(first.content_type(), Some("application/pidf+xml"));
    // The NOTIFY went to the subscription, not to the application.
    assert!(watcher.try_next_incoming().is_none());

    // A refresh is a SUBSCRIBE in the dialog: our tag and theirs, the next CSeq, the
    // notifier's Contact as Request-URI.
    let refreshing = subscription.refresh(900);
    let script = async {
        let (re, from) = notifier.request().await;
        assert_eq!(re.method_str(), Some("SUBSCRIBE"));
        assert_eq!(re.to().expect("To").tag(), Some("n1"));
        assert_eq!(re.call_id().ok(), sub.call_id().ok());
        assert!(re.cseq().expect("CSeq").seq > sub.cseq().expect("CSeq").seq);
        assert_eq!(
            re.request_uri_str(),
            Some(format!("sip:notifier@{}", notifier.addr()).as_str())
        );
        assert_eq!(re.expires().expect("valid"), Some(900));
        notifier
            .answer(&re, from, 200, "n1", &[("Expires", "900")])
            .await;
    };
    let (refreshed, ()) = tokio::join!(refreshing, script);
    assert_eq!(refreshed.expect("refreshed").status(), Some(200));
    assert_eq!(subscription.expires(), 900);

    // A NOTIFY of another package is refused, and not queued.
    let r = notifier
        .notify(&sub, from, "n1", "dialog", "active", "")
        .await;
    assert_eq!(r.status(), Some(489));
    assert!(subscription.try_next_notify().is_none());

    // Unsubscribing: 200, then the notifier's terminated NOTIFY ends it.
    let unsubscribing = subscription.unsubscribe();
    let script = async {
        let (un, from) = notifier.request().await;
        assert_eq!(un.expires().expect("valid"), Some(0));
        notifier
            .answer(&un, from, 200, "n1", &[("Expires", "0")])
            .await;
        let r = notifier
            .notify(
                &sub,
                from,
                "n1",
                "presence",
                "terminated;reason=timeout",
                "",
            )
            .await;
        assert_eq!(r.status(), Some(200));
    };
    let (unsubscribed, ()) = tokio::join!(unsubscribing, script);
    assert_eq!(unsubscribed.expect("unsubscribed").status(), Some(200));
    let last = subscription.next_notify(WAIT).await.expect("final NOTIFY");
    assert!(last.is_terminated());
    assert_eq!(last.reason.as_deref(), Some("timeout"));
    assert!(subscription.is_terminated());
    assert!(matches!(
        subscription.next_notify(WAIT).await,
        Err(UaError::NoDialog)
    ));
    // Over: a late NOTIFY in that dialog is not ours any more; the application gets it
    // (and, dropping it unanswered, has the user agent answer 500).
    let late = notifier.notify(&sub, from, "n1", "presence", "active", "");
    let delivered = async {
        let incoming = watcher
            .next_incoming_of("NOTIFY", WAIT)
            .await
            .expect("delivered");
        assert!(incoming.needs_answer());
    };
    let (r, ()) = tokio::join!(late, delivered);
    assert_eq!(r.status(), Some(500), "left to the application, unanswered");
}

#[tokio::test]
async fn a_notify_may_overtake_the_2xx() {
    let mut notifier = Notifier::bind().await;
    let watcher = notifier.ua("sip:watcher@example.com").await;
    let subscribing = watcher.subscribe("sip:alice@example.com", "presence", "", 60);
    let script = async {
        let (sub, from) = notifier.request().await;
        assert_eq!(sub.header(HeaderName::Accept), None);
        // NOTIFY first (RFC 6665 §4.1.2.4), then the 200.
        let r = notifier
            .notify(&sub, from, "n2", "presence", "pending", "")
            .await;
        assert_eq!(r.status(), Some(200));
        notifier.answer(&sub, from, 202, "n2", &[]).await;
        (sub, from)
    };
    let (subscription, (sub, from)) = tokio::join!(subscribing, script);
    let mut subscription = subscription.expect("subscribed");
    assert_eq!(
        subscription.expires(),
        60,
        "no Expires in the 2xx: as asked"
    );
    let first = subscription.next_notify(WAIT).await.expect("NOTIFY");
    assert_eq!(first.state, SubscriptionState::Pending);
    assert!(first.body().is_empty());

    // The dialog the NOTIFY made carries the refresh, with a CSeq above the SUBSCRIBE's.
    let refreshing = subscription.refresh(60);
    let script = async {
        let (re, from) = notifier.request().await;
        assert_eq!(re.to().expect("To").tag(), Some("n2"));
        assert!(re.cseq().expect("CSeq").seq > sub.cseq().expect("CSeq").seq);
        notifier.answer(&re, from, 200, "n2", &[]).await;
    };
    let (refreshed, ()) = tokio::join!(refreshing, script);
    assert_eq!(refreshed.expect("refreshed").status(), Some(200));

    // A dropped subscription refuses its NOTIFYs with 481 (RFC 6665 §4.1.3), which ends
    // it at the notifier.
    drop(subscription);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = notifier
        .notify(&sub, from, "n2", "presence", "active", "<x/>")
        .await;
    assert_eq!(r.status(), Some(481));
}

#[tokio::test]
async fn refusals_and_unsolicited_notifies() {
    let mut notifier = Notifier::bind().await;
    let watcher = notifier.ua("sip:watcher@example.com").await;
    // A refused SUBSCRIBE is an error with its status.
    let subscribing = watcher.subscribe("sip:alice@example.com", "presence", "", 60);
    let script = async {
        let (sub, from) = notifier.request().await;
        notifier
            .answer(&sub, from, 489, "n3", &[("Allow-Events", "dialog")])
            .await;
        (sub, from)
    };
    let (refused, (sub, from)) = tokio::join!(subscribing, script);
    assert!(matches!(
        refused,
        Err(UaError::Rejected { status: 489, .. })
    ));
    // Its Call-ID and tag are forgotten: a NOTIFY naming them is the application's.
    let delivering = async {
        notifier
            .notify(&sub, from, "n3", "presence", "active", "")
            .await
    };
    let answering = async {
        let incoming = watcher
            .next_incoming_of("NOTIFY", WAIT)
            .await
            .expect("delivered");
        assert!(incoming.needs_answer());
        incoming.reply(200, "OK").await.expect("answered");
    };
    let (r, ()) = tokio::join!(delivering, answering);
    assert_eq!(r.status(), Some(200));
}

#[tokio::test]
async fn publications_carry_their_entity_tags() {
    let notifier = Notifier::bind().await;
    let alice = notifier.ua("sip:alice@example.com").await;
    let body = Bytes::from_static(b"<presence/>");
    let publishing = alice.publish(PublishRequest {
        event: "presence",
        if_match: None,
        expires: 30,
        body: Some(("application/pidf+xml", body.clone())),
    });
    let script = async {
        // Too brief: the user agent asks again with Min-Expires.
        let (first, from) = notifier.request().await;
        assert_eq!(first.method_str(), Some("PUBLISH"));
        assert_eq!(first.request_uri_str(), Some("sip:alice@example.com"));
        assert_eq!(first.header(HeaderName::SipIfMatch), None);
        assert_eq!(first.expires().expect("valid"), Some(30));
        assert_eq!(first.body(), &body[..]);
        notifier
            .answer(&first, from, 423, "p", &[("Min-Expires", "60")])
            .await;
        let (second, from) = notifier.request().await;
        assert_eq!(second.expires().expect("valid"), Some(60));
        notifier
            .answer(
                &second,
                from,
                200,
                "p",
                &[("SIP-ETag", "e-1"), ("Expires", "60")],
            )
            .await;
    };
    let (published, ()) = tokio::join!(publishing, script);
    let published = published.expect("published");
    assert!(published.is_success());
    assert_eq!(published.etag.as_deref(), Some("e-1"));
    assert_eq!(published.expires, 60);

    // A removal names the entity-tag, carries no body and asks for 0.
    let removing = alice.publish(PublishRequest {
        event: "presence",
        if_match: published.etag.as_deref(),
        expires: 0,
        body: None,
    });
    let script = async {
        let (remove, from) = notifier.request().await;
        assert_eq!(remove.header(HeaderName::SipIfMatch), Some("e-1"));
        assert_eq!(remove.expires().expect("valid"), Some(0));
        assert!(remove.body().is_empty());
        notifier.answer(&remove, from, 412, "p", &[]).await;
    };
    let (removed, ()) = tokio::join!(removing, script);
    let removed = removed.expect("answered");
    assert_eq!(
        (removed.status, removed.etag, removed.expires),
        (412, None, 0)
    );
}
