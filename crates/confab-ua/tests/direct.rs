//! Two user agents talking to each other directly on 127.0.0.1, over UDP and over TCP, with
//! no server: OPTIONS and MESSAGE both ways, a call set up and torn down from either side,
//! CANCEL while ringing, a busy callee, requests the application answers or abandons, and a
//! user agent that has stopped.

mod common;

use std::time::Duration;

use common::{bind, fast, pair, TRANSPORTS, WAIT};
use confab_sip::Method;
use confab_ua::{CallOutcome, CallState, EndReason, InviteAnswer, UaConfig, UaError};

#[tokio::test]
async fn options_both_ways() {
    for transport in TRANSPORTS {
        let (alice, bob) = pair(transport, InviteAnswer::Manual).await;
        for (from, to) in [(&alice, &bob), (&bob, &alice)] {
            let response = from
                .options(to.contact_uri())
                .await
                .expect("OPTIONS answered");
            assert_eq!(response.status(), Some(200), "{transport:?}");
            assert!(response.allow().any(|m| m == "MESSAGE"));
            let seen = to
                .next_incoming_of("OPTIONS", WAIT)
                .await
                .expect("delivered");
            assert_eq!(seen.answered(), Some(200));
            assert!(!seen.needs_answer());
            // The request carries the sender's real bound address.
            let via = seen.request().via().expect("Via");
            assert_eq!(via.port(), Some(from.local_addr().port()));
            assert_eq!(via.transport(), transport.via_token());
            assert!(via.rport().is_some(), "rport asked for");
        }
    }
}

#[tokio::test]
async fn message_both_ways() {
    for transport in TRANSPORTS {
        let (alice, bob) = pair(transport, InviteAnswer::Manual).await;
        let status = alice
            .message(bob.contact_uri(), "text/plain", "hello bob")
            .await
            .expect("MESSAGE answered");
        assert_eq!(status, 200);
        let got = bob
            .next_incoming_of("MESSAGE", WAIT)
            .await
            .expect("delivered");
        assert_eq!(got.body(), b"hello bob");
        assert_eq!(
            got.request()
                .content_type()
                .ok()
                .flatten()
                .map(|m| m.is("text", "plain")),
            Some(true)
        );
        let from = got.request().from().expect("From");
        assert_eq!(from.uri().as_str(), "sip:alice@example.com");
        assert!(from.tag().is_some());

        let status = bob
            .message(alice.contact_uri(), "text/plain", "hello alice")
            .await
            .expect("MESSAGE answered");
        assert_eq!(status, 200);
        let got = alice
            .next_incoming_of("MESSAGE", WAIT)
            .await
            .expect("delivered");
        assert_eq!(got.body(), b"hello alice", "{transport:?}");
    }
}

#[tokio::test]
async fn application_answers_or_abandons() {
    for transport in TRANSPORTS {
        let alice = bind(fast("sip:alice@example.com", transport)).await;
        let bob = bind(UaConfig {
            auto_message: false,
            ..fast("sip:bob@example.com", transport)
        })
        .await;
        let target = bob.contact_uri().to_owned();
        let send = async { alice.message(&target, "text/plain", "one").await };
        let answer = async {
            let got = bob
                .next_incoming_of("MESSAGE", WAIT)
                .await
                .expect("delivered");
            assert!(got.needs_answer());
            got.respond(202, "Accepted", &[("X-Seen", "yes")], None)
                .await
                .expect("answered");
            // A second final answer is refused.
            assert!(matches!(
                got.reply(200, "OK").await,
                Err(UaError::AlreadyAnswered) | Err(UaError::Transaction(_))
            ));
        };
        let (status, ()) = tokio::join!(send, answer);
        assert_eq!(status.expect("status"), 202);

        // Dropping an unanswered request answers it for the application.
        let send = async { alice.message(&target, "text/plain", "two").await };
        let drop_it = async {
            let got = bob
                .next_incoming_of("MESSAGE", WAIT)
                .await
                .expect("delivered");
            drop(got);
        };
        let (status, ()) = tokio::join!(send, drop_it);
        assert_eq!(status.expect("status"), 500, "{transport:?}");
    }
}

