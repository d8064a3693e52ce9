//! Matching messages to transactions: CANCEL to its INVITE, ACK to its INVITE, the RFC 2543
//! fallback with the RFC 4475 `inv2543` and `badbranch` messages, sent-by, strays, and what
//! the layer refuses from the network and from the TU.

mod sim;

use std::time::Instant;

use bytes::Bytes;
use confab_sip::builder::{RequestBuilder, ResponseBuilder};
use confab_sip::transaction::{
    Config, Event, KeyError, Kind, Reliability, Role, State, Timer, TransactionError,
    TransactionKey, TransactionLayer,
};
use confab_sip::{HeaderName, Message};
use sim::{ack_for_2xx, rfc4475, Side, Sim};

use Reliability::{Reliable, Unreliable};

fn parse(b: &Bytes) -> Message {
    Message::parse(b.clone()).expect("parse")
}

#[test]
fn cancel_matches_its_invite() {
    let mut sim = Sim::new(Unreliable);
    let key = sim.send("INVITE");
    assert_eq!(
        sim.client.cancel(&key, sim.now),
        Err(TransactionError::CannotCancel(State::Calling)),
        "§9.1: no CANCEL before a provisional response"
    );
    sim.run_until(5);
    let skey = sim.server_key();
    sim.respond(&skey, 180);
    sim.run_until(20);
    let ckey = sim.client.cancel(&key, sim.now).expect("cancel");
    sim.flush();
    assert_eq!((ckey.branch(), ckey.method()), (key.branch(), "CANCEL"));
    let cancel = parse(&sim.wire.last().expect("sent").bytes);
    let invite = sim.client.request(&key).expect("invite").clone();
    assert_eq!(cancel.method_str(), Some("CANCEL"));
    assert_eq!(cancel.request_uri_str(), invite.request_uri_str());
    assert_eq!(
        cancel.cseq().expect("cseq").seq,
        invite.cseq().expect("cseq").seq
    );
    for h in [HeaderName::From, HeaderName::To, HeaderName::CallId] {
        assert_eq!(cancel.header(h), invite.header(h));
    }

    sim.run_until(25);
    let (cancel_key, target) = sim
        .server_events
        .iter()
        .find_map(|(_, e)| match e {
            Event::Cancel { key, invite, .. } => Some((key.clone(), invite.clone())),
            _ => None,
        })
        .expect("the server TU hears of the CANCEL");
    assert_eq!(target, Some(skey.clone()));
    assert_ne!(cancel_key, skey, "CANCEL is a transaction of its own");
    assert_eq!(sim.server.kind(&cancel_key), Some(Kind::ServerNonInvite));
    sim.respond(&cancel_key, 200);
    sim.respond(&skey, 487);
    sim.run_until(100);
    assert_eq!(sim.responses(&ckey), vec![(30, 200)]);
    assert_eq!(sim.responses(&key), vec![(10, 180), (30, 487)]);
    assert_eq!(sim.server_state(&skey), Some(State::Confirmed));
    assert_eq!(
        sim.client.cancel(&key, sim.now),
        Err(TransactionError::CannotCancel(State::Completed))
    );
    sim.run_to_end();
}

#[test]
fn cancel_for_an_unknown_invite_names_none() {
    let mut sim = Sim::new(Unreliable);
    let cancel = sim.request("CANCEL");
    sim.put(Side::Client, cancel);
    sim.run_until(5);
    assert!(matches!(
        &sim.server_events[0].1,
        Event::Cancel { invite: None, .. }
    ));
    let okey = sim.send("OPTIONS");
    assert_eq!(
        sim.client.cancel(&okey, sim.now),
        Err(TransactionError::NotAnInvite)
    );
}

/// An RFC 2543 ACK for `invite` (no branch: same Via, Request-URI, From, Call-ID, CSeq number),
/// with `tag` on its To.
fn ack_2543(invite: &Message, method: &str, tag: Option<&str>) -> Bytes {
    let h = |n| invite.header(n).expect("header").to_owned();
    let to = match tag {
        Some(t) => format!("{};tag={t}", h(HeaderName::To)),
        None => h(HeaderName::To),
    };
    let seq = invite.cseq().expect("cseq").seq;
    RequestBuilder::new(method, invite.request_uri_str().expect("uri"))
        .header("Via", h(HeaderName::Via))
        .header("From", h(HeaderName::From))
        .header("To", to)
        .header("Call-ID", h(HeaderName::CallId))
        .header("CSeq", format!("{seq} {method}"))
        .build()
}

