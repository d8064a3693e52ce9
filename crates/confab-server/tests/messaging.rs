//! Page-mode instant messaging (RFC 3428) through the server: a MESSAGE to a registered
//! user is proxied to the user's socket and its 200 relayed; a MESSAGE to an offline user
//! is accepted (202), stored, delivered after the user's next REGISTER, deleted only after
//! the client's 2xx, redelivered when the client refuses it, and refused over the cap.

mod common;

use std::time::Duration;

use common::ua::*;
use common::WAIT;
use confab_sip::HeaderName;

async fn eventually(mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// alice sends `text` to `to`; returns the final response alice gets.
async fn send_message(alice: &mut Ua, to: &str, call_id: &str, text: &str) -> confab_sip::Message {
    let uri = format!("sip:{to}@{DOMAIN}");
    alice
        .send_authenticated(
            "MESSAGE",
            &uri,
            &format!("<{uri}>"),
            call_id,
            1,
            &[],
            Some(("text/plain", text)),
        )
        .await;
    alice.response(call_id, "MESSAGE", false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_a_registered_user_is_delivered_to_its_socket() {
    let d = Deployment::start(service_config()).await;
    let mut bob = d.ua("bob").await;
    assert_eq!(bob.register(300).await.status(), Some(200));
    let mut alice = d.ua("alice").await;
    let uri = format!("sip:bob@{DOMAIN}");
    alice
        .send_authenticated(
            "MESSAGE",
            &uri,
            &format!("<{uri}>"),
            "im-1",
            1,
            &[],
            Some(("text/plain", "hello bob")),
        )
        .await;
    let msg = bob.request_in("MESSAGE", WAIT).await.expect("bob gets it");
    assert_eq!(msg.body(), b"hello bob");
    assert_eq!(msg.request_uri_str(), Some(bob.contact().as_str()));
    assert_eq!(
        msg.from().expect("from").uri().as_str(),
        "sip:alice@example.com"
    );
    assert_eq!(msg.vias().count(), 2, "the proxy's Via on top of alice's");
    bob.answer(&msg, 200, "OK", "bob-im").await;
    let ok = alice.response("im-1", "MESSAGE", false).await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.vias().count(), 1, "the proxy's Via popped");
    assert!(d.stores.offline.waiting("bob@example.com").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_message_is_stored_delivered_on_register_and_deleted() {
    let d = Deployment::start(service_config()).await;
    let mut alice = d.ua("alice").await;
    let accepted = send_message(&mut alice, "carol", "im-2", "are you there?").await;
    assert_eq!(accepted.status(), Some(202), "{accepted:?}");
    let waiting = d.stores.offline.waiting("carol@example.com");
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].body, b"are you there?");

    let mut carol = d.ua("carol").await;
    assert_eq!(carol.register(300).await.status(), Some(200));
    let msg = carol.request_in("MESSAGE", WAIT).await.expect("delivered");
    assert_eq!(msg.body(), b"are you there?");
    assert_eq!(
        msg.from().expect("from").uri().as_str(),
        "sip:alice@example.com"
    );
    assert_eq!(msg.from().expect("from").tag(), Some("tag-alice"));
    assert_eq!(msg.request_uri_str(), Some(carol.contact().as_str()));
    assert!(msg.has(HeaderName::Date));
    // Not deleted before the client's 2xx …
    assert_eq!(d.stores.offline.waiting("carol@example.com").len(), 1);
    carol.answer(&msg, 200, "OK", "carol-im").await;
    // … and deleted after it.
    let offline = d.stores.offline.clone();
    eventually(|| offline.waiting("carol@example.com").is_empty()).await;
    // Never twice: a refresh delivers nothing more.
    assert_eq!(carol.register(300).await.status(), Some(200));
    assert!(carol
        .request_in("MESSAGE", Duration::from_millis(300))
        .await
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_delivery_is_kept_and_redelivered() {
    let d = Deployment::start(service_config()).await;
    let mut alice = d.ua("alice").await;
    assert_eq!(
        send_message(&mut alice, "carol", "im-3", "first")
            .await
            .status(),
        Some(202)
    );
    assert_eq!(
        send_message(&mut alice, "carol", "im-4", "second")
            .await
            .status(),
        Some(202)
    );
    let mut carol = d.ua("carol").await;
    assert_eq!(carol.register(300).await.status(), Some(200));
    let first = carol.request_in("MESSAGE", WAIT).await.expect("delivered");
    assert_eq!(first.body(), b"first");
    carol
        .answer(&first, 500, "Server Internal Error", "x")
        .await;
    // The round stops at the refusal: "second" is not sent, nothing is deleted.
    assert!(carol
        .request_in("MESSAGE", Duration::from_millis(300))
        .await
        .is_none());
    assert_eq!(d.stores.offline.waiting("carol@example.com").len(), 2);
    // The next registration delivers both, in order, the first with the same Call-ID.
    assert_eq!(carol.register(300).await.status(), Some(200));
    let again = carol
        .request_in("MESSAGE", WAIT)
        .await
        .expect("redelivered");
    assert_eq!(again.body(), b"first");
    assert_eq!(again.call_id(), first.call_id());
    carol.answer(&again, 200, "OK", "c1").await;
    let second = carol.request_in("MESSAGE", WAIT).await.expect("delivered");
    assert_eq!(second.body(), b"second");
    carol.answer(&second, 202, "Accepted", "c2").await;
    let offline = d.stores.offline.clone();
    eventually(|| offline.waiting("carol@example.com").is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_delivery_is_kept() {
    let d = Deployment::start(service_config()).await;
    let mut alice = d.ua("alice").await;
    assert_eq!(
        send_message(&mut alice, "carol", "im-5", "ping")
            .await
            .status(),
        Some(202)
    );
    let mut carol = d.ua("carol").await;
    assert_eq!(carol.register(300).await.status(), Some(200));
    assert!(carol.request_in("MESSAGE", WAIT).await.is_some());
    // No answer: Timer F (64·T1 = 3.2 s here) ends the delivery; the message stays.
    tokio::time::sleep(Duration::from_millis(3600)).await;
    assert_eq!(d.stores.offline.waiting("carol@example.com").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_cap_an_offline_message_is_refused() {
    let mut service = service_config();
    service.offline.max_per_user = 1;
    let d = Deployment::start(service).await;
    let mut alice = d.ua("alice").await;
    assert_eq!(
        send_message(&mut alice, "carol", "im-6", "one")
            .await
            .status(),
        Some(202)
    );
    let refused = send_message(&mut alice, "carol", "im-7", "two").await;
    assert_eq!(refused.status(), Some(480), "{refused:?}");
    assert_eq!(d.stores.offline.waiting("carol@example.com").len(), 1);
}

/// A REGISTER refresh asks the store for offline messages only for recipients known to have
/// some waiting; those kept before a restart are known from the store at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_kept_before_a_restart_are_delivered_at_the_next_refresh() {
    use confab_server::{OfflineMessage, OfflineMessages};
    let stores = confab_server::memory::MemoryStores::default();
    let d = Deployment::start_with(service_config(), stores.clone()).await;
    let mut carol = d.ua("carol").await;
    assert_eq!(carol.register(300).await.status(), Some(200));
    let registrations = stores.registrations.clone();
    eventually(|| !registrations.get("carol@example.com").is_empty()).await;
    d.server.stop().await;
    // Kept while this front-end was down (by another front-end sharing the store).
    let kept = OfflineMessage {
        id: 0,
        recipient: "carol@example.com".into(),
        from: "<sip:alice@example.com>;tag=a1".into(),
        content_type: "text/plain".into(),
        body: b"while you were out".to_vec(),
        received_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    };
    stores.offline.store(kept, 10, 0).await.expect("kept");

    let again = Deployment::start_with(service_config(), stores).await;
    assert_eq!(
        again.router.stats().registered,
        1,
        "carol's binding survived"
    );
    // The same device refreshes its binding: not a new one (a binding is new for the
    // second it was made in, so the refresh waits past it).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    carol.server = again.addr;
    assert_eq!(carol.register(300).await.status(), Some(200));
    let msg = carol.request_in("MESSAGE", WAIT).await.expect("delivered");
    assert_eq!(msg.body(), b"while you were out");
    carol.answer(&msg, 200, "OK", "c1").await;
    let offline = again.stores.offline.clone();
    eventually(|| offline.waiting("carol@example.com").is_empty()).await;
}
