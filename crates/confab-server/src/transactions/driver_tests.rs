//! The driver behind the handler, without sockets: what the handler is told, what goes back
//! to the peer, what the timers would send, and the cap. Time is passed to `tick` by hand.

use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_sip::transaction::{State, Timer};
use confab_sip::Message;

use super::*;
use crate::config::ListenUri;
use crate::handler::Handler;
use crate::transport::Transport;

fn source(transport: Transport) -> Source {
    Source {
        transport,
        peer: "192.0.2.9:40000".parse().expect("addr"),
        local: "192.0.2.1:5060".parse().expect("addr"),
    }
}

fn request(method: &str, cseq_method: &str, branch: &str) -> Bytes {
    Bytes::from(format!(
        "{method} sip:confab.example SIP/2.0\r\n\
         Via: SIP/2.0/UDP client.example:5070;branch={branch};rport\r\n\
         From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:confab.example>\r\n\
         Call-ID: call-1\r\nCSeq: 1 {cseq_method}\r\nMax-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    ))
}

fn parse(bytes: &Bytes) -> Message {
    Message::parse(bytes.clone()).expect("parses")
}

/// A driver with `max` transactions and the RFC 3261 timers, and a handler using it.
fn setup(max: usize) -> (Arc<TransactionDriver>, Handler) {
    let listen = vec![ListenUri::new(Transport::Udp, source(Transport::Udp).local)];
    let mut config = ServerConfig::new(listen);
    config.limits.max_transactions = max;
    let driver = Arc::new(TransactionDriver::new(&config));
    let handler = Handler::new(false).with_transactions(Arc::clone(&driver) as _);
    (driver, handler)
}

fn status(handler: &Handler, data: Bytes, transport: Transport) -> Option<(u16, Bytes)> {
    let reply = handler.handle_datagram(data, &source(transport))?;
    Some((parse(&reply.bytes).status()?, reply.bytes))
}

fn key(data: &Bytes) -> TransactionKey {
    TransactionKey::for_request(&parse(data)).expect("a key")
}

#[test]
fn a_retransmission_is_absorbed_and_answered_with_the_same_response() {
    let (driver, h) = setup(10);
    let options = request("OPTIONS", "OPTIONS", "z9hG4bK-1");
    let (first, bytes) = status(&h, options.clone(), Transport::Udp).expect("answered");
    assert_eq!(first, 200);
    let (_, again) = status(&h, options.clone(), Transport::Udp).expect("answered again");
    assert_eq!(again, bytes, "the very response the transaction keeps");
    let stats = driver.stats();
    assert_eq!((stats.requests, stats.absorbed), (1, 1));
    assert_eq!(stats.transactions, 1, "Timer J keeps it over UDP");
    assert_eq!(
        driver.lock().layer.state(&key(&options)),
        Some(State::Completed)
    );
}

#[test]
fn two_copies_in_flight_give_one_continue() {
    let (driver, _) = setup(10);
    let options = parse(&request("OPTIONS", "OPTIONS", "z9hG4bK-2"));
    let udp = source(Transport::Udp);
    assert_eq!(
        driver.request_received(&options, &udp),
        Disposition::Continue
    );
    // Not answered yet: the copy is absorbed with nothing to resend.
    assert_eq!(
        driver.request_received(&options, &udp),
        Disposition::Absorbed { resend: None }
    );
    assert_eq!(driver.stats().requests, 1);
}

#[test]
fn the_ack_of_a_non_2xx_is_absorbed_and_ends_the_retransmissions() {
    let (driver, h) = setup(10);
    let invite = request("INVITE", "INVITE", "z9hG4bK-3");
    let (code, response) = status(&h, invite.clone(), Transport::Udp).expect("answered");
    assert_eq!(code, 405);
    let k = key(&invite);
    let timers: Vec<Timer> = driver
        .lock()
        .layer
        .timers(&k)
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(timers, [Timer::G, Timer::H]);

    // Timer G, with the time passed by hand: the 405 again, to the rport address.
    let (due, next) = driver.tick(Instant::now() + Duration::from_millis(600));
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].bytes, response);
    assert_eq!(due[0].peer.target, Some(source(Transport::Udp).peer));
    assert!(next.is_some());
    assert_eq!(driver.stats().timer_sends, 1);

    let ack = request("ACK", "ACK", "z9hG4bK-3");
    assert_eq!(
        status(&h, ack, Transport::Udp),
        None,
        "ACK gets no response"
    );
    assert_eq!(driver.lock().layer.state(&k), Some(State::Confirmed));
    let timers: Vec<Timer> = driver
        .lock()
        .layer
        .timers(&k)
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(timers, [Timer::I], "no more Timer G");
    // Confirmed absorbs a late INVITE copy without answering it.
    assert_eq!(status(&h, invite, Transport::Udp), None);
    assert_eq!(driver.stats().absorbed, 2);
}