#[tokio::test]
async fn call_ring_answer_ack_bye() {
    for transport in TRANSPORTS {
        let accept = InviteAnswer::Accept {
            after: Duration::from_millis(50),
            sdp: None,
        };
        let (alice, bob) = pair(transport, accept).await;
        let offer = confab_ua::minimal_sdp(alice.local_addr().ip());
        let mut call = alice
            .invite(bob.contact_uri(), Some(&offer))
            .await
            .expect("INVITE sent");
        let ringing = call.next_response().await.expect("provisional");
        assert_eq!(ringing.status(), Some(180), "{transport:?}");
        let outcome = call.wait_final().await.expect("final");
        assert!(outcome.is_answered(), "{transport:?}: {}", outcome.status());
        // One 180, or more if a retransmitted INVITE had it sent again.
        assert!(call.provisional().iter().all(|p| p.status() == Some(180)));
        assert!(call.remote_sdp().is_some_and(|s| s.starts_with(b"v=0")));
        assert_eq!(call.state(), CallState::Confirmed);

        // The callee saw the INVITE with the offer, then the ACK confirmed its call.
        let invite = bob.next_incoming_of("INVITE", WAIT).await.expect("INVITE");
        assert_eq!(invite.answered(), Some(200));
        assert_eq!(invite.body(), offer.as_bytes());
        let mut callee = invite.call().expect("a call");
        callee.wait_confirmed(WAIT).await.expect("ACK arrived");
        let ack = bob
            .next_incoming_of("ACK", WAIT)
            .await
            .expect("ACK delivered");
        assert_eq!(ack.request().cseq().expect("CSeq").seq, 1);
        assert_ne!(
            ack.request().via().expect("Via").branch(),
            invite.request().via().expect("Via").branch(),
            "the ACK for a 2xx is a transaction of its own"
        );

        let bye = call.bye().await.expect("BYE answered");
        assert_eq!(bye.status(), Some(200));
        assert_eq!(call.state(), CallState::Ended(EndReason::LocalBye));
        assert_eq!(
            callee.wait_ended(WAIT).await.expect("ended"),
            EndReason::RemoteBye
        );
        let seen = bob
            .next_incoming_of("BYE", WAIT)
            .await
            .expect("BYE delivered");
        assert_eq!(seen.answered(), Some(200));
        // The dialog is gone: a second BYE is refused locally.
        assert!(matches!(call.bye().await, Err(UaError::NoDialog)));
    }
}

#[tokio::test]
async fn callee_answers_by_hand_and_hangs_up() {
    for transport in TRANSPORTS {
        let (alice, bob) = pair(transport, InviteAnswer::Manual).await;
        let mut call = alice
            .invite(bob.contact_uri(), None)
            .await
            .expect("INVITE sent");
        let invite = bob.next_incoming_of("INVITE", WAIT).await.expect("INVITE");
        assert!(invite.needs_answer());
        let answer = confab_ua::minimal_sdp(bob.local_addr().ip());
        invite
            .respond(200, "OK", &[], Some(("application/sdp", answer.as_bytes())))
            .await
            .expect("200 sent");
        let outcome = call.wait_final().await.expect("final");
        assert!(outcome.is_answered());
        let contact = outcome.response().contacts().next().expect("Contact");
        let contact = contact.expect("parses");
        let uri = contact
            .address()
            .expect("address")
            .uri()
            .as_str()
            .to_owned();
        assert_eq!(uri, bob.contact_uri());

        let mut callee = invite.call().expect("call");
        callee.wait_confirmed(WAIT).await.expect("confirmed");
        let bye = callee.bye().await.expect("BYE answered");
        assert_eq!(bye.status(), Some(200), "{transport:?}");
        assert_eq!(
            call.wait_ended(WAIT).await.expect("ended"),
            EndReason::RemoteBye
        );
    }
}

#[tokio::test]
async fn cancel_while_ringing() {
    for transport in TRANSPORTS {
        let (alice, bob) = pair(transport, InviteAnswer::Manual).await;
        let mut call = alice
            .invite(bob.contact_uri(), None)
            .await
            .expect("INVITE sent");
        let invite = bob.next_incoming_of("INVITE", WAIT).await.expect("INVITE");
        let mut callee = invite.call().expect("call");
        assert_eq!(call.next_response().await.expect("180").status(), Some(180));
        let outcome = call.cancel().await.expect("cancelled");
        assert!(matches!(outcome, CallOutcome::Rejected(_)));
        assert_eq!(outcome.status(), 487, "{transport:?}");
        assert_eq!(call.state(), CallState::Ended(EndReason::Rejected(487)));
        assert_eq!(
            callee.wait_ended(WAIT).await.expect("ended"),
            EndReason::Cancelled
        );
        let cancel = bob.next_incoming_of("CANCEL", WAIT).await.expect("CANCEL");
        assert_eq!(cancel.answered(), Some(200));
        // Answering the cancelled INVITE is refused.
        assert!(invite.reply(200, "OK").await.is_err());
        assert!(matches!(call.cancel().await, Err(UaError::CannotCancel)));
    }
}

#[tokio::test]
async fn busy_callee() {
    for transport in TRANSPORTS {
        let busy = InviteAnswer::Reject {
            status: 486,
            reason: "Busy Here".into(),
        };
        let (alice, bob) = pair(transport, busy).await;
        let mut call = alice
            .invite(bob.contact_uri(), None)
            .await
            .expect("INVITE sent");
        let outcome = call.wait_final().await.expect("final");
        assert_eq!(outcome.status(), 486, "{transport:?}");
        assert!(!outcome.is_answered());
        assert_eq!(outcome.response().reason(), Some("Busy Here"));
        assert!(matches!(call.bye().await, Err(UaError::NoDialog)));
        let invite = bob.next_incoming_of("INVITE", WAIT).await.expect("INVITE");
        assert_eq!(invite.answered(), Some(486));
        assert_eq!(invite.method(), Some(Method::Invite));
    }
}

