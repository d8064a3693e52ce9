//! Presence through the server as a client application meets it: every publisher and
//! watcher here is a `confab-ua` user agent (its `publish` and `subscribe`, with digest
//! authentication, dialogs and NOTIFY answers of its own), where `presence.rs` scripts the
//! wire by hand. Multi-device composition, privacy levels with a blocked watcher's NOTIFY
//! compared byte for byte with a really offline user's, the watcher-information pending
//! flow, and refresh and expiry of subscriptions and publications on a short clock.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::ua::{allow, client, service_config, uri, Deployment};
use common::WAIT;
use confab_server::presence::pidf::{self, Availability};
use confab_server::ServiceConfig;
use confab_ua::{InviteAnswer, Notify, PublishRequest, Subscription, SubscriptionState, UserAgent};

const PIDF: &str = "application/pidf+xml";
const WINFO: &str = "application/watcherinfo+xml";

fn presence_config() -> ServiceConfig {
    let mut c = service_config();
    c.presence.min_expires = 1;
    c
}

fn pidf_doc(user: &str, basic: &str, activity: Option<&str>, note: &str) -> Bytes {
    let person = activity.map_or_else(String::new, |a| {
        format!("<dm:person id=\"p\"><rpid:activities><rpid:{a}/></rpid:activities></dm:person>")
    });
    Bytes::from(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence \
         xmlns=\"urn:ietf:params:xml:ns:pidf\" xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" \
         xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"{}\"><tuple id=\"t\">\
         <status><basic>{basic}</basic></status><note>{note}</note></tuple>{person}</presence>",
        uri(user)
    ))
}

/// Publishes `body` (initially, or modifying `etag`) and returns the new entity-tag.
async fn publish(ua: &UserAgent, etag: Option<&str>, expires: u32, body: Bytes) -> String {
    let p = ua
        .publish(PublishRequest {
            event: "presence",
            if_match: etag,
            expires,
            body: Some((PIDF, body)),
        })
        .await
        .expect("PUBLISH answered");
    assert_eq!(p.status, 200, "{:?}", p.response);
    p.etag.expect("a SIP-ETag")
}

async fn watch(ua: &UserAgent, user: &str, event: &str, expires: u32) -> Subscription {
    let accept = if event == "presence" { PIDF } else { WINFO };
    ua.subscribe(&uri(user), event, accept, expires)
        .await
        .expect("subscribed")
}

async fn next(sub: &mut Subscription) -> Notify {
    sub.next_notify(WAIT).await.expect("a NOTIFY")
}

fn availability(n: &Notify) -> Availability {
    pidf::parse(n.body()).expect("a PIDF body").availability
}

