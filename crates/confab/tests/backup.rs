//! Backups as an operator meets them: `backup create`, `backup verify`, `backup list`,
//! `inventory`, and `restore` into a new data directory, over a deployment (a normal change,
//! or an emergency), and for single users — with every bad archive refused and nothing
//! changed.
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};

use common::store::*;

/// A deployment with users, contacts, presence rules, changes and a blocked source.
fn deployment() -> Deployment {
    let d = Deployment::new();
    d.add("alice@localhost", "password 1");
    d.add("bob@localhost", "password 2");
    d.add("carol@localhost", "password 3");
    for args in [
        &["contacts", "group", "add", "alice@localhost", "Team"][..],
        &[
            "contacts",
            "add",
            "alice@localhost",
            "bob@localhost",
            "--name",
            "Bob, \"the builder\"",
            "--group",
            "Team",
        ],
        &["contacts", "add", "alice@localhost", "carol@localhost"],
        &[
            "presence-rules",
            "set",
            "alice@localhost",
            "@example.org",
            "blocked",
        ],
        &["user", "disable", "carol@localhost"],
    ] {
        assert_success(&d.run(args, None));
    }
    d
}

fn backup(d: &Deployment, name: &str) -> PathBuf {
    let out = d.data.parent().expect("parent").join(name);
    let created = json(&d.run(
        &[
            "backup",
            "create",
            "--out",
            out.to_str().expect("utf-8"),
            "--json",
        ],
        None,
    ));
    assert_eq!(created["manifest"]["users"], 3);
    // The SHA-256 reported (hashed as the archive was written) is the file's.
    let sum = std::process::Command::new("sha256sum")
        .arg(&out)
        .output()
        .expect("sha256sum");
    let sum = String::from_utf8_lossy(&sum.stdout);
    assert_eq!(
        sum.split_whitespace().next(),
        created["sha256"].as_str(),
        "{sum}"
    );
    out
}

/// A data directory that does not exist yet, beside `d`'s.
fn elsewhere(d: &Deployment, name: &str) -> PathBuf {
    d.data.parent().expect("parent").join(name)
}

fn confab_in(data: &Path, args: &[&str]) -> std::process::Output {
    run(with_data_dir(args, data), None)
}

/// The archive `from` rewritten with `change` applied to its entries (path, bytes).
fn rewrite(from: &Path, to: &Path, change: impl Fn(&str, &mut Vec<u8>)) {
    use std::io::Read;
    let file = std::fs::File::open(from).expect("archive");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut entries = Vec::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let path = entry.path().expect("path").to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read");
        change(&path, &mut bytes);
        entries.push((path, bytes));
    }
    let out = std::fs::File::create(to).expect("create");
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        out,
        flate2::Compression::default(),
    ));
    for (path, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        tar.append_data(&mut header, &path, bytes.as_slice())
            .expect("append");
    }
    tar.into_inner().expect("tar").finish().expect("gzip");
}

#[test]
fn a_backup_is_verified_listed_and_restored_into_a_new_data_directory() {
    let d = deployment();
    let archive = backup(&d, "first.tar.gz");
    let path = archive.to_str().expect("utf-8");
    assert_eq!(
        json(&d.run(&["backup", "list", "--json"], None))[0]["verified"],
        serde_json::Value::Null
    );
    let out = d.run(&["backup", "verify", path], None);
    assert_success(&out);
    assert!(stdout(&out).contains("verified"), "{}", stdout(&out));
    let listed = json(&d.run(&["backup", "list", "--json"], None));
    assert_eq!(listed[0]["verified"], true);
    assert_eq!(listed[0]["users"], 3);
    let status = stdout(&d.run(&["status"], None));
    assert!(status.contains("verified\n"), "{status}");
    let metrics = stdout(&d.run(&["status", "--prometheus"], None));
    assert!(
        metrics.contains("confab_last_verified_backup_age_seconds "),
        "{metrics}"
    );

    // The inventory, alone and in the backup: the same bytes.
    let inventory = stdout(&d.run(&["inventory"], None));
    assert!(
        inventory.contains("default,alice@localhost,,true,,2\n"),
        "{inventory}"
    );
    assert!(
        inventory.contains("default,carol@localhost,,false,,0\n"),
        "{inventory}"
    );
    let json_inventory = json(&d.run(&["inventory", "--format", "json"], None));
    assert_eq!(json_inventory.as_array().map(Vec::len), Some(3));

    // Into a data directory that does not exist: the store is created and filled.
    let new = elsewhere(&d, "restored");
    let out = confab_in(&new, &["restore", path]);
    assert_success(&out);
    assert!(stdout(&out).contains("3 user(s)"), "{}", stdout(&out));
    // The restored deployment's administrators are the backup's: sign in with its
    // credentials.
    let creds = d.data.join("admin.credentials");
    let mut cmd = with_data_dir(&["inventory"], &new);
    cmd.arg("--credentials").arg(&creds);
    let restored_inventory = run(cmd, None);
    assert_success(&restored_inventory);
    assert_eq!(stdout(&restored_inventory), inventory, "byte for byte");
    let mut cmd = with_data_dir(&["audit", "verify"], &new);
    cmd.arg("--credentials").arg(&creds);
    assert_success(&run(cmd, None));
    let mut cmd = with_data_dir(&["contacts", "list", "alice@localhost", "--json"], &new);
    cmd.arg("--credentials").arg(&creds);
    let contacts = stdout(&run(cmd, None));
    assert!(contacts.contains("Bob, \\\"the builder\\\""), "{contacts}");

    // Restoring again into it (no longer empty) is refused without --force.
    let mut cmd = with_data_dir(&["restore", path], &new);
    cmd.arg("--credentials").arg(&creds);
    let out = run(cmd, None);
    assert_fails(&out, 1, "--force");
}

