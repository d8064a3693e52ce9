//! The change feed, and several handles on one store.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use confab_store::{ChangeKind, Pool, PoolKind, StoreError, UserFilter};

use super::users::registration;
use super::{add, addr, cred, Fixture};

pub async fn feed_every_mutation(fx: &Fixture) {
    let store = fx.open().await;
    assert_eq!(store.last_change_seq().await.ok(), Some(0));
    store
        .ensure_defaults("example.com")
        .await
        .expect("defaults");
    store.add_domain("b.example").await.expect("domain");
    let pool = Pool {
        name: "legacy".into(),
        kind: PoolKind::Legacy,
        site: None,
        next_hop: Some("sip:127.0.0.1:5070".into()),
        servers: Vec::new(),
        pair: None,
    };
    store.add_pool(&pool).await.expect("pool");
    add(&store, "nia@example.com").await;
    let nia = addr("nia@example.com");
    store
        .set_credentials(&nia, &[cred("example.com", "MD5", '1')])
        .await
        .expect("creds");
    store.set_enabled(&nia, false).await.expect("disable");
    store
        .set_enabled(&nia, false)
        .await
        .expect("no-op: no entry");
    store.set_enabled(&nia, true).await.expect("enable");
    // Failed mutations and hot state leave no entries.
    assert!(store.add_domain("b.example").await.is_err());
    assert!(matches!(
        store.remove_pool("default").await,
        Err(StoreError::Conflict { .. })
    ));
    store
        .upsert_registration(&registration(&nia, "sip:n@h", 9))
        .await
        .expect("reg");
    store.remove_user(&nia).await.expect("remove");
    store.remove_pool("legacy").await.expect("remove pool");
    store
        .remove_domain("b.example")
        .await
        .expect("remove domain");

    let feed = store.changes_since(0, 100).await.expect("feed");
    let got: Vec<(i64, String, String)> = feed
        .iter()
        .map(|c| (c.seq, c.kind.to_string(), c.subject.clone()))
        .collect();
    let want = [
        ("domain.added", "example.com"),
        ("pool.added", "default"),
        ("domain.added", "b.example"),
        ("pool.added", "legacy"),
        ("user.added", "nia@example.com"),
        ("user.credentials", "nia@example.com"),
        ("user.disabled", "nia@example.com"),
        ("user.enabled", "nia@example.com"),
        ("user.removed", "nia@example.com"),
        ("pool.removed", "legacy"),
        ("domain.removed", "b.example"),
    ];
    let want: Vec<(i64, String, String)> = want
        .iter()
        .enumerate()
        .map(|(i, (k, s))| (i as i64 + 1, k.to_string(), s.to_string()))
        .collect();
    assert_eq!(got, want);
    assert!(feed.iter().all(|c| c.at > 0));
    assert_eq!(feed[6].kind, ChangeKind::UserDisabled);
    assert_eq!(store.last_change_seq().await.ok(), Some(11));

    // Reading from a position, with a limit, and pruning what every reader has seen.
    let page = store.changes_since(4, 3).await.expect("page");
    assert_eq!(page.iter().map(|c| c.seq).collect::<Vec<_>>(), [5, 6, 7]);
    assert_eq!(store.prune_changes(10).await.ok(), Some(10));
    let rest = store.changes_since(0, 100).await.expect("rest");
    assert_eq!(rest.iter().map(|c| c.seq).collect::<Vec<_>>(), [11]);
    numbering_continues_after_pruning(&store).await;
}

async fn numbering_continues_after_pruning(store: &confab_store::Store) {
    store.add_domain("c.example").await.expect("domain");
    let last = store.changes_since(11, 10).await.expect("feed");
    assert_eq!(last.iter().map(|c| c.seq).collect::<Vec<_>>(), [12]);
}

pub async fn feed_concurrent_writers(fx: &Fixture) {
    // Two handles add users at the same time: the feed numbers every addition once, without
    // gaps, in commit order.
    let a = fx.open_with_defaults().await;
    let b = fx.open().await;
    let start = a.last_change_seq().await.expect("seq");
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { add(&store, &format!("u{i}@example.com")).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let feed = b.changes_since(start, 100).await.expect("feed");
    let seqs: Vec<i64> = feed.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, (start + 1..=start + 24).collect::<Vec<_>>());
    let subjects: HashSet<&str> = feed.iter().map(|c| c.subject.as_str()).collect();
    assert_eq!(subjects.len(), 24);
    assert!(feed.iter().all(|c| c.kind == ChangeKind::UserAdded));
    let users = a.list_users(&UserFilter::default()).await.expect("list");
    assert_eq!(users.len(), 24);
}

pub async fn feed_watcher_within_a_second(fx: &Fixture) {
    // A front-end follows the feed; an operator disables a user from another process.
    let front_end = fx.open_with_defaults().await;
    let cli = fx.open().await;
    add(&cli, "olga@example.com").await;
    let mut watcher = front_end
        .watch_changes(front_end.last_change_seq().await.expect("seq"))
        .await;
    for round in 0..3 {
        let cli = cli.clone();
        let started = Instant::now();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            cli.set_enabled(&addr("olga@example.com"), round % 2 == 1)
                .await
                .expect("set_enabled");
            Instant::now()
        });
        let batch = tokio::time::timeout(Duration::from_secs(5), watcher.next())
            .await
            .expect("a change within 5 s")
            .expect("watch");
        let committed = writer.await.expect("writer");
        let seen = Instant::now();
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].subject, "olga@example.com");
        let latency = seen.saturating_duration_since(committed);
        assert!(
            latency < Duration::from_secs(1),
            "seen {latency:?} after commit ({:?} since start)",
            started.elapsed()
        );
        assert_eq!(watcher.position(), batch[0].seq);
    }
}

pub async fn two_handles_see_each_other(fx: &Fixture) {
    let a = fx.open_with_defaults().await;
    let b = fx.open().await;
    add(&a, "pat@example.com").await;
    let pat = addr("pat@example.com");
    assert!(b.get_user(&pat).await.expect("b sees a's user").enabled);
    b.set_enabled(&pat, false).await.expect("disable on b");
    assert!(!a.get_user(&pat).await.expect("a sees b's change").enabled);
    a.upsert_registration(&registration(&pat, "sip:pat@h", 50))
        .await
        .expect("reg on a");
    assert_eq!(
        b.registrations_of(&pat).await.map(|r| r.len()).ok(),
        Some(1)
    );
    b.set_credentials(&pat, &[cred("example.com", "SHA-256", 'e')])
        .await
        .expect("creds");
    assert_eq!(
        a.credentials(&pat, "example.com")
            .await
            .map(|c| c.len())
            .ok(),
        Some(1)
    );
    assert_eq!(
        a.last_change_seq().await.ok(),
        b.last_change_seq().await.ok()
    );
    b.remove_user(&pat).await.expect("remove on b");
    assert!(a.find_user(&pat).await.expect("find").is_none());
    assert!(a.all_registrations().await.expect("regs").is_empty());
}