fn text(n: &Notify) -> &str {
    n.body_str().expect("UTF-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_compose_into_one_view() {
    let d = Deployment::start(presence_config()).await;
    allow(&d.stores, "alice", &["bob"], &[]);
    let bob = client(&d, "bob", InviteAnswer::Manual).await;
    let mut sub = watch(&bob, "alice", "presence", 600).await;
    assert_eq!(sub.status(), 200);
    let first = next(&mut sub).await;
    assert_eq!(first.state, SubscriptionState::Active);
    assert_eq!(first.content_type(), Some(PIDF));
    assert_eq!(text(&first), pidf::offline(&uri("alice")));

    let desk = client(&d, "alice", InviteAnswer::Manual).await;
    let phone = client(&d, "alice", InviteAnswer::Manual).await;
    let desk_tag = publish(
        &desk,
        None,
        600,
        pidf_doc("alice", "open", Some("busy"), "In a meeting"),
    )
    .await;
    let n = next(&mut sub).await;
    assert_eq!(availability(&n), Availability::Busy);
    assert!(text(&n).contains("In a meeting"));
    let phone_tag = publish(
        &phone,
        None,
        600,
        pidf_doc("alice", "open", None, "On my phone"),
    )
    .await;
    let n = next(&mut sub).await;
    assert_eq!(
        availability(&n),
        Availability::Available,
        "most available wins"
    );
    assert!(text(&n).contains("On my phone"));
    assert_eq!(d.router.stats().presence.publications, 2);

    // The phone's publication removed: the desk's state again.
    let removed = phone
        .publish(PublishRequest {
            event: "presence",
            if_match: Some(&phone_tag),
            expires: 0,
            body: None,
        })
        .await
        .expect("answered");
    assert_eq!(removed.status, 200);
    let n = next(&mut sub).await;
    assert_eq!(availability(&n), Availability::Busy);
    // A spent entity-tag is refused with 412.
    let stale = phone
        .publish(PublishRequest {
            event: "presence",
            if_match: Some(&phone_tag),
            expires: 600,
            body: None,
        })
        .await
        .expect("answered");
    assert_eq!(stale.status, 412);
    // The desk modifies its publication through its entity-tag.
    publish(
        &desk,
        Some(&desk_tag),
        600,
        pidf_doc("alice", "open", Some("away"), "Lunch"),
    )
    .await;
    let n = next(&mut sub).await;
    assert_eq!(availability(&n), Availability::Away);
    assert!(text(&n).contains("Lunch"));

    sub.unsubscribe().await.expect("unsubscribed");
    let last = next(&mut sub).await;
    assert!(last.is_terminated());
    assert_eq!(d.router.stats().presence.subscriptions, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_levels_and_blocked_looks_offline() {
    let d = Deployment::start(presence_config()).await;
    allow(
        &d.stores,
        "alice",
        &[],
        &[
            ("bob@example.com", "colleagues"),
            ("carol@example.com", "blocked"),
        ],
    );
    // The reference: bob's NOTIFY while alice is really offline.
    let bob = client(&d, "bob", InviteAnswer::Manual).await;
    let mut bob_sub = watch(&bob, "alice", "presence", 600).await;
    let offline = next(&mut bob_sub).await;
    assert_eq!(availability(&offline), Availability::Offline);

    // alice signs in and publishes busy with a note.
    let alice = client(&d, "alice", InviteAnswer::Manual).await;
    alice.register(300).await.expect("registered");
    assert_eq!(
        availability(&next(&mut bob_sub).await),
        Availability::Available
    );
    publish(
        &alice,
        None,
        600,
        pidf_doc("alice", "open", Some("busy"), "Board meeting"),
    )
    .await;
    let seen = next(&mut bob_sub).await;
    assert_eq!(availability(&seen), Availability::Busy);

    // carol, blocked, is answered like anyone and sees exactly what an offline user looks
    // like: the same body, byte for byte, the same state and content type.
    let carol = client(&d, "carol", InviteAnswer::Manual).await;
    let mut carol_sub = watch(&carol, "alice", "presence", 600).await;
    assert_eq!(carol_sub.status(), bob_sub.status());
    let blocked = next(&mut carol_sub).await;
    assert_eq!(blocked.body(), offline.body(), "byte for byte");
    assert_eq!(blocked.state, offline.state);
    assert_eq!(blocked.content_type(), offline.content_type());

    // alice's changes reach bob, never carol.
    alice.unregister().await.expect("unregistered");
    publish(
        &alice,
        None,
        600,
        pidf_doc("alice", "open", None, "Back at my desk"),
    )
    .await;
    let mut saw_desk = false;
    for _ in 0..3 {
        match bob_sub.next_notify(Duration::from_millis(700)).await {
            Ok(n) if text(&n).contains("Back at my desk") => {
                saw_desk = true;
                break;
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    assert!(saw_desk, "bob sees the new note");
    assert!(
        carol_sub
            .next_notify(Duration::from_millis(700))
            .await
            .is_err(),
        "nothing changes for a blocked watcher"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_watchers_are_decided_through_watcher_information() {
    let d = Deployment::start(presence_config()).await;
    let alice = client(&d, "alice", InviteAnswer::Manual).await;
    let mut winfo = watch(&alice, "alice", "presence.winfo", 600).await;
    let n = next(&mut winfo).await;
    assert_eq!(n.content_type(), Some(WINFO));
    assert!(!text(&n).contains("<watcher "), "{}", text(&n));

    // carol, unknown to alice, waits: pending, no document.
    let carol = client(&d, "carol", InviteAnswer::Manual).await;
    let mut sub = watch(&carol, "alice", "presence", 600).await;
    let n = next(&mut sub).await;
    assert_eq!(n.state, SubscriptionState::Pending);
    assert!(n.body().is_empty());
    let w = next(&mut winfo).await;
    assert!(
        text(&w).contains("status=\"pending\"") && text(&w).contains("sip:carol@example.com"),
        "{}",
        text(&w)
    );

    // alice puts carol on her contact list: allowed, as a colleague.
    allow(&d.stores, "alice", &["carol"], &[]);
    d.router
        .presence_policy_changed("alice@example.com")
        .await
        .expect("policy read");
    let n = next(&mut sub).await;
    assert_eq!(n.state, SubscriptionState::Active);
    assert_eq!(availability(&n), Availability::Offline);
    let w = next(&mut winfo).await;
    assert!(text(&w).contains("status=\"active\""), "{}", text(&w));
    assert_eq!(d.router.stats().presence.pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_fetch_and_expiry_on_a_short_clock() {
    let d = Deployment::start(presence_config()).await;
    allow(&d.stores, "alice", &["bob"], &[]);
    let bob = client(&d, "bob", InviteAnswer::Manual).await;
    let alice = client(&d, "alice", InviteAnswer::Manual).await;

    // A fetch: one terminated NOTIFY with the state, nothing kept.
    let mut fetch = watch(&bob, "alice", "presence", 0).await;
    let n = next(&mut fetch).await;
    assert!(n.is_terminated());
    assert_eq!(n.reason.as_deref(), Some("timeout"));
    assert_eq!(text(&n), pidf::offline(&uri("alice")));
    assert_eq!(d.router.stats().presence.subscriptions, 0);

    // A publication for 1 s: shown, then gone by itself.
    publish(
        &alice,
        None,
        1,
        pidf_doc("alice", "open", Some("busy"), "Brief"),
    )
    .await;
    let mut sub = watch(&bob, "alice", "presence", 2).await;
    assert_eq!(sub.expires(), 2);
    assert_eq!(availability(&next(&mut sub).await), Availability::Busy);
    // The refresh keeps the subscription past its first 2 s and is answered with a
    // NOTIFY of the current state.
    let r = sub.refresh(3).await.expect("refreshed");
    assert_eq!(r.status(), Some(200));
    assert_eq!(sub.expires(), 3);
    let mut states = Vec::new();
    let end = loop {
        let n = sub
            .next_notify(Duration::from_secs(6))
            .await
            .expect("NOTIFYs until the subscription expires");
        if n.is_terminated() {
            break n;
        }
        states.push(availability(&n));
    };
    assert_eq!(
        states.last(),
        Some(&Availability::Offline),
        "the publication expired: {states:?}"
    );
    assert_eq!(end.reason.as_deref(), Some("timeout"));
    assert!(sub.is_terminated());
    assert_eq!(d.router.stats().presence.subscriptions, 0);
    assert_eq!(d.router.stats().presence.publications, 0);
}
