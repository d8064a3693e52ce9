//! The registrar, the offline-message path and restart survival over the real management
//! store (SQLite in a temporary data directory) through `StoreBacked`: users and HA1
//! credentials come from the store, bindings are written behind to it and loaded from it
//! after a restart, and an offline message is kept in it until the client's 2xx.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::ua::*;
use common::{TestServer, WAIT};
use confab_server::store_backed::StoreBacked;
use confab_server::{Router, Stores, Transport};
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
        offline: backed,
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
