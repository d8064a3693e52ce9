//! Routing by home pool: two pools, each one front-end in this process over shared in-memory
//! stores, and `confab-ua` clients that all point at the first. Every request for a user is
//! answered by the user's home pool: a REGISTER for a user of the other pool is forwarded
//! there (with a Path, so the user is reached back through the front-end it uses), and IM,
//! calls and presence work between users of the two pools. A request from the other pool's
//! front-end is not challenged again; the same request from anywhere else is.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::ua::{allow, client, service_config, uri, Deployment, DOMAIN};
use common::WAIT;
use confab_server::directory::{PoolKindRecord, PoolRecord};
use confab_server::memory::MemoryStores;
use confab_server::ServiceConfig;
use confab_ua::{InviteAnswer, PublishRequest, Secret, SubscriptionState, UaConfig, UserAgent};

fn config(pool: &str) -> ServiceConfig {
    let mut c = service_config();
    c.pool = pool.into();
    c
}

/// Two pools, `a` and `b`: alice and carol homed on `a`, bob on `b`.
async fn two_pools() -> (Deployment, Deployment, MemoryStores) {
    let stores = MemoryStores::default();
    let a = Deployment::start_with(config("a"), stores.clone()).await;
    let b = Deployment::start_with(config("b"), stores.clone()).await;
    for (user, pool) in [("alice", "a"), ("carol", "a"), ("bob", "b")] {
        assert!(stores
            .directory
            .set_home_pool(&format!("{user}@{DOMAIN}"), Some(pool)));
    }
    stores.pools.set(vec![
        PoolRecord {
            name: "a".into(),
            kind: PoolKindRecord::FrontEnd,
            servers: vec![format!("udp://{}", a.addr)],
            next_hop: None,
            pair: None,
            maintenance: false,
        },
        PoolRecord {
            name: "b".into(),
            kind: PoolKindRecord::FrontEnd,
            servers: vec![format!("udp://{}", b.addr)],
            next_hop: None,
            pair: None,
            maintenance: false,
        },
    ]);
    for d in [&a, &b] {
        assert_eq!(d.router.pools_changed().await.expect("pools read"), 2);
    }
    (a, b, stores)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signs_in_at_its_home_pool_through_any_pool() {
    let (a, b, _stores) = two_pools().await;
    let bob = client(&a, "bob", InviteAnswer::Manual).await;
    let reg = bob.register(300).await.expect("registered through pool a");
    assert_eq!(reg.status, 200);
    assert_eq!(reg.contacts, vec![bob.contact_uri().to_owned()]);
    assert_eq!(
        b.router.stats().registered,
        1,
        "bob's binding is at his home pool"
    );
    assert_eq!(
        a.router.stats().registered,
        0,
        "not at the pool he talks to"
    );
    // alice, homed on a, registers at a.
    let alice = client(&a, "alice", InviteAnswer::Manual).await;
    alice.register(300).await.expect("registered");
    assert_eq!(a.router.stats().registered, 1);
    assert_eq!(b.router.stats().registered, 1);
    // A wrong password is refused by the home pool, through a.
    let mallory = UserAgent::bind(UaConfig {
        server: Some(a.addr),
        secret: Some(Secret::Password("not-bobs".into())),
        t1: Duration::from_millis(50),
        ..UaConfig::new(uri("bob"))
    })
    .await
    .expect("binds");
    assert!(mallory.register(300).await.is_err());
    assert_eq!(b.router.stats().registered, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_and_calls_cross_pools() {
    let (a, _b, _stores) = two_pools().await;
    let alice = client(
        &a,
        "alice",
        InviteAnswer::Accept {
            after: Duration::from_millis(10),
            sdp: None,
        },
    )
    .await;
    let bob = client(
        &a,
        "bob",
        InviteAnswer::Accept {
            after: Duration::from_millis(10),
            sdp: None,
        },
    )
    .await;
    alice.register(300).await.expect("alice registered");
    bob.register(300).await.expect("bob registered");

    // alice (pool a) → bob (pool b, reached back through a's Path).
    let status = alice
        .message(&uri("bob"), "text/plain", "hello, other pool")
        .await
        .expect("answered");
    assert_eq!(status, 200);
    let got = bob
        .next_incoming_of("MESSAGE", WAIT)
        .await
        .expect("delivered");
    assert_eq!(got.body(), b"hello, other pool");
    // bob → alice.
    let status = bob
        .message(&uri("alice"), "text/plain", "and back")
        .await
        .expect("answered");
    assert_eq!(status, 200);
    let got = alice
        .next_incoming_of("MESSAGE", WAIT)
        .await
        .expect("delivered");
    assert_eq!(got.body(), b"and back");

    // A call from alice to bob, answered, hung up.
    let mut call = alice.invite(&uri("bob"), None).await.expect("INVITE sent");
    let outcome = call.wait_final().await.expect("final response");
    assert!(outcome.is_answered(), "{:?}", outcome.status());
    call.bye().await.expect("BYE answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_crosses_pools() {
    let (a, b, stores) = two_pools().await;
    allow(&stores, "bob", &["alice"], &[]);
    let alice = client(&a, "alice", InviteAnswer::Manual).await;
    let bob = client(&a, "bob", InviteAnswer::Manual).await;
    let mut sub = alice
        .subscribe(&uri("bob"), "presence", "application/pidf+xml", 600)
        .await
        .expect("subscribed at bob's home pool");
    let first = sub.next_notify(WAIT).await.expect("first NOTIFY");
    assert_eq!(first.state, SubscriptionState::Active);
    assert_eq!(b.router.stats().presence.subscriptions, 1);
    assert_eq!(a.router.stats().presence.subscriptions, 0);

    let published = bob
        .publish(PublishRequest {
            event: "presence",
            if_match: None,
            expires: 600,
            body: Some((
                "application/pidf+xml",
                Bytes::from(format!(
                    "<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
                     entity=\"{}\"><tuple id=\"t\"><status><basic>open</basic></status>\
                     <note>Across pools</note></tuple></presence>",
                    uri("bob")
                )),
            )),
        })
        .await
        .expect("answered");
    assert_eq!(published.status, 200, "{:?}", published.response);
    let n = sub.next_notify(WAIT).await.expect("NOTIFY after PUBLISH");
    assert!(n.body_str().is_some_and(|b| b.contains("Across pools")));
    // The refresh goes through the route set: a, then b.
    let r = sub.refresh(900).await.expect("refreshed");
    assert_eq!(r.status(), Some(200));
    sub.next_notify(WAIT)
        .await
        .expect("NOTIFY after the refresh");
    sub.unsubscribe().await.expect("unsubscribed");
    let last = sub.next_notify(WAIT).await.expect("final NOTIFY");
    assert!(last.is_terminated());
    assert_eq!(b.router.stats().presence.subscriptions, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_without_an_address_is_unreachable_and_unknown_pools_are_served_here() {
    let (a, b, stores) = two_pools().await;
    // b's front-end stops (and leaves the pool): nothing announces an address for b.
    let Deployment { server, router, .. } = b;
    server.stop().await;
    drop(router);
    stores.pools.set(vec![PoolRecord {
        name: "b".into(),
        kind: PoolKindRecord::FrontEnd,
        servers: Vec::new(),
        next_hop: None,
        pair: None,
        maintenance: false,
    }]);
    a.router.pools_changed().await.expect("read");
    let bob = client(&a, "bob", InviteAnswer::Manual).await;
    match bob.register(300).await {
        Err(confab_ua::UaError::Rejected { status, .. }) => assert_eq!(status, 503),
        other => panic!("expected 503, got {other:?}"),
    }
    // A pool the topology does not name: its users are served where they ask.
    stores.pools.set(Vec::new());
    a.router.pools_changed().await.expect("read");
    assert_eq!(bob.register(300).await.expect("served here").status, 200);
    assert_eq!(a.router.stats().registered, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_pools_own_front_ends_are_trusted() {
    let (_a, b, _stores) = two_pools().await;
    // alice, straight to pool b (not through her pool's front-end), unauthenticated: b
    // challenges her like anyone else.
    let mut alice = common::ua::Ua::new(b.addr, "alice", "alice-pw").await;
    let message = alice.request(
        "MESSAGE",
        &uri("bob"),
        &format!("<{}>", uri("bob")),
        "trust-1",
        1,
        &[],
        Some(("text/plain", "hi")),
    );
    alice.send(&message).await;
    let r = alice.response("trust-1", "MESSAGE", false).await;
    assert_eq!(r.status(), Some(407), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_user_is_drained_from_its_old_pool_and_served_by_the_new_one() {
    let (a, b, stores) = two_pools().await;
    allow(&stores, "bob", &["alice"], &[]);
    let alice = client(&a, "alice", InviteAnswer::Manual).await;
    let bob = client(&a, "bob", InviteAnswer::Manual).await;
    bob.register(300).await.expect("bob registered at b");
    let mut sub = alice
        .subscribe(&uri("bob"), "presence", "application/pidf+xml", 600)
        .await
        .expect("subscribed at b");
    sub.next_notify(WAIT).await.expect("first NOTIFY");
    assert_eq!(b.router.stats().registered, 1);

    // bob moves to pool a (as `confab user move` does: the directory first, then the feed).
    assert!(stores
        .directory
        .set_home_pool(&format!("bob@{DOMAIN}"), Some("a")));
    assert_eq!(a.router.user_moved(&format!("bob@{DOMAIN}")).await, 0);
    assert_eq!(b.router.user_moved(&format!("bob@{DOMAIN}")).await, 1);
    assert_eq!(b.router.stats().registered, 0, "signed out at the old pool");
    let last = sub.next_notify(WAIT).await.expect("final NOTIFY");
    assert!(last.is_terminated());
    assert_eq!(
        last.reason.as_deref(),
        Some("deactivated"),
        "so that alice subscribes again"
    );
    assert_eq!(b.router.stats().presence.subscriptions, 0);

    // bob's client signs in again — now at pool a — and alice's subscribes again there.
    bob.register(300).await.expect("registered again");
    assert_eq!(a.router.stats().registered, 1, "bob, now at pool a");
    assert_eq!(b.router.stats().registered, 0);
    let mut again = alice
        .subscribe(&uri("bob"), "presence", "application/pidf+xml", 600)
        .await
        .expect("subscribed again");
    let n = again
        .next_notify(WAIT)
        .await
        .expect("NOTIFY from the new pool");
    assert_eq!(n.state, SubscriptionState::Active);
    assert_eq!(a.router.stats().presence.subscriptions, 1);
    let status = alice
        .message(&uri("bob"), "text/plain", "found you")
        .await
        .expect("answered");
    assert_eq!(status, 200);
    let got = bob
        .next_incoming_of("MESSAGE", WAIT)
        .await
        .expect("delivered");
    assert_eq!(got.body(), b"found you");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_front_end_loads_only_its_own_pools_state() {
    let (a, b, stores) = two_pools().await;
    let alice = client(&a, "alice", InviteAnswer::Manual).await;
    let bob = client(&a, "bob", InviteAnswer::Manual).await;
    alice.register(300).await.expect("alice at a");
    bob.register(300).await.expect("bob at b");
    assert_eq!(
        (a.router.stats().registered, b.router.stats().registered),
        (1, 1)
    );
    // Both bindings are in the shared store once written behind.
    let deadline = std::time::Instant::now() + WAIT;
    while stores
        .registrations
        .get(&format!("alice@{DOMAIN}"))
        .is_empty()
        || stores
            .registrations
            .get(&format!("bob@{DOMAIN}"))
            .is_empty()
    {
        assert!(std::time::Instant::now() < deadline, "never written behind");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Deployment {
        server,
        router,
        addr,
        ..
    } = a;
    server.stop().await;
    // The sockets close with the last handle on the router's transaction driver.
    drop(router);
    drop(alice);
    let a = Deployment::start_at(config("a"), stores.clone(), addr).await;
    assert_eq!(
        a.router.stats().registered,
        1,
        "alice's binding only: bob's belongs to pool b"
    );
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_of_a_legacy_pool_are_reached_through_its_next_hop() {
    let (a, _b, stores) = two_pools().await;
    // The legacy system: a user agent standing in for another SIP server, answering 200.
    // Its requests come as carol, from the next hop's address, with no credentials.
    let legacy = UserAgent::bind(UaConfig {
        server: Some(a.addr),
        t1: Duration::from_millis(50),
        ..UaConfig::new(uri("carol"))
    })
    .await
    .expect("legacy binds");
    let mut pools = vec![
        PoolRecord {
            name: "a".into(),
            kind: PoolKindRecord::FrontEnd,
            servers: vec![format!("udp://{}", a.addr)],
            next_hop: None,
            pair: None,
            maintenance: false,
        },
        PoolRecord {
            name: "k".into(),
            kind: PoolKindRecord::Legacy,
            servers: Vec::new(),
            next_hop: Some(format!("udp://{}", legacy.local_addr())),
            pair: None,
            maintenance: false,
        },
    ];
    stores.pools.set(pools.clone());
    a.router.pools_changed().await.expect("read");
    assert!(stores
        .directory
        .set_home_pool(&format!("carol@{DOMAIN}"), Some("k")));

    let alice = client(&a, "alice", InviteAnswer::Manual).await;
    alice.register(300).await.expect("alice at a");
    let carol = uri("carol");
    let sending = alice.message(&carol, "text/plain", "to the old system");
    let receiving = legacy.next_incoming_of("MESSAGE", WAIT);
    let (status, got) = tokio::join!(sending, receiving);
    assert_eq!(status.expect("answered"), 200);
    let got = got.expect("the legacy system gets it");
    assert_eq!(got.request().request_uri_str(), Some(uri("carol").as_str()));
    assert_eq!(got.body(), b"to the old system");

    // The legacy system's own requests to Confab's users are not challenged: it
    // authenticated its users itself, and it sends from its next hop's address.
    let alice_uri = uri("alice");
    let sending = legacy.message(&alice_uri, "text/plain", "from the old system");
    let receiving = alice.next_incoming_of("MESSAGE", WAIT);
    let (status, got) = tokio::join!(sending, receiving);
    assert_eq!(status.expect("answered, not challenged"), 200);
    assert_eq!(got.expect("alice gets it").body(), b"from the old system");

    // Without the legacy pool in the topology, the same request is challenged.
    pools.truncate(1);
    stores.pools.set(pools);
    a.router.pools_changed().await.expect("read");
    assert!(matches!(
        legacy.message(&uri("alice"), "text/plain", "again").await,
        Err(confab_ua::UaError::NoCredentials { status: 407 })
    ));
}

/// Users `{prefix}1` … `{prefix}{n}` (password `<name>-pw`) in the directory of `stores`.
fn add_users(stores: &MemoryStores, prefix: &str, n: usize) -> Vec<String> {
    let users: Vec<String> = (1..=n).map(|i| format!("{prefix}{i}")).collect();
    for u in &users {
        stores
            .directory
            .add_user(&format!("{u}@{DOMAIN}"), &format!("{u}-pw"));
    }
    users
}

/// Homes `users` and the deployment's alice, bob and carol on pool `a`.
fn home_on_a(stores: &MemoryStores, users: &[String]) {
    for u in users
        .iter()
        .map(String::as_str)
        .chain(["alice", "bob", "carol"])
    {
        assert!(stores
            .directory
            .set_home_pool(&format!("{u}@{DOMAIN}"), Some("a")));
    }
}

/// Waits until every one of `users` has its registration written behind.
async fn written_behind(stores: &MemoryStores, users: &[String]) {
    let deadline = std::time::Instant::now() + WAIT;
    while users.iter().any(|u| {
        stores
            .registrations
            .get(&format!("{u}@{DOMAIN}"))
            .is_empty()
    }) {
        assert!(std::time::Instant::now() < deadline, "never written behind");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The owner of `user` among the members at `addrs`, as every front-end computes it.
fn owner_of(user: &str, addrs: &[std::net::SocketAddr]) -> usize {
    let keys: Vec<String> = addrs.iter().map(|a| format!("udp://{a}")).collect();
    let aor = format!("{user}@{DOMAIN}");
    let best = confab_server::pools::owner(keys.iter().map(String::as_str), &aor).expect("members");
    keys.iter().position(|k| k == best).expect("one of them")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_members_of_a_pool_share_its_users_and_take_over_from_one_that_stops() {
    let stores = MemoryStores::default();
    // Owners follow from the members' addresses (ephemeral ports): with 8 users, all of them
    // on one member happened about once in 128 runs; with 24, about once in eight million.
    let users = add_users(&stores, "u", 24);
    let m1 = Deployment::start_with(config("a"), stores.clone()).await;
    let m2 = Deployment::start_with(config("a"), stores.clone()).await;
    home_on_a(&stores, &users);
    stores.pools.set(vec![PoolRecord {
        name: "a".into(),
        kind: PoolKindRecord::FrontEnd,
        servers: vec![format!("udp://{}", m1.addr), format!("udp://{}", m2.addr)],
        next_hop: None,
        pair: None,
        maintenance: false,
    }]);
    let addrs = [m1.addr, m2.addr];
    // Each member reads the others' heartbeats every second.
    let deadline = std::time::Instant::now() + WAIT;
    while m1.router.members().len() < 2 || m2.router.members().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the members never saw each other"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let owners: Vec<usize> = users.iter().map(|u| owner_of(u, &addrs)).collect();
    let on_m2 = owners.iter().filter(|&&o| o == 1).count();
    assert!(
        on_m2 > 0 && on_m2 < users.len(),
        "both members own some of the users: {owners:?}"
    );

    // Every client talks to m1; each user is registered at its owner.
    let mut clients = Vec::new();
    for u in &users {
        let ua = client(&m1, u, InviteAnswer::Manual).await;
        ua.register(300).await.expect("registered through m1");
        clients.push(ua);
    }
    assert_eq!(m1.router.stats().registered, users.len() - on_m2);
    assert_eq!(m2.router.stats().registered, on_m2);
    // A watcher on m1 subscribes to a user m2 owns.
    let watched = owners.iter().position(|&o| o == 1).expect("one on m2");
    let watched_user = users[watched].clone();
    allow(&stores, &watched_user, &["alice"], &[]);
    let alice = client(&m1, "alice", InviteAnswer::Manual).await;
    alice.register(300).await.expect("alice registered");
    let mut sub = alice
        .subscribe(&uri(&watched_user), "presence", "application/pidf+xml", 600)
        .await
        .expect("subscribed through m1 at m2");
    sub.next_notify(WAIT).await.expect("first NOTIFY");
    assert_eq!(m2.router.stats().presence.subscriptions, 1);
    // Messages between users owned by different members, sent through either member.
    let (a, b) = (
        owners.iter().position(|&o| o == 0).expect("one on m1"),
        watched,
    );
    let status = clients[a]
        .message(&uri(&users[b]), "text/plain", "m1 to m2")
        .await
        .expect("answered");
    assert_eq!(status, 200);
    let got = clients[b]
        .next_incoming_of("MESSAGE", WAIT)
        .await
        .expect("delivered");
    assert_eq!(got.body(), b"m1 to m2");

    // Everything is in the store once written behind; then m2 stops.
    written_behind(&stores, &users).await;
    let Deployment { server, router, .. } = m2;
    server.stop().await;
    drop(router);

    // m1 takes m2's users over: their bindings (registered through m1, so with m1's Path)
    // and the subscription, whose watcher gets a fresh NOTIFY from m1.
    let deadline = std::time::Instant::now() + WAIT;
    while m1.router.stats().registered < users.len() + 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "m1 never took m2's users over: {:?}",
            m1.router.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(m1.router.members().len(), 1);
    let n = sub.next_notify(WAIT).await.expect("NOTIFY from m1");
    assert_eq!(n.state, SubscriptionState::Active);
    assert_eq!(m1.router.stats().presence.subscriptions, 1);
    for (i, u) in users.iter().enumerate() {
        let status = alice
            .message(&uri(u), "text/plain", "still there?")
            .await
            .expect("answered");
        assert_eq!(status, 200, "{u}");
        let got = clients[i]
            .next_incoming_of("MESSAGE", WAIT)
            .await
            .unwrap_or_else(|e| panic!("{u} not reached after the take-over: {e}"));
        assert_eq!(got.body(), b"still there?");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_joining_a_pool_is_handed_its_share_of_users() {
    let stores = MemoryStores::default();
    let users = add_users(&stores, "j", 12);
    let m1 = Deployment::start_with(config("a"), stores.clone()).await;
    home_on_a(&stores, &users);
    // m1 alone serves everyone.
    let mut clients = Vec::new();
    for u in &users {
        let ua = client(&m1, u, InviteAnswer::Manual).await;
        ua.register(300).await.expect("registered at m1");
        clients.push(ua);
    }
    assert_eq!(m1.router.stats().registered, users.len());
    written_behind(&stores, &users).await;

    // m2 joins: it takes the users it now owns from the store; m1 forgets them.
    let m2 = Deployment::start_with(config("a"), stores.clone()).await;
    let addrs = [m1.addr, m2.addr];
    let on_m2 = users.iter().filter(|u| owner_of(u, &addrs) == 1).count();
    assert!(on_m2 > 0 && on_m2 < users.len(), "both own some");
    let deadline = std::time::Instant::now() + WAIT;
    while m1.router.stats().registered != users.len() - on_m2
        || m2.router.stats().registered != on_m2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "never handed over: m1 {}, m2 {}, expected m2 {on_m2}",
            m1.router.stats().registered,
            m2.router.stats().registered
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing was removed from the store: the hand-over is silent.
    assert!(users.iter().all(|u| !stores
        .registrations
        .get(&format!("{u}@{DOMAIN}"))
        .is_empty()));
    // Every user is reached through either member, each served by its owner.
    let alice = client(&m2, "alice", InviteAnswer::Manual).await;
    alice.register(300).await.expect("alice registered");
    for (i, u) in users.iter().enumerate() {
        let status = alice
            .message(&uri(u), "text/plain", "after the join")
            .await
            .expect("answered");
        assert_eq!(status, 200, "{u}");
        let got = clients[i]
            .next_incoming_of("MESSAGE", WAIT)
            .await
            .unwrap_or_else(|e| panic!("{u} not reached after the join: {e}"));
        assert_eq!(got.body(), b"after the join");
    }
}