#[test]
fn bad_archives_are_refused_and_change_nothing() {
    let d = deployment();
    let archive = backup(&d, "good.tar.gz");
    let bytes = std::fs::read(&archive).expect("archive");
    let dir = d.data.parent().expect("parent").to_path_buf();
    let truncated = dir.join("truncated.tar.gz");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let corrupted = dir.join("corrupted.tar.gz");
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x55;
    std::fs::write(&corrupted, &flipped).expect("write");
    let tampered = dir.join("tampered.tar.gz");
    rewrite(&archive, &tampered, |path, bytes| {
        if path == "tables/users.jsonl" {
            let text = String::from_utf8_lossy(bytes).replace("\"carol\"", "\"mallory\"");
            *bytes = text.into_bytes();
        }
    });
    let newer = dir.join("newer.tar.gz");
    rewrite(&archive, &newer, |path, bytes| {
        if path == "manifest.json" {
            let mut m: serde_json::Value = serde_json::from_slice(bytes).expect("manifest");
            m["schema_version"] = serde_json::json!(confab_store::SCHEMA_VERSION + 1);
            *bytes = serde_json::to_vec(&m).expect("json");
        }
    });
    let not_a_backup = dir.join("notes.tar.gz");
    rewrite(&archive, &not_a_backup, |path, bytes| {
        if path == "manifest.json" {
            bytes.clear();
            bytes.extend_from_slice(b"{\"hello\": 1}");
        }
    });
    let before = d.state();
    for (file, says) in [
        (&truncated, "truncated"),
        (&corrupted, "archive"),
        (&tampered, "tables/users.jsonl does not match its checksum"),
        (&newer, "taken by a newer Confab"),
        (&not_a_backup, "manifest.json cannot be read"),
    ] {
        let path = file.to_str().expect("utf-8");
        let out = d.run(&["backup", "verify", path], None);
        assert_fails(&out, 1, says);
        assert!(stderr(&out).contains("NOT restorable"), "{}", stderr(&out));
        // Over the deployment, with every permission: refused before anything is written.
        let out = d.run(
            &[
                "restore",
                path,
                "--force",
                "--emergency",
                "--reason",
                "test",
            ],
            None,
        );
        assert_fails(&out, 1, says);
        // Into a new data directory: not even the store is created.
        let new = elsewhere(&d, "never");
        let out = confab_in(&new, &["restore", path]);
        assert_fails(&out, 1, says);
        assert!(!new.exists(), "{} created", new.display());
    }
    // Into this (not empty) deployment without --force.
    let out = d.run(&["restore", archive.to_str().expect("utf-8")], None);
    assert_fails(
        &out,
        1,
        "restore into an empty store, or replace this deployment with --force",
    );
    assert_eq!(d.state(), before, "nothing changed");
}

