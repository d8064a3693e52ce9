//! A worker driven by hand, with a simulated clock: the test plays the server, reading what
//! the worker sends and answering it.

use super::*;
use crate::load::wire::{write_marker, write_response, Reply};
use confab_sip::auth::{format_challenge, ChallengeParams, Credentials};
use confab_sip::builder::ResponseBuilder;
use confab_sip::digest::{self, Algorithm, Verification};
use confab_sip::HeaderName;
use std::sync::atomic::Ordering;

const SERVER: &str = "127.0.0.1:5060";

#[derive(Default)]
struct Capture {
    sent: Vec<(SocketAddr, Message)>,
}

impl Wire for Capture {
    fn send(&mut self, to: SocketAddr, bytes: &[u8]) -> bool {
        let msg = Message::parse(Bytes::copy_from_slice(bytes)).expect("what is sent parses");
        self.sent.push((to, msg));
        true
    }
}

impl Capture {
    fn take(&mut self) -> Vec<Message> {
        self.sent.drain(..).map(|(_, m)| m).collect()
    }

    fn one(&mut self) -> Message {
        let mut all = self.take();
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }
}

fn worker(scenario: Scenario, users: usize) -> (Worker, Instant) {
    let cfg = LoadConfig {
        scenario,
        op_timeout: Duration::from_secs(60),
        ..LoadConfig::new(SERVER.parse().expect("addr"), "localhost", users)
    };
    let set = Setting {
        index: 0,
        workers: 1,
        local: "127.0.0.1:40000".parse().expect("addr"),
        server: SERVER.parse().expect("addr"),
        run: 0x1234,
        tag: 7,
        t1: Duration::from_millis(500),
        t2: Duration::from_secs(4),
    };
    let w = Worker::new(Arc::new(cfg), set, Arc::new(AtomicU64::new(0)));
    (w, Instant::now())
}

fn challenge(status: u16, req: &Message, nonce: &str, stale: bool) -> Bytes {
    let value = format_challenge(&ChallengeParams {
        realm: "localhost",
        nonce,
        opaque: None,
        algorithm: Algorithm::Sha256,
        qop_auth: true,
        stale,
    });
    let md5 = format_challenge(&ChallengeParams {
        realm: "localhost",
        nonce,
        opaque: None,
        algorithm: Algorithm::Md5,
        qop_auth: true,
        stale,
    });
    let header = if status == 401 {
        "WWW-Authenticate"
    } else {
        "Proxy-Authenticate"
    };
    ResponseBuilder::new(req, status, "Challenge")
        .to_tag("srv")
        .header(header, value)
        .header(header, md5)
        .build()
}

fn ok(req: &Message) -> Bytes {
    ResponseBuilder::new(req, 200, "OK").to_tag("srv").build()
}

fn feed(w: &mut Worker, wire: &mut Capture, bytes: &[u8], now: Instant) {
    w.datagram(SERVER.parse().expect("addr"), bytes, now, wire);
    w.tick(now, wire);
}

/// The credentials in `header` of `req`, checked against user `n`'s password.
fn check_creds(req: &Message, name: HeaderName, user: &str, password: &str) -> u32 {
    let value = req.header(name).expect("credentials");
    let creds = Credentials::parse(value).expect("parse");
    assert_eq!(creds.username().as_deref(), Some(user));
    assert_eq!(creds.uri().as_deref(), req.request_uri_str());
    let alg = Algorithm::from_param(creds.algorithm()).expect("algorithm");
    assert_eq!(alg, Algorithm::Sha256, "the first challenge offered");
    let ha1 = digest::ha1(alg, user, "localhost", password);
    let method = req.method_str().expect("method");
    assert_eq!(digest::verify(&creds, method, &ha1), Verification::Ok);
    creds.nc().expect("nc")
}

#[test]
fn register_answers_the_challenge_and_keeps_its_call_id() {
    let (mut w, t0) = worker(Scenario::Register, 3);
    let mut wire = Capture::default();
    w.begin(
        Kind::Register,
        Pacer::closed(1, 2, t0 + Duration::from_secs(10)),
    );
    w.tick(t0, &mut wire);
    let first = wire.one();
    assert_eq!(first.method_str(), Some("REGISTER"));
    assert_eq!(first.request_uri_str(), Some("sip:localhost"));
    assert!(!first.has(HeaderName::Authorization));
    let contact = first.contacts().next().expect("contact").expect("valid");
    let contact = contact.address().expect("address").uri().as_str();
    assert_eq!(contact, "sip:user1@127.0.0.1:40000");
    assert_eq!(first.expires(), Ok(Some(3600)));

    feed(&mut w, &mut wire, &challenge(401, &first, "n1", false), t0);
    let second = wire.one();
    assert_eq!(second.call_id(), first.call_id());
    assert_eq!(
        second.cseq().expect("cseq").seq,
        first.cseq().expect("cseq").seq + 1
    );
    assert_ne!(
        second.via().expect("via").branch(),
        first.via().expect("via").branch()
    );
    assert_eq!(
        check_creds(&second, HeaderName::Authorization, "user1", "pw-1"),
        1
    );

    let t1 = t0 + Duration::from_millis(3);
    feed(&mut w, &mut wire, &ok(&second), t1);
    assert_eq!((w.stats.attempted, w.stats.succeeded), (2, 1));
    assert_eq!(w.stats.latencies, [3000]);

    // The closed loop started the next operation: the next user, full round again.
    let next = wire.one();
    assert!(!next.has(HeaderName::Authorization));
    assert_eq!(next.from().expect("from").uri().user(), Some("user2"));
    // A late duplicate of the 200 matches nothing any more.
    feed(&mut w, &mut wire, &ok(&second), t1);
    assert_eq!(w.stats.stray, 1);
    assert!(wire.take().is_empty());
}