#[test]
fn an_ack_matching_nothing_goes_on_and_is_dropped() {
    let (driver, h) = setup(10);
    let ack = parse(&request("ACK", "ACK", "z9hG4bK-none"));
    assert_eq!(
        driver.request_received(&ack, &source(Transport::Udp)),
        Disposition::Continue
    );
    assert_eq!(
        status(&h, request("ACK", "ACK", "z9hG4bK-x"), Transport::Udp),
        None
    );
    assert_eq!(driver.stats().transactions, 0);
}

#[test]
fn a_request_without_a_transaction_key_is_answered_statelessly() {
    let (driver, h) = setup(10);
    // RFC 4475 mismatch01: the CSeq method is not the request's.
    let bad = request("OPTIONS", "INVITE", "z9hG4bK-4");
    let (code, _) = status(&h, bad.clone(), Transport::Udp).expect("answered");
    assert_eq!(code, 400);
    let stats = driver.stats();
    assert_eq!((stats.transactions, stats.requests), (0, 0));
    let response = Bytes::from_static(b"SIP/2.0 400 Bad\r\n\r\n");
    assert_eq!(
        driver.respond(&parse(&bad), response.clone(), &source(Transport::Udp)),
        Some(response),
        "no transaction: the response goes out as it is"
    );
}

#[test]
fn over_the_cap_new_requests_get_503_and_held_transactions_go_on() {
    let (driver, h) = setup(1);
    let invite = request("INVITE", "INVITE", "z9hG4bK-5");
    let (code, response) = status(&h, invite.clone(), Transport::Udp).expect("answered");
    assert_eq!(code, 405);
    let (code, refused) = status(
        &h,
        request("OPTIONS", "OPTIONS", "z9hG4bK-6"),
        Transport::Udp,
    )
    .expect("answered");
    assert_eq!(code, 503);
    let retry = parse(&refused)
        .headers_named("Retry-After")
        .next()
        .map(<[u8]>::to_vec);
    assert_eq!(retry, Some(RETRY_AFTER.as_secs().to_string().into_bytes()));
    // The transaction held still answers its retransmission and takes its ACK.
    let (_, again) = status(&h, invite, Transport::Udp).expect("resent");
    assert_eq!(again, response);
    assert_eq!(
        status(&h, request("ACK", "ACK", "z9hG4bK-5"), Transport::Udp),
        None
    );
    let stats = driver.stats();
    assert_eq!(
        (stats.overloaded, stats.requests, stats.transactions),
        (1, 1, 1)
    );
}

#[test]
fn reliable_transports_neither_retransmit_nor_linger() {
    let (driver, h) = setup(10);
    let (code, _) = status(
        &h,
        request("OPTIONS", "OPTIONS", "z9hG4bK-7"),
        Transport::Tcp,
    )
    .expect("answered");
    assert_eq!(code, 200);
    assert_eq!(driver.stats().transactions, 0, "no Timer J over TCP");
    let invite = request("INVITE", "INVITE", "z9hG4bK-8");
    let (code, _) = status(&h, invite.clone(), Transport::Tcp).expect("answered");
    assert_eq!(code, 405);
    let timers: Vec<Timer> = driver
        .lock()
        .layer
        .timers(&key(&invite))
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(timers, [Timer::H], "waits for the ACK, never retransmits");
    let (due, _) = driver.tick(Instant::now() + Duration::from_secs(5));
    assert!(due.is_empty());
    assert_eq!(driver.stats().timeouts, 0, "Timer H is 32 s away");
}

