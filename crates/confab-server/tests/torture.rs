//! Every RFC 4475 torture message, sent over UDP to a running server: each request gets the
//! status the corpus README expects (or, where it expects the message to be processed, the
//! status this server gives its method today), responses and unparsable messages are
//! dropped, and a valid OPTIONS right after each one is still answered.
//!
//! The messages' Via headers name hosts on port 5060 that the test does not own, so the
//! server runs with `force_rport` and answers at the test socket's port. The corpus runs
//! twice: answered statelessly, and through the transaction driver.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use confab_server::{Router, ServiceConfig, Stores, TimerConfig, TransactionDriver, Transport};
use confab_sip::Message;

/// What the server answers each message of `crates/confab-sip/tests/data/rfc4475/`.
/// Validation verdicts (400, 416, 420, 505) come from the corpus README; for messages it
/// calls valid, the status is the server's for the method today: OPTIONS 200 (even with
/// Max-Forwards 0, `zeromf`), REGISTER, INVITE and MESSAGE 405 until the registrar, proxy
/// and messaging exist, unknown methods 501. `None`: no response (invalid responses,
/// responses that match no transaction, messages whose start line cannot be read).
const EXPECTED: &[(&str, Option<u16>)] = &[
    ("wsinv", Some(405)),      // INVITE
    ("intmeth", Some(501)),    // extension method
    ("esc01", Some(405)),      // INVITE
    ("escnull", Some(405)),    // REGISTER
    ("esc02", Some(501)),      // RE%47IST%45R is not REGISTER
    ("lwsdisp", Some(200)),    // OPTIONS
    ("longreq", Some(405)),    // INVITE
    ("dblreq", Some(405)),     // REGISTER; the INVITE after Content-Length is ignored
    ("semiuri", Some(200)),    // OPTIONS
    ("transports", Some(200)), // OPTIONS
    ("mpart01", Some(405)),    // MESSAGE
    ("unreason", None),        // a response
    ("noreason", None),        // a response
    ("badinv01", Some(400)),
    ("clerr", Some(400)),
    ("ncl", Some(400)),
    ("scalar02", Some(400)),
    ("scalarlg", None), // invalid response: dropped
    ("quotbal", Some(400)),
    ("ltgtruri", Some(400)),
    ("lwsruri", Some(400)),
    ("lwsstart", Some(400)),
    ("trws", Some(400)),
    ("escruri", Some(400)),
    ("baddate", Some(405)), // INVITE; the bad Date is ignored
    ("regbadct", Some(400)),
    ("badaspec", Some(400)),
    ("baddn", Some(400)),
    ("badvers", Some(505)),
    ("mismatch01", Some(400)),
    ("mismatch02", Some(400)),
    ("bigcode", None),        // invalid response: dropped
    ("badbranch", Some(200)), // OPTIONS from an RFC 2543 peer
    ("insuf", Some(400)),
    ("unkscm", Some(416)),
    ("novelsc", Some(416)),
    ("unksm2", Some(405)), // REGISTER
    ("bext01", Some(420)),
    ("invut", Some(405)),    // INVITE (415 once a UAS consumes bodies)
    ("regaut01", Some(405)), // REGISTER (401 once the registrar challenges)
    ("multi01", Some(400)),
    ("mcl01", Some(400)),
    ("bcast", None), // a response: never forwarded, least of all to a broadcast address
    ("zeromf", Some(200)), // OPTIONS with Max-Forwards 0, addressed to the server
    ("cparam01", Some(405)), // REGISTER
    ("cparam02", Some(405)), // REGISTER
    ("regescrt", Some(405)), // REGISTER
    ("sdp01", Some(405)), // INVITE (406 once a UAS answers with SDP)
    ("inv2543", Some(405)), // INVITE
];

fn corpus() -> BTreeMap<String, Bytes> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../confab-sip/tests/data/rfc4475"
    );
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("the RFC 4475 corpus") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "dat") {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("name")
                .to_owned();
            files.insert(name, Bytes::from(std::fs::read(&path).expect("read")));
        }
    }
    files
}

/// The status of a response, read from its status line only: a 400 to a torture message
/// echoes its broken headers, so the whole response need not parse.
fn status(bytes: &[u8]) -> Option<u16> {
    let line = bytes.split(|b| *b == b'\n').next()?;
    let text = std::str::from_utf8(line).ok()?;
    text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rfc4475_message_gets_its_expected_handling_over_udp() {
    let mut config = config(&[Transport::Udp], None);
    config.force_rport = true;
    check_corpus(TestServer::start(config).await).await;
}

/// The same through the transaction driver: a message the layer cannot key is answered
/// statelessly, every other one in a transaction of its own. T1 is long enough that no
/// INVITE response is retransmitted while the test runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rfc4475_message_gets_its_expected_handling_through_the_transaction_driver() {
    let mut config = config(&[Transport::Udp], None);
    config.force_rport = true;
    let minute = Duration::from_secs(60);
    config.timers = TimerConfig::new(minute, minute, minute).expect("valid timers");
    let driver = Arc::new(TransactionDriver::new(&config));
    check_corpus(TestServer::start_with(config, Some(Arc::clone(&driver) as _)).await).await;
    // Three pairs of corpus messages share branch, sent-by and method (escnull and
    // regescrt, cparam01 and cparam02, unkscm and novelsc): to RFC 3261 §17.2.3 the second
    // of each is a retransmission of the first, and gets the first one's response (of the
    // same status).
    let stats = driver.stats();
    assert_eq!(stats.absorbed, 3, "{stats:?}");
    assert_eq!(stats.timer_sends, 0, "{stats:?}");
}

