//! Change control in the store: administrators and the rule that one admin stays, change
//! records through their states (with the requester kept from approving its own change), and
//! the audit log's hash chain catching an edited, deleted, truncated or reordered entry.

use confab_store::{
    ChangeClass, ChangeFilter, ChangeState, Decision, NewChange, Role, Store, StoreError,
};

use super::Fixture;

const HASH: &str = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";

fn change(class: ChangeClass, by: &str, title: &str) -> NewChange {
    NewChange {
        class,
        title: title.into(),
        reason: "because".into(),
        impact: Some("none".into()),
        requested_by: by.into(),
        operation: r#"{"op":"test"}"#.into(),
        rolls_back: None,
    }
}

async fn actions(store: &Store) -> Vec<String> {
    store
        .audit_entries(0, 1000)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.action)
        .collect()
}

pub async fn administrators_and_their_roles(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    assert!(store.administrators().await.expect("list").is_empty());
    let admin = store
        .add_administrator("admin", &Role::ALL, HASH, None)
        .await
        .expect("first");
    assert_eq!(admin.roles, Role::ALL.to_vec());
    assert!(admin.enabled);
    assert!(matches!(
        store
            .add_administrator("admin", &[Role::Viewer], HASH, Some("admin"))
            .await,
        Err(StoreError::AlreadyExists { .. })
    ));
    assert!(store
        .add_administrator("bad name!", &[Role::Viewer], HASH, Some("admin"))
        .await
        .is_err());
    assert!(store
        .add_administrator("olga", &[Role::Viewer], "not-a-hash", Some("admin"))
        .await
        .is_err());
    let olga = store
        .add_administrator("olga", &[Role::Approver, Role::Viewer], HASH, Some("admin"))
        .await
        .expect("olga");
    assert_eq!(olga.roles, [Role::Viewer, Role::Approver]);
    assert_eq!(olga.created_by.as_deref(), Some("admin"));
    assert_eq!(
        store
            .administrator_token_hash("olga")
            .await
            .expect("hash")
            .as_deref(),
        Some(HASH)
    );
    let olga = store
        .set_administrator_roles("olga", &[Role::UserAdmin], "admin")
        .await
        .expect("roles");
    assert_eq!(olga.roles, [Role::UserAdmin]);
    // The last enabled admin stays: not disabled, demoted or removed.
    for refused in [
        store
            .set_administrator_enabled("admin", false, "admin")
            .await
            .err(),
        store
            .set_administrator_roles("admin", &[Role::Viewer], "admin")
            .await
            .err(),
        store.remove_administrator("admin", "admin").await.err(),
    ] {
        let e = refused.expect("refused").to_string();
        assert!(e.contains("admin role"), "{e}");
    }
    assert!(
        store
            .administrator("admin")
            .await
            .expect("read")
            .expect("kept")
            .enabled
    );
    assert!(matches!(
        store.remove_administrator("nobody", "admin").await,
        Err(StoreError::NotFound { .. })
    ));
    let off = store
        .set_administrator_enabled("olga", false, "admin")
        .await
        .expect("disabled");
    assert!(!off.enabled);
    store
        .remove_administrator("olga", "admin")
        .await
        .expect("removed");
    assert_eq!(store.administrators().await.expect("list").len(), 1);
    assert_eq!(
        actions(&store).await,
        [
            "admin.add",
            "admin.add",
            "admin.roles",
            "admin.disable",
            "admin.remove"
        ],
        "every change to the administrators is audited, refusals are not"
    );
    assert!("USER-ADMIN".parse::<Role>().is_ok() && "root".parse::<Role>().is_err());
}