#[test]
fn rfc2543_invite_without_branch_matches_retransmissions_and_its_ack() {
    let mut sim = Sim::new(Unreliable);
    let inv = rfc4475("inv2543");
    let invite = parse(&inv);
    sim.put(Side::Client, inv.clone());
    sim.run_until(5);
    let skey = sim.server_key();
    assert!(skey.is_rfc2543());
    assert_eq!((skey.branch(), skey.role()), (None, Role::Server));
    assert_eq!(sim.server.kind(&skey), Some(Kind::ServerInvite));
    sim.respond(&skey, 486);

    sim.run_until(100);
    sim.put(Side::Client, inv.clone());
    sim.run_until(150);
    assert_eq!(sim.sent(Side::Server, "486"), vec![5, 105]);
    assert_eq!(sim.server_requests().len(), 1);

    // An ACK whose To tag is not the one our 486 carried is not this transaction's.
    sim.put(Side::Client, ack_2543(&invite, "ACK", Some("not-ours")));
    sim.run_until(200);
    assert_eq!(sim.server_acks(), vec![(155, None)]);
    assert_eq!(sim.server_state(&skey), Some(State::Completed));

    sim.put(Side::Client, ack_2543(&invite, "ACK", Some("srv1")));
    sim.run_until(300);
    assert_eq!(sim.server_state(&skey), Some(State::Confirmed));
    assert_eq!(sim.server_acks().len(), 1, "the matching ACK is absorbed");
    // Our client layer refuses the responses: they carry no RFC 3261 branch.
    assert!(sim
        .refused
        .iter()
        .all(|(_, side, e)| *side == Side::Client && *e == KeyError::NoBranch));
}

#[test]
fn rfc2543_cancel_finds_its_invite() {
    let mut sim = Sim::new(Unreliable);
    let inv = rfc4475("inv2543");
    sim.put(Side::Client, inv.clone());
    sim.run_until(10);
    let skey = sim.server_key();
    sim.put(Side::Client, ack_2543(&parse(&inv), "CANCEL", None));
    sim.run_until(20);
    let found = sim.server_events.iter().find_map(|(_, e)| match e {
        Event::Cancel { key, invite, .. } => Some((key.clone(), invite.clone())),
        _ => None,
    });
    let (ckey, target) = found.expect("cancel event");
    assert!(ckey.is_rfc2543());
    assert_eq!(ckey.method(), "CANCEL");
    assert_eq!(target, Some(skey));
}

#[test]
fn badbranch_bare_cookie_falls_back_to_rfc2543_matching() {
    let mut sim = Sim::new(Unreliable);
    let req = rfc4475("badbranch");
    assert_eq!(parse(&req).via().expect("via").branch(), Some("z9hG4bK"));
    sim.put(Side::Client, req.clone());
    sim.run_until(5);
    let skey = sim.server_key();
    assert!(skey.is_rfc2543(), "a bare cookie is no transaction id");
    assert_eq!(sim.server.kind(&skey), Some(Kind::ServerNonInvite));
    sim.respond(&skey, 200);
    sim.run_until(100);
    sim.put(Side::Client, req.clone());
    sim.run_until(150);
    assert_eq!(sim.sent(Side::Server, "200"), vec![5, 105]);
    assert_eq!(
        sim.server_requests().len(),
        1,
        "the retransmission is absorbed"
    );

    // Another request with the same bare cookie but another Call-ID is another transaction:
    // matching on the branch alone would have swallowed it as a retransmission.
    let text = String::from_utf8(req.to_vec()).expect("ascii");
    let other = text.replace("badbranch.sadonfo23i420jv0as0derf3j3n", "another-call");
    sim.put(Side::Client, Bytes::from(other));
    sim.run_until(200);
    assert_eq!(sim.server_requests().len(), 2);
}

#[test]
fn rfc3261_matching_uses_branch_and_sent_by_not_call_id() {
    let mut sim = Sim::new(Unreliable);
    let build = |host: &str, call_id: &str| {
        RequestBuilder::new("OPTIONS", "sip:bob@server.example")
            .via("UDP", host, "z9hG4bKsame")
            .header("From", "<sip:alice@client.example>;tag=a1")
            .header("To", "<sip:bob@server.example>")
            .header("Call-ID", call_id)
            .header("CSeq", "1 OPTIONS")
            .build()
    };
    sim.put(Side::Client, build("client.example:5060", "one"));
    sim.put(Side::Client, build("client.example:5060", "two"));
    sim.put(Side::Client, build("CLIENT.example:5060", "three"));
    sim.put(Side::Client, build("elsewhere.example:5060", "four"));
    sim.put(Side::Client, build("client.example", "five"));
    sim.run_until(10);
    let keys = sim.server_requests();
    assert_eq!(keys.len(), 3, "same branch + sent-by is one transaction");
    assert_eq!(keys[0].branch(), Some("z9hG4bKsame"));
}

