//! Opening, migrations, defaults, domains and pools.

use confab_store::{Pool, PoolKind, Store, StoreError, UserFilter, DEFAULT_POOL, SCHEMA_VERSION};

use super::{add, Fixture};

pub async fn migrations_idempotent(fx: &Fixture) {
    let store = fx.open().await;
    assert_eq!(store.schema_version().await.ok(), Some(SCHEMA_VERSION));
    store
        .ensure_defaults("example.com")
        .await
        .expect("defaults");
    add(&store, "alice@example.com").await;
    store.close().await;
    // Opening again applies nothing and keeps the data.
    for _ in 0..2 {
        let again = fx.open().await;
        assert_eq!(again.schema_version().await.ok(), Some(SCHEMA_VERSION));
        assert_eq!(
            again
                .list_users(&UserFilter::default())
                .await
                .map(|u| u.len())
                .ok(),
            Some(1)
        );
        again.close().await;
    }
}

pub async fn concurrent_open(fx: &Fixture) {
    // Several processes starting at once on a store nobody has created yet: they take turns
    // at migrating, and every one ends up with a usable store.
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let location = fx.location.clone();
            tokio::spawn(async move { Store::open(&location).await })
        })
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        match open.await.expect("task") {
            Ok(store) => stores.push(store),
            Err(e) => panic!("concurrent open failed: {e}"),
        }
    }
    for store in &stores {
        assert_eq!(store.schema_version().await.ok(), Some(SCHEMA_VERSION));
    }
    // And they all create the defaults at once: exactly one domain and one pool result.
    let tasks: Vec<_> = stores
        .iter()
        .cloned()
        .map(|s| tokio::spawn(async move { s.ensure_defaults("example.com").await }))
        .collect();
    let mut created = Vec::new();
    for task in tasks {
        created.push(task.await.expect("task").expect("defaults"));
    }
    assert_eq!(created.iter().filter(|d| d.domain.is_some()).count(), 1);
    assert_eq!(created.iter().filter(|d| d.pool.is_some()).count(), 1);
    assert_eq!(stores[0].domains().await.map(|d| d.len()).ok(), Some(1));
    assert_eq!(stores[0].pools().await.map(|p| p.len()).ok(), Some(1));
}

pub async fn newer_schema_refused(fx: &Fixture) {
    fx.open().await.close().await;
    fx.raw("INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)")
        .await;
    match Store::open(&fx.location).await {
        Err(StoreError::Migration { message }) => {
            assert!(
                message.contains("999") && message.contains("upgrade confab"),
                "{message}"
            )
        }
        other => panic!("expected a migration error, got {other:?}"),
    }
}

pub async fn reopen_keeps_data(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    add(&store, "bob@example.com").await;
    store.close().await;
    let store = fx.open().await;
    let defaults = store
        .ensure_defaults("other.example")
        .await
        .expect("defaults");
    assert!(!defaults.created_any(), "{defaults:?}");
    assert!(store
        .find_user(&super::addr("bob@example.com"))
        .await
        .expect("find")
        .is_some());
}

pub async fn defaults(fx: &Fixture) {
    let store = fx.open().await;
    let created = store
        .ensure_defaults("Example.COM")
        .await
        .expect("defaults");
    assert_eq!(created.domain.as_deref(), Some("example.com"));
    assert_eq!(created.pool.as_deref(), Some(DEFAULT_POOL));
    let again = store.ensure_defaults("example.com").await.expect("again");
    assert!(!again.created_any());
    let pools = store.pools().await.expect("pools");
    assert_eq!(pools.len(), 1);
    assert_eq!(pools[0].kind, PoolKind::Confab);
    assert_eq!(pools[0].name, DEFAULT_POOL);
    let domains = store.domains().await.expect("domains");
    assert_eq!(
        domains.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        ["example.com"]
    );
    assert!(matches!(
        store.ensure_defaults("not a domain").await,
        Err(StoreError::Invalid { .. })
    ));
}

