//! The stateful proxy between registered UAs over UDP on loopback: a call set up and torn
//! down (INVITE, 180, 200, ACK, BYE) with Record-Route and loose routing, CANCEL and 487,
//! parallel forking to two devices, and the refusals: 407 for an unauthenticated local
//! user, 480 for a user with no registration, 404 for an unknown one, 403 for another
//! domain, 483 for Max-Forwards 0.

mod common;

use std::time::Duration;

use common::ua::*;
use common::WAIT;
use confab_sip::{HeaderName, Message};

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n";

/// alice calls `callee` (authenticating); returns the INVITE sent with credentials.
async fn invite(alice: &mut Ua, callee: &str, call_id: &str) -> bytes::Bytes {
    let uri = format!("sip:{callee}@{DOMAIN}");
    let contact = format!("<{}>", alice.contact());
    alice
        .send_authenticated(
            "INVITE",
            &uri,
            &format!("<{uri}>"),
            call_id,
            1,
            &[("Contact", contact)],
            Some(("application/sdp", SDP)),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_through_the_proxy_with_record_route() {
    // The listen address is a domain too (as by default): contacts at 127.0.0.1 must still
    // be told from users of the domain 127.0.0.1.
    let mut service = service_config();
    service.domains.push("127.0.0.1".to_owned());
    let d = Deployment::start(service).await;
    let mut bob = d.ua("bob").await;
    assert_eq!(bob.register(300).await.status(), Some(200));
    let mut alice = d.ua("alice").await;
    assert_eq!(alice.register(300).await.status(), Some(200));

    invite(&mut alice, "bob", "call-1").await;
    let inv = bob.request_in("INVITE", WAIT).await.expect("bob is called");
    assert_eq!(inv.request_uri_str(), Some(bob.contact().as_str()));
    assert_eq!(inv.max_forwards(), Ok(Some(69)));
    assert_eq!(inv.vias().count(), 2);
    let rr: Vec<String> = inv
        .record_routes()
        .map(|r| r.expect("rr").uri().as_str().to_owned())
        .collect();
    assert_eq!(rr, [format!("sip:{};transport=udp;lr", d.addr)]);
    assert_eq!(inv.body(), SDP.as_bytes());

    bob.answer(&inv, 180, "Ringing", "bob-tag").await;
    let ringing = alice.response("call-1", "INVITE", true).await;
    assert_eq!(ringing.status(), Some(180));
    bob.answer(&inv, 200, "OK", "bob-tag").await;
    let ok = alice.response("call-1", "INVITE", false).await;
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    assert_eq!(ok.vias().count(), 1);
    assert_eq!(
        ok.record_routes().count(),
        1,
        "the route set reaches the caller"
    );
    let remote = ok
        .contacts()
        .flatten()
        .next()
        .and_then(|c| c.address().map(|a| a.uri().as_str().to_owned()))
        .expect("bob's Contact");
    let route = format!("<{}>", rr[0]);
    let to = ok.header(HeaderName::To).expect("To").to_owned();

    // ACK and BYE follow the route set: through the proxy, to the remote target.
    let ack = alice.request(
        "ACK",
        &remote,
        &to,
        "call-1",
        2,
        &[("Route", route.clone())],
        None,
    );
    alice.send(&ack).await;
    let ack = bob
        .request_in("ACK", WAIT)
        .await
        .expect("the ACK reaches bob");
    assert_eq!(ack.routes().count(), 0, "our Route popped");
    assert_eq!(ack.request_uri_str(), Some(bob.contact().as_str()));

    // bob hangs up: his request carries his tag in From, alice's in To.
    let bye = bob_bye(&mut bob, &alice, &route);
    bob.send(&bye).await;
    let bye = alice
        .request_in("BYE", WAIT)
        .await
        .expect("the BYE reaches alice");
    assert_eq!(bye.request_uri_str(), Some(alice.contact().as_str()));
    alice.answer(&bye, 200, "OK", "unused").await;
    let done = bob.response("call-1", "BYE", false).await;
    assert_eq!(done.status(), Some(200));
}

fn bob_bye(bob: &mut Ua, alice: &Ua, route: &str) -> bytes::Bytes {
    let branch = bob.branch();
    confab_sip::builder::RequestBuilder::new("BYE", alice.contact())
        .header(
            "Via",
            format!("SIP/2.0/UDP {};branch={branch};rport", bob.addr),
        )
        .header("Route", route)
        .header("Max-Forwards", "70")
        .header("From", format!("<sip:bob@{DOMAIN}>;tag=bob-tag"))
        .header("To", format!("<sip:alice@{DOMAIN}>;tag={}", alice.tag))
        .header("Call-ID", "call-1")
        .header("CSeq", "1 BYE")
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_gets_200_and_the_invite_487() {
    let d = Deployment::start(service_config()).await;
    let mut bob = d.ua("bob").await;
    assert_eq!(bob.register(300).await.status(), Some(200));
    let mut alice = d.ua("alice").await;
    let sent = invite(&mut alice, "bob", "call-2").await;
    let inv = bob.request_in("INVITE", WAIT).await.expect("bob is called");
    bob.answer(&inv, 180, "Ringing", "bob-tag").await;
    assert_eq!(
        alice.response("call-2", "INVITE", true).await.status(),
        Some(180)
    );

    alice.send(&Ua::cancel_of(&sent)).await;
    let cancelled = alice.response("call-2", "CANCEL", false).await;
    assert_eq!(cancelled.status(), Some(200));
    let cancel = bob
        .request_in("CANCEL", WAIT)
        .await
        .expect("the CANCEL reaches bob");
    assert_eq!(
        cancel.via().expect("via").branch(),
        inv.via().expect("via").branch()
    );
    bob.answer(&cancel, 200, "OK", "bob-tag").await;
    bob.answer(&inv, 487, "Request Terminated", "bob-tag").await;
    let terminated = alice.response("call-2", "INVITE", false).await;
    assert_eq!(terminated.status(), Some(487));
    alice.ack_non_2xx(&sent, &terminated).await;
    // The proxy acknowledged bob's 487 itself (hop by hop).
    let ack = bob.request_in("ACK", WAIT).await.expect("the proxy's ACK");
    assert_eq!(
        ack.via().expect("via").branch(),
        inv.via().expect("via").branch()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_forked_to_every_device_and_the_others_cancelled() {
    let d = Deployment::start(service_config()).await;
    let mut desk = d.ua("bob").await;
    let mut phone = d.ua("bob").await;
    assert_eq!(desk.register(300).await.status(), Some(200));
    assert_eq!(phone.register(300).await.status(), Some(200));
    let mut alice = d.ua("alice").await;
    invite(&mut alice, "bob", "call-3").await;
    let on_desk = desk.request_in("INVITE", WAIT).await.expect("desk rings");
    let on_phone = phone.request_in("INVITE", WAIT).await.expect("phone rings");
    assert_ne!(
        on_desk.via().expect("via").branch(),
        on_phone.via().expect("via").branch()
    );
    desk.answer(&on_desk, 180, "Ringing", "desk").await;
    phone.answer(&on_phone, 180, "Ringing", "phone").await;
    phone.answer(&on_phone, 200, "OK", "phone").await;
    let ok = alice.response("call-3", "INVITE", false).await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.to().expect("to").tag(), Some("phone"));
    // The desk branch is cancelled.
    let cancel = desk
        .request_in("CANCEL", WAIT)
        .await
        .expect("desk cancelled");
    desk.answer(&cancel, 200, "OK", "desk").await;
    desk.answer(&on_desk, 487, "Request Terminated", "desk")
        .await;
    // Its 487 goes no further: alice sees no other final response.
    let extra = alice
        .wait_for(Duration::from_millis(300), |m| {
            m.is_response() && m.status().is_some_and(|s| s >= 300)
        })
        .await;
    assert!(extra.is_none(), "{extra:?}");
}

async fn status_of(alice: &mut Ua, req: bytes::Bytes, call_id: &str, method: &str) -> Message {
    alice.send(&req).await;
    alice.response(call_id, method, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_407_480_404_403_483() {
    let d = Deployment::start(service_config()).await;
    let mut alice = d.ua("alice").await;
    let uri = format!("sip:bob@{DOMAIN}");
    // A local user must authenticate.
    let req = alice.request("INVITE", &uri, &format!("<{uri}>"), "r-1", 1, &[], None);
    let challenge = status_of(&mut alice, req.clone(), "r-1", "INVITE").await;
    assert_eq!(challenge.status(), Some(407));
    assert_eq!(challenge.count(HeaderName::ProxyAuthenticate), 2);
    alice.ack_non_2xx(&req, &challenge).await;
    // bob has no registration.
    invite(&mut alice, "bob", "r-2").await;
    assert_eq!(
        alice.response("r-2", "INVITE", false).await.status(),
        Some(480)
    );
    // dave does not exist.
    invite(&mut alice, "dave", "r-3").await;
    assert_eq!(
        alice.response("r-3", "INVITE", false).await.status(),
        Some(404)
    );
    // Not an open relay.
    let far = "sip:someone@elsewhere.example";
    let req = alice.request("OPTIONS", far, &format!("<{far}>"), "r-4", 1, &[], None);
    assert_eq!(
        status_of(&mut alice, req, "r-4", "OPTIONS").await.status(),
        Some(200),
        "OPTIONS is ours"
    );
    let req = alice.request(
        "MESSAGE",
        far,
        &format!("<{far}>"),
        "r-5",
        1,
        &[],
        Some(("text/plain", "x")),
    );
    assert_eq!(
        status_of(&mut alice, req, "r-5", "MESSAGE").await.status(),
        Some(403)
    );
    // Max-Forwards 0 is not forwarded.
    let mut bob = d.ua("bob").await;
    assert_eq!(bob.register(300).await.status(), Some(200));
    let zero = alice.request(
        "MESSAGE",
        &uri,
        &format!("<{uri}>"),
        "r-6",
        1,
        &[],
        Some(("text/plain", "x")),
    );
    let zero = bytes::Bytes::from(
        String::from_utf8(zero.to_vec())
            .expect("text")
            .replace("Max-Forwards: 70", "Max-Forwards: 0"),
    );
    assert_eq!(
        status_of(&mut alice, zero, "r-6", "MESSAGE").await.status(),
        Some(483)
    );
    // OPTIONS to the server itself is still answered by it.
    let own = format!("sip:{}", d.addr);
    let req = alice.request("OPTIONS", &own, &format!("<{own}>"), "r-7", 1, &[], None);
    let resp = status_of(&mut alice, req, "r-7", "OPTIONS").await;
    assert_eq!(resp.status(), Some(200));
    assert!(resp.allow().any(|m| m == "REGISTER"));
}