/// What changes with the router installed, serving `example.com` with no users: REGISTER
/// for it is challenged (401); a request to a user of it from a user of it must
/// authenticate (407), from elsewhere finds no such user (404); requests to other domains
/// are refused (403, no open relay); an OPTIONS for a user with Max-Forwards 0 is not
/// forwarded (483, as the corpus README says a proxy answers). Validation verdicts do not
/// change: the handler checks before the router sees anything.
const ROUTED: &[(&str, Option<u16>)] = &[
    ("wsinv", Some(403)), // in-dialog INVITE whose Route is not ours
    // OPTIONS to a user with no registered device (lwsdisp, semiuri, transports, badbranch,
    // zeromf with Max-Forwards 0) is a ping the server answers itself: 200, as without the
    // router.
    ("esc01", Some(403)),    // INVITE to a user of example.net
    ("escnull", Some(401)),  // REGISTER
    ("longreq", Some(404)),  // INVITE to user@example.com from elsewhere
    ("dblreq", Some(401)),   // REGISTER
    ("mpart01", Some(407)),  // MESSAGE from fluffy@example.com routed onwards
    ("baddate", Some(404)),  // INVITE to user@example.com from elsewhere
    ("unksm2", Some(404)),   // REGISTER whose To is no SIP URI: no such AOR
    ("invut", Some(404)),    // INVITE
    ("regaut01", Some(401)), // REGISTER with an unknown scheme: challenged
    ("cparam01", Some(401)), // REGISTER
    ("cparam02", Some(401)), // REGISTER
    ("regescrt", Some(401)), // REGISTER
    ("sdp01", Some(404)),    // INVITE
    ("inv2543", Some(404)),  // INVITE
];

/// Every RFC 4475 message again, with the router (registrar, proxy, messaging) installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rfc4475_message_gets_its_expected_handling_through_the_router() {
    let mut config = config(&[Transport::Udp], None);
    config.force_rport = true;
    let minute = Duration::from_secs(60);
    config.timers = TimerConfig::new(minute, minute, minute).expect("valid timers");
    let (stores, _memory) = Stores::memory();
    let router = Router::new(&config, ServiceConfig::new(["example.com"]), stores)
        .expect("valid service config");
    check_corpus_with(TestServer::start_router(config, router).await, ROUTED).await;
}

async fn check_corpus(server: TestServer) {
    check_corpus_with(server, &[]).await
}

async fn check_corpus_with(server: TestServer, overrides: &[(&str, Option<u16>)]) {
    let corpus = corpus();
    let mut expected: BTreeMap<&str, Option<u16>> = EXPECTED.iter().copied().collect();
    for (name, status) in overrides {
        assert!(
            expected.insert(name, *status).is_some(),
            "{name} is in the corpus"
        );
    }
    assert_eq!(corpus.len(), 49, "the corpus has RFC 4475's 49 messages");
    for name in corpus.keys() {
        assert!(
            expected.contains_key(name.as_str()),
            "{name} has no expectation"
        );
    }

    let addr = server.addr(Transport::Udp);
    let socket = udp_client().await;
    let local = socket.local_addr().expect("local");

    let mut failures = Vec::new();
    for (i, (name, want)) in expected.iter().enumerate() {
        let data = &corpus[*name];
        socket.send_to(data, addr).await.expect("send");
        let probe = format!("probe-{i}");
        socket
            .send_to(&options(Transport::Udp, local, &probe), addr)
            .await
            .expect("send");
        // Collect until the probe is answered and, if one is due, the message's response.
        // The two may be handled by different receive tasks, so either can come first.
        let mut got = Vec::new();
        let mut probed = false;
        for _ in 0..4 {
            if probed && got.len() >= usize::from(want.is_some()) {
                break;
            }
            let Some(bytes) = try_recv_datagram(&socket, WAIT).await else {
                break;
            };
            match Message::parse(bytes.clone()) {
                Ok(m) if m.call_id() == Ok(probe.as_str()) => {
                    assert_options_ok(&m, &probe);
                    probed = true;
                }
                _ => got.push(status(&bytes)),
            }
        }
        if want.is_none() {
            // A response that should not exist would come about as fast as the probe's.
            if let Some(extra) = try_recv_datagram(&socket, Duration::from_millis(50)).await {
                got.push(status(&extra));
            }
        }
        if !probed {
            failures.push(format!("{name}: the OPTIONS after it was not answered"));
        }
        let want: Vec<Option<u16>> = want.iter().map(|s| Some(*s)).collect();
        if got != want {
            failures.push(format!("{name}: want {want:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    server.stop().await;
}
