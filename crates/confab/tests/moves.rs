//! `confab user move` as an operator runs it: the built binary on a data directory, the store
//! read directly to check that every user is homed on exactly one pool and that nothing the
//! user owns is lost — also when the command is killed (SIGKILL) in the middle of a bulk move
//! and then run again.
#![cfg(unix)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::store::*;
use confab_store::{
    NewOfflineMessage, NewUser, Pool, PoolKind, PresenceLevel, Store, UserFilter, Watcher,
};

/// A deployment with the pool `pool2` besides `default`.
fn two_pools() -> Deployment {
    let d = Deployment::new();
    add_pool(&d, "pool2");
    d
}

/// Adds the front-end pool `name`, with no servers, straight into the store.
fn add_pool(d: &Deployment, name: &str) {
    let name = name.to_owned();
    with_store(&d.data, |store| async move {
        store
            .add_pool(&Pool {
                name,
                kind: PoolKind::Confab,
                site: None,
                next_hop: None,
                servers: Vec::new(),
                pair: None,
            })
            .await
            .expect("pool added");
    });
}

/// `n` users `user1@localhost` … homed on `default`, added straight into the store (the
/// credentials do not matter here).
fn users(d: &Deployment, n: usize) {
    with_store(&d.data, |store| async move {
        let batch: Vec<NewUser> = (1..=n)
            .map(|i| NewUser {
                address: addr(&format!("user{i}@localhost")),
                display_name: None,
                pool: "default".into(),
                enabled: true,
            })
            .collect();
        for u in batch {
            store.add_user(&u).await.expect("user");
        }
    });
}

/// Every user's home pool.
fn homes(d: &Deployment) -> HashMap<String, String> {
    with_store(&d.data, |store| async move { homes_of(&store).await })
}

async fn homes_of(store: &Store) -> HashMap<String, String> {
    store
        .list_users(&UserFilter::default())
        .await
        .expect("users")
        .into_iter()
        .map(|u| (u.address.to_string(), u.pool))
        .collect()
}

#[test]
fn named_users_move_with_their_data_and_a_rerun_changes_nothing() {
    let d = two_pools();
    users(&d, 3);
    let (user1, user2) = (addr("user1@localhost"), addr("user2@localhost"));
    with_store(&d.data, |store| async move {
        store
            .set_presence_rule(
                &user1,
                &Watcher::parse("user2@localhost").expect("watcher"),
                PresenceLevel::Workgroup,
            )
            .await
            .expect("rule");
        store
            .store_offline_message(
                &NewOfflineMessage {
                    to_user: user1.clone(),
                    from_uri: "sip:user2@localhost".into(),
                    content_type: "text/plain".into(),
                    body: b"queued".to_vec(),
                    received_at: 1_900_000_000,
                },
                10,
                Duration::from_secs(u32::MAX.into()),
            )
            .await
            .expect("offline");
        let _ = user2;
    });

    // --dry-run: listed, nothing moves.
    let before = d.changes();
    let out = d.run(
        &[
            "user",
            "move",
            "user1@localhost",
            "user2@localhost",
            "--to",
            "pool2",
            "--dry-run",
            "--json",
        ],
        None,
    );
    assert_success(&out);
    let plan = json(&out);
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["users"].as_array().map(Vec::len), Some(2));
    assert_eq!(plan["users"][0]["from"], "default");
    assert_eq!(d.changes(), before, "a dry run changes nothing");
    assert_eq!(homes(&d)["user1@localhost"], "default");

    let out = d.run(
        &[
            "user",
            "move",
            "user1@localhost",
            "user2@localhost",
            "--to",
            "pool2",
        ],
        None,
    );
    assert_success(&out);
    assert!(
        stdout(&out).contains("moved 2 user(s) to pool2"),
        "{}",
        stdout(&out)
    );
    let h = homes(&d);
    assert_eq!(
        (h["user1@localhost"].as_str(), h["user2@localhost"].as_str()),
        ("pool2", "pool2")
    );
    assert_eq!(h["user3@localhost"], "default");
    let who = addr("user1@localhost");
    let (rules, queued) = with_store(&d.data, |store| async move {
        (
            store.presence_rules(&who).await.expect("rules").len(),
            store.offline_message_count(&who).await.expect("count"),
        )
    });
    assert_eq!((rules, queued), (1, 1), "the user's data moved with it");

    // Again: nobody to move, nothing recorded.
    let head = d.changes();
    let out = d.run(&["user", "move", "user1@localhost", "--to", "pool2"], None);
    assert_success(&out);
    assert!(stdout(&out).contains("nobody to move"), "{}", stdout(&out));
    assert_eq!(d.changes(), head);
}

