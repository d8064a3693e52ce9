//! The UA core's own duties around a 2xx to INVITE (RFC 3261 §13.2.2.4, §13.3.1.4), seen by a
//! raw UDP peer written here that plays the other side by hand: the callee retransmits its
//! 2xx until the ACK arrives and hangs up when none does; the caller acknowledges every
//! retransmitted 2xx with the same ACK and ends the dialog of a second fork at once.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{bind, fast, WAIT};
use confab_sip::builder::{RequestBuilder, ResponseBuilder};
use confab_sip::Message;
use confab_ua::{CallState, EndReason, InviteAnswer, Transport, UaConfig};
use tokio::net::UdpSocket;

/// A peer that sends and receives whole messages by hand.
struct Raw {
    socket: UdpSocket,
    addr: SocketAddr,
}

impl Raw {
    async fn new() -> Raw {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind raw peer");
        let addr = socket.local_addr().expect("address");
        Raw { socket, addr }
    }

    async fn send(&self, bytes: Bytes, to: SocketAddr) {
        self.socket.send_to(&bytes, to).await.expect("send");
    }

    /// The next message, or `None` after `within`.
    async fn recv(&self, within: Duration) -> Option<(Message, SocketAddr)> {
        let mut buf = vec![0u8; 65_535];
        let (n, from) = tokio::time::timeout(within, self.socket.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some((
            Message::parse(Bytes::copy_from_slice(&buf[..n])).ok()?,
            from,
        ))
    }

    /// Receives until a message satisfies `want`, failing after `within`.
    async fn expect(&self, within: Duration, mut want: impl FnMut(&Message) -> bool) -> Message {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await {
                Some((m, _)) if want(&m) => return m,
                Some(_) => continue,
                None => panic!("the expected message did not arrive within {within:?}"),
            }
        }
    }

    fn invite(&self, to: &str) -> Bytes {
        RequestBuilder::new("INVITE", to)
            .via("UDP", &self.addr.to_string(), "z9hG4bKrawinvite1")
            .header("Max-Forwards", "70")
            .header("From", "<sip:raw@example.com>;tag=rawtag")
            .header("To", format!("<{to}>"))
            .header("Call-ID", "raw-call-1")
            .header("CSeq", "1 INVITE")
            .header("Contact", format!("<sip:raw@{}>", self.addr))
            .build()
    }
}

fn status(m: &Message) -> u16 {
    m.status().unwrap_or_default()
}

#[tokio::test]
async fn callee_resends_2xx_until_ack() {
    let bob = bind(UaConfig {
        invite: InviteAnswer::Accept {
            after: Duration::ZERO,
            sdp: None,
        },
        ..fast("sip:bob@example.com", Transport::Udp)
    })
    .await;
    let raw = Raw::new().await;
    raw.send(raw.invite(bob.contact_uri()), bob.local_addr())
        .await;
    let ok = raw.expect(WAIT, |m| status(m) == 200).await;
    // Not acknowledged yet: the same 200 comes again (T1 = 25 ms, doubling).
    let again = raw
        .expect(Duration::from_millis(500), |m| status(m) == 200)
        .await;
    assert_eq!(again.as_bytes(), ok.as_bytes());
    let mut call = bob
        .next_incoming_of("INVITE", WAIT)
        .await
        .expect("INVITE delivered")
        .call()
        .expect("call");
    assert_eq!(call.state(), CallState::Answered);

    let to = ok
        .header(confab_sip::HeaderName::To)
        .expect("To")
        .to_owned();
    let ack = RequestBuilder::new("ACK", bob.contact_uri())
        .via("UDP", &raw.addr.to_string(), "z9hG4bKrawack1")
        .header("Max-Forwards", "70")
        .header("From", "<sip:raw@example.com>;tag=rawtag")
        .header("To", to)
        .header("Call-ID", "raw-call-1")
        .header("CSeq", "1 ACK")
        .build();
    raw.send(ack, bob.local_addr()).await;
    call.wait_confirmed(WAIT)
        .await
        .expect("confirmed by the ACK");
    // Drain what was in flight, then nothing more comes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    while raw.recv(Duration::from_millis(1)).await.is_some() {}
    assert!(raw.recv(Duration::from_millis(400)).await.is_none());
}

