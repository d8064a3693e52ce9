//! The registrar, the offline-message path and restart survival over the real management
//! store (SQLite in a temporary data directory) through `StoreBacked`: users and HA1
//! credentials come from the store, bindings are written behind to it and loaded from it
//! after a restart, and an offline message is kept in it until the client's 2xx.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ua::*;
use common::{TestServer, WAIT};
use confab_server::location::{ContactUpdate, Location, Update};
use confab_server::store_backed::StoreBacked;
use confab_server::{RegistrationStore, Router, Source, Stores, Transport};
use confab_sip::digest::{ha1, Algorithm};
use confab_store::{Address, Credential, NewUser, Store, StoreLocation};

async fn open(dir: &std::path::Path) -> Store {
    let store = Store::open(&StoreLocation::in_data_dir(dir))
        .await
        .expect("store opens");
    store.ensure_defaults(DOMAIN).await.expect("defaults");
    store
}

async fn add_user(store: &Store, name: &str) {
    let address = Address::parse(&format!("{name}@{DOMAIN}")).expect("address");
    store
        .add_user(&NewUser {
            address: address.clone(),
            display_name: None,
            pool: "default".into(),
            enabled: true,
        })
        .await
        .expect("user added");
    let password = format!("{name}-pw");
    let creds: Vec<Credential> = [Algorithm::Md5, Algorithm::Sha256]
        .into_iter()
        .map(|alg| Credential {
            realm: DOMAIN.into(),
            algorithm: alg.as_str().into(),
            ha1: ha1(alg, name, DOMAIN, &password),
        })
        .collect();
    store
        .set_credentials(&address, &creds)
        .await
        .expect("credentials set");
}

async fn start(store: &Store) -> (TestServer, Arc<Router>) {
    let backed = Arc::new(StoreBacked::new(store.clone()));
    let stores = Stores {
        directory: backed.clone(),
        registrations: backed.clone(),
        offline: backed.clone(),
        presence: backed.clone(),
        pools: backed,
    };
    let config = server_config();
    let router = Router::new(&config, service_config(), stores).expect("router");
    let server = TestServer::start_router(config, Arc::clone(&router)).await;
    (server, router)
}

async fn eventually_async<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_message_offline_and_restart_over_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path()).await;
    add_user(&store, "alice").await;
    add_user(&store, "carol").await;
    let alice_addr = Address::parse("alice@example.com").expect("address");
    let carol_addr = Address::parse("carol@example.com").expect("address");

    let (server, router) = start(&store).await;
    let addr = server.addr(Transport::Udp);

    // Credentials from the store: the right password registers, a wrong one does not.
    let mut alice = Ua::new(addr, "alice", "alice-pw").await;
    assert_eq!(alice.register(300).await.status(), Some(200));
    let mut wrong = Ua::new(addr, "carol", "not-carol").await;
    assert_eq!(wrong.register(300).await.status(), Some(401));
    assert_eq!(router.stats().registered, 1);
    eventually_async(|| {
        let store = store.clone();
        let a = alice_addr.clone();
        async move { store.registrations_of(&a).await.map(|r| r.len()).ok() == Some(1) }
    })
    .await;

    // carol is offline: the message is kept in the store.
    let uri = format!("sip:carol@{DOMAIN}");
    alice
        .send_authenticated(
            "MESSAGE",
            &uri,
            &format!("<{uri}>"),
            "im-1",
            1,
            &[],
            Some(("text/plain", "kept in SQLite")),
        )
        .await;
    let accepted = alice.response("im-1", "MESSAGE", false).await;
    assert_eq!(accepted.status(), Some(202), "{accepted:?}");
    assert_eq!(store.offline_message_count(&carol_addr).await.ok(), Some(1));

    // Restart: bindings come back from the store.
    server.stop().await;
    let (server, router) = start(&store).await;
    assert_eq!(
        router.stats().registered,
        1,
        "alice's binding survived the restart"
    );
    let addr = server.addr(Transport::Udp);

    // carol signs in: the message is delivered, and deleted only after her 2xx.
    let mut carol = Ua::new(addr, "carol", "carol-pw").await;
    assert_eq!(carol.register(300).await.status(), Some(200));
    let msg = carol.request_in("MESSAGE", WAIT).await.expect("delivered");
    assert_eq!(msg.body(), b"kept in SQLite");
    assert_eq!(store.offline_message_count(&carol_addr).await.ok(), Some(1));
    carol.answer(&msg, 200, "OK", "carol-im").await;
    eventually_async(|| {
        let store = store.clone();
        let c = carol_addr.clone();
        async move { store.offline_message_count(&c).await.ok() == Some(0) }
    })
    .await;
    server.stop().await;
}

