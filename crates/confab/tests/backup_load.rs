//! A backup taken under load is consistent to one instant: a running front-end with clients
//! registering, contact lists being edited and a move of 3,000 users in batches of 50 in
//! flight, backups taken one after the other meanwhile — each one verifies (restored into a scratch store,
//! foreign keys and all), and holds whole batches of the move only, never part of one.
#![cfg(unix)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::store::{approve_and_implement, assert_success, json, run, with_data_dir};
use common::{confab, Running};
use confab_ua::{Secret, UaConfig, UserAgent};

const USERS: usize = 3_000;
const BATCH: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_under_load_hold_one_instant() {
    let server = Running::start(&["--listen", "udp://127.0.0.1:0", "--log-level", "warn"], 1);
    let data = server.data_dir();
    // Users, and a second pool for the move.
    let mut csv = String::from("address,password\n");
    for i in 1..=USERS {
        csv.push_str(&format!("u{i}@localhost,pw-{i}-long-enough\n"));
    }
    let mut cmd = confab(&["user", "import", "-"]);
    cmd.arg("--data-dir").arg(&data);
    assert_success(&run(cmd, Some(&csv)));
    let doc = format!(
        "domains = [\"localhost\"]\n\n[[pool]]\nname = \"default\"\nkind = \"front-end\"\n\
         servers = [\"udp://{}\"]\n\n[[pool]]\nname = \"b\"\nkind = \"front-end\"\nservers = []\n",
        server.addr("udp")
    );
    let file = common::write(data.parent().expect("parent"), "topology.toml", &doc);
    let mut cmd = confab(&["topology", "publish"]);
    cmd.arg(&file).arg("--data-dir").arg(&data).arg("--json");
    let id = json(&run(cmd, None))["change"].to_string();
    approve_and_implement(&data, &id, &[]);
    // The move, requested and approved now, implemented under load below.
    let out = run(
        with_data_dir(
            &[
                "user", "move", "--from", "default", "--to", "b", "--batch", "50", "--json",
            ],
            &data,
        ),
        None,
    );
    let move_id = json(&out)["change"].to_string();
    common::store::ensure_approver(&data);
    let mut cmd = with_data_dir(&["change", "approve", &move_id], &data);
    cmd.env("CONFAB_ADMIN", "approver")
        .env("CONFAB_ADMIN_TOKEN", common::store::APPROVER_TOKEN);
    assert_success(&run(cmd, None));

    let stop = Arc::new(AtomicBool::new(false));
    // Clients registering, again and again (bounded by `stop` and a deadline).
    let mut load = Vec::new();
    for i in 1..=20 {
        let (stop, addr) = (Arc::clone(&stop), server.addr("udp"));
        load.push(tokio::spawn(async move {
            let ua = UserAgent::bind(UaConfig {
                server: Some(addr),
                secret: Some(Secret::Password(format!("pw-{i}-long-enough"))),
                ..UaConfig::new(format!("sip:u{i}@localhost"))
            })
            .await
            .expect("UA binds");
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut ok = 0;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                if ua.register(600).await.is_ok_and(|r| r.status == 200) {
                    ok += 1;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            ok
        }));
    }
    // Contact lists edited, one command at a time.
    let editor = {
        let (stop, data) = (Arc::clone(&stop), data.clone());
        tokio::task::spawn_blocking(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 200 {
                n += 1;
                let owner = format!("u{}@localhost", 900 + n % 50);
                let contact = format!("u{}@localhost", n);
                assert_success(&run(
                    with_data_dir(&["contacts", "add", &owner, &contact], &data),
                    None,
                ));
            }
            n
        })
    };
    // The move, in batches of 50.
    let mover = {
        let data = data.clone();
        let move_id = move_id.clone();
        tokio::task::spawn_blocking(move || {
            run(
                with_data_dir(&["change", "implement", &move_id], &data),
                None,
            )
        })
    };
    // Backups meanwhile, one after the other until the move is done (at most 40), taken
    // through the same call `confab backup create` and the schedule make, on a store handle
    // of this test's own (a process per backup would start too slowly to see the move).
    let store = confab_store::Store::open(&confab_store::StoreLocation::in_data_dir(&data))
        .await
        .expect("store");
    // The first once the move has begun.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let usage = store.pool_usage().await.expect("usage");
        if usage.iter().any(|u| u.pool == "b" && u.users > 0) {
            break;
        }
        assert!(Instant::now() < deadline, "the move never began");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut archives = Vec::new();
    for k in 0..40 {
        if mover.is_finished() && k >= 2 {
            break;
        }
        let out = data
            .parent()
            .expect("parent")
            .join(format!("load-{k}.tar.gz"));
        let t = Instant::now();
        let created = confab_ops::backup::create(
            &store,
            confab_ops::backup::TakenBy::Schedule,
            &out,
            &mut |_| {},
        )
        .await
        .expect("backup");
        println!(
            "backup {k} in {:?}, move finished: {}",
            t.elapsed(),
            mover.is_finished()
        );
        archives.push((out, created));
    }
    store.close().await;
    assert_success(&mover.await.expect("move"));
    stop.store(true, Ordering::Relaxed);
    let edits = editor.await.expect("editor");
    let mut registered = 0;
    for l in load {
        registered += l.await.expect("client");
    }
    println!("{registered} registrations and {edits} contact edits during the backups");
    assert!(registered > 0 && edits > 0);

    let mut moved_seen = Vec::new();
    for (archive, created) in &archives {
        // Verified: restored into a scratch store (every foreign key checked) and read back.
        let out = run(
            with_data_dir(
                &["backup", "verify", archive.to_str().expect("utf-8")],
                &data,
            ),
            None,
        );
        assert_success(&out);
        assert_eq!(created.manifest.users, USERS);
        // Whole batches of the move only.
        let inventory = String::from_utf8_lossy(
            &std::process::Command::new("tar")
                .arg("xzf")
                .arg(archive)
                .arg("-O")
                .arg("inventory.csv")
                .output()
                .expect("tar")
                .stdout,
        )
        .into_owned();
        let on_b = inventory.lines().filter(|l| l.starts_with("b,")).count();
        let on_default = inventory
            .lines()
            .filter(|l| l.starts_with("default,"))
            .count();
        assert_eq!(
            on_b + on_default,
            USERS,
            "every user homed on exactly one pool"
        );
        assert_eq!(
            on_b % BATCH,
            0,
            "{on_b} moved: a batch was half in the backup"
        );
        moved_seen.push(on_b);
    }
    println!("users on the new pool in each backup: {moved_seen:?}");
    assert!(
        moved_seen.iter().any(|&n| n > 0 && n < USERS),
        "no backup was taken while the move was in flight: {moved_seen:?}"
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_front_end_serves_the_restored_state() {
    let server = Running::start(&["--listen", "udp://127.0.0.1:0", "--log-level", "info"], 1);
    let data = server.data_dir();
    let mut cmd = confab(&["user", "add", "alice@localhost", "--password-stdin"]);
    cmd.arg("--data-dir").arg(&data);
    assert_success(&run(cmd, Some("pw-1-long-enough\n")));
    let archive = data.parent().expect("parent").join("before.tar.gz");
    assert_success(&run(
        with_data_dir(
            &[
                "backup",
                "create",
                "--out",
                archive.to_str().expect("utf-8"),
            ],
            &data,
        ),
        None,
    ));
    let alice = UserAgent::bind(UaConfig {
        server: Some(server.addr("udp")),
        secret: Some(Secret::Password("pw-1-long-enough".into())),
        ..UaConfig::new("sip:alice@localhost".to_owned())
    })
    .await
    .expect("UA binds");
    common::register_retrying(&alice).await;
    // Alice is removed: she cannot sign in any more…
    assert_success(&run(
        with_data_dir(&["user", "remove", "alice@localhost", "--yes"], &data),
        None,
    ));
    let deadline = Instant::now() + common::WAIT;
    while alice.register(600).await.is_ok_and(|r| r.status == 200) {
        assert!(Instant::now() < deadline, "alice still signs in");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // …until the backup is restored, at once: the running front-end reads it.
    let restored_at = Instant::now();
    assert_success(&run(
        with_data_dir(
            &[
                "restore",
                archive.to_str().expect("utf-8"),
                "--force",
                "--emergency",
                "--reason",
                "alice removed by mistake",
            ],
            &data,
        ),
        None,
    ));
    loop {
        if alice.register(600).await.is_ok_and(|r| r.status == 200) {
            break;
        }
        assert!(
            restored_at.elapsed() < common::WAIT,
            "alice never signs in again: {}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "alice signs in {} ms after the restore began",
        restored_at.elapsed().as_millis()
    );
    // The front-end read everything again (the feed says so within a second).
    while !server
        .stderr()
        .contains("the store was restored from a backup; reading it again")
    {
        assert!(
            restored_at.elapsed() < common::WAIT,
            "the front-end never heard of the restore: {}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
