//! Backups at the store's level: a dump is the store at one instant, in a form both backends
//! read and write; a restore writes it back in one transaction, refuses a non-empty target
//! unless told to replace it, and keeps the audit chain verifiable.

use std::time::Duration;

use confab_store::{
    Cell, ChangeClass, Dump, IfContactExists, NewChange, NewContact, NewOfflineMessage,
    PresenceLevel, RestoreInto, Role, Store, Watcher,
};

use super::{add, addr, cred, Fixture};

/// Fills `store` (with its defaults) with some of everything a backup holds.
pub async fn populate(store: &Store) {
    for user in ["alice@example.com", "bob@example.com", "carol@example.com"] {
        add(store, user).await;
    }
    let alice = addr("alice@example.com");
    store
        .set_credentials(&alice, &[cred("example.com", "MD5", 'a')])
        .await
        .expect("credentials");
    store
        .add_contact_group(&alice, "Team")
        .await
        .expect("group");
    store
        .add_contact(
            &alice,
            &NewContact {
                address: addr("bob@example.com"),
                display_name: Some("Bob ✓".into()),
                group: Some("Team".into()),
            },
            IfContactExists::Refuse,
        )
        .await
        .expect("contact");
    store
        .set_presence_rule(
            &alice,
            &Watcher::parse("@example.org").expect("watcher"),
            PresenceLevel::Blocked,
        )
        .await
        .expect("rule");
    store
        .store_offline_message(
            &NewOfflineMessage {
                to_user: addr("bob@example.com"),
                from_uri: "sip:alice@example.com".into(),
                content_type: "application/octet-stream".into(),
                body: vec![0, 159, 146, 150, 255],
                received_at: 1_900_000_000,
            },
            10,
            Duration::from_secs(u32::MAX.into()),
        )
        .await
        .expect("offline");
    store
        .add_administrator("olga", &[Role::Approver], &"5".repeat(64), Some("admin"))
        .await
        .expect("administrator");
    let first = store
        .request_change(&NewChange {
            class: ChangeClass::Standard,
            title: "first".into(),
            reason: "r".into(),
            impact: None,
            requested_by: "olga".into(),
            operation: "{\"op\":\"user.add\"}".into(),
            rolls_back: None,
        })
        .await
        .expect("change");
    store
        .record_implemented(first.id, "olga", None, Some("{}"), None, None)
        .await
        .expect("implemented");
    let undo = store
        .request_change(&NewChange {
            class: ChangeClass::Standard,
            title: "undo".into(),
            reason: "r".into(),
            impact: None,
            requested_by: "olga".into(),
            operation: "{\"op\":\"user.disable\"}".into(),
            rolls_back: Some(first.id),
        })
        .await
        .expect("change");
    store
        .record_rolled_back(first.id, undo.id, "olga")
        .await
        .expect("rolled back");
    store
        .block_source("192.0.2.0/24", "scanner", "olga")
        .await
        .expect("block");
}

/// `dump` without the audit log (a restore appends its own entry to it).
fn but_audit(dump: &Dump) -> Vec<(&'static str, Vec<Vec<Cell>>)> {
    dump.tables
        .iter()
        .filter(|t| !t.spec.name.starts_with("audit"))
        .map(|t| (t.spec.name, t.rows.clone()))
        .collect()
}

/// Restores `dump` into the empty store `to` and checks that it reads back the same, with
/// the audit log continued by the restore's entry and still verifying.
pub async fn restores_the_same(dump: &Dump, to: &Store) {
    assert!(to.is_empty_for_restore().await.expect("empty"));
    to.restore(dump, RestoreInto::Empty, Some(("tester", "{}")))
        .await
        .expect("restored");
    let again = to.dump().await.expect("dump");
    assert_eq!(but_audit(&again), but_audit(dump));
    let before = dump.table("audit_log").expect("audit").rows.len();
    let after = again.table("audit_log").expect("audit").rows.len();
    assert_eq!(after, before + 1, "the restore's own entry");
    assert_eq!(
        again.table("audit_log").expect("audit").rows[..before],
        dump.table("audit_log").expect("audit").rows[..]
    );
    let verdict = to.verify_audit().await.expect("verify");
    assert!(verdict.first_bad.is_none(), "{verdict:?}");
    // New rows get numbers after the restored ones.
    add(to, "dave@example.com").await;
    let users = to.dump().await.expect("dump");
    let ids: Vec<i64> = users
        .table("users")
        .expect("users")
        .rows
        .iter()
        .map(|r| match r[0] {
            Cell::Int(id) => id,
            _ => panic!("an id"),
        })
        .collect();
    let mut sorted = ids.clone();
    sorted.dedup();
    assert_eq!(ids.len(), sorted.len(), "ids unique: {ids:?}");
}

pub async fn backup_round_trip_and_refusals(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    populate(&store).await;
    let dump = store.dump().await.expect("dump");
    assert_eq!(dump.table("users").expect("users").rows.len(), 3);
    assert_eq!(dump.table("change_records").expect("changes").rows.len(), 2);
    // Dumps of one state are equal.
    assert_eq!(store.dump().await.expect("dump"), dump);

    // Not empty: refused, nothing changed.
    let head = store.last_change_seq().await.expect("head");
    let e = store
        .restore(&dump, RestoreInto::Empty, Some(("tester", "{}")))
        .await
        .expect_err("refused");
    assert!(e.to_string().contains("--force"), "{e}");
    // A dump of another schema version: refused.
    let mut newer = dump.clone();
    newer.schema_version += 1;
    let e = store
        .restore(&newer, RestoreInto::Replace, Some(("tester", "{}")))
        .await
        .expect_err("refused");
    assert!(e.to_string().contains("upgrade confab first"), "{e}");
    // A row whose value has the wrong type: refused, nothing changed (one transaction).
    let mut bad = dump.clone();
    let users = bad
        .tables
        .iter_mut()
        .find(|t| t.spec.name == "users")
        .expect("users");
    users.rows[2][5] = Cell::Text("yes".into());
    assert!(store
        .restore(&bad, RestoreInto::Replace, Some(("tester", "{}")))
        .await
        .is_err());
    assert_eq!(store.last_change_seq().await.expect("head"), head);
    assert_eq!(
        but_audit(&store.dump().await.expect("dump")),
        but_audit(&dump)
    );

    // Replace: later changes go, the dump's state comes back.
    add(&store, "eve@example.com").await;
    store
        .remove_user(&addr("alice@example.com"))
        .await
        .expect("removed");
    store
        .restore(&dump, RestoreInto::Replace, Some(("tester", "{}")))
        .await
        .expect("replaced");
    let again = store.dump().await.expect("dump");
    assert_eq!(but_audit(&again), but_audit(&dump));
    assert!(store
        .verify_audit()
        .await
        .expect("verify")
        .first_bad
        .is_none());
    let feed = store.changes_since(head, 1000).await.expect("feed");
    assert_eq!(
        feed.last().map(|c| c.kind.as_str().to_owned()),
        Some("store.restored".to_owned())
    );
}