fn register(aor: &str, contacts: &[(&str, u32)], cseq: u32) -> Update {
    Update {
        aor: aor.to_owned(),
        call_id: format!("call-{aor}"),
        cseq,
        remove_all: false,
        contacts: contacts
            .iter()
            .map(|(contact, expires)| ContactUpdate {
                contact: (*contact).to_owned(),
                expires: *expires,
                q: None,
            })
            .collect(),
        path: vec!["<sip:edge.example.com;lr>".to_owned()],
        flow: Source {
            transport: Transport::Tcp,
            peer: "192.0.2.7:40000".parse().expect("peer"),
            local: "192.0.2.1:5060".parse().expect("local"),
        },
        user_agent: Some("Phone/1.0".to_owned()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_location_service_writes_batches_through_the_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path()).await;
    for name in ["alice", "bob", "carol"] {
        add_user(&store, name).await;
    }
    let of = |name: &str| Address::parse(&format!("{name}@{DOMAIN}")).expect("address");
    let backed = StoreBacked::new(store.clone());
    let location = Location::new(8);
    let now = Instant::now();
    let two = [
        ("sip:alice@192.0.2.7:40000", 600),
        ("sip:alice@[2001:db8::7]:5060", 600),
    ];
    location
        .update(register("alice@example.com", &two, 1), now)
        .expect("alice");
    for aor in [
        "bob@example.com",
        "carol@example.com",
        "ghost@example.com",
        "no address",
    ] {
        location
            .update(register(aor, &[("sip:x@192.0.2.9", 600)], 1), now)
            .expect("registered");
    }
    assert!(
        location.flush(&backed).await,
        "unknown users do not fail a batch"
    );
    let contacts = |regs: Vec<confab_store::Registration>| -> Vec<String> {
        regs.into_iter().map(|r| r.contact).collect()
    };
    assert_eq!(
        store
            .registrations_of(&of("alice"))
            .await
            .map(contacts)
            .ok(),
        Some(vec![two[0].0.to_owned(), two[1].0.to_owned()])
    );
    assert_eq!(
        store.all_registrations().await.map(|r| r.len()).ok(),
        Some(4)
    );

    // alice drops one contact, bob is signed out, carol unregisters with `*`.
    location
        .update(register("alice@example.com", &[(two[1].0, 0)], 2), now)
        .expect("alice");
    assert_eq!(location.remove("bob@example.com"), 1);
    let mut all = register("carol@example.com", &[], 2);
    all.remove_all = true;
    location.update(all, now).expect("carol");
    assert!(location.flush(&backed).await);
    let stored = store.all_registrations().await.expect("all");
    assert_eq!(contacts(stored.clone()), [two[0].0]);
    assert_eq!(stored[0].path.as_deref(), Some("<sip:edge.example.com;lr>"));
    assert_eq!(stored[0].transport, "tcp");

    // A restarted front-end gets back what was written.
    let again = Location::new(8);
    let loaded = backed.load().await.expect("load");
    assert_eq!(again.load(loaded, Instant::now()), 1);
    let b = again.lookup("alice@example.com", Instant::now());
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].contact(), two[0].0);
    assert_eq!(b[0].flow.transport, Transport::Tcp);
    assert_eq!(b[0].path(), ["<sip:edge.example.com;lr>"]);
    assert!(b[0].remaining(Instant::now()) > 590);
}
