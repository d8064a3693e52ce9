//! Presence through the server (RFC 3903 PUBLISH, RFC 6665/3856 SUBSCRIBE/NOTIFY, RFC 3857
//! watcher information): several devices composed into one view, a registration without a
//! publication, privacy levels (a blocked watcher's NOTIFY is byte for byte an offline
//! user's), pending watchers decided through the rules, refresh, fetch, expiry, bad
//! requests, a failed NOTIFY, and subscriptions and publications surviving a restart.

mod common;

use std::time::Duration;

use common::ua::*;
use common::WAIT;
use confab_server::memory::MemoryStores;
use confab_server::presence::pidf;
use confab_server::ServiceConfig;
use confab_sip::{HeaderName, Message};

fn presence_config() -> ServiceConfig {
    let mut c = service_config();
    c.presence.min_expires = 1;
    c
}

fn pidf_body(user: &str, basic: &str, activity: Option<&str>, note: &str) -> String {
    let person = match activity {
        Some(a) => format!(
            "<dm:person id=\"p1\"><rpid:activities><rpid:{a}/></rpid:activities></dm:person>"
        ),
        None => String::new(),
    };
    format!(
        "<?xml version=\"1.0\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
         xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" \
         xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"{}\">\
         <tuple id=\"t1\"><status><basic>{basic}</basic></status><note>{note}</note></tuple>\
         {person}</presence>",
        uri(user)
    )
}

/// A subscription as the watcher sees it.
struct Sub {
    call_id: String,
    to: String,
    target: String,
    cseq: u32,
}

/// Sends an authenticated SUBSCRIBE; returns the final response and the dialog.
async fn subscribe(
    ua: &mut Ua,
    to: &str,
    event: &str,
    expires: u32,
    call_id: &str,
) -> (Message, Sub) {
    let target = uri(to);
    let headers = [
        ("Event", event.to_owned()),
        ("Expires", expires.to_string()),
        ("Contact", format!("<{}>", ua.contact())),
    ];
    ua.send_authenticated(
        "SUBSCRIBE",
        &target,
        &format!("<{target}>"),
        call_id,
        1,
        &headers,
        None,
    )
    .await;
    let resp = ua.response(call_id, "SUBSCRIBE", false).await;
    let to_header = resp.header(HeaderName::To).unwrap_or_default().to_owned();
    let contact = resp
        .contacts()
        .next()
        .and_then(Result::ok)
        .and_then(|c| c.address().map(|a| a.uri().as_str().to_owned()))
        .unwrap_or_default();
    let sub = Sub {
        call_id: call_id.to_owned(),
        to: to_header,
        target: contact,
        cseq: 2,
    };
    (resp, sub)
}

/// A SUBSCRIBE inside `sub` with `expires`; returns the final response.
async fn resubscribe(ua: &mut Ua, sub: &mut Sub, event: &str, expires: u32) -> Message {
    sub.cseq += 1;
    let req = ua.request(
        "SUBSCRIBE",
        &sub.target,
        &sub.to,
        &sub.call_id,
        sub.cseq,
        &[
            ("Event", event.to_owned()),
            ("Expires", expires.to_string()),
            ("Contact", format!("<{}>", ua.contact())),
        ],
        None,
    );
    ua.send(&req).await;
    ua.response(&sub.call_id, "SUBSCRIBE", false).await
}

/// The next NOTIFY of dialog `call_id`, answered 200.
async fn notify(ua: &mut Ua, call_id: &str) -> Message {
    let cid = call_id.to_owned();
    let n = ua
        .wait_for(WAIT, move |m| {
            m.method_str() == Some("NOTIFY") && m.call_id() == Ok(cid.as_str())
        })
        .await
        .unwrap_or_else(|| panic!("no NOTIFY in {call_id}"));
    ua.answer(&n, 200, "OK", "unused").await;
    n
}

/// No NOTIFY of dialog `call_id` within `within`.
async fn no_notify(ua: &mut Ua, call_id: &str, within: Duration) {
    let cid = call_id.to_owned();
    let n = ua
        .wait_for(within, move |m| {
            m.method_str() == Some("NOTIFY") && m.call_id() == Ok(cid.as_str())
        })
        .await;
    assert!(n.is_none(), "unexpected NOTIFY: {n:?}");
}