#[tokio::test]
async fn callee_without_ack_hangs_up() {
    let bob = bind(UaConfig {
        invite: InviteAnswer::Accept {
            after: Duration::ZERO,
            sdp: None,
        },
        ..fast("sip:bob@example.com", Transport::Udp)
    })
    .await;
    let raw = Raw::new().await;
    raw.send(raw.invite(bob.contact_uri()), bob.local_addr())
        .await;
    let mut call = bob
        .next_incoming_of("INVITE", WAIT)
        .await
        .expect("INVITE delivered")
        .call()
        .expect("call");
    let mut oks = 0;
    let bye = raw
        .expect(WAIT, |m| {
            if status(m) == 200 {
                oks += 1;
            }
            m.method_str() == Some("BYE")
        })
        .await;
    // 64·T1 = 1.6 s of retransmissions at 25, 50, 100, 200, 200 … ms.
    assert!(oks >= 5, "{oks} copies of the 200");
    assert_eq!(
        bye.request_uri_str(),
        Some(format!("sip:raw@{}", raw.addr).as_str())
    );
    assert_eq!(bye.to().expect("To").tag(), Some("rawtag"));
    assert_eq!(
        call.wait_ended(WAIT).await.expect("ended"),
        EndReason::NoAck
    );
    let ok = ResponseBuilder::new(&bye, 200, "OK").build();
    raw.send(ok, bob.local_addr()).await;
}

#[tokio::test]
async fn caller_acks_every_2xx_and_ends_a_second_fork() {
    let alice = bind(fast("sip:alice@example.com", Transport::Udp)).await;
    let raw = Raw::new().await;
    let target = format!("sip:raw@{}", raw.addr);
    let mut call = alice.invite(&target, None).await.expect("INVITE sent");
    let invite = raw.expect(WAIT, |m| m.method_str() == Some("INVITE")).await;
    let answer = |tag: &str| {
        ResponseBuilder::new(&invite, 200, "OK")
            .to_tag(tag)
            .header("Contact", format!("<sip:raw@{}>", raw.addr))
            .build()
    };
    raw.send(answer("fork-a"), alice.local_addr()).await;
    let is_ack = |m: &Message| m.method_str() == Some("ACK");
    let ack1 = raw.expect(WAIT, is_ack).await;
    assert_eq!(ack1.to().expect("To").tag(), Some("fork-a"));
    assert_eq!(ack1.cseq().expect("CSeq").seq, 1);
    assert!(call.wait_final().await.expect("final").is_answered());
    assert_eq!(call.state(), CallState::Confirmed);

    // A retransmitted 2xx gets the very same ACK again.
    raw.send(answer("fork-a"), alice.local_addr()).await;
    let ack2 = raw.expect(WAIT, is_ack).await;
    assert_eq!(ack2.as_bytes(), ack1.as_bytes());

    // A 2xx from another fork is acknowledged and ended.
    raw.send(answer("fork-b"), alice.local_addr()).await;
    let ack_b = raw.expect(WAIT, is_ack).await;
    assert_eq!(ack_b.to().expect("To").tag(), Some("fork-b"));
    let bye_b = raw.expect(WAIT, |m| m.method_str() == Some("BYE")).await;
    assert_eq!(bye_b.to().expect("To").tag(), Some("fork-b"));
    raw.send(
        ResponseBuilder::new(&bye_b, 200, "OK").build(),
        alice.local_addr(),
    )
    .await;
    // The first fork's call is untouched.
    assert_eq!(call.state(), CallState::Confirmed);

    // Hanging up reaches the first fork.
    let hangup = async { call.bye().await };
    let answer_bye = async {
        let bye = raw.expect(WAIT, |m| m.method_str() == Some("BYE")).await;
        assert_eq!(bye.to().expect("To").tag(), Some("fork-a"));
        raw.send(
            ResponseBuilder::new(&bye, 200, "OK").build(),
            alice.local_addr(),
        )
        .await;
    };
    let (bye, ()) = tokio::join!(hangup, answer_bye);
    assert_eq!(bye.expect("BYE answered").status(), Some(200));
}