#[test]
fn setup_clears_old_bindings_then_registers_with_the_same_challenge() {
    let (mut w, t0) = worker(Scenario::Message, 2);
    let mut wire = Capture::default();
    w.begin(
        Kind::Setup,
        Pacer::closed(1, 2, t0 + Duration::from_secs(10)),
    );
    w.tick(t0, &mut wire);
    let clear = wire.one();
    assert_eq!(clear.header(HeaderName::Contact), Some("*"));
    assert_eq!(clear.expires(), Ok(Some(0)));
    feed(&mut w, &mut wire, &challenge(401, &clear, "n1", false), t0);
    let clear2 = wire.one();
    assert_eq!(clear2.header(HeaderName::Contact), Some("*"));
    assert_eq!(
        check_creds(&clear2, HeaderName::Authorization, "user1", "pw-1"),
        1
    );
    feed(&mut w, &mut wire, &ok(&clear2), t0);
    let register = wire.one();
    assert_eq!(register.call_id(), clear.call_id());
    assert_eq!(register.cseq().expect("cseq").seq, 3);
    assert_eq!(register.expires(), Ok(Some(3600)));
    assert_eq!(
        check_creds(&register, HeaderName::Authorization, "user1", "pw-1"),
        2
    );
    // The server forgot the nonce: its fresh challenge is answered.
    feed(
        &mut w,
        &mut wire,
        &challenge(401, &register, "n2", false),
        t0,
    );
    let register2 = wire.one();
    assert_eq!(
        check_creds(&register2, HeaderName::Authorization, "user1", "pw-1"),
        1
    );
    feed(&mut w, &mut wire, &ok(&register2), t0);
    assert_eq!(w.stats.succeeded, 1);

    // A server that refuses `Contact: *` still gets the registration.
    let clear = wire.one();
    let refused = ResponseBuilder::new(&clear, 400, "Bad Request").build();
    feed(&mut w, &mut wire, &refused, t0);
    let register = wire.one();
    assert_ne!(register.header(HeaderName::Contact), Some("*"));
    feed(
        &mut w,
        &mut wire,
        &challenge(401, &register, "n3", false),
        t0,
    );
    let answered = ok(&wire.one());
    feed(&mut w, &mut wire, &answered, t0);
    assert_eq!((w.stats.succeeded, w.stats.attempted), (2, 2));
    assert!(!w.busy(t0));
}

#[test]
fn a_refused_password_is_a_failure_by_status() {
    let (mut w, t0) = worker(Scenario::Register, 1);
    let mut wire = Capture::default();
    w.begin(
        Kind::Register,
        Pacer::closed(1, 1, t0 + Duration::from_secs(10)),
    );
    w.tick(t0, &mut wire);
    let first = wire.one();
    feed(&mut w, &mut wire, &challenge(401, &first, "n1", false), t0);
    let second = wire.one();
    feed(&mut w, &mut wire, &challenge(401, &second, "n2", false), t0);
    assert!(wire.take().is_empty());
    assert_eq!(w.stats.failures.get(&Failure::Status(401)), Some(&1));
    assert!(!w.busy(t0));
}