#[test]
fn refusals_say_how_to_fix_them_and_change_nothing() {
    let d = two_pools();
    users(&d, 2);
    let head = d.changes();
    let out = d.run(
        &["user", "move", "user1@localhost", "--to", "nowhere"],
        None,
    );
    assert_fails(&out, 1, "no pool 'nowhere'");
    assert!(
        stderr(&out).contains("pool2"),
        "the pools are listed: {}",
        stderr(&out)
    );
    let out = d.run(
        &[
            "user",
            "move",
            "user1@localhost",
            "ghost@localhost",
            "--to",
            "pool2",
        ],
        None,
    );
    assert_fails(&out, 1, "no user ghost@localhost");
    let out = d.run(&["user", "move", "--to", "pool2"], None);
    assert_fails(&out, 1, "--from POOL");
    let out = d.run(&["user", "move", "--from", "pool2", "--to", "pool2"], None);
    assert_fails(&out, 1, "give another pool with --to");
    let out = d.run(
        &[
            "user",
            "move",
            "user1@localhost",
            "--to",
            "pool2",
            "--batch",
            "0",
        ],
        None,
    );
    assert_fails(&out, 2, "--batch");
    assert_eq!(d.changes(), head);
    assert!(homes(&d).values().all(|p| p == "default"));
}

