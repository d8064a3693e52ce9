//! The presence write-behind.

use confab_store::{PresenceWrites, StoredPublication, StoredSubscription};

use super::{add, addr, Fixture};

fn publication(user: &str, etag: &str, body: &str) -> StoredPublication {
    StoredPublication {
        user: addr(user),
        etag: etag.into(),
        expires_at: 2_000_000_000,
        content_type: "application/pidf+xml".into(),
        body: body.as_bytes().to_vec(),
    }
}

fn subscription(id: &str, presentity: &str, watcher: &str) -> StoredSubscription {
    StoredSubscription {
        id: id.into(),
        presentity: addr(presentity),
        event: "presence".into(),
        watcher: watcher.into(),
        expires_at: 2_000_000_000,
        dialog: "line one\nline two\n".into(),
    }
}

pub async fn presence_write_read_replace(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    add(&store, "alice@example.com").await;
    add(&store, "bob@example.com").await;
    let first = PresenceWrites {
        publications: vec![
            publication("alice@example.com", "e1", "<presence/>"),
            publication("alice@example.com", "e2", "<presence>2</presence>"),
            // Nobody: skipped and named, the rest written.
            publication("ghost@example.com", "e9", "<presence/>"),
        ],
        subscriptions: vec![
            subscription("d1", "alice@example.com", "bob@example.com"),
            subscription("d2", "bob@example.com", "alice@example.com"),
        ],
        ..PresenceWrites::default()
    };
    let unknown = store.write_presence(&first).await.expect("write");
    assert_eq!(unknown, vec![addr("ghost@example.com")]);
    let state = store.presence_state().await.expect("read");
    assert_eq!(state.publications, first.publications[..2].to_vec());
    assert_eq!(state.subscriptions, first.subscriptions);

    // Replace one, remove one of each, in one batch; deletions first, so a row removed and
    // written again in one batch stays.
    let mut changed = subscription("d1", "alice@example.com", "bob@example.com");
    changed.expires_at = 2_000_000_100;
    changed.dialog = "another\n".into();
    let second = PresenceWrites {
        publications: vec![publication(
            "alice@example.com",
            "e2",
            "<presence>3</presence>",
        )],
        removed_publications: vec![
            (addr("alice@example.com"), "e1".into()),
            (addr("alice@example.com"), "e2".into()),
        ],
        subscriptions: vec![changed.clone()],
        removed_subscriptions: vec!["d2".into(), "never-there".into()],
    };
    assert!(store
        .write_presence(&second)
        .await
        .expect("write")
        .is_empty());
    let state = store.presence_state().await.expect("read");
    assert_eq!(state.publications, second.publications);
    assert_eq!(state.subscriptions, vec![changed]);

    // Bad input changes nothing.
    let bad = PresenceWrites {
        publications: vec![publication("alice@example.com", "", "<presence/>")],
        removed_subscriptions: vec!["d1".into()],
        ..PresenceWrites::default()
    };
    assert!(store.write_presence(&bad).await.is_err());
    assert_eq!(store.presence_state().await.expect("read"), state);
    assert!(store
        .write_presence(&PresenceWrites::default())
        .await
        .expect("nothing")
        .is_empty());
}

pub async fn presence_goes_with_its_user(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    add(&store, "alice@example.com").await;
    add(&store, "bob@example.com").await;
    let writes = PresenceWrites {
        publications: vec![
            publication("alice@example.com", "e1", "a"),
            publication("bob@example.com", "e1", "b"),
        ],
        subscriptions: vec![
            subscription("d1", "alice@example.com", "bob@example.com"),
            subscription("d2", "bob@example.com", "alice@example.com"),
        ],
        ..PresenceWrites::default()
    };
    store.write_presence(&writes).await.expect("write");
    store
        .remove_user(&addr("alice@example.com"))
        .await
        .expect("remove alice");
    let state = store.presence_state().await.expect("read");
    assert_eq!(state.publications, vec![writes.publications[1].clone()]);
    assert_eq!(state.subscriptions, vec![writes.subscriptions[1].clone()]);
}
