//! Digest authentication and UDP retransmission against a registrar stub written here, on a
//! tokio UDP socket with `confab_sip`'s builder and digest module: it challenges REGISTER
//! with 401 (SHA-256 and MD5 offered), can say `stale=true` once, can drop requests, and
//! challenges MESSAGE and INVITE with 407. Every answer is checked with
//! `confab_sip::digest::verify` against the HA1 of the stub's password.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{bind, fast, WAIT};
use confab_sip::auth::{format_challenge, ChallengeParams, Credentials};
use confab_sip::builder::ResponseBuilder;
use confab_sip::digest::{self, Algorithm, Verification};
use confab_sip::Message;
use confab_ua::{Secret, Transport, UaConfig, UaError, UserAgent};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

const REALM: &str = "example.com";
const PASSWORD: &str = "correct horse";

/// How the stub behaves.
#[derive(Clone)]
struct Behaviour {
    algorithms: Vec<Algorithm>,
    /// Answer the first correct credentials with a new challenge marked stale.
    stale_once: bool,
    /// Drop this many requests before looking at any.
    drop_first: usize,
    /// Min-Expires: a shorter registration gets 423.
    min_expires: u32,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            stale_once: false,
            drop_first: 0,
            min_expires: 0,
        }
    }
}

/// One request the stub received (retransmissions counted, not listed).
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    branch: String,
    /// Copies received with this branch.
    copies: usize,
    cseq: u32,
    contact: Option<String>,
    /// Algorithm, nonce and nc of the credentials carried, if any.
    auth: Option<(String, String, Option<u32>)>,
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    nonces: HashSet<String>,
    next_nonce: u32,
}

struct Stub {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stub {
    async fn start(behaviour: Behaviour) -> Stub {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind stub");
        let addr = socket.local_addr().expect("stub address");
        let state = Arc::new(Mutex::new(State::default()));
        let task = tokio::spawn(serve(socket, behaviour, state.clone()));
        Stub { addr, state, task }
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().expect("stub state").seen.clone()
    }
}

async fn serve(socket: UdpSocket, mut b: Behaviour, state: Arc<Mutex<State>>) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let Ok(req) = Message::parse(Bytes::copy_from_slice(&buf[..n])) else {
            continue;
        };
        if !req.is_request() || req.method_str() == Some("ACK") {
            continue;
        }
        let reply = {
            let mut st = state.lock().expect("stub state");
            record(&mut st, &req);
            if b.drop_first > 0 {
                b.drop_first -= 1;
                continue;
            }
            answer(&mut st, &mut b, &req, from)
        };
        let _ = socket.send_to(&reply, from).await;
    }
}

fn record(st: &mut State, req: &Message) {
    let method = req.method_str().unwrap_or_default();
    let creds = if method == "REGISTER" {
        req.authorization().next()
    } else {
        req.proxy_authorization().next()
    };
    let branch = req
        .via()
        .ok()
        .and_then(|v| v.branch())
        .unwrap_or_default()
        .to_owned();
    if let Some(seen) = st.seen.iter_mut().find(|s| s.branch == branch) {
        seen.copies += 1;
        return;
    }
    let auth = creds.and_then(Result::ok).map(|c| {
        (
            c.algorithm().unwrap_or("MD5").to_owned(),
            c.nonce().unwrap_or_default().into_owned(),
            c.nc(),
        )
    });
    st.seen.push(Seen {
        method: method.to_owned(),
        branch,
        copies: 1,
        cseq: req.cseq().map(|c| c.seq).unwrap_or_default(),
        contact: req
            .header(confab_sip::HeaderName::Contact)
            .map(str::to_owned),
        auth,
    });
}