#[test]
fn ack_reusing_the_invite_branch_in_accepted_goes_to_the_tu_with_its_key() {
    let mut sim = Sim::new(Unreliable);
    let key = sim.send("INVITE");
    sim.run_until(5);
    let skey = sim.server_key();
    sim.respond(&skey, 200);
    sim.run_until(10);
    let invite = sim.client.request(&key).expect("invite").clone();
    let ok = match &sim.client_events[0].1 {
        Event::Response { response, .. } => response.clone(),
        e => panic!("{e:?}"),
    };
    let branch = key.branch().expect("branch").to_owned();
    sim.put(Side::Client, ack_for_2xx(&invite, &ok, &branch));
    sim.run_until(20);
    assert_eq!(sim.server_acks(), vec![(15, Some(skey.clone()))]);
    assert_eq!(sim.server_state(&skey), Some(State::Accepted));
}

#[test]
fn responses_without_a_transaction_are_strays() {
    let mut sim = Sim::new(Reliable);
    sim.duplicate_where(1, 10, |w| w.label == "200");
    let key = sim.send("OPTIONS");
    sim.run_until(5);
    let skey = sim.server_key();
    sim.respond(&skey, 200);
    sim.run_until(100);
    assert_eq!(sim.terminated(Side::Client, &key), Some(10), "Timer K is 0");
    let strays: Vec<_> = sim
        .client_events
        .iter()
        .filter(|(_, e)| matches!(e, Event::StrayResponse { .. }))
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(strays, vec![20]);
}

#[test]
fn the_layer_refuses_what_identifies_no_transaction() {
    let mut layer: TransactionLayer<()> = TransactionLayer::new(Config::default());
    let now = Instant::now();
    let feed = |layer: &mut TransactionLayer<()>, text: &str| {
        let msg = Message::parse(Bytes::from(text.to_owned())).expect("parse");
        layer.handle_message(msg, (), Unreliable, now)
    };
    let no_cseq = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
                   From: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\n\r\n";
    assert!(matches!(
        feed(&mut layer, no_cseq),
        Err(KeyError::Header(_))
    ));
    let no_via = "SIP/2.0 200 OK\r\nFrom: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\n\
                  Call-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n";
    assert!(matches!(feed(&mut layer, no_via), Err(KeyError::Header(_))));
    let msg = Message::parse(rfc4475("mismatch01")).expect("parse");
    assert_eq!(
        layer.handle_message(msg, (), Unreliable, now),
        Err(KeyError::MethodMismatch)
    );
    assert!(layer.is_empty() && layer.poll_event().is_none());

    // Every RFC 4475 message that parses is either matched or refused, never a panic.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rfc4475");
    for entry in std::fs::read_dir(dir).expect("dir") {
        let bytes = Bytes::from(std::fs::read(entry.expect("entry").path()).expect("read"));
        let msg = match Message::parse(bytes) {
            Ok(m) => m,
            Err(e) => match e.partial() {
                Some(m) => m.clone(),
                None => continue,
            },
        };
        let _ = layer.handle_message(msg, (), Unreliable, now);
    }
}

#[test]
fn the_layer_refuses_tu_mistakes() {
    let mut sim = Sim::new(Unreliable);
    let now = sim.now;
    let send = |sim: &mut Sim, bytes: Bytes| {
        sim.client
            .send_request(bytes, Side::Server, Unreliable, now)
    };
    let ack = sim.request("ACK");
    assert_eq!(
        send(&mut sim, ack),
        Err(TransactionError::AckNotATransaction)
    );
    let garbage = Bytes::from_static(b"\r\n\r\n");
    assert!(matches!(
        send(&mut sim, garbage),
        Err(TransactionError::Malformed(_))
    ));
    let bare = RequestBuilder::new("OPTIONS", "sip:b@c")
        .via("UDP", "h", "z9hG4bK")
        .header("CSeq", "1 OPTIONS")
        .build();
    assert_eq!(
        send(&mut sim, bare),
        Err(TransactionError::Key(KeyError::NoBranch))
    );
    let req = sim.request("INVITE");
    let key = send(&mut sim, req.clone()).expect("first");
    assert_eq!(
        send(&mut sim, req.clone()),
        Err(TransactionError::DuplicateTransaction)
    );
    let resp = ResponseBuilder::new(&parse(&req), 200, "OK").build();
    assert_eq!(
        send(&mut sim, resp.clone()),
        Err(TransactionError::WrongDirection)
    );
    assert_eq!(
        sim.client.send_response(&key, resp.clone(), now),
        Err(TransactionError::WrongRole)
    );

    sim.run_until(5);
    let skey = sim.server_key();
    assert_eq!(
        sim.server.send_response(&skey, req.clone(), now),
        Err(TransactionError::WrongDirection)
    );
    sim.respond(&skey, 200);
    let busy = ResponseBuilder::new(&parse(&req), 486, "Busy").build();
    assert_eq!(
        sim.server.send_response(&skey, busy, now),
        Err(TransactionError::InvalidState {
            state: State::Accepted,
            status: 486
        })
    );
    let stranger = TransactionKey::for_response(&parse(&resp)).expect("key");
    assert_eq!(
        sim.server.send_response(&stranger, resp, now),
        Err(TransactionError::UnknownTransaction)
    );
}

