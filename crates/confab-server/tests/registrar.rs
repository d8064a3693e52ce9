//! The registrar over UDP on loopback: digest with SHA-256 and MD5, the same answer for a
//! wrong password and an unknown user, replayed and expired nonces, re-registration,
//! expiry, `*` removal, Min-Expires, the contact cap, CSeq ordering, Path, the
//! password-guessing throttle, and registrations surviving a restart.

mod common;

use std::time::Duration;

use common::ua::*;
use confab_server::memory::MemoryStores;
use confab_sip::digest::Algorithm;
use confab_sip::HeaderName;

async fn eventually(mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_with_sha256_and_md5() {
    let d = Deployment::start(service_config()).await;
    let mut alice = d.ua("alice").await;
    let req = alice.register_request(&[("Contact", format!("<{}>", alice.contact()))]);
    alice.send(&req).await;
    let call_id = alice.call_id.clone();
    let challenge = alice.response(&call_id, "REGISTER", false).await;
    assert_eq!(challenge.status(), Some(401));
    let algs: Vec<String> = challenge
        .www_authenticate()
        .map(|c| {
            let c = c.expect("challenge parses");
            assert_eq!(c.realm().as_deref(), Some(DOMAIN));
            assert_eq!(c.qop_options().collect::<Vec<_>>(), ["auth"]);
            c.algorithm().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(algs, ["SHA-256", "MD5"], "SHA-256 preferred, MD5 offered");

    let ok = alice.register(3600).await;
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    assert_eq!(bindings(&ok), [(alice.contact(), Some(3600))]);

    let mut bob = d.ua("bob").await;
    let contact = format!("<{}>;q=0.5", bob.contact());
    let ok = bob
        .register_with(
            Algorithm::Md5,
            &[("Contact", contact), ("Expires", "600".into())],
        )
        .await;
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    assert_eq!(bindings(&ok), [(bob.contact(), Some(600))]);
    let q = ok.contacts().flatten().next().and_then(|c| c.q());
    assert_eq!(q, Some(500));
    assert_eq!(d.router.stats().registered, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let d = Deployment::start(service_config()).await;
    let mut wrong = Ua::new(d.addr, "alice", "not-the-password").await;
    let mut unknown = Ua::new(d.addr, "mallory", "whatever").await;
    let mut answers = Vec::new();
    for ua in [&mut wrong, &mut unknown] {
        let contact = format!("<{}>", ua.contact());
        let first = ua.register_request(&[("Contact", contact.clone())]);
        ua.send(&first).await;
        let call_id = ua.call_id.clone();
        let challenge = ua.response(&call_id, "REGISTER", false).await;
        let auth = ua.credentials(&challenge, Algorithm::Sha256, "REGISTER", "sip:example.com");
        let second = ua.register_request(&[("Contact", contact), ("Authorization", auth)]);
        ua.send(&second).await;
        let resp = ua.response(&call_id, "REGISTER", false).await;
        let challenges: Vec<(Option<String>, bool, Option<String>)> = resp
            .www_authenticate()
            .flatten()
            .map(|c| {
                (
                    c.realm().map(|r| r.to_string()),
                    c.stale(),
                    c.algorithm().map(str::to_owned),
                )
            })
            .collect();
        answers.push((resp.status(), resp.reason().map(str::to_owned), challenges));
    }
    assert_eq!(answers[0].0, Some(401));
    assert_eq!(answers[0], answers[1], "no way to tell them apart");
    assert_eq!(d.router.stats().throttle.failures, 2);
    assert_eq!(d.router.stats().registered, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_nonce_is_refused() {
    let d = Deployment::start(service_config()).await;
    let mut alice = d.ua("alice").await;
    let contact = format!("<{}>", alice.contact());
    let first = alice.register_request(&[("Contact", contact.clone())]);
    alice.send(&first).await;
    let call_id = alice.call_id.clone();
    let challenge = alice.response(&call_id, "REGISTER", false).await;
    let auth = alice.credentials(&challenge, Algorithm::Sha256, "REGISTER", "sip:example.com");
    let ok = alice.register_request(&[
        ("Contact", contact.clone()),
        ("Authorization", auth.clone()),
    ]);
    alice.send(&ok).await;
    assert_eq!(
        alice.response(&call_id, "REGISTER", false).await.status(),
        Some(200)
    );
    // The same credentials (same nonce, same nc) in a new request: a replay.
    let replay = alice.register_request(&[("Contact", contact), ("Authorization", auth)]);
    alice.send(&replay).await;
    let resp = alice.response(&call_id, "REGISTER", false).await;
    assert_eq!(resp.status(), Some(401), "{resp:?}");
    assert!(resp.www_authenticate().flatten().all(|c| !c.stale()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_nonce_gets_stale_true_and_the_retry_succeeds() {
    let mut service = service_config();
    service.nonce_lifetime = Duration::from_secs(1);
    let d = Deployment::start(service).await;
    let mut alice = d.ua("alice").await;
    let contact = format!("<{}>", alice.contact());
    let first = alice.register_request(&[("Contact", contact.clone())]);
    alice.send(&first).await;
    let call_id = alice.call_id.clone();
    let challenge = alice.response(&call_id, "REGISTER", false).await;
    // Older than the lifetime by a whole second (nonces are dated in seconds).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let auth = alice.credentials(&challenge, Algorithm::Sha256, "REGISTER", "sip:example.com");
    let late = alice.register_request(&[("Contact", contact.clone()), ("Authorization", auth)]);
    alice.send(&late).await;
    let stale = alice.response(&call_id, "REGISTER", false).await;
    assert_eq!(stale.status(), Some(401));
    assert!(
        stale.www_authenticate().flatten().all(|c| c.stale()),
        "{stale:?}"
    );
    let auth = alice.credentials(&stale, Algorithm::Sha256, "REGISTER", "sip:example.com");
    let retry = alice.register_request(&[("Contact", contact), ("Authorization", auth)]);
    alice.send(&retry).await;
    assert_eq!(
        alice.response(&call_id, "REGISTER", false).await.status(),
        Some(200)
    );
    assert_eq!(
        d.router.stats().throttle.failures,
        0,
        "a stale nonce is no failure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reregister_expiry_and_unregister_with_a_wildcard() {
    let d = Deployment::start(service_config()).await;
    let mut alice = d.ua("alice").await;
    assert_eq!(
        bindings(&alice.register(60).await),
        [(alice.contact(), Some(60))]
    );
    // A refresh replaces, it does not add.
    assert_eq!(
        bindings(&alice.register(120).await),
        [(alice.contact(), Some(120))]
    );
    // A second device of the same user, and a short-lived third.
    let mut phone = d.ua("alice").await;
    let two = phone.register(90).await;
    assert_eq!(bindings(&two).len(), 2, "{two:?}");
    let mut brief = d.ua("alice").await;
    assert_eq!(bindings(&brief.register(2).await).len(), 3);
    // The brief one expires on its own.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let query = alice.register_with(Algorithm::Sha256, &[]).await;
    assert_eq!(query.status(), Some(200));
    let left: Vec<String> = bindings(&query).into_iter().map(|(c, _)| c).collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!left.contains(&brief.contact()));
    // Contact: * with Expires: 0 removes everything …
    let gone = alice
        .register_with(
            Algorithm::Sha256,
            &[("Contact", "*".into()), ("Expires", "0".into())],
        )
        .await;
    assert_eq!(gone.status(), Some(200), "{gone:?}");
    assert!(bindings(&gone).is_empty());
    assert_eq!(d.router.stats().registered, 0);
    // … and is refused with another Expires.
    let bad = alice
        .register_with(
            Algorithm::Sha256,
            &[("Contact", "*".into()), ("Expires", "60".into())],
        )
        .await;
    assert_eq!(bad.status(), Some(400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_brief_a_registration_gets_423_with_min_expires() {
    let mut service = service_config();
    service.min_expires = 60;
    service.max_expires = 600;
    let d = Deployment::start(service).await;
    let mut alice = d.ua("alice").await;
    let brief = alice.register(30).await;
    assert_eq!(brief.status(), Some(423));
    assert_eq!(
        header(&brief, HeaderName::MinExpires).as_deref(),
        Some("60")
    );
    // Too long is shortened to the maximum.
    assert_eq!(
        bindings(&alice.register(7200).await),
        [(alice.contact(), Some(600))]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_eight_contacts_the_oldest_dropped() {
    let d = Deployment::start(service_config()).await;
    let mut alice = d.ua("alice").await;
    let contacts: Vec<String> = (1..=8)
        .map(|i| format!("<sip:alice@192.0.2.{i}:5060>"))
        .collect();
    let ok = alice
        .register_with(Algorithm::Sha256, &[("Contact", contacts.join(", "))])
        .await;
    assert_eq!(bindings(&ok).len(), 8);
    let ok = alice
        .register_with(
            Algorithm::Sha256,
            &[("Contact", "<sip:alice@192.0.2.9:5060>".into())],
        )
        .await;
    let now: Vec<String> = bindings(&ok).into_iter().map(|(c, _)| c).collect();
    assert_eq!(now.len(), 8, "{now:?}");
    assert!(now.contains(&"sip:alice@192.0.2.9:5060".to_owned()));
    assert!(
        !now.contains(&"sip:alice@192.0.2.1:5060".to_owned()),
        "the oldest went"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_order_cseq_changes_nothing() {
    let d = Deployment::start(service_config()).await;
    let mut alice = d.ua("alice").await;
    assert_eq!(alice.register(60).await.status(), Some(200));
    let done = alice.cseq;
    // A fresh challenge, answered in a REGISTER whose CSeq is the one already applied.
    let probe = alice.register_request(&[]);
    alice.send(&probe).await;
    let call_id = alice.call_id.clone();
    let challenge = alice.response(&call_id, "REGISTER", false).await;
    let auth = alice.credentials(&challenge, Algorithm::Sha256, "REGISTER", "sip:example.com");
    alice.cseq = done - 1;
    let old = alice.register_request(&[
        ("Contact", format!("<{}>", alice.contact())),
        ("Expires", "0".into()),
        ("Authorization", auth),
    ]);
    alice.send(&old).await;
    let resp = alice.response(&call_id, "REGISTER", false).await;
    assert_eq!(resp.status(), Some(500), "{resp:?}");
    assert_eq!(d.router.stats().registered, 1, "the binding is still there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_is_stored_and_echoed_when_supported() {
    let d = Deployment::start(service_config()).await;
    let mut alice = d.ua("alice").await;
    let contact = format!("<{}>", alice.contact());
    let path = "<sip:edge.example.com;lr>".to_owned();
    let ok = alice
        .register_with(
            Algorithm::Sha256,
            &[
                ("Contact", contact.clone()),
                ("Path", path.clone()),
                ("Supported", "path".into()),
            ],
        )
        .await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(header(&ok, HeaderName::Path), Some(path.clone()));
    let ok = alice
        .register_with(Algorithm::Sha256, &[("Contact", contact), ("Path", path)])
        .await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(
        header(&ok, HeaderName::Path),
        None,
        "not echoed without Supported: path"
    );
    let stored = d
        .router
        .location()
        .lookup("alice@example.com", std::time::Instant::now());
    assert_eq!(stored[0].path(), ["<sip:edge.example.com;lr>"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_is_throttled_while_others_register() {
    let mut service = service_config();
    service.throttle.user_failures = 3;
    service.throttle.base_backoff = Duration::from_secs(2);
    let d = Deployment::start(service).await;
    let mut guesser = Ua::new(d.addr, "alice", "guess").await;
    for _ in 0..3 {
        assert_eq!(guesser.register(60).await.status(), Some(401));
    }
    // Now even the right password is answered without checking.
    let mut alice = d.ua("alice").await;
    assert_eq!(alice.register(60).await.status(), Some(401), "throttled");
    // Another user is unaffected.
    let mut bob = d.ua("bob").await;
    assert_eq!(bob.register(60).await.status(), Some(200));
    let stats = d.router.stats().throttle;
    assert_eq!(stats.failures, 3, "{stats:?}");
    assert!(stats.throttled >= 1 && stats.backoffs >= 1, "{stats:?}");
    // After the back-off, the right password works again.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(alice.register(60).await.status(), Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_survive_a_restart() {
    let stores = MemoryStores::default();
    let d = Deployment::start_with(service_config(), stores.clone()).await;
    let mut alice = d.ua("alice").await;
    assert_eq!(alice.register(300).await.status(), Some(200));
    let registrations = stores.registrations.clone();
    eventually(|| !registrations.get("alice@example.com").is_empty()).await;
    d.server.stop().await;

    let again = Deployment::start_with(service_config(), stores).await;
    assert_eq!(again.router.stats().registered, 1);
    let mut alice = Ua::new(again.addr, "alice", "alice-pw").await;
    let query = alice.register_with(Algorithm::Sha256, &[]).await;
    assert_eq!(query.status(), Some(200));
    assert_eq!(bindings(&query).len(), 1, "{query:?}");
}