#[test]
fn restore_over_a_deployment_is_a_change_and_brings_the_backup_back() {
    let d = deployment();
    let archive = backup(&d, "before.tar.gz");
    let path = archive.to_str().expect("utf-8");
    let inventory = stdout(&d.run(&["inventory"], None));
    // Things change after the backup…
    d.add("dave@localhost", "password 4");
    assert_success(&d.run(&["user", "remove", "bob@localhost", "--yes"], None));
    assert_ne!(stdout(&d.run(&["inventory"], None)), inventory);

    // …a normal change brings the backup back, once approved.
    let out = d.run(
        &[
            "restore",
            path,
            "--force",
            "--reason",
            "bad import",
            "--json",
        ],
        None,
    );
    let id = json(&out)["change"].to_string();
    assert_ne!(
        stdout(&d.run(&["inventory"], None)),
        inventory,
        "not before approval"
    );
    let out = approve_and_implement(&d.data, &id, &["--json"]);
    let record = json(&out);
    assert_eq!(record["state"], "implemented");
    assert_eq!(
        record["title"],
        format!(
            "replace the deployment with the backup {}",
            std::fs::canonicalize(&archive).expect("path").display()
        )
    );
    let after: serde_json::Value =
        serde_json::from_str(record["after"].as_str().expect("after")).expect("JSON");
    assert_eq!(after["change_before_restore"].to_string(), id);
    // The deployment as it was is kept first, in a backup beside the one restored.
    let saved = after["backup_before"].as_str().expect("backup before");
    assert!(Path::new(saved).exists(), "{saved}");
    assert_eq!(record["snapshot"].as_str(), Some(saved));
    assert_eq!(after["approved_by"], serde_json::json!(["approver"]));
    assert_eq!(stdout(&d.run(&["inventory"], None)), inventory);
    assert_success(&d.run(&["audit", "verify"], None));
    let audit = json(&d.run(&["audit", "list", "--json"], None));
    assert!(audit
        .as_array()
        .expect("entries")
        .iter()
        .any(|e| e["action"] == "store.restore"));

    // As an emergency: snapshot first, review pending.
    d.add("erin@localhost", "password 5");
    let out = d.run(
        &[
            "restore",
            path,
            "--force",
            "--emergency",
            "--reason",
            "outage",
            "--json",
        ],
        None,
    );
    let done = json(&out);
    let snapshot = done["snapshot"].as_str().expect("snapshot");
    assert!(Path::new(snapshot).exists(), "{snapshot}");
    assert_eq!(stdout(&d.run(&["inventory"], None)), inventory);
    let status = json(&d.run(&["status", "--json"], None));
    assert_eq!(
        status["emergency_awaiting_review"].as_array().map(Vec::len),
        Some(1),
        "{status}"
    );
    // Rolled back, at once: the deployment before that restore (with erin) comes back from
    // the backup taken before it.
    let out = d.run(
        &[
            "change",
            "rollback",
            "last",
            "--emergency",
            "--reason",
            "wrong backup",
        ],
        None,
    );
    assert_success(&out);
    let now = stdout(&d.run(&["inventory"], None));
    assert!(now.contains("erin@localhost"), "{now}");
    assert!(!now.contains("dave@localhost"), "{now}");
}

#[test]
fn one_users_contacts_and_rules_come_back_alone() {
    let d = deployment();
    let archive = backup(&d, "users.tar.gz");
    let path = archive.to_str().expect("utf-8");
    assert_success(&d.run(
        &["contacts", "remove", "alice@localhost", "bob@localhost"],
        None,
    ));
    assert_success(&d.run(
        &[
            "presence-rules",
            "remove",
            "alice@localhost",
            "@example.org",
        ],
        None,
    ));
    assert_success(&d.run(
        &["contacts", "add", "bob@localhost", "alice@localhost"],
        None,
    ));
    let out = d.run(&["restore", path, "--users", "alice@localhost"], None);
    assert_success(&out);
    assert!(
        stdout(&out)
            .contains("alice@localhost: 1 contact group(s), 2 contact(s), 1 presence rule(s)"),
        "{}",
        stdout(&out)
    );
    let alice = stdout(&d.run(&["contacts", "list", "alice@localhost", "--json"], None));
    assert!(
        alice.contains("bob@localhost") && alice.contains("Team"),
        "{alice}"
    );
    // Bob's list is his own: untouched.
    let bob = stdout(&d.run(&["contacts", "list", "bob@localhost", "--json"], None));
    assert!(bob.contains("alice@localhost"), "{bob}");
    // Recorded as a standard change; an unknown user is refused.
    let changes = json(&d.run(&["change", "list", "--json"], None));
    assert_eq!(
        changes[0]["title"],
        "restore the contacts and presence rules of alice@localhost"
    );
    let out = d.run(&["restore", path, "--users", "nobody@localhost"], None);
    assert_fails(&out, 1, "the backup has no user nobody@localhost");
}