#[test]
fn transport_errors_and_terminate_end_transactions() {
    let mut sim = Sim::new(Unreliable);
    let key = sim.send("INVITE");
    sim.client.transport_error(&key);
    sim.flush();
    let kinds: Vec<_> = sim.client_events.iter().map(|(_, e)| e).collect();
    assert!(matches!(kinds[0], Event::TransportError { key: k } if *k == key));
    assert!(matches!(kinds[1], Event::Terminated { key: k } if *k == key));
    assert!(sim.client.is_empty());

    sim.run_until(5);
    let skey = sim.server_key();
    assert!(sim.server.terminate(&skey));
    assert!(!sim.server.terminate(&skey));
    assert!(sim.server.is_empty());
    assert_eq!(sim.server.poll_timeout(), None);
}

#[test]
fn a_request_looping_back_makes_a_client_and_a_server_transaction() {
    let mut layer: TransactionLayer<u8> = TransactionLayer::new(Config::default());
    let now = Instant::now();
    let mut sim = Sim::new(Unreliable);
    let req = sim.request("OPTIONS");
    let ckey = layer
        .send_request(req.clone(), 7, Unreliable, now)
        .expect("send");
    layer
        .handle_message(parse(&req), 7, Unreliable, now)
        .expect("loop back");
    assert_eq!(layer.len(), 2);
    let skey = TransactionKey::for_request(&parse(&req)).expect("key");
    assert_eq!((ckey.role(), skey.role()), (Role::Client, Role::Server));
    assert_eq!(ckey.branch(), skey.branch());
    assert_eq!(layer.kind(&skey), Some(Kind::ServerNonInvite));
    assert_eq!(layer.peer(&skey), Some(&7));
}

#[test]
fn ack_for_a_non_2xx_response_follows_17_1_1_3() {
    let mut sim = Sim::new(Unreliable);
    let invite = RequestBuilder::new("INVITE", "sip:bob@server.example;transport=udp")
        .via("UDP", "client.example:5060", "z9hG4bKroute")
        .header("Route", "<sip:p1.example;lr>")
        .header("Route", "<sip:p2.example;lr>, <sip:p3.example;lr>")
        .header("Max-Forwards", "70")
        .header("From", "\"Alice\" <sip:alice@client.example>;tag=a1")
        .header("To", "<sip:bob@server.example>")
        .header("Call-ID", "route@client.example")
        .header("CSeq", "42 INVITE")
        .header("Contact", "<sip:alice@192.0.2.1>")
        .body("application/sdp", "v=0\r\n")
        .build();
    let key = sim
        .client
        .send_request(invite.clone(), Side::Server, Unreliable, sim.now)
        .expect("send");
    sim.flush();
    sim.run_until(5);
    let skey = sim.server_key();
    sim.respond(&skey, 486);
    sim.run_until(10);
    let wire = sim
        .wire
        .iter()
        .find(|w| w.label == "ACK")
        .expect("ACK sent");
    let ack = parse(&wire.bytes);
    let invite = parse(&invite);
    assert_eq!(ack.request_uri_str(), invite.request_uri_str());
    assert_eq!(ack.vias().count(), 1);
    assert_eq!(ack.via().expect("via").branch(), key.branch());
    assert_eq!(ack.via().expect("via").host_str(), "client.example");
    assert_eq!(ack.to().expect("to").tag(), Some("srv1"));
    assert_eq!(
        ack.header(HeaderName::From),
        invite.header(HeaderName::From)
    );
    assert_eq!(ack.call_id(), invite.call_id());
    let cseq = ack.cseq().expect("cseq");
    assert_eq!((cseq.seq, cseq.method), (42, "ACK"));
    let routes: Vec<_> = ack.values(HeaderName::Route).collect();
    assert_eq!(
        routes,
        vec![
            "<sip:p1.example;lr>",
            "<sip:p2.example;lr>",
            "<sip:p3.example;lr>"
        ]
    );
    assert!(ack.body().is_empty() && !ack.has(HeaderName::Contact));
    // The server matched it: same branch and sent-by, method ACK counted as INVITE.
    sim.run_until(15);
    assert_eq!(sim.server_state(&skey), Some(State::Confirmed));
}