/// The stub's answer: a challenge, 423, or success (200 to REGISTER, 202 to MESSAGE, 486 to
/// INVITE so that no dialog is needed).
fn answer(st: &mut State, b: &mut Behaviour, req: &Message, from: SocketAddr) -> Bytes {
    let method = req.method_str().unwrap_or_default().to_owned();
    let register = method == "REGISTER";
    let (status, reason, header) = if register {
        (401, "Unauthorized", "WWW-Authenticate")
    } else {
        (407, "Proxy Authentication Required", "Proxy-Authenticate")
    };
    let creds = if register {
        req.authorization().next()
    } else {
        req.proxy_authorization().next()
    };
    let verdict = creds
        .and_then(Result::ok)
        .map(|c| check(st, &c, req, &method));
    let stale = match verdict {
        Some(true) if b.stale_once => {
            b.stale_once = false;
            true
        }
        Some(true) => return success(req, from, b),
        _ => false,
    };
    st.next_nonce += 1;
    let nonce = format!("nonce{}x{:08x}", st.next_nonce, rand_u32());
    st.nonces.insert(nonce.clone());
    let mut r = ResponseBuilder::new(req, status, reason).to_tag("stub");
    for alg in &b.algorithms {
        let value = format_challenge(&ChallengeParams {
            realm: REALM,
            nonce: &nonce,
            opaque: Some("op4que"),
            algorithm: *alg,
            qop_auth: true,
            stale,
        });
        r = r.header(header, value);
    }
    r.build()
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    t ^ 0x5bd1_e995
}

/// Verifies credentials the way a registrar does: our nonce, our realm, the Request-URI,
/// the opaque echoed, then the response against the stored HA1.
fn check(st: &State, c: &Credentials<'_>, req: &Message, method: &str) -> bool {
    let Some(alg) = Algorithm::from_param(c.algorithm()) else {
        return false;
    };
    let known = c.nonce().is_some_and(|n| st.nonces.contains(n.as_ref()));
    let uri_ok = c.uri().as_deref() == req.request_uri_str();
    let ok_params = c.realm().as_deref() == Some(REALM) && c.opaque().as_deref() == Some("op4que");
    let user = c.username().unwrap_or_default();
    let ha1 = digest::ha1(alg.base(), &user, REALM, PASSWORD);
    known && uri_ok && ok_params && digest::verify(c, method, &ha1) == Verification::Ok
}

fn success(req: &Message, from: SocketAddr, b: &Behaviour) -> Bytes {
    let base = ResponseBuilder::new(req, 200, "OK")
        .to_tag("stub")
        .received_from(from);
    match req.method_str() {
        Some("REGISTER") => {
            let asked = req.expires().ok().flatten().unwrap_or(3600);
            if asked > 0 && asked < b.min_expires {
                return ResponseBuilder::new(req, 423, "Interval Too Brief")
                    .to_tag("stub")
                    .header("Min-Expires", b.min_expires.to_string())
                    .build();
            }
            let granted = asked.min(900);
            let mut r = base.header("Expires", granted.to_string());
            let contact = req.header(confab_sip::HeaderName::Contact).unwrap_or("*");
            if granted > 0 && contact != "*" {
                r = r
                    .header("Contact", format!("{contact};expires={granted}"))
                    .header("Contact", "<sip:alice@192.0.2.9:5060>;expires=42");
            }
            r.build()
        }
        Some("MESSAGE") => ResponseBuilder::new(req, 202, "Accepted")
            .to_tag("stub")
            .build(),
        _ => ResponseBuilder::new(req, 486, "Busy Here")
            .to_tag("stub")
            .build(),
    }
}

/// Alice with T1 = 100 ms: quick to recover a dropped request, slow enough that a busy CI
/// machine does not resend one the stub is about to answer.
fn alice(stub: &Stub, secret: Secret) -> UaConfig {
    UaConfig {
        server: Some(stub.addr),
        secret: Some(secret),
        display_name: Some("Alice".into()),
        t1: Duration::from_millis(100),
        t2: Duration::from_millis(400),
        ..fast("sip:alice@example.com", Transport::Udp)
    }
}