#[test]
fn a_second_final_response_is_refused() {
    let (driver, _) = setup(10);
    let options = parse(&request("OPTIONS", "OPTIONS", "z9hG4bK-9"));
    let udp = source(Transport::Udp);
    assert_eq!(
        driver.request_received(&options, &udp),
        Disposition::Continue
    );
    let ok = Bytes::from_static(
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP client.example:5070;branch=z9hG4bK-9\r\n\
          From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:confab.example>;tag=b\r\n\
          Call-ID: call-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(driver.respond(&options, ok.clone(), &udp), Some(ok.clone()));
    assert_eq!(driver.respond(&options, ok, &udp), None);
}

#[test]
fn responses_are_reported_stray_and_dropped() {
    let (driver, h) = setup(10);
    let response = Bytes::from_static(
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-10\r\n\
          From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\
          Content-Length: 0\r\n\r\n",
    );
    assert_eq!(
        driver.response_received(&parse(&response), &source(Transport::Udp)),
        Disposition::Continue
    );
    assert!(h
        .handle_datagram(response, &source(Transport::Udp))
        .is_none());
    assert_eq!(driver.stats().absorbed, 0);
}

#[tokio::test]
async fn a_new_deadline_wakes_the_timer_task() {
    let (driver, h) = setup(10);
    // The timer task sleeps with nothing armed; an INVITE answered over UDP arms Timer G.
    let _ = driver.tick(Instant::now());
    status(
        &h,
        request("INVITE", "INVITE", "z9hG4bK-11"),
        Transport::Udp,
    )
    .expect("answered");
    tokio::time::timeout(Duration::from_secs(1), driver.wake.notified())
        .await
        .expect("woken");
    // Once it sleeps until that deadline, a later one does not wake it again.
    let _ = driver.tick(Instant::now());
    status(
        &h,
        request("INVITE", "INVITE", "z9hG4bK-12"),
        Transport::Udp,
    )
    .expect("answered");
    assert!(!driver.lock().wants_wake());
}

/// The core's challenge to `request`: 401 with WWW-Authenticate, or 407 with
/// Proxy-Authenticate.
fn challenge(request: &Message, status: u16) -> Bytes {
    let (reason, header) = match status {
        401 => ("Unauthorized", "WWW-Authenticate"),
        _ => ("Proxy Authentication Required", "Proxy-Authenticate"),
    };
    confab_sip::builder::ResponseBuilder::new(request, status, reason)
        .to_tag("c0ffee")
        .header(
            header,
            "Digest realm=\"confab.example\", nonce=\"n1\", qop=\"auth\"",
        )
        .build()
}

#[test]
fn a_challenge_leaves_no_transaction_and_a_retransmission_is_challenged_again() {
    let (driver, _) = setup(10);
    let register = parse(&request("REGISTER", "REGISTER", "z9hG4bK-13"));
    let udp = source(Transport::Udp);
    let response = challenge(&register, 401);
    for round in 1..=2 {
        assert_eq!(
            driver.request_received(&register, &udp),
            Disposition::Continue,
            "copy {round}: a new request for the core"
        );
        assert_eq!(
            driver.respond(&register, response.clone(), &udp),
            Some(response.clone()),
            "the challenge goes out as the core built it"
        );
        let stats = driver.stats();
        assert_eq!((stats.transactions, stats.requests), (0, round));
        assert_eq!(driver.lock().layer.poll_timeout(), None, "no Timer J");
    }
    // Any other final response keeps its transaction for retransmissions.
    let options = parse(&request("OPTIONS", "OPTIONS", "z9hG4bK-13"));
    assert_eq!(
        driver.request_received(&options, &udp),
        Disposition::Continue
    );
    let forbidden = Bytes::from(String::from_utf8_lossy(&response).replacen(
        "401 Unauthorized",
        "403 Forbidden",
        1,
    ));
    assert!(driver.respond(&options, forbidden, &udp).is_some());
    assert_eq!(driver.stats().transactions, 1);
}

#[test]
fn a_challenged_invite_is_not_retransmitted_and_its_ack_goes_on_to_be_dropped() {
    let (driver, h) = setup(10);
    let invite = parse(&request("INVITE", "INVITE", "z9hG4bK-14"));
    let udp = source(Transport::Udp);
    assert_eq!(
        driver.request_received(&invite, &udp),
        Disposition::Continue
    );
    let response = challenge(&invite, 407);
    assert_eq!(
        driver.respond(&invite, response.clone(), &udp),
        Some(response)
    );
    assert_eq!(driver.stats().transactions, 0);
    let (due, next) = driver.tick(Instant::now() + Duration::from_secs(40));
    assert!(due.is_empty() && next.is_none(), "no Timer G, no Timer H");
    let ack = request("ACK", "ACK", "z9hG4bK-14");
    assert_eq!(
        driver.request_received(&parse(&ack), &udp),
        Disposition::Continue,
        "the ACK matches nothing"
    );
    assert_eq!(status(&h, ack, Transport::Udp), None, "and gets no answer");
    let stats = driver.stats();
    assert_eq!((stats.transactions, stats.absorbed), (0, 0));
}

#[test]
fn a_relayed_challenge_is_kept_for_retransmissions() {
    let (driver, _) = setup(10);
    let message = parse(&request("MESSAGE", "MESSAGE", "z9hG4bK-15"));
    let udp = source(Transport::Udp);
    assert_eq!(
        driver.request_received(&message, &udp),
        Disposition::Continue
    );
    let response = challenge(&message, 407);
    assert_eq!(
        driver.respond_with(&message, response.clone(), &udp, Challenge::Kept),
        Some(response.clone())
    );
    assert_eq!(driver.stats().transactions, 1);
    assert_eq!(
        driver.request_received(&message, &udp),
        Disposition::Absorbed {
            resend: Some(response)
        },
        "a retransmission is not forwarded again"
    );
}

#[test]
fn challenges_are_told_by_their_status_line() {
    for (line, yes) in [
        (&b"SIP/2.0 401 Unauthorized\r\n"[..], true),
        (b"SIP/2.0 407 Proxy Authentication Required\r\n", true),
        (b"SIP/2.0 403 Forbidden\r\n", false),
        (b"SIP/2.0 4010 x\r\n", false),
        (b"REGISTER sip:401 SIP/2.0\r\n", false),
        (b"SIP/2.0 401", false),
    ] {
        assert_eq!(is_challenge(line), yes, "{}", String::from_utf8_lossy(line));
    }
}
