//! Every RFC 4475 torture message sent over UDP to a running `confab serve` (the binary, with
//! its registrar, proxy and store): each invalid request gets the status the corpus README
//! expects (400, 416, 420, 505), each response and unreadable message is dropped, each valid
//! request gets an answer, and a valid OPTIONS right after each one is still answered.
//!
//! The messages' Via headers name hosts that the test does not own, so the server runs with
//! `force_rport` and answers at the test socket's address. The server-level test of the same
//! corpus, with the expectations of each method in detail, is
//! `crates/confab-server/tests/torture.rs`; the parser's is `crates/confab-sip/tests/torture.rs`.
#![cfg(unix)]

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use bytes::Bytes;
use common::{assert_options_ok, options, Running};
use confab_sip::Message;

/// What the corpus README expects: `Some(code)` that status, `None` no response, `Answer` a
/// response of any status (a valid request, processed).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Status(u16),
    Drop,
    Answer,
    /// Either a 400 or nothing (`clerr`: a Content-Length larger than the datagram).
    StatusOrDrop(u16),
}

fn expected(name: &str) -> Expect {
    match name {
        "badinv01" | "ncl" | "scalar02" | "quotbal" | "ltgtruri" | "lwsruri" | "lwsstart"
        | "trws" | "escruri" | "regbadct" | "badaspec" | "baddn" | "mismatch01" | "mismatch02"
        | "insuf" | "multi01" | "mcl01" => Expect::Status(400),
        "clerr" => Expect::StatusOrDrop(400),
        "badvers" => Expect::Status(505),
        "unkscm" => Expect::Status(416),
        "bext01" => Expect::Status(420),
        // Responses (valid or not) are not for a server to answer.
        "unreason" | "noreason" | "scalarlg" | "bigcode" | "bcast" => Expect::Drop,
        _ => Expect::Answer,
    }
}

/// `message` with its first RFC 3261 branch made unique by `n` (headers only: the body's
/// length is unchanged).
fn unique_branch(message: &[u8], n: usize) -> Vec<u8> {
    const COOKIE: &[u8] = b"branch=z9hG4bK";
    match message.windows(COOKIE.len()).position(|w| w == COOKIE) {
        Some(at) => {
            let mut out = message[..at + COOKIE.len()].to_vec();
            out.extend_from_slice(format!("t{n}x").as_bytes());
            out.extend_from_slice(&message[at + COOKIE.len()..]);
            out
        }
        None => message.to_vec(),
    }
}

/// The Call-ID of a raw message (long or compact form), if a line carries one.
fn call_id_of(bytes: &[u8]) -> Option<String> {
    String::from_utf8_lossy(bytes).lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("call-id") || name.eq_ignore_ascii_case("i"))
            .then(|| value.trim().to_owned())
    })
}

#[test]
fn every_rfc4475_message_gets_the_handling_its_table_expects() {
    let server = Running::start(&["--listen", "udp://127.0.0.1:0", "--force-rport"], 1);
    let addr = server.addr("udp");
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../confab-sip/tests/data/rfc4475"
    );
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("the corpus")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "dat"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 49, "RFC 4475 has 49 messages");
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let local = socket.local_addr().expect("local");
    let mut buf = vec![0u8; 65_535];
    let mut failures = Vec::new();
    for (i, path) in names.iter().enumerate() {
        let name = path
            .file_stem()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        // Several messages of the corpus share a branch and sent-by: sent one after the other,
        // the later would be the earlier's retransmission. Each gets a branch of its own.
        let bytes = unique_branch(&std::fs::read(path).expect("message"), i);
        socket.send_to(&bytes, addr).expect("send");
        let want = expected(&name);
        // A response, if one comes: a dropped message is waited for a little, an answered
        // one as long as the server needs.
        let wait = match want {
            Expect::Drop | Expect::StatusOrDrop(_) => Duration::from_millis(300),
            _ => Duration::from_secs(10),
        };
        // Only this message's answer counts: the final responses to earlier INVITEs are
        // retransmitted (Timer G) since the test never ACKs them.
        let call_id = call_id_of(&bytes);
        let deadline = std::time::Instant::now() + wait;
        let mut got: Option<u16> = None;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            socket
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("timeout");
            let Ok((n, _)) = socket.recv_from(&mut buf) else {
                break;
            };
            let Ok(m) = Message::parse(Bytes::copy_from_slice(&buf[..n])) else {
                continue;
            };
            if call_id.is_none() || m.call_id().ok() == call_id.as_deref() {
                got = m.status();
                break;
            }
        }
        let ok = match (want, got) {
            (Expect::Status(c), Some(s)) => c == s,
            (Expect::StatusOrDrop(c), Some(s)) => c == s,
            (Expect::StatusOrDrop(_) | Expect::Drop, None) => true,
            (Expect::Answer, Some(_)) => true,
            _ => false,
        };
        if !ok {
            failures.push(format!("{name}: expected {want:?}, got {got:?}"));
        }
        // The server still serves.
        let call_id = format!("after-{name}-{i}");
        socket
            .send_to(&options("UDP", local, &call_id), addr)
            .expect("send");
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let answer = loop {
            let (n, _) = socket
                .recv_from(&mut buf)
                .unwrap_or_else(|e| panic!("no answer to the OPTIONS after {name}: {e}"));
            let m = Message::parse(Bytes::copy_from_slice(&buf[..n])).expect("parses");
            if m.call_id() == Ok(call_id.as_str()) {
                break m;
            }
        };
        assert_options_ok(&answer, &call_id);
    }
    assert!(
        failures.is_empty(),
        "{}\nserver:\n{}",
        failures.join("\n"),
        server.stderr()
    );
}