pub async fn change_records_through_their_states(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    // A normal change: requested, not approvable by its requester, approved, implemented,
    // reviewed.
    let normal = store
        .request_change(&change(ChangeClass::Normal, "alice", "publish topology"))
        .await
        .expect("requested");
    assert_eq!(normal.state, ChangeState::Requested);
    let own = store
        .decide_change(normal.id, "alice", Decision::Approve, None)
        .await
        .expect_err("not by the requester");
    assert!(own.to_string().contains("another administrator"), "{own}");
    let early = store
        .record_implemented(normal.id, "alice", None, None, None, None)
        .await
        .expect_err("not before approval");
    assert!(early.to_string().contains("approved"), "{early}");
    let approved = store
        .decide_change(normal.id, "olga", Decision::Approve, Some("looks right"))
        .await
        .expect("approved");
    assert_eq!(approved.state, ChangeState::Approved);
    assert_eq!(approved.approvals.len(), 1);
    assert_eq!(approved.approvals[0].approver, "olga");
    assert!(
        store
            .decide_change(normal.id, "bob", Decision::Reject, None)
            .await
            .is_err(),
        "decided already"
    );
    let done = store
        .record_implemented(
            normal.id,
            "alice",
            Some("{\"v\":1}"),
            Some("{\"v\":2}"),
            Some("snap-1"),
            None,
        )
        .await
        .expect("implemented");
    assert_eq!(done.state, ChangeState::Implemented);
    assert_eq!(done.before.as_deref(), Some("{\"v\":1}"));
    assert_eq!(done.snapshot.as_deref(), Some("snap-1"));
    assert!(
        store
            .record_implemented(normal.id, "alice", None, None, None, None)
            .await
            .is_err(),
        "implemented once"
    );
    let reviewed = store
        .record_reviewed(normal.id, "olga", "went fine")
        .await
        .expect("reviewed");
    assert_eq!(reviewed.state, ChangeState::Reviewed);
    assert_eq!(reviewed.reviewed_by.as_deref(), Some("olga"));

    // Rejected.
    let rejected = store
        .request_change(&change(ChangeClass::Normal, "alice", "remove pool"))
        .await
        .expect("requested");
    let rejected = store
        .decide_change(rejected.id, "olga", Decision::Reject, Some("not now"))
        .await
        .expect("rejected");
    assert_eq!(rejected.state, ChangeState::Rejected);
    assert!(store
        .record_implemented(rejected.id, "alice", None, None, None, None)
        .await
        .is_err());

    // Standard and emergency changes are implemented straight from their request; an
    // emergency's review can fall due.
    let standard = store
        .request_change(&change(ChangeClass::Standard, "alice", "add user"))
        .await
        .expect("requested");
    assert!(
        store
            .decide_change(standard.id, "olga", Decision::Approve, None)
            .await
            .is_err(),
        "a standard change needs no approval"
    );
    store
        .record_implemented(standard.id, "alice", None, None, None, None)
        .await
        .expect("implemented");
    let emergency = store
        .request_change(&change(ChangeClass::Emergency, "alice", "block attacker"))
        .await
        .expect("requested");
    store
        .record_implemented(
            emergency.id,
            "alice",
            None,
            None,
            Some("snap-2"),
            Some(1_000),
        )
        .await
        .expect("implemented");
    let overdue = store.overdue_reviews(2_000).await.expect("overdue");
    assert_eq!(
        overdue.iter().map(|c| c.id).collect::<Vec<_>>(),
        [emergency.id]
    );
    assert!(store
        .overdue_reviews(500)
        .await
        .expect("overdue")
        .is_empty());

    // A rollback links both ways.
    let undo = store
        .request_change(&NewChange {
            rolls_back: Some(standard.id),
            ..change(ChangeClass::Emergency, "alice", "undo add user")
        })
        .await
        .expect("requested");
    let rolled = store
        .record_rolled_back(standard.id, undo.id, "alice")
        .await
        .expect("rolled back");
    assert_eq!(rolled.state, ChangeState::RolledBack);
    assert_eq!(rolled.rolled_back_by, Some(undo.id));
    assert_eq!(
        store
            .change(undo.id)
            .await
            .expect("read")
            .expect("there")
            .rolls_back,
        Some(standard.id)
    );
    assert!(store
        .record_rolled_back(rejected.id, undo.id, "alice")
        .await
        .is_err());
    assert!(store.change(9_999).await.expect("read").is_none());

    // Lists, newest first, by state and class.
    let all = store.changes(&ChangeFilter::default()).await.expect("list");
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id));
    let normal_only = store
        .changes(&ChangeFilter {
            class: Some(ChangeClass::Normal),
            state: None,
        })
        .await
        .expect("list");
    assert_eq!(normal_only.len(), 2);
    let rejected_only = store
        .changes(&ChangeFilter {
            state: Some(ChangeState::Rejected),
            class: None,
        })
        .await
        .expect("list");
    assert_eq!(rejected_only.len(), 1);
    assert!(
        store
            .request_change(&change(ChangeClass::Standard, "alice", "  "))
            .await
            .is_err(),
        "a change needs a title"
    );

    // Every transition is in the audit log, and the chain holds.
    let log = actions(&store).await;
    for action in [
        "change.request",
        "change.approve",
        "change.reject",
        "change.implement",
        "emergency.implement",
        "change.review",
        "change.rollback",
    ] {
        assert!(log.iter().any(|a| a == action), "{action} in {log:?}");
    }
    let verdict = store.verify_audit().await.expect("verify");
    assert_eq!(verdict.first_bad, None);
    assert_eq!(verdict.entries, log.len() as u64);
}

/// Where the audit chain of `store` breaks (it must).
async fn first_break(store: &Store) -> confab_store::AuditBreak {
    store
        .verify_audit()
        .await
        .expect("verify")
        .first_bad
        .expect("broken")
}

/// A store with `n` audit entries.
async fn audited(fx: &Fixture, n: usize) -> Store {
    let store = fx.open_with_defaults().await;
    for i in 0..n {
        store
            .audit("admin", "test.entry", &i.to_string(), "{}")
            .await
            .expect("appended");
    }
    let verdict = store.verify_audit().await.expect("verify");
    assert_eq!((verdict.entries, verdict.first_bad), (n as u64, None));
    store
}