#[test]
fn a_bulk_move_takes_only_the_users_its_filter_matches() {
    let d = two_pools();
    users(&d, 12);
    let out = d.run(
        &[
            "user", "move", "--from", "default", "--to", "pool2", "--filter", "USER1?@*", "--json",
        ],
        None,
    );
    assert_success(&out);
    let moved: Vec<String> = json(&out)["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["address"].as_str().expect("address").to_owned())
        .collect();
    assert_eq!(
        moved,
        ["user10@localhost", "user11@localhost", "user12@localhost"]
    );
    let h = homes(&d);
    assert_eq!(h.values().filter(|p| *p == "pool2").count(), 3);
    assert_eq!(h["user1@localhost"], "default");
    let head = d.changes();
    let out = d.run(
        &[
            "user", "move", "--from", "default", "--to", "pool2", "--filter", "",
        ],
        None,
    );
    assert_fails(&out, 1, "--filter takes a pattern");
    assert_eq!(d.changes(), head, "a refused filter moves nobody");
}

#[test]
fn a_bulk_move_killed_midway_leaves_everyone_homed_once_and_a_rerun_completes_it() {
    // A move of more than 100 users is a normal change: requested, approved by another
    // administrator, then implemented — and it is the implementation that is killed here.
    const USERS: usize = 1_000;
    let d = two_pools();
    users(&d, USERS);
    let everyone: Vec<String> = homes(&d).into_keys().collect();
    assert_eq!(everyone.len(), USERS);
    // Every 20th user owns a presence rule and a queued message: the invariant check counts
    // them after the kill and after the rerun.
    with_store(&d.data, |store| async move {
        for i in (20..=USERS).step_by(20) {
            let user = addr(&format!("user{i}@localhost"));
            store
                .set_presence_rule(
                    &user,
                    &Watcher::parse("user1@localhost").expect("watcher"),
                    PresenceLevel::Colleagues,
                )
                .await
                .expect("rule");
            store
                .store_offline_message(
                    &NewOfflineMessage {
                        to_user: user,
                        from_uri: "sip:user1@localhost".into(),
                        content_type: "text/plain".into(),
                        body: format!("for user{i}").into_bytes(),
                        received_at: 1_900_000_000,
                    },
                    10,
                    Duration::from_secs(u32::MAX.into()),
                )
                .await
                .expect("offline");
        }
    });
    let owned = |d: &Deployment| {
        with_store(&d.data, |store| async move {
            let (mut rules, mut queued) = (0, 0);
            for i in (20..=USERS).step_by(20) {
                let user = addr(&format!("user{i}@localhost"));
                rules += store.presence_rules(&user).await.expect("rules").len();
                queued += store.offline_message_count(&user).await.expect("count");
            }
            (rules, queued)
        })
    };
    let data_before = owned(&d);
    assert_eq!(data_before, (USERS / 20, (USERS / 20) as u64));

    // One user per transaction, so the kill lands between or inside batches.
    let requested = json(&d.run(
        &[
            "user", "move", "--from", "default", "--to", "pool2", "--batch", "1", "--json",
        ],
        None,
    ));
    assert_eq!(requested["state"], "requested", "{requested}");
    assert_eq!(requested["users"], USERS);
    let id = requested["change"].to_string();
    assert!(
        homes(&d).values().all(|p| p == "default"),
        "nobody moves before the approval"
    );
    let out = d.run(&["change", "implement", &id], None);
    assert_fails(&out, 1, "not approved");
    // The requester holds every role, the approver's too, and still may not approve its own.
    let out = d.run(&["change", "approve", &id], None);
    assert!(!out.status.success(), "approved by its requester");
    assert!(
        stderr(&out).contains("another administrator with the approver role"),
        "{}",
        stderr(&out)
    );
    ensure_approver(&d.data);
    let mut cmd = common::confab(&["change", "approve", &id, "--data-dir"]);
    cmd.arg(&d.data)
        .env("CONFAB_ADMIN", "approver")
        .env("CONFAB_ADMIN_TOKEN", APPROVER_TOKEN);
    assert_success(&run(cmd, None));
    let mut cmd = common::confab(&["change", "implement", &id]);
    cmd.arg("--data-dir").arg(&d.data);
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("confab user move starts");
    // Kill it once some users, and not all, have moved: watched through one store handle
    // and a count (opening the store and listing every user per look is slower than the
    // whole move on a fast disk).
    let moved_at_kill = with_store(&d.data, |store| async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let moved = store
                .pool_usage()
                .await
                .expect("usage")
                .into_iter()
                .find(|u| u.pool == "pool2")
                .map_or(0, |u| u.users);
            if moved >= 50 {
                child.kill().expect("SIGKILL");
                child.wait().expect("reaped");
                break moved;
            }
            assert!(Instant::now() < deadline, "the move never started");
            assert!(
                child.try_wait().expect("wait").is_none(),
                "the move ended before the kill"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });

    let after_kill = homes(&d);
    let moved = after_kill.values().filter(|p| *p == "pool2").count();
    let stayed = after_kill.values().filter(|p| *p == "default").count();
    println!("killed with {moved} of {USERS} moved ({moved_at_kill} seen before the kill)");
    assert_eq!(after_kill.len(), USERS, "no user lost");
    assert_eq!(owned(&d), data_before, "no user data lost by the kill");
    assert_eq!(
        moved + stayed,
        USERS,
        "every user homed on exactly one of the two pools"
    );
    assert!(
        moved < USERS,
        "the kill came before the end ({moved} moved)"
    );

    // The change is still approved, not implemented: implementing it again completes it.
    let shown = json(&d.run(&["change", "show", &id, "--json"], None));
    assert_eq!(shown["state"], "approved");
    let report = json(&d.run(&["change", "implement", &id, "--json"], None));
    assert_eq!(report["state"], "implemented");
    let after: serde_json::Value =
        serde_json::from_str(report["after"].as_str().expect("after")).expect("JSON");
    assert_eq!(after["moved"], stayed, "the rerun moves exactly those left");
    let done = homes(&d);
    assert_eq!(done.len(), USERS);
    assert!(done.values().all(|p| p == "pool2"));
    let mut names: Vec<&String> = done.keys().collect();
    names.sort();
    let mut expected: Vec<&String> = everyone.iter().collect();
    expected.sort();
    assert_eq!(names, expected, "the same users, none lost or added");
    assert_eq!(owned(&d), data_before, "no user data lost by the rerun");
    // Each user's move is in the change feed exactly once.
    let moves = with_store(&d.data, |store| async move {
        store.changes_since(0, 100_000).await.expect("feed")
    })
    .into_iter()
    .filter(|c| c.kind == confab_store::ChangeKind::UserMoved)
    .count();
    assert_eq!(moves, USERS);
}

#[test]
fn a_move_is_rolled_back_and_users_moved_again_since_stay_where_they_are() {
    let d = two_pools();
    users(&d, 3);
    add_pool(&d, "pool3");
    let out = d.run(
        &[
            "user",
            "move",
            "--from",
            "default",
            "--to",
            "pool2",
            "--reason",
            "rebalance",
        ],
        None,
    );
    assert_success(&out);
    let moved = json(&d.run(&["change", "list", "--json"], None))[0].clone();
    assert_eq!(moved["class"], "standard");
    assert_eq!(moved["reason"], "rebalance");
    let id = moved["id"].to_string();
    // user3 moves on to pool3 before the rollback: it is passed over.
    assert_success(&d.run(&["user", "move", "user3@localhost", "--to", "pool3"], None));
    let out = d.run(
        &[
            "change",
            "rollback",
            &id,
            "--reason",
            "wrong pool",
            "--json",
        ],
        None,
    );
    let rollback = json(&out)["id"].to_string();
    assert!(
        homes(&d).values().all(|p| p != "default"),
        "nobody back before the approval"
    );
    let out = approve_and_implement(&d.data, &rollback, &[]);
    assert!(stdout(&out).contains("2 user(s) moved"), "{}", stdout(&out));
    assert!(stdout(&out).contains("user3@localhost"), "{}", stdout(&out));
    let homes = homes(&d);
    assert_eq!(homes["user1@localhost"], "default");
    assert_eq!(homes["user2@localhost"], "default");
    assert_eq!(homes["user3@localhost"], "pool3");
    let shown = json(&d.run(&["change", "show", &id, "--json"], None));
    assert_eq!(shown["state"], "rolled-back");
    assert_eq!(shown["rolled_back_by"].to_string(), rollback);
}