pub async fn domains_and_pools(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    store
        .add_domain("Second.Example")
        .await
        .expect("add domain");
    assert!(matches!(
        store.add_domain("second.example").await,
        Err(StoreError::AlreadyExists { .. })
    ));
    let legacy = Pool {
        name: "kamailio".into(),
        kind: PoolKind::Legacy,
        site: Some("paris".into()),
        next_hop: Some("sip:127.0.0.1:5070".into()),
        servers: Vec::new(),
        pair: None,
    };
    store.add_pool(&legacy).await.expect("add pool");
    assert_eq!(
        store.get_pool("kamailio").await.ok().flatten(),
        Some(legacy.clone())
    );
    assert!(matches!(
        store.add_pool(&legacy).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    let hopless = Pool {
        next_hop: None,
        name: "old".into(),
        ..legacy.clone()
    };
    let err = store.add_pool(&hopless).await.err().map(|e| e.to_string());
    assert!(
        err.as_deref().is_some_and(|e| e.contains("next hop")),
        "{err:?}"
    );
    let bad_name = Pool {
        name: "-bad name".into(),
        ..legacy.clone()
    };
    assert!(matches!(
        store.add_pool(&bad_name).await,
        Err(StoreError::Invalid { .. })
    ));

    // Neither a pool nor a domain with users can go; empty ones can.
    add(&store, "carol@second.example").await;
    let err = store
        .remove_pool(DEFAULT_POOL)
        .await
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref().is_some_and(|e| e.contains("move them")),
        "{err:?}"
    );
    assert!(matches!(
        store.remove_domain("SECOND.example").await,
        Err(StoreError::Conflict { .. })
    ));
    store
        .remove_pool("kamailio")
        .await
        .expect("remove empty pool");
    assert!(matches!(
        store.remove_pool("kamailio").await,
        Err(StoreError::NotFound { .. })
    ));
    store
        .remove_user(&super::addr("carol@second.example"))
        .await
        .expect("remove user");
    store
        .remove_domain("second.example")
        .await
        .expect("remove empty domain");
    assert_eq!(store.domains().await.map(|d| d.len()).ok(), Some(1));
    assert_eq!(store.pools().await.map(|p| p.len()).ok(), Some(1));
}

/// A migration's record: stored once per legacy pool, written only by who read the current
/// revision, every write in the audit log.
pub async fn migrations_written_by_revision(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    assert!(store.migrations().await.expect("none").is_empty());
    let first = store
        .add_migration("kamailio", "kamailio", "{\"p\":1}", "plan", "{}", "admin")
        .await
        .expect("added");
    assert_eq!(first.revision, 1);
    assert!(matches!(
        store
            .add_migration("kamailio", "kamailio", "{}", "plan", "{}", "admin")
            .await,
        Err(StoreError::AlreadyExists { .. })
    ));
    let mut next = first.clone();
    next.phase = "prepare".into();
    next.record = "{\"done\":[]}".into();
    let second = store
        .update_migration(&next, "admin", "migration.advance", "{}")
        .await
        .expect("updated");
    assert_eq!(second.revision, 2);
    // A writer that read revision 1 is refused; nothing changes.
    let mut stale = first.clone();
    stale.phase = "merge".into();
    assert!(matches!(
        store
            .update_migration(&stale, "other", "migration.advance", "{}")
            .await,
        Err(StoreError::Conflict { .. })
    ));
    let now = store
        .migration("kamailio")
        .await
        .expect("read")
        .expect("one");
    assert_eq!((now.phase.as_str(), now.revision), ("prepare", 2));
    assert_eq!(now.plan, "{\"p\":1}");
    let audit = store.audit_entries(0, 1000).await.expect("audit");
    assert!(audit.iter().any(|e| e.action == "migration.plan"));
    assert!(audit.iter().any(|e| e.action == "migration.advance"));
    assert!(store.migration("other").await.expect("read").is_none());
    store.close().await;
}

/// Users per pool over time: a sample when a count changes, none when it does not; the
/// history since an instant starts from each pool's count then.
pub async fn pool_usage_sampled_when_it_changes(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    assert_eq!(store.sample_pool_usage().await.expect("sample"), 1);
    assert_eq!(
        store.sample_pool_usage().await.expect("again"),
        0,
        "unchanged"
    );
    add(&store, "alice@example.com").await;
    // Another second: a new sample, not an update of the first.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(store.sample_pool_usage().await.expect("changed"), 1);
    let all = store.pool_usage_history(0).await.expect("history");
    assert_eq!(
        all.iter().map(|s| s.users).collect::<Vec<_>>(),
        vec![0, 1],
        "{all:?}"
    );
    let later = store
        .pool_usage_history(all[1].at + 1)
        .await
        .expect("history");
    assert_eq!(later.len(), 1, "the count at the start: {later:?}");
    assert_eq!(later[0].users, 1);
    store.close().await;
}