#[test]
fn serve_takes_verifies_and_prunes_scheduled_backups() {
    let server = common::Running::start(
        &[
            "--listen",
            "udp://127.0.0.1:0",
            "--backup-interval",
            "1s",
            "--backup-keep",
            "2",
        ],
        1,
    );
    let data = server.data_dir();
    let deadline = std::time::Instant::now() + common::WAIT;
    while !server.stderr().contains("older scheduled backups deleted") {
        assert!(
            std::time::Instant::now() < deadline,
            "no third backup: {}",
            server.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(server
        .stderr()
        .contains("scheduled backup written and verified"));
    let listed = json(&confab_in(&data, &["backup", "list", "--json"]));
    let scheduled: Vec<&serde_json::Value> = listed
        .as_array()
        .expect("backups")
        .iter()
        .filter(|b| b["created_by"] == "schedule")
        .collect();
    assert!(
        (2..=3).contains(&scheduled.len()),
        "the newest two kept (a third may be being written): {listed}"
    );
    assert!(
        scheduled.iter().skip(1).all(|b| b["verified"] == true),
        "{listed}"
    );
    let files = std::fs::read_dir(data.join("backups"))
        .expect("backups directory")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tar.gz"))
        .count();
    assert!((2..=3).contains(&files), "{files} archives kept");
}

/// `n` users `user1@localhost` … with one credential each, straight into the store.
fn many_users(data: &Path, n: usize) {
    with_store(data, |store| async move {
        let all: Vec<(confab_store::NewUser, Vec<confab_store::Credential>)> = (1..=n)
            .map(|i| {
                (
                    confab_store::NewUser {
                        address: confab_store::Address::parse(&format!("user{i}@localhost"))
                            .expect("address"),
                        display_name: Some(format!("User {i}")),
                        pool: "default".into(),
                        enabled: true,
                    },
                    vec![confab_store::Credential {
                        realm: "localhost".into(),
                        algorithm: "MD5".into(),
                        ha1: format!("{i:032x}"),
                    }],
                )
            })
            .collect();
        for chunk in all.chunks(1000) {
            store
                .add_users_with_credentials(chunk)
                .await
                .expect("users");
        }
    });
}

#[test]
fn a_restore_killed_midway_leaves_the_store_as_it_was() {
    // A backup large enough that its restore takes a while…
    let source = Deployment::new();
    many_users(&source.data, 20_000);
    let archive = source.data.parent().expect("parent").join("big.tar.gz");
    assert_success(&source.run(
        &[
            "backup",
            "create",
            "--out",
            archive.to_str().expect("utf-8"),
        ],
        None,
    ));
    let backed_up = stdout(&source.run(&["inventory"], None));
    // …restored over another deployment, killed with SIGKILL while its transaction is being
    // written (the store's write-ahead log is growing).
    let target = Deployment::new();
    target.add("zed@localhost", "password 9");
    let before = stdout(&target.run(&["inventory"], None));
    let wal = target
        .data
        .join(format!("{}-wal", confab_store::SQLITE_FILE));
    let wal_size = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    let start_size = wal_size();
    let mut cmd = with_data_dir(
        &[
            "restore",
            archive.to_str().expect("utf-8"),
            "--force",
            "--emergency",
            "--reason",
            "test",
        ],
        &target.data,
    );
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("restore starts");
    let deadline = std::time::Instant::now() + common::WAIT * 3;
    loop {
        if wal_size() > start_size + (2 << 20) {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
            break;
        }
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the restore finished before the kill: make the backup larger"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the restore never wrote"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    println!(
        "killed with {} KiB of log written",
        (wal_size() - start_size) >> 10
    );
    assert_eq!(
        stdout(&target.run(&["inventory"], None)),
        before,
        "untouched after the kill"
    );
    assert_success(&target.run(&["audit", "verify"], None));
    // The same restore again completes; the store holds the backup, whole.
    let out = target.run(
        &[
            "restore",
            archive.to_str().expect("utf-8"),
            "--force",
            "--emergency",
            "--reason",
            "again",
        ],
        None,
    );
    assert_success(&out);
    let mut cmd = with_data_dir(&["inventory"], &target.data);
    cmd.arg("--credentials")
        .arg(source.data.join("admin.credentials"));
    assert_eq!(stdout(&run(cmd, None)), backed_up, "fully restored");
}