fn password() -> Secret {
    Secret::Password(PASSWORD.into())
}

#[tokio::test]
async fn registers_with_sha256_after_one_stale_nonce() {
    let stub = Stub::start(Behaviour {
        stale_once: true,
        ..Behaviour::default()
    })
    .await;
    let ua = bind(alice(&stub, password())).await;
    let reg = ua.register(3600).await.expect("registered");
    assert_eq!(reg.status, 200);
    assert_eq!(reg.expires, 900, "the granted expiry of our own contact");
    assert_eq!(reg.contacts.len(), 2);
    assert!(reg.contacts.iter().any(|c| c == ua.contact_uri()));

    let seen = stub.seen();
    assert_eq!(seen.len(), 3, "{seen:#?}");
    assert!(seen[0].auth.is_none());
    let (alg1, nonce1, nc1) = seen[1].auth.clone().expect("answered the challenge");
    let (alg2, nonce2, nc2) = seen[2].auth.clone().expect("answered the stale challenge");
    assert_eq!(
        (alg1.as_str(), nc1),
        ("SHA-256", Some(1)),
        "strongest offered"
    );
    assert_eq!((alg2.as_str(), nc2), ("SHA-256", Some(1)));
    assert_ne!(nonce1, nonce2, "the stale nonce was replaced");
    // One Call-ID, rising CSeq, a new branch per request, our real address in Contact.
    assert!(seen[0].cseq < seen[1].cseq && seen[1].cseq < seen[2].cseq);
    assert_ne!(seen[1].branch, seen[2].branch);
    let contact = seen[0].contact.clone().expect("Contact");
    assert!(contact.contains(&ua.local_addr().to_string()), "{contact}");

    // Re-registering answers the cached challenge at once, with the next nonce count.
    let again = ua.register(600).await.expect("re-registered");
    assert_eq!(again.expires, 600);
    let seen = stub.seen();
    assert_eq!(seen.len(), 4);
    let (_, nonce3, nc3) = seen[3].auth.clone().expect("preemptive credentials");
    assert_eq!((nonce3, nc3), (nonce2, Some(2)));
    assert!(seen[3].cseq > seen[2].cseq);

    let gone = ua.unregister().await.expect("unregistered");
    assert_eq!(gone.expires, 0);
    let all = ua.unregister_all().await.expect("all removed");
    assert_eq!(all.status, 200);
    let last = stub.seen().pop().expect("seen");
    assert_eq!(last.contact.as_deref(), Some("*"));
}

#[tokio::test]
async fn md5_and_stored_ha1() {
    let stub = Stub::start(Behaviour {
        algorithms: vec![Algorithm::Md5],
        ..Behaviour::default()
    })
    .await;
    let ha1 = digest::ha1(Algorithm::Md5, "alice", REALM, PASSWORD);
    let ua = bind(alice(&stub, Secret::Ha1(vec![(Algorithm::Md5, ha1)]))).await;
    ua.register(300).await.expect("registered with HA1");
    let (alg, _, _) = stub.seen()[1].auth.clone().expect("credentials");
    assert_eq!(alg, "MD5");

    // An HA1 for another algorithm cannot answer a SHA-256-only challenge.
    let stub = Stub::start(Behaviour {
        algorithms: vec![Algorithm::Sha512_256],
        ..Behaviour::default()
    })
    .await;
    let ha1 = digest::ha1(Algorithm::Md5, "alice", REALM, PASSWORD);
    let ua = bind(alice(&stub, Secret::Ha1(vec![(Algorithm::Md5, ha1)]))).await;
    let err = ua.register(300).await.expect_err("cannot answer");
    assert!(
        matches!(err, UaError::AuthUnsupported { status: 401, .. }),
        "{err}"
    );
    // With the password, SHA-512-256 works.
    let ua = bind(alice(&stub, password())).await;
    ua.register(300).await.expect("registered with SHA-512-256");
}