pub async fn audit_tampering_is_found(fx: &Fixture) {
    // An edited entry.
    let store = audited(fx, 6).await;
    fx.raw("UPDATE audit_log SET detail = '{\"forged\":true}' WHERE seq = 3")
        .await;
    let bad = first_break(&store).await;
    assert_eq!(bad.seq, 3);
    assert!(bad.problem.contains("edited"), "{bad:?}");
    // Its hash recomputed too: the next entry no longer follows it.
    let forged = store.audit_entries(2, 1).await.expect("read").remove(0);
    let rehash = confab_store::entry_hash(
        forged.seq,
        forged.at,
        &forged.actor,
        &forged.action,
        &forged.subject,
        &forged.detail,
        &forged.prev_hash,
    );
    fx.raw(&format!(
        "UPDATE audit_log SET hash = '{rehash}' WHERE seq = 3"
    ))
    .await;
    let bad = first_break(&store).await;
    assert_eq!(bad.seq, 4, "{bad:?}");
}

pub async fn audit_deletion_and_reordering_are_found(fx: &Fixture) {
    let store = audited(fx, 6).await;
    // A deleted entry in the middle.
    fx.raw("DELETE FROM audit_log WHERE seq = 4").await;
    let bad = first_break(&store).await;
    assert_eq!(bad.seq, 4);
    assert!(bad.problem.contains("missing"), "{bad:?}");
    // Renumbered to hide the gap: the chain of hashes still breaks.
    fx.raw("UPDATE audit_log SET seq = seq - 1 WHERE seq > 4")
        .await;
    let bad = first_break(&store).await;
    assert_eq!(bad.seq, 4, "{bad:?}");
}

pub async fn audit_truncation_is_found(fx: &Fixture) {
    let store = audited(fx, 6).await;
    // The last entries removed: the head says the log went further.
    fx.raw("DELETE FROM audit_log WHERE seq >= 5").await;
    let bad = first_break(&store).await;
    assert_eq!(bad.seq, 5);
    assert!(bad.problem.contains("removed from the end"), "{bad:?}");
    // An append after the truncation continues from the head, not from what is left: the
    // gap stays visible.
    store
        .audit("admin", "test.entry", "after", "{}")
        .await
        .expect("appended");
    let bad = first_break(&store).await;
    assert_eq!(bad.seq, 5, "{bad:?}");
    assert!(bad.problem.contains("missing"), "{bad:?}");
}

pub async fn audit_swaps_are_found(fx: &Fixture) {
    let store = audited(fx, 6).await;
    // Entries 2 and 3 exchange their numbers.
    fx.raw("UPDATE audit_log SET seq = 100 WHERE seq = 2").await;
    fx.raw("UPDATE audit_log SET seq = 2 WHERE seq = 3").await;
    fx.raw("UPDATE audit_log SET seq = 3 WHERE seq = 100").await;
    let bad = first_break(&store).await;
    assert_eq!(bad.seq, 2);
    assert!(bad.problem.contains("does not follow"), "{bad:?}");
}

pub async fn sources_blocked_and_unblocked(fx: &Fixture) {
    let store = fx.open_with_defaults().await;
    let head = store.last_change_seq().await.expect("feed");
    let (cidr, added) = store
        .block_source("203.0.113.77/24", "scanner", "admin")
        .await
        .expect("blocked");
    assert_eq!((cidr.as_str(), added), ("203.0.113.0/24", true));
    let (_, again) = store
        .block_source("203.0.113.0/24", "scanner", "admin")
        .await
        .expect("blocked again");
    assert!(!again, "blocked already: nothing recorded");
    assert!(store
        .block_source("not-an-address", "x", "admin")
        .await
        .is_err());
    store
        .block_source("2001:db8::1", "scanner", "admin")
        .await
        .expect("blocked");
    let listed: Vec<String> = store
        .blocked_sources()
        .await
        .expect("list")
        .into_iter()
        .map(|b| b.cidr)
        .collect();
    assert_eq!(listed, ["2001:db8::1/128", "203.0.113.0/24"]);
    let (_, removed) = store
        .unblock_source("203.0.113.9/24", "admin")
        .await
        .expect("unblocked");
    assert!(removed);
    assert!(
        !store
            .unblock_source("198.51.100.0/24", "admin")
            .await
            .expect("nothing")
            .1
    );
    assert_eq!(store.blocked_sources().await.expect("list").len(), 1);
    // Three changes in the feed for running front-ends, three in the audit log.
    assert_eq!(store.last_change_seq().await.expect("feed"), head + 3);
    assert_eq!(
        actions(&store).await,
        ["source.block", "source.block", "source.unblock"]
    );
}
