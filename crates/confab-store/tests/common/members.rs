//! The members of the pools: heartbeats by the store's clock, leaving, and rows that go with
//! their pool.

use std::time::Duration;

use confab_store::{Pool, PoolKind, StoreError, MEMBER_DEAD_AFTER};

use super::Fixture;

pub async fn pool_members_heartbeat_and_leave(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    store
        .add_pool(&Pool {
            name: "b".into(),
            kind: PoolKind::Confab,
            site: None,
            next_hop: None,
            servers: Vec::new(),
            pair: None,
        })
        .await
        .expect("pool b");
    match store
        .member_heartbeat("nowhere", "udp://127.0.0.1:5060")
        .await
    {
        Err(StoreError::NotFound {
            what: "pool", name, ..
        }) => assert_eq!(name, "nowhere"),
        other => panic!("an unknown pool is refused: {other:?}"),
    }
    assert!(
        store.member_heartbeat("default", "").await.is_err(),
        "an empty address"
    );
    assert!(
        store.pool_members().await.expect("list").is_empty(),
        "nothing written"
    );

    for (pool, address) in [
        ("default", "udp://127.0.0.1:5061"),
        ("default", "udp://127.0.0.1:5060"),
        ("b", "udp://127.0.0.1:5070"),
    ] {
        store
            .member_heartbeat(pool, address)
            .await
            .expect("heartbeat");
    }
    let members = store.pool_members().await.expect("list");
    let names: Vec<(&str, &str)> = members
        .iter()
        .map(|m| (m.pool.as_str(), m.address.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("b", "udp://127.0.0.1:5070"),
            ("default", "udp://127.0.0.1:5060"),
            ("default", "udp://127.0.0.1:5061"),
        ]
    );
    for m in &members {
        assert!(m.is_up(), "{m:?}");
        assert!((0..2000).contains(&m.heartbeat_age_ms), "{m:?}");
        assert!(m.started_at > 1_700_000_000_000, "Unix milliseconds: {m:?}");
    }

    // A later heartbeat moves the heartbeat, not the start.
    tokio::time::sleep(Duration::from_millis(120)).await;
    let aged = store.pool_members().await.expect("list");
    let first = aged
        .iter()
        .find(|m| m.pool == "b")
        .expect("b's member")
        .clone();
    assert!(first.heartbeat_age_ms >= 100, "{first:?}");
    store
        .member_heartbeat("b", "udp://127.0.0.1:5070")
        .await
        .expect("heartbeat again");
    let again = store.pool_members().await.expect("list");
    let b = again.iter().find(|m| m.pool == "b").expect("b's member");
    assert_eq!(b.started_at, first.started_at);
    assert!(
        b.heartbeat_age_ms < first.heartbeat_age_ms,
        "{b:?} after {first:?}"
    );

    // A member that stopped writing is down once its heartbeat is old enough.
    let old = i64::try_from(MEMBER_DEAD_AFTER.as_millis()).expect("ms") + 1000;
    fx.raw(&format!(
        "UPDATE pool_members SET heartbeat_at = heartbeat_at - {old} \
         WHERE address = 'udp://127.0.0.1:5061'"
    ))
    .await;
    let members = store.pool_members().await.expect("list");
    let down = members
        .iter()
        .find(|m| m.address == "udp://127.0.0.1:5061")
        .expect("still listed");
    assert!(!down.is_up(), "{down:?}");

    // Leaving removes the row; leaving twice is not an error.
    store
        .member_leave("default", "udp://127.0.0.1:5060")
        .await
        .expect("leave");
    store
        .member_leave("default", "udp://127.0.0.1:5060")
        .await
        .expect("leave again");
    assert_eq!(store.pool_members().await.expect("list").len(), 2);
    // Rows go with their pool.
    store.remove_pool("b").await.expect("remove b");
    let left: Vec<String> = store
        .pool_members()
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.address)
        .collect();
    assert_eq!(left, ["udp://127.0.0.1:5061"]);
}