#[test]
fn a_completed_server_transaction_keeps_only_its_response() {
    let mut layer: TransactionLayer<u8> = TransactionLayer::new(Config::default());
    let t0 = Instant::now();
    let secs = |n| std::time::Duration::from_secs(n);
    let req = Sim::new(Unreliable).request("OPTIONS");
    let ok = ResponseBuilder::new(&parse(&req), 200, "OK")
        .to_tag("s1")
        .build();
    let answer = |layer: &mut TransactionLayer<u8>, at: Instant| {
        layer
            .handle_message(parse(&req), 7, Unreliable, at)
            .expect("a key");
        let key = match layer.poll_event() {
            Some(Event::Request { key, .. }) => key,
            other => panic!("expected a new request, got {other:?}"),
        };
        layer.send_response(&key, ok.clone(), at).expect("sent");
        while layer.poll_transmit().is_some() {}
        while layer.poll_event().is_some() {}
        key
    };
    let key = answer(&mut layer, t0);
    assert_eq!(layer.state(&key), Some(State::Completed));
    assert_eq!(layer.kind(&key), Some(Kind::ServerNonInvite));
    assert_eq!(layer.timers(&key), [(Timer::J, t0 + secs(32))]);
    assert!(layer.request(&key).is_none(), "the request is let go");
    assert!(layer.peer(&key).is_none(), "and so is the peer");
    // A retransmission gets the response, sent to where the retransmission came from.
    layer
        .handle_message(parse(&req), 9, Unreliable, t0 + secs(1))
        .expect("a key");
    let resent = layer.poll_transmit().expect("the response again");
    assert_eq!((resent.peer, resent.bytes), (9, ok.clone()));
    assert!(layer.poll_event().is_none(), "the TU hears nothing");
    assert_eq!(
        layer.send_response(&key, ok.clone(), t0 + secs(1)),
        Err(TransactionError::InvalidState {
            state: State::Completed,
            status: 200
        })
    );

    // Ended early, then the same request again: a new transaction, whose Timer J is its own
    // and not the deadline its predecessor left in the queue.
    assert!(layer.terminate(&key));
    assert_eq!(
        layer
            .poll_event()
            .map(|e| matches!(e, Event::Terminated { .. })),
        Some(true)
    );
    let t1 = t0 + secs(10);
    let key = answer(&mut layer, t1);
    assert_eq!(
        layer.poll_timeout(),
        Some(t0 + secs(32)),
        "the stale deadline"
    );
    layer.handle_timeout(t0 + secs(32));
    assert_eq!(layer.state(&key), Some(State::Completed));
    assert!(layer.poll_event().is_none());
    assert_eq!(layer.poll_timeout(), Some(t1 + secs(32)));
    layer.handle_timeout(t1 + secs(32));
    assert_eq!(layer.state(&key), None);
    assert!(matches!(layer.poll_event(), Some(Event::Terminated { key: k }) if k == key));
    assert_eq!(layer.poll_timeout(), None);
}

#[test]
fn a_completed_client_transaction_absorbs_responses_until_timer_k() {
    let mut sim = Sim::new(Unreliable);
    sim.duplicate_where(1, 100, |w| w.label == "200");
    let key = sim.send("MESSAGE");
    sim.run_until(5);
    let skey = sim.server_key();
    sim.respond(&skey, 200);
    sim.run_until(10);
    assert_eq!(sim.client_state(&key), Some(State::Completed));
    assert_eq!(sim.client.kind(&key), Some(Kind::ClientNonInvite));
    assert!(sim.client.request(&key).is_none());
    sim.run_to_end();
    // The copy at 110 ms is absorbed: the TU heard of the 200 once, and nothing is stray.
    assert_eq!(sim.responses(&key), vec![(10, 200)]);
    assert!(!sim
        .client_events
        .iter()
        .any(|(_, e)| matches!(e, Event::StrayResponse { .. })));
    assert_eq!(sim.terminated(Side::Client, &key), Some(5010));
}