#[tokio::test]
async fn unanswered_invite_gets_480() {
    let (alice, bob) = pair(confab_ua::Transport::Udp, InviteAnswer::Manual).await;
    let mut call = alice
        .invite(bob.contact_uri(), None)
        .await
        .expect("INVITE sent");
    let invite = bob.next_incoming_of("INVITE", WAIT).await.expect("INVITE");
    drop(invite);
    let outcome = call.wait_final().await.expect("final");
    assert_eq!(outcome.status(), 480);
}

#[tokio::test]
async fn stopped_peer_times_out_and_handles_fail() {
    let alice = bind(fast("sip:alice@example.com", confab_ua::Transport::Udp)).await;
    let bob = bind(fast("sip:bob@example.com", confab_ua::Transport::Udp)).await;
    let target = bob.contact_uri().to_owned();
    bob.shutdown().await;
    let started = std::time::Instant::now();
    let err = alice.options(&target).await.expect_err("nobody answers");
    assert!(matches!(err, UaError::TransactionTimeout), "{err}");
    // 64·T1 = 1.6 s: the transaction layer gave up, not the test.
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(alice.stats().retransmissions >= 3);

    // Over TCP, a refused connection fails at once.
    let carol = bind(fast("sip:carol@example.com", confab_ua::Transport::Tcp)).await;
    let dave = bind(fast("sip:dave@example.com", confab_ua::Transport::Tcp)).await;
    let target = dave.contact_uri().to_owned();
    drop(dave);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = carol.options(&target).await.expect_err("refused");
    assert!(matches!(err, UaError::Transport(_)), "{err}");

    // Handles of a stopped user agent report it.
    let mut call = alice
        .invite("sip:nobody@127.0.0.1:9", None)
        .await
        .expect("INVITE sent");
    drop(alice);
    assert!(matches!(call.next_response().await, Err(UaError::Shutdown)));
}

#[tokio::test]
async fn bad_targets_and_config() {
    let alice = bind(fast("sip:alice@example.com", confab_ua::Transport::Udp)).await;
    assert!(matches!(
        alice.options("not a uri").await,
        Err(UaError::InvalidUri { .. })
    ));
    assert!(matches!(
        alice.options("sip:bob@example.com").await,
        Err(UaError::NoRoute(_))
    ));
    assert!(matches!(alice.register(60).await, Err(UaError::NoRoute(_))));
    let bad = UaConfig::new("mailto:alice@example.com");
    assert!(matches!(
        confab_ua::UserAgent::bind(bad).await,
        Err(UaError::Config(_))
    ));
    let bad = UaConfig {
        t1: Duration::ZERO,
        ..UaConfig::new("sip:alice@example.com")
    };
    assert!(matches!(
        confab_ua::UserAgent::bind(bad).await,
        Err(UaError::Config(_))
    ));
}

#[tokio::test]
async fn other_methods_wait_for_the_application_within_a_deadline() {
    let alice = bind(fast("sip:alice@example.com", confab_ua::Transport::Udp)).await;
    let bob = bind(UaConfig {
        answer_timeout: Duration::from_millis(200),
        ..fast("sip:bob@example.com", confab_ua::Transport::Udp)
    })
    .await;
    let target = bob.contact_uri().to_owned();
    let headers = [("Event", "presence"), ("Subscription-State", "active")];
    let body: &[u8] = b"<presence/>";
    let notify = async {
        alice
            .request(
                "NOTIFY",
                &target,
                &headers,
                Some(("application/pidf+xml", body)),
            )
            .await
    };
    let answer = async {
        let got = bob.next_incoming_of("NOTIFY", WAIT).await.expect("NOTIFY");
        assert!(got.needs_answer());
        assert_eq!(
            got.request().header(confab_sip::HeaderName::Event),
            Some("presence")
        );
        assert_eq!(got.body(), body);
        got.reply(200, "OK").await.expect("answered");
    };
    let (response, ()) = tokio::join!(notify, answer);
    assert_eq!(response.expect("final").status(), Some(200));

    // Nobody answers the INFO: the user agent does, after answer_timeout.
    let started = std::time::Instant::now();
    let response = alice
        .request("INFO", &target, &[], None)
        .await
        .expect("final");
    assert_eq!(response.status(), Some(500));
    assert!(started.elapsed() >= Duration::from_millis(200));
    let info = bob.next_incoming_of("INFO", WAIT).await.expect("delivered");
    assert!(matches!(
        info.reply(200, "OK").await,
        Err(UaError::AlreadyAnswered)
    ));
}

#[tokio::test]
async fn dropping_a_ringing_call_cancels_it() {
    for transport in TRANSPORTS {
        let (alice, bob) = pair(transport, InviteAnswer::Manual).await;
        let mut call = alice
            .invite(bob.contact_uri(), None)
            .await
            .expect("INVITE sent");
        let invite = bob.next_incoming_of("INVITE", WAIT).await.expect("INVITE");
        let mut callee = invite.call().expect("call");
        call.next_response().await.expect("180");
        drop(call);
        assert_eq!(
            callee.wait_ended(WAIT).await.expect("ended"),
            EndReason::Cancelled,
            "{transport:?}"
        );
    }
}