#[tokio::test]
async fn wrong_password_is_rejected() {
    let stub = Stub::start(Behaviour::default()).await;
    let ua = bind(alice(&stub, Secret::Password("wrong".into()))).await;
    let err = ua.register(300).await.expect_err("rejected");
    assert!(
        matches!(err, UaError::AuthRejected { status: 401 }),
        "{err}"
    );
    assert_eq!(stub.seen().len(), 2, "one challenge answered, no more");
    // Without any secret the challenge cannot be answered at all.
    let ua = bind(UaConfig {
        secret: None,
        ..alice(&stub, password())
    })
    .await;
    let err = ua.register(300).await.expect_err("no secret");
    assert!(
        matches!(err, UaError::NoCredentials { status: 401 }),
        "{err}"
    );
}

#[tokio::test]
async fn lost_request_is_retransmitted() {
    let stub = Stub::start(Behaviour {
        drop_first: 2,
        ..Behaviour::default()
    })
    .await;
    let ua = bind(alice(&stub, password())).await;
    let reg = ua.register(300).await.expect("registered despite loss");
    assert_eq!(reg.status, 200);
    let seen = stub.seen();
    assert_eq!(
        seen.len(),
        2,
        "one request challenged, one accepted: {seen:#?}"
    );
    assert!(seen[0].copies >= 3, "two copies lost, a third answered");
    assert!(seen[0].auth.is_none() && seen[1].auth.is_some());
    assert!(ua.stats().retransmissions >= 2);
}

#[tokio::test]
async fn interval_too_brief_is_retried() {
    let stub = Stub::start(Behaviour {
        min_expires: 600,
        ..Behaviour::default()
    })
    .await;
    let ua = bind(alice(&stub, password())).await;
    let reg = ua.register(60).await.expect("registered");
    assert_eq!(reg.expires, 600);
}

#[tokio::test]
async fn message_and_invite_answer_407() {
    let stub = Stub::start(Behaviour::default()).await;
    let ua = bind(alice(&stub, password())).await;
    let status = ua
        .message("sip:bob@example.com", "text/plain", "hi")
        .await
        .expect("sent");
    assert_eq!(status, 202);
    let seen = stub.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].method, "MESSAGE");
    assert!(seen[1].auth.is_some(), "Proxy-Authorization on the retry");

    // The next MESSAGE carries credentials before being asked (nc 2).
    ua.message("sip:bob@example.com", "text/plain", "again")
        .await
        .expect("sent");
    let (_, _, nc) = stub.seen()[2].auth.clone().expect("preemptive");
    assert_eq!(nc, Some(2));

    // INVITE: answered with the cached challenge; the stub is busy.
    let mut call = ua.invite("sip:bob@example.com", None).await.expect("sent");
    let outcome = tokio::time::timeout(WAIT, call.wait_final())
        .await
        .expect("bounded")
        .expect("final");
    assert_eq!(outcome.status(), 486);
    let invites: Vec<_> = stub
        .seen()
        .into_iter()
        .filter(|s| s.method == "INVITE")
        .collect();
    assert!(invites.iter().all(|s| s.auth.is_some()), "{invites:#?}");
}

#[tokio::test]
async fn invite_challenge_then_busy() {
    let stub = Stub::start(Behaviour::default()).await;
    let ua: UserAgent = bind(alice(&stub, password())).await;
    let mut call = ua.invite("sip:bob@example.com", None).await.expect("sent");
    let outcome = call.wait_final().await.expect("final");
    assert_eq!(outcome.status(), 486);
    let invites: Vec<_> = stub
        .seen()
        .into_iter()
        .filter(|s| s.method == "INVITE")
        .collect();
    assert_eq!(invites.len(), 2, "{invites:#?}");
    assert!(invites[0].auth.is_none());
    assert!(invites[1].auth.is_some());
    assert_eq!(invites[1].cseq, invites[0].cseq + 1);
}