fn state(n: &Message) -> String {
    n.header(HeaderName::SubscriptionState)
        .unwrap_or_default()
        .to_owned()
}

fn body(n: &Message) -> String {
    String::from_utf8_lossy(n.body()).into_owned()
}

fn availability(n: &Message) -> pidf::Availability {
    pidf::parse(n.body()).expect("a PIDF body").availability
}

/// An authenticated PUBLISH by `ua` for itself; returns the final response.
async fn publish(
    ua: &mut Ua,
    call_id: &str,
    etag: Option<&str>,
    expires: u32,
    body: Option<&str>,
) -> Message {
    let aor = ua.aor();
    let mut headers = vec![
        ("Event", "presence".to_owned()),
        ("Expires", expires.to_string()),
    ];
    if let Some(e) = etag {
        headers.push(("SIP-If-Match", e.to_owned()));
    }
    ua.send_authenticated(
        "PUBLISH",
        &aor,
        &format!("<{aor}>"),
        call_id,
        1,
        &headers,
        body.map(|b| ("application/pidf+xml", b)),
    )
    .await;
    ua.response(call_id, "PUBLISH", false).await
}

fn etag(resp: &Message) -> String {
    resp.header(HeaderName::SipEtag)
        .expect("a SIP-ETag")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_are_composed_and_every_change_is_notified() {
    let d = Deployment::start(presence_config()).await;
    allow(&d.stores, "alice", &["bob"], &[]);
    let mut bob = d.ua("bob").await;
    let (resp, _) = subscribe(&mut bob, "alice", "presence", 600, "w-1").await;
    assert_eq!(resp.status(), Some(200), "{resp:?}");
    assert!(resp.header(HeaderName::Expires).is_some());
    let n = notify(&mut bob, "w-1").await;
    assert!(state(&n).starts_with("active;expires="), "{}", state(&n));
    assert_eq!(
        body(&n),
        pidf::offline(&uri("alice")),
        "nothing published, not registered"
    );

    // Two devices: the most available wins, with its note.
    let mut desk = d.ua("alice").await;
    let mut phone = d.ua("alice").await;
    let r = publish(
        &mut desk,
        "p-desk",
        None,
        600,
        Some(&pidf_body("alice", "open", Some("busy"), "On a call")),
    )
    .await;
    assert_eq!(r.status(), Some(200), "{r:?}");
    let desk_tag = etag(&r);
    let n = notify(&mut bob, "w-1").await;
    assert_eq!(availability(&n), pidf::Availability::Busy);
    assert!(body(&n).contains("On a call"));
    let r = publish(
        &mut phone,
        "p-phone",
        None,
        600,
        Some(&pidf_body("alice", "open", None, "Free")),
    )
    .await;
    let phone_tag = etag(&r);
    let n = notify(&mut bob, "w-1").await;
    assert_eq!(availability(&n), pidf::Availability::Available);
    assert!(body(&n).contains("Free"));
    assert_eq!(d.router.stats().presence.publications, 2);

    // The phone goes: back to the desk's state.
    let r = publish(&mut phone, "p-phone-2", Some(&phone_tag), 0, None).await;
    assert_eq!(r.status(), Some(200));
    let n = notify(&mut bob, "w-1").await;
    assert_eq!(availability(&n), pidf::Availability::Busy);

    // A refresh changes nothing a watcher sees: a new entity-tag, no NOTIFY; the old tag is
    // spent.
    let r = publish(&mut desk, "p-desk-2", Some(&desk_tag), 600, None).await;
    assert_eq!(r.status(), Some(200));
    let new_tag = etag(&r);
    assert_ne!(new_tag, desk_tag);
    no_notify(&mut bob, "w-1", Duration::from_millis(700)).await;
    let r = publish(&mut desk, "p-desk-3", Some(&desk_tag), 600, None).await;
    assert_eq!(r.status(), Some(412));
    // A modification through the new tag is notified.
    let r = publish(
        &mut desk,
        "p-desk-4",
        Some(&new_tag),
        600,
        Some(&pidf_body("alice", "open", Some("away"), "Lunch")),
    )
    .await;
    assert_eq!(r.status(), Some(200));
    let n = notify(&mut bob, "w-1").await;
    assert_eq!(availability(&n), pidf::Availability::Away);
    assert!(body(&n).contains("Lunch"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_without_publication_shows_available() {
    let d = Deployment::start(presence_config()).await;
    allow(&d.stores, "alice", &["bob"], &[]);
    let mut bob = d.ua("bob").await;
    subscribe(&mut bob, "alice", "presence", 600, "w-2").await;
    assert_eq!(
        availability(&notify(&mut bob, "w-2").await),
        pidf::Availability::Offline
    );
    let mut alice = d.ua("alice").await;
    assert_eq!(alice.register(300).await.status(), Some(200));
    assert_eq!(
        availability(&notify(&mut bob, "w-2").await),
        pidf::Availability::Available
    );
    assert_eq!(alice.register(0).await.status(), Some(200));
    let n = notify(&mut bob, "w-2").await;
    assert_eq!(body(&n), pidf::offline(&uri("alice")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_watcher_cannot_tell_from_offline() {
    let d = Deployment::start(presence_config()).await;
    allow(
        &d.stores,
        "alice",
        &["bob"],
        &[("carol@example.com", "blocked")],
    );
    // bob watches alice while she is really offline: that NOTIFY is the reference.
    let mut bob = d.ua("bob").await;
    subscribe(&mut bob, "alice", "presence", 600, "w-3").await;
    let offline = notify(&mut bob, "w-3").await;

    let mut alice = d.ua("alice").await;
    assert_eq!(alice.register(300).await.status(), Some(200));
    notify(&mut bob, "w-3").await;
    let r = publish(
        &mut alice,
        "p-3",
        None,
        600,
        Some(&pidf_body("alice", "open", Some("busy"), "Secret meeting")),
    )
    .await;
    let tag = etag(&r);
    notify(&mut bob, "w-3").await;

    let mut carol = d.ua("carol").await;
    let (resp, _) = subscribe(&mut carol, "alice", "presence", 600, "w-4").await;
    assert_eq!(resp.status(), Some(200), "blocked is not refused");
    let blocked = notify(&mut carol, "w-4").await;
    assert_eq!(blocked.body(), offline.body(), "byte for byte");
    assert_eq!(
        state(&blocked).split(';').next(),
        state(&offline).split(';').next()
    );
    assert_eq!(
        blocked.header(HeaderName::ContentType),
        offline.header(HeaderName::ContentType)
    );
    // alice's activity shows to bob, never to carol.
    publish(
        &mut alice,
        "p-3b",
        Some(&tag),
        600,
        Some(&pidf_body("alice", "open", None, "Free now")),
    )
    .await;
    assert!(body(&notify(&mut bob, "w-3").await).contains("Free now"));
    no_notify(&mut carol, "w-4", Duration::from_millis(700)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn levels_show_more_or_less() {
    let d = Deployment::start(presence_config()).await;
    allow(
        &d.stores,
        "alice",
        &[],
        &[
            ("bob@example.com", "colleagues"),
            ("carol@example.com", "friends-and-family"),
        ],
    );
    let mut alice = d.ua("alice").await;
    publish(
        &mut alice,
        "p-5",
        None,
        600,
        Some(
            &pidf_body("alice", "open", Some("busy"), "Busy")
                .replace("<note>", "<contact>sip:alice@192.0.2.1</contact><note>"),
        ),
    )
    .await;
    let mut bob = d.ua("bob").await;
    subscribe(&mut bob, "alice", "presence", 600, "w-5").await;
    let colleague = body(&notify(&mut bob, "w-5").await);
    let mut carol = d.ua("carol").await;
    subscribe(&mut carol, "alice", "presence", 600, "w-6").await;
    let family = body(&notify(&mut carol, "w-6").await);
    assert!(colleague.contains("Busy") && family.contains("Busy"));
    assert!(!colleague.contains("192.0.2.1"), "{colleague}");
    assert!(
        family.contains("<contact>sip:alice@192.0.2.1</contact>"),
        "{family}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_watchers_wait_for_the_presentity() {
    let d = Deployment::start(presence_config()).await;
    // alice watches her watchers.
    let mut alice = d.ua("alice").await;
    let (resp, _) = subscribe(&mut alice, "alice", "presence.winfo", 600, "wi-1").await;
    assert_eq!(resp.status(), Some(200));
    let n = notify(&mut alice, "wi-1").await;
    assert_eq!(
        n.header(HeaderName::ContentType),
        Some("application/watcherinfo+xml")
    );
    assert!(!body(&n).contains("<watcher "), "{}", body(&n));
    // Nobody else may.
    let mut bob = d.ua("bob").await;
    let (resp, _) = subscribe(&mut bob, "alice", "presence.winfo", 600, "wi-2").await;
    assert_eq!(resp.status(), Some(403));

    // carol is unknown to alice: pending, no document.
    let mut carol = d.ua("carol").await;
    let (resp, _) = subscribe(&mut carol, "alice", "presence", 600, "w-7").await;
    assert_eq!(resp.status(), Some(200));
    let n = notify(&mut carol, "w-7").await;
    assert!(state(&n).starts_with("pending"), "{}", state(&n));
    assert!(n.body().is_empty());
    let w = body(&notify(&mut alice, "wi-1").await);
    assert!(
        w.contains("status=\"pending\"") && w.contains("sip:carol@example.com"),
        "{w}"
    );
    assert_eq!(d.router.stats().presence.pending, 1);

    // alice decides (a rule, as `confab presence-rules set` writes it).
    allow(
        &d.stores,
        "alice",
        &[],
        &[("carol@example.com", "workgroup")],
    );
    d.router
        .presence_policy_changed("alice@example.com")
        .await
        .expect("policy read");
    let n = notify(&mut carol, "w-7").await;
    assert!(state(&n).starts_with("active"), "{}", state(&n));
    assert_eq!(availability(&n), pidf::Availability::Offline);
    let w = body(&notify(&mut alice, "wi-1").await);
    assert!(w.contains("status=\"active\""), "{w}");
    assert_eq!(d.router.stats().presence.pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_fetch_unsubscribe_and_expiry() {
    let d = Deployment::start(presence_config()).await;
    allow(&d.stores, "alice", &["bob"], &[]);
    let mut bob = d.ua("bob").await;

    // Fetch: one NOTIFY with the state, terminated, and no subscription.
    let (resp, _) = subscribe(&mut bob, "alice", "presence", 0, "w-8").await;
    assert_eq!(resp.status(), Some(200));
    let n = notify(&mut bob, "w-8").await;
    assert_eq!(state(&n), "terminated;reason=timeout");
    assert_eq!(body(&n), pidf::offline(&uri("alice")));
    assert_eq!(d.router.stats().presence.subscriptions, 0);

    // Refresh: 200 and a NOTIFY even though nothing changed; then unsubscribe.
    let (_, mut sub) = subscribe(&mut bob, "alice", "presence", 600, "w-9").await;
    notify(&mut bob, "w-9").await;
    let r = resubscribe(&mut bob, &mut sub, "presence", 900).await;
    assert_eq!(r.status(), Some(200));
    assert_eq!(r.header(HeaderName::Expires), Some("900"));
    assert!(state(&notify(&mut bob, "w-9").await).starts_with("active"));
    let r = resubscribe(&mut bob, &mut sub, "presence", 0).await;
    assert_eq!(r.status(), Some(200));
    assert_eq!(
        state(&notify(&mut bob, "w-9").await),
        "terminated;reason=timeout"
    );
    let r = resubscribe(&mut bob, &mut sub, "presence", 600).await;
    assert_eq!(r.status(), Some(481), "the subscription is gone");

    // Expiry.
    subscribe(&mut bob, "alice", "presence", 1, "w-10").await;
    notify(&mut bob, "w-10").await;
    let n = notify(&mut bob, "w-10").await;
    assert_eq!(state(&n), "terminated;reason=timeout");
    assert_eq!(d.router.stats().presence.subscriptions, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_right_answers() {
    let d = Deployment::start(presence_config()).await;
    let mut bob = d.ua("bob").await;
    let (r, _) = subscribe(&mut bob, "alice", "dialog", 600, "b-1").await;
    assert_eq!(r.status(), Some(489));
    assert_eq!(
        r.header(HeaderName::AllowEvents),
        Some("presence, presence.winfo")
    );
    let (r, _) = subscribe(&mut bob, "nobody", "presence", 600, "b-2").await;
    assert_eq!(r.status(), Some(404));

    let mut alice = d.ua("alice").await;
    assert_eq!(
        publish(&mut alice, "b-3", None, 600, None).await.status(),
        Some(400)
    );
    assert_eq!(
        publish(&mut alice, "b-4", None, 600, Some("<presence"))
            .await
            .status(),
        Some(400)
    );
    assert_eq!(
        publish(&mut alice, "b-5", Some("no-such-tag"), 600, None)
            .await
            .status(),
        Some(412)
    );
    // Someone else's presence.
    let target = uri("bob");
    alice
        .send_authenticated(
            "PUBLISH",
            &target,
            &format!("<{target}>"),
            "b-6",
            1,
            &[("Event", "presence".into()), ("Expires", "60".into())],
            Some(("application/pidf+xml", &pidf_body("bob", "open", None, "x"))),
        )
        .await;
    assert_eq!(
        alice.response("b-6", "PUBLISH", false).await.status(),
        Some(403)
    );
    // A body of another type.
    let aor = alice.aor();
    alice
        .send_authenticated(
            "PUBLISH",
            &aor,
            &format!("<{aor}>"),
            "b-7",
            1,
            &[("Event", "presence".into())],
            Some(("text/plain", "available")),
        )
        .await;
    let r = alice.response("b-7", "PUBLISH", false).await;
    assert_eq!(r.status(), Some(415));
    assert_eq!(r.header(HeaderName::Accept), Some("application/pidf+xml"));
    // A SUBSCRIBE in no dialog of ours.
    let mut ghost = Sub {
        call_id: "b-8".into(),
        to: format!("<{}>;tag=nosuchtag", uri("alice")),
        target: format!("sip:{}", d.addr),
        cseq: 1,
    };
    assert_eq!(
        resubscribe(&mut bob, &mut ghost, "presence", 60)
            .await
            .status(),
        Some(481)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_brief_is_refused_with_min_expires() {
    let mut config = service_config();
    config.presence.min_expires = 60;
    let d = Deployment::start(config).await;
    let mut bob = d.ua("bob").await;
    let (r, _) = subscribe(&mut bob, "alice", "presence", 5, "m-1").await;
    assert_eq!(r.status(), Some(423));
    assert_eq!(r.header(HeaderName::MinExpires), Some("60"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_notify_ends_the_subscription() {
    let d = Deployment::start(presence_config()).await;
    allow(&d.stores, "alice", &["bob"], &[]);
    let mut bob = d.ua("bob").await;
    subscribe(&mut bob, "alice", "presence", 600, "f-1").await;
    notify(&mut bob, "f-1").await;
    assert_eq!(d.router.stats().presence.subscriptions, 1);
    let mut alice = d.ua("alice").await;
    publish(
        &mut alice,
        "f-2",
        None,
        600,
        Some(&pidf_body("alice", "open", None, "hi")),
    )
    .await;
    let n = bob
        .wait_for(WAIT, |m| m.method_str() == Some("NOTIFY"))
        .await
        .expect("a NOTIFY");
    bob.answer(&n, 481, "Subscription Does Not Exist", "x")
        .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while d.router.stats().presence.subscriptions != 0 {
        assert!(tokio::time::Instant::now() < deadline, "subscription kept");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_and_publications_survive_a_restart() {
    let stores = MemoryStores::default();
    let d = Deployment::start_with(presence_config(), stores.clone()).await;
    allow(&stores, "alice", &["bob"], &[]);
    let mut bob = d.ua("bob").await;
    subscribe(&mut bob, "alice", "presence", 600, "r-1").await;
    notify(&mut bob, "r-1").await;
    let mut alice = d.ua("alice").await;
    publish(
        &mut alice,
        "r-2",
        None,
        600,
        Some(&pidf_body(
            "alice",
            "open",
            Some("busy"),
            "Before the restart",
        )),
    )
    .await;
    assert!(body(&notify(&mut bob, "r-1").await).contains("Before the restart"));
    // Written behind within a second or two.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stored = stores.presence.stored();
        if stored.subscriptions.len() == 1 && stored.publications.len() == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not written behind");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Deployment {
        server,
        router,
        addr,
        ..
    } = d;
    server.stop().await;
    // The sockets close with the last handle on the router's transaction driver.
    drop(router);

    // The same address, a new front-end over the same stores.
    let again = Deployment::start_at(presence_config(), stores, addr).await;
    let n = notify(&mut bob, "r-1").await;
    assert!(state(&n).starts_with("active"));
    assert_eq!(availability(&n), pidf::Availability::Busy);
    assert!(body(&n).contains("Before the restart"));
    assert_eq!(again.router.stats().presence.subscriptions, 1);
}