#[test]
fn requests_are_retransmitted_on_rfc_3261_timers_until_timeout() {
    let (mut w, t0) = worker(Scenario::Register, 1);
    let mut wire = Capture::default();
    w.begin(
        Kind::Register,
        Pacer::closed(1, 1, t0 + Duration::from_secs(100)),
    );
    w.tick(t0, &mut wire);
    let first = wire.one();
    let mut at = Vec::new();
    let mut now = t0;
    while w.busy(now) {
        now += Duration::from_millis(100);
        w.tick(now, &mut wire);
        for m in wire.take() {
            assert_eq!(m.as_bytes(), first.as_bytes(), "the same request again");
            at.push(now.duration_since(t0).as_millis());
        }
    }
    // Timer E: 0.5, 1, 2, 4, 4, 4 … s apart; Timer F at 64·T1 = 32 s.
    assert_eq!(
        at,
        [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(w.stats.retransmissions, 10);
    assert_eq!(w.stats.failures.get(&Failure::Timeout), Some(&1));
    assert_eq!(now.duration_since(t0).as_millis(), 32_000);
}

#[test]
fn an_operation_not_done_in_time_is_a_timeout() {
    let (mut w, t0) = worker(Scenario::Register, 1);
    let cfg = LoadConfig {
        op_timeout: Duration::from_millis(700),
        ..(*w.cfg).clone()
    };
    w = Worker::new(Arc::new(cfg), w.set.clone(), Arc::new(AtomicU64::new(0)));
    let mut wire = Capture::default();
    w.begin(
        Kind::Register,
        Pacer::closed(1, 1, t0 + Duration::from_secs(100)),
    );
    w.tick(t0, &mut wire);
    let first = wire.one();
    w.tick(t0 + Duration::from_millis(600), &mut wire);
    assert_eq!(wire.take().len(), 1, "one retransmission");
    w.tick(t0 + Duration::from_millis(700), &mut wire);
    assert_eq!(w.stats.failures.get(&Failure::Timeout), Some(&1));
    // Its answer, late, is stray.
    feed(
        &mut w,
        &mut wire,
        &ok(&first),
        t0 + Duration::from_millis(800),
    );
    assert_eq!((w.stats.succeeded, w.stats.stray), (0, 1));
}

#[test]
fn a_timer_of_the_setup_phase_never_ends_an_operation_of_the_next() {
    let (w, t0) = worker(Scenario::Message, 2);
    let cfg = LoadConfig {
        op_timeout: Duration::from_secs(1),
        ..(*w.cfg).clone()
    };
    let mut w = Worker::new(Arc::new(cfg), w.set.clone(), Arc::new(AtomicU64::new(0)));
    let mut wire = Capture::default();
    w.begin(
        Kind::Setup,
        Pacer::closed(1, 1, t0 + Duration::from_secs(100)),
    );
    w.tick(t0, &mut wire);
    let clear = wire.one();
    feed(&mut w, &mut wire, &ok(&clear), t0);
    let register = wire.one();
    feed(&mut w, &mut wire, &ok(&register), t0);
    assert_eq!(w.take_stats().succeeded, 1);
    // The next phase reuses the slot; the setup operation's timeout comes and goes.
    let t1 = t0 + Duration::from_millis(100);
    w.begin(
        Kind::Message,
        Pacer::closed(1, 1, t0 + Duration::from_secs(100)),
    );
    w.tick(t1, &mut wire);
    assert_eq!(wire.one().method_str(), Some("MESSAGE"));
    w.tick(t0 + Duration::from_millis(1050), &mut wire);
    assert!(w.stats.failures.is_empty(), "{:?}", w.stats.failures);
    w.tick(t1 + Duration::from_secs(1), &mut wire);
    assert_eq!(w.stats.failures.get(&Failure::Timeout), Some(&1));
}

#[test]
fn messages_reuse_the_proxy_nonce_with_rising_counts_and_survive_stale() {
    let (mut w, t0) = worker(Scenario::Message, 2);
    let mut wire = Capture::default();
    w.begin(
        Kind::Message,
        Pacer::closed(1, 4, t0 + Duration::from_secs(10)),
    );
    w.tick(t0, &mut wire);
    let m1 = wire.one();
    assert_eq!(m1.request_uri_str(), Some("sip:user2@localhost"));
    assert!(!m1.has(HeaderName::ProxyAuthorization));
    let marker = crate::load::wire::parse_marker(m1.body()).expect("marker");
    assert_eq!(marker, (0x1234, 0));
    feed(&mut w, &mut wire, &challenge(407, &m1, "p1", false), t0);
    let m1b = wire.one();
    assert_eq!(m1b.call_id(), m1.call_id());
    assert_eq!(m1b.body(), m1.body());
    assert_eq!(
        check_creds(&m1b, HeaderName::ProxyAuthorization, "user1", "pw-1"),
        1
    );
    feed(&mut w, &mut wire, &ok(&m1b), t0);

    // User 2 to user 1: its own first challenge.
    let m2 = wire.one();
    assert_eq!(m2.request_uri_str(), Some("sip:user1@localhost"));
    assert!(!m2.has(HeaderName::ProxyAuthorization));
    feed(&mut w, &mut wire, &challenge(407, &m2, "p2", false), t0);
    let m2b = wire.one();
    feed(&mut w, &mut wire, &ok(&m2b), t0);

    // User 1 again: the cached nonce, preemptively, next count; a new Call-ID.
    let m3 = wire.one();
    assert_ne!(m3.call_id(), m1.call_id());
    assert_eq!(
        check_creds(&m3, HeaderName::ProxyAuthorization, "user1", "pw-1"),
        2
    );
    // The nonce expired: stale=true, answered with the new nonce from count 1.
    feed(&mut w, &mut wire, &challenge(407, &m3, "p3", true), t0);
    let m3b = wire.one();
    assert_eq!(
        check_creds(&m3b, HeaderName::ProxyAuthorization, "user1", "pw-1"),
        1
    );
    assert!(m3b
        .header(HeaderName::ProxyAuthorization)
        .expect("creds")
        .contains("\"p3\""));
    feed(&mut w, &mut wire, &ok(&m3b), t0);
    assert_eq!(w.stats.succeeded, 3);
}

#[test]
fn a_call_goes_invite_407_ack_invite_200_ack_bye() {
    let (mut w, t0) = worker(Scenario::Call, 2);
    let mut wire = Capture::default();
    w.begin(
        Kind::Call,
        Pacer::closed(1, 1, t0 + Duration::from_secs(10)),
    );
    w.tick(t0, &mut wire);
    let inv = wire.one();
    assert_eq!(inv.method_str(), Some("INVITE"));
    assert!(inv.body().starts_with(b"v=0"));
    feed(&mut w, &mut wire, &challenge(407, &inv, "p1", false), t0);
    let sent = wire.take();
    assert_eq!(sent.len(), 2, "{sent:?}");
    let (ack, inv2) = (&sent[0], &sent[1]);
    assert_eq!(ack.method_str(), Some("ACK"));
    assert_eq!(
        ack.via().expect("via").branch(),
        inv.via().expect("via").branch()
    );
    assert_eq!(ack.to().expect("to").tag(), Some("srv"));
    assert_eq!(ack.cseq().expect("cseq").seq, inv.cseq().expect("cseq").seq);
    assert_eq!(inv2.cseq().expect("cseq").seq, 2);
    check_creds(inv2, HeaderName::ProxyAuthorization, "user1", "pw-1");

    // The 407 again (our ACK was lost): acknowledged again, nothing else.
    feed(&mut w, &mut wire, &challenge(407, &inv, "p1", false), t0);
    assert_eq!(wire.one().method_str(), Some("ACK"));

    // 100 from the proxy, then 180 and 200 from the callee through it.
    let trying = ResponseBuilder::new(inv2, 100, "Trying").build();
    feed(&mut w, &mut wire, &trying, t0);
    let t_invite = t0 + Duration::from_secs(1);
    w.tick(t_invite, &mut wire);
    assert!(
        wire.take().is_empty(),
        "no INVITE retransmission after a provisional"
    );
    let mut answer = Vec::new();
    let rr = "<sip:127.0.0.1:5060;transport=udp;lr>";
    let inv2_rr = Message::parse(Bytes::from(
        String::from_utf8_lossy(inv2.as_bytes()).replacen(
            "\r\n",
            &format!("\r\nRecord-Route: {rr}\r\n"),
            1,
        ),
    ))
    .expect("parses");
    write_response(
        &mut answer,
        &inv2_rr,
        &Reply {
            status: 200,
            reason: "OK",
            to_tag: Some(0xb0b),
            record_route: true,
            contact: Some(("user2", "127.0.0.1:40001".parse().expect("addr"))),
            body: None,
        },
    );
    feed(&mut w, &mut wire, &answer, t_invite);
    let sent = wire.take();
    assert_eq!(sent.len(), 2, "{sent:?}");
    let (ack, bye) = (&sent[0], &sent[1]);
    for (m, method) in [(ack, "ACK"), (bye, "BYE")] {
        assert_eq!(m.method_str(), Some(method));
        assert_eq!(m.request_uri_str(), Some("sip:user2@127.0.0.1:40001"));
        assert_eq!(m.header(HeaderName::Route), Some(rr));
        assert_eq!(m.to().expect("to").tag(), Some("b0b"));
        assert_eq!(m.call_id(), inv.call_id());
    }
    assert_eq!(ack.cseq().expect("cseq").seq, 2);
    assert_eq!(bye.cseq().expect("cseq").seq, 3);
    assert_ne!(
        ack.via().expect("via").branch(),
        inv2.via().expect("via").branch()
    );
    assert_eq!(
        ack.header(HeaderName::ProxyAuthorization),
        inv2.header(HeaderName::ProxyAuthorization)
    );
    assert!(!bye.has(HeaderName::ProxyAuthorization));

    // The 200 again: the same ACK again.
    feed(&mut w, &mut wire, &answer, t_invite);
    assert_eq!(wire.one().as_bytes(), ack.as_bytes());

    feed(
        &mut w,
        &mut wire,
        &ok(bye),
        t_invite + Duration::from_millis(2),
    );
    assert_eq!(w.stats.succeeded, 1);
    assert_eq!(w.stats.latencies, [1_002_000]);
    assert!(!w.busy(t_invite));
}

fn request(text: &str) -> Message {
    Message::parse(Bytes::from(text.replace('\n', "\r\n"))).expect("parses")
}

#[test]
fn the_callee_counts_this_runs_messages_once_and_answers_every_one() {
    let (mut w, t0) = worker(Scenario::Message, 2);
    let delivered = Arc::new(AtomicU64::new(0));
    w = Worker::new(Arc::clone(&w.cfg), w.set.clone(), Arc::clone(&delivered));
    let mut wire = Capture::default();
    let message = |body: &[u8], branch: &str| {
        let mut text = format!(
            "MESSAGE sip:user2@127.0.0.1:40000 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\n\
             From: <sip:user1@localhost>;tag=a\nTo: <sip:user2@localhost>\nCall-ID: {branch}\n\
             CSeq: 1 MESSAGE\nContent-Length: {}\n\n",
            body.len()
        )
        .replace('\n', "\r\n")
        .into_bytes();
        text.extend_from_slice(body);
        text
    };
    let mut ours = Vec::new();
    write_marker(&mut ours, 0x1234, 9);
    let mut theirs = Vec::new();
    write_marker(&mut theirs, 0x9999, 9);
    for (body, branch) in [
        (&ours[..], "z9hG4bK1"),
        (&ours[..], "z9hG4bK1"),
        (&theirs[..], "z9hG4bK2"),
        (&b"an offline message"[..], "z9hG4bK3"),
    ] {
        feed(&mut w, &mut wire, &message(body, branch), t0);
        let resp = wire.one();
        assert_eq!(resp.status(), Some(200));
        assert!(resp.to().expect("to").tag().is_some());
    }
    assert_eq!(delivered.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[test]
fn the_callee_answers_invite_until_ack_and_bye() {
    let (mut w, t0) = worker(Scenario::Call, 2);
    let mut wire = Capture::default();
    let invite = request(
        "INVITE sip:user2@127.0.0.1:40000 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKs\n\
         Via: SIP/2.0/UDP 127.0.0.1:40001;branch=z9hG4bKc\n\
         Record-Route: <sip:127.0.0.1:5060;transport=udp;lr>\n\
         From: <sip:user1@localhost>;tag=a\nTo: <sip:user2@localhost>\nCall-ID: c1\n\
         CSeq: 2 INVITE\nContent-Length: 0\n\n",
    );
    feed(&mut w, &mut wire, invite.as_bytes(), t0);
    let sent = wire.take();
    let statuses: Vec<_> = sent.iter().map(Message::status).collect();
    assert_eq!(statuses, [Some(180), Some(200)]);
    let ok = &sent[1];
    assert_eq!(ok.record_routes().count(), 1);
    assert!(ok.to().expect("to").tag().is_some());
    assert_eq!(ok.vias().count(), 2);
    let contact = ok.contacts().next().expect("contact").expect("valid");
    assert_eq!(
        contact.address().expect("addr").uri().as_str(),
        "sip:user2@127.0.0.1:40000"
    );
    assert!(ok.body().starts_with(b"v=0"));

    // The INVITE again: the 200 again. No ACK yet: the 200 again at T1.
    feed(&mut w, &mut wire, invite.as_bytes(), t0);
    assert_eq!(wire.one().as_bytes(), ok.as_bytes());
    w.tick(t0 + Duration::from_millis(500), &mut wire);
    assert_eq!(wire.one().as_bytes(), ok.as_bytes());
    assert_eq!(w.stats.retransmissions, 1);

    let tag = ok.to().expect("to").tag().expect("tag").to_owned();
    let ack = request(&format!(
        "ACK sip:user2@127.0.0.1:40000 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKa\n\
         From: <sip:user1@localhost>;tag=a\nTo: <sip:user2@localhost>;tag={tag}\nCall-ID: c1\n\
         CSeq: 2 ACK\nContent-Length: 0\n\n"
    ));
    feed(
        &mut w,
        &mut wire,
        ack.as_bytes(),
        t0 + Duration::from_millis(600),
    );
    assert!(wire.take().is_empty(), "no answer to an ACK");
    w.tick(t0 + Duration::from_secs(5), &mut wire);
    assert!(wire.take().is_empty(), "no 200 after the ACK");
    assert_eq!(w.callee.dialogs(), 1);

    let bye = |call_id: &str| {
        request(&format!(
            "BYE sip:user2@127.0.0.1:40000 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKb\n\
             From: <sip:user1@localhost>;tag=a\nTo: <sip:user2@localhost>;tag={tag}\n\
             Call-ID: {call_id}\nCSeq: 3 BYE\nContent-Length: 0\n\n"
        ))
    };
    feed(
        &mut w,
        &mut wire,
        bye("c1").as_bytes(),
        t0 + Duration::from_secs(6),
    );
    assert_eq!(wire.one().status(), Some(200));
    assert_eq!(w.callee.dialogs(), 0);
    // A BYE again for a call of this run: still 200; for anything else 481.
    let ours = format!("c{:016x}.5", 0x1234);
    feed(
        &mut w,
        &mut wire,
        bye(&ours).as_bytes(),
        t0 + Duration::from_secs(6),
    );
    assert_eq!(wire.one().status(), Some(200));
    feed(
        &mut w,
        &mut wire,
        bye("c1").as_bytes(),
        t0 + Duration::from_secs(6),
    );
    assert_eq!(wire.one().status(), Some(481));
}

#[test]
fn a_rate_with_a_busy_user_queues_and_starts_after_it() {
    let (mut w, t0) = worker(Scenario::Register, 1);
    let mut wire = Capture::default();
    let end = t0 + Duration::from_secs(10);
    w.begin(Kind::Register, Pacer::rate(1000.0, t0, 3, end));
    w.tick(t0 + Duration::from_millis(2), &mut wire);
    // Three due, one user: one sent, two waiting.
    let first = wire.one();
    assert_eq!(w.stats.attempted, 1);
    feed(&mut w, &mut wire, &challenge(401, &first, "n", false), t0);
    let second = wire.one();
    feed(
        &mut w,
        &mut wire,
        &ok(&second),
        t0 + Duration::from_millis(3),
    );
    let next = wire.one();
    assert_eq!(w.stats.attempted, 2);
    assert_eq!(next.call_id(), first.call_id());
    assert!(next.cseq().expect("cseq").seq > second.cseq().expect("cseq").seq);
}

/// A worker of the subscribe scenario: `users` users, the first `presentities` publishing,
/// each watcher watching `watch`.
fn subscribe_worker(users: usize, presentities: usize, watch: usize) -> (Worker, Instant) {
    let (w, t0) = worker(Scenario::Subscribe, users);
    let cfg = LoadConfig {
        presentities,
        watch,
        ..(*w.cfg).clone()
    };
    let w = Worker::new(Arc::new(cfg), w.set.clone(), Arc::new(AtomicU64::new(0)));
    (w, t0)
}

/// A NOTIFY the server sends in the dialog of `subscribe` (answered with `to_tag`).
fn notify_for(subscribe: &Message, cseq: u32, state: &str, body: &[u8]) -> Vec<u8> {
    let from = subscribe.header(HeaderName::To).expect("To");
    let to = subscribe.header(HeaderName::From).expect("From");
    let call_id = subscribe.call_id().expect("Call-ID");
    let typed = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/pidf+xml\n".into()
    };
    let mut text = format!(
        "NOTIFY sip:watcher@127.0.0.1:40000 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKn{cseq}\n\
         Max-Forwards: 70\nFrom: {from};tag=srv\nTo: {to}\nCall-ID: {call_id}\nCSeq: {cseq} NOTIFY\n\
         Contact: <sip:127.0.0.1:5060>\nEvent: presence\nSubscription-State: {state}\n{typed}\
         Content-Length: {}\n\n",
        body.len()
    )
    .replace('\n', "\r\n")
    .into_bytes();
    text.extend_from_slice(body);
    text
}

/// Feeds a NOTIFY and checks its answer: 200 with what RFC 3261 §8.2.6 copies.
fn answer_notify(w: &mut Worker, wire: &mut Capture, notify: &[u8], now: Instant) {
    feed(w, wire, notify, now);
    let sent = wire.take();
    let answer = sent
        .iter()
        .find(|m| m.is_response())
        .unwrap_or_else(|| panic!("no answer to the NOTIFY: {sent:?}"));
    let notify = Message::parse(Bytes::copy_from_slice(notify)).expect("parses");
    assert_eq!(answer.status(), Some(200));
    for h in [
        HeaderName::Via,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
    ] {
        assert_eq!(answer.header(h), notify.header(h), "{h:?}");
    }
    // Whatever else was sent goes back for the test to read.
    wire.sent.extend(
        sent.into_iter()
            .filter(|m| !m.is_response())
            .map(|m| (SERVER.parse().expect("addr"), m)),
    );
}

fn pidf_with_note(note: &[u8]) -> Vec<u8> {
    let mut body = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
        entity=\"sip:user1@localhost\"><tuple id=\"presence\"><status><basic>open</basic></status><note>"
        .to_vec();
    body.extend_from_slice(note);
    body.extend_from_slice(b"</note></tuple></presence>\n");
    body
}

#[test]
fn watchers_subscribe_in_turn_and_are_established_by_2xx_and_notify() {
    // Users 1 and 2 publish; users 3, 4, 5 (indexes 2, 3, 4) watch two each.
    let (mut w, t0) = subscribe_worker(5, 2, 2);
    assert_eq!((w.first_watcher, w.subs.len()), (2, 6));
    let mut wire = Capture::default();
    w.begin(
        Kind::Watch,
        Pacer::closed(1, 3, t0 + Duration::from_secs(10)),
    );
    w.tick(t0, &mut wire);
    let s1 = wire.one();
    assert_eq!(s1.method_str(), Some("SUBSCRIBE"));
    // Watcher index 2, j = 0: presentity (2 + 0) mod 2 = 0, user1.
    assert_eq!(s1.request_uri_str(), Some("sip:user1@localhost"));
    assert_eq!(s1.from().expect("from").uri().user(), Some("user3"));
    assert_eq!(s1.header(HeaderName::Event), Some("presence"));
    assert_eq!(s1.header(HeaderName::Accept), Some("application/pidf+xml"));
    assert_eq!(s1.expires(), Ok(Some(3600)));
    assert_eq!(s1.call_id(), Ok(format!("s{:016x}.2.0", 0x1234).as_str()));
    assert!(s1.to().expect("to").tag().is_none());
    let contact = s1.contacts().next().expect("contact").expect("valid");
    assert_eq!(
        contact.address().expect("address").uri().as_str(),
        "sip:user3@127.0.0.1:40000"
    );
    assert!(!s1.has(HeaderName::ProxyAuthorization));
    feed(&mut w, &mut wire, &challenge(407, &s1, "p1", false), t0);
    let s1b = wire.one();
    assert_eq!(s1b.call_id(), s1.call_id());
    assert_eq!(s1b.cseq().expect("cseq").seq, 2);
    assert_eq!(
        check_creds(&s1b, HeaderName::ProxyAuthorization, "user3", "pw-3"),
        1
    );

    // The first NOTIFY before the 2xx: answered; the subscription waits for its 2xx.
    answer_notify(
        &mut w,
        &mut wire,
        &notify_for(&s1b, 1, "active;expires=3600", &pidf_with_note(b"hi")),
        t0,
    );
    assert!(wire.take().is_empty());
    assert_eq!(w.tally.subscriptions.load(Ordering::Relaxed), 0);
    feed(&mut w, &mut wire, &ok(&s1b), t0);
    assert_eq!(w.tally.subscriptions.load(Ordering::Relaxed), 1);

    // The same watcher's second subscription: presentity 1 (user2), the cached nonce.
    let s2 = wire.one();
    assert_eq!(s2.request_uri_str(), Some("sip:user2@localhost"));
    assert_eq!(s2.call_id(), Ok(format!("s{:016x}.2.1", 0x1234).as_str()));
    assert_eq!(
        check_creds(&s2, HeaderName::ProxyAuthorization, "user3", "pw-3"),
        2
    );
    assert_ne!(
        s2.from().expect("from").tag(),
        s1.from().expect("from").tag()
    );
    // The 2xx first, then the NOTIFY: established, and the watcher is done.
    feed(&mut w, &mut wire, &ok(&s2), t0);
    assert!(wire.take().is_empty(), "waits for the NOTIFY");
    assert_eq!(w.stats.succeeded, 0);
    answer_notify(
        &mut w,
        &mut wire,
        &notify_for(&s2, 7, "active;expires=3600", &pidf_with_note(b"hi")),
        t0,
    );
    assert_eq!(w.stats.succeeded, 1);
    assert_eq!(w.tally.subscriptions.load(Ordering::Relaxed), 2);
    let watchers: Vec<u32> = w
        .tally
        .watchers
        .iter()
        .map(|n| n.load(Ordering::Relaxed))
        .collect();
    assert_eq!(watchers, [1, 1]);

    // The next watcher (index 3) starts with presentity (3 + 0) mod 2 = 1.
    let s3 = wire.one();
    assert_eq!(s3.from().expect("from").uri().user(), Some("user4"));
    assert_eq!(s3.request_uri_str(), Some("sip:user2@localhost"));
    // Left pending by the presentity's rules: the watcher fails, and says why.
    feed(&mut w, &mut wire, &ok(&s3), t0);
    answer_notify(&mut w, &mut wire, &notify_for(&s3, 1, "pending", b""), t0);
    assert_eq!(w.stats.failures.get(&Failure::Pending), Some(&1));
    assert_eq!(
        w.stats.first_failure.as_deref(),
        Some("user4: pending"),
        "{:?}",
        w.stats.first_failure
    );
    assert_eq!(w.tally.subscriptions.load(Ordering::Relaxed), 2);
}

#[test]
fn publishes_carry_a_note_and_modify_with_the_last_entity_tag() {
    let (mut w, t0) = subscribe_worker(6, 2, 1);
    w.tally.watchers[0].store(3, Ordering::Relaxed);
    w.tally.watchers[1].store(1, Ordering::Relaxed);
    w.t0 = Some(t0);
    let mut wire = Capture::default();
    w.begin(
        Kind::Publish,
        Pacer::closed(1, 4, t0 + Duration::from_secs(10)),
    );
    let t1 = t0 + Duration::from_millis(5);
    w.tick(t1, &mut wire);
    let p1 = wire.one();
    assert_eq!(p1.method_str(), Some("PUBLISH"));
    assert_eq!(p1.request_uri_str(), Some("sip:user1@localhost"));
    assert_eq!(
        p1.from().expect("from").uri().as_str(),
        "sip:user1@localhost"
    );
    assert_eq!(p1.to().expect("to").uri().as_str(), "sip:user1@localhost");
    assert!(p1.to().expect("to").tag().is_none());
    assert_eq!(p1.header(HeaderName::Event), Some("presence"));
    assert_eq!(
        p1.header(HeaderName::ContentType),
        Some("application/pidf+xml")
    );
    assert_eq!(p1.expires(), Ok(Some(3600)));
    assert!(!p1.has(HeaderName::SipIfMatch), "the first creates");
    let body = std::str::from_utf8(p1.body()).expect("utf8");
    assert!(body.contains("<basic>open</basic>"), "{body}");
    assert!(body.contains("entity=\"sip:user1@localhost\""), "{body}");
    let note = crate::load::wire::parse_note(p1.body(), 0x1234).expect("a note of this run");
    assert_eq!(note, (0, 5000), "operation 0, sent 5 ms into the run");

    // 407, then the 2xx with an entity-tag: 3 NOTIFYs expected (user1's watchers).
    feed(&mut w, &mut wire, &challenge(407, &p1, "p1", false), t1);
    let p1b = wire.one();
    check_creds(&p1b, HeaderName::ProxyAuthorization, "user1", "pw-1");
    let etag = |req: &Message, tag: &str| {
        ResponseBuilder::new(req, 200, "OK")
            .to_tag("srv")
            .header("SIP-ETag", tag)
            .header("Expires", "3600")
            .build()
    };
    feed(&mut w, &mut wire, &etag(&p1b, "e1"), t1);
    assert_eq!(w.tally.expected.load(Ordering::Relaxed), 3);
    // User 2's first: no SIP-If-Match either; its 2xx expects 1 more.
    let p2 = wire.one();
    assert_eq!(p2.request_uri_str(), Some("sip:user2@localhost"));
    assert!(!p2.has(HeaderName::SipIfMatch));
    feed(&mut w, &mut wire, &etag(&p2, "f1"), t1);
    assert_eq!(w.tally.expected.load(Ordering::Relaxed), 4);
    // User 1 again: a modification of its publication, a new Call-ID and note.
    let p3 = wire.one();
    assert_eq!(p3.header(HeaderName::SipIfMatch), Some("e1"));
    assert_ne!(p3.call_id(), p1.call_id());
    assert_eq!(
        crate::load::wire::parse_note(p3.body(), 0x1234).map(|n| n.0),
        Some(2)
    );
    // The server forgot it: 412, a failure; the next one creates again.
    let refused = ResponseBuilder::new(&p3, 412, "Conditional Request Failed").build();
    feed(&mut w, &mut wire, &refused, t1);
    assert_eq!(w.stats.failures.get(&Failure::Status(412)), Some(&1));
    let p4 = wire.one();
    assert_eq!(
        p4.header(HeaderName::SipIfMatch),
        Some("f1"),
        "user2's own tag"
    );
    feed(&mut w, &mut wire, &etag(&p4, "f2"), t1);
    assert_eq!(w.etag(0), None);
    assert_eq!(w.etag(1), Some("f2"));
    assert_eq!(w.stats.succeeded, 3);
    assert_eq!(w.tally.expected.load(Ordering::Relaxed), 5);
}

#[test]
fn notifies_of_this_run_are_counted_once_with_their_latency() {
    let (mut w, t0) = subscribe_worker(3, 1, 1);
    let mut wire = Capture::default();
    w.begin(
        Kind::Watch,
        Pacer::closed(1, 2, t0 + Duration::from_secs(10)),
    );
    w.tick(t0, &mut wire);
    let s = wire.one();
    feed(&mut w, &mut wire, &ok(&s), t0);
    answer_notify(
        &mut w,
        &mut wire,
        &notify_for(&s, 1, "active;expires=3600", &pidf_with_note(b"offline")),
        t0,
    );
    let other = wire.one();
    feed(&mut w, &mut wire, &ok(&other), t0);
    answer_notify(&mut w, &mut wire, &notify_for(&other, 1, "active", b""), t0);
    assert_eq!(w.tally.subscriptions.load(Ordering::Relaxed), 2);
    assert_eq!(w.tally.watchers[0].load(Ordering::Relaxed), 2);
    w.take_stats();

    // The measured phase: a NOTIFY with this run's note, sent 1 ms after the start and
    // received 4 ms after it.
    w.t0 = Some(t0);
    let mut ours = Vec::new();
    crate::load::wire::write_note(&mut ours, 0x1234, 0, 1000);
    let at = t0 + Duration::from_millis(4);
    let n2 = notify_for(&s, 2, "active;expires=3599", &pidf_with_note(&ours));
    answer_notify(&mut w, &mut wire, &n2, at);
    assert_eq!(w.tally.notifies.load(Ordering::Relaxed), 1);
    assert_eq!(w.stats.notify_latencies, [3000]);
    // Retransmitted: answered again, not counted again.
    answer_notify(&mut w, &mut wire, &n2, at + Duration::from_millis(500));
    assert_eq!(w.tally.notifies.load(Ordering::Relaxed), 1);
    // Another run's note, and a NOTIFY of a dialog not ours: answered, not counted.
    let mut theirs = Vec::new();
    crate::load::wire::write_note(&mut theirs, 0x9999, 0, 1000);
    answer_notify(
        &mut w,
        &mut wire,
        &notify_for(&s, 3, "active", &pidf_with_note(&theirs)),
        at,
    );
    let foreign = String::from_utf8(notify_for(&s, 9, "active", &pidf_with_note(&ours)))
        .expect("utf8")
        .replace(&format!("s{:016x}.1.0", 0x1234), "elsewhere");
    answer_notify(&mut w, &mut wire, foreign.as_bytes(), at);
    assert_eq!(w.tally.notifies.load(Ordering::Relaxed), 1);
    // The next change of the other subscription counts.
    answer_notify(
        &mut w,
        &mut wire,
        &notify_for(&other, 2, "active", &pidf_with_note(&ours)),
        at,
    );
    assert_eq!(w.tally.notifies.load(Ordering::Relaxed), 2);
    // The server ends a subscription: it is expected no more.
    answer_notify(
        &mut w,
        &mut wire,
        &notify_for(&other, 3, "terminated;reason=timeout", b""),
        at,
    );
    assert_eq!(w.tally.watchers[0].load(Ordering::Relaxed), 1);
    assert!(wire.take().is_empty());
}
