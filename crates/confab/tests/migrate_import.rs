//! `confab migrate import kamailio` against a database shaped like Kamailio's (the auth_db
//! module's `subscriber` table, schema version 7, in SQLite): users land on the legacy pool
//! with their credentials, conflicts are reported and left alone, a rerun is idempotent, and
//! a moved user signs in at Confab with the password it had at Kamailio — from its password,
//! or from its MD5 ha1 alone.
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::store::{assert_success, json, publish_approved, run, stdout, with_data_dir};
use common::{confab, register_retrying, write, Running};
use confab_ua::{Secret, UaConfig, UserAgent};
use sqlx::Connection as _;

/// Users u1…u150 keep their password in clear, u151…u195 only their MD5 ha1; u196…u198 are of
/// a domain the deployment does not serve; u199 has nothing to sign in with; u200 is `carol`,
/// already a Confab user.
async fn kamailio_db(path: &Path) {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("db");
    sqlx::query(
        "CREATE TABLE subscriber (id INTEGER PRIMARY KEY NOT NULL, \
         username VARCHAR(64) DEFAULT '' NOT NULL, domain VARCHAR(64) DEFAULT '' NOT NULL, \
         password VARCHAR(64) DEFAULT '' NOT NULL, ha1 VARCHAR(128) DEFAULT '' NOT NULL, \
         ha1b VARCHAR(128) DEFAULT '' NOT NULL, UNIQUE (username, domain))",
    )
    .execute(&mut conn)
    .await
    .expect("table");
    for i in 1..=200 {
        let (user, domain) = match i {
            196..=198 => (format!("u{i}"), "other.example"),
            200 => ("carol".to_owned(), "localhost"),
            _ => (format!("u{i}"), "localhost"),
        };
        let password = format!("kam-pw-{i}");
        let md5 = confab_ua::credentials::ha1(
            confab_ua::credentials::Algorithm::Md5,
            &user,
            domain,
            &password,
        );
        let (password, ha1) = match i {
            151..=195 => (String::new(), md5),
            199 => (String::new(), String::new()),
            _ => (password, md5),
        };
        sqlx::query(
            "INSERT INTO subscriber (id, username, domain, password, ha1, ha1b) \
             VALUES (?, ?, ?, ?, ?, '')",
        )
        .bind(i64::from(i))
        .bind(&user)
        .bind(domain)
        .bind(&password)
        .bind(&ha1)
        .execute(&mut conn)
        .await
        .expect("row");
    }
    conn.close().await.expect("close");
}

fn import(data: &Path, db: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "migrate", "import", "kamailio", "--pool", "kamailio", "--json",
    ];
    args.extend_from_slice(extra);
    let mut cmd = with_data_dir(&args, data);
    cmd.arg("--db").arg(db);
    run(cmd, None)
}

fn outcome(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            stdout(out),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The deployment of `server` with pool `default` at its address, and Kamailio merged as the
/// legacy pool `kamailio` (a normal change, approved and implemented; its next hop is not
/// contacted here): its data directory, the directory around it, and the merge's change.
fn merged(server: &Running) -> (PathBuf, PathBuf, String) {
    let data = server.data_dir();
    let dir = data.parent().expect("parent").to_path_buf();
    let doc = format!(
        "domains = [\"localhost\"]\n\n[[pool]]\nname = \"default\"\nkind = \"front-end\"\n\
         servers = [\"udp://{}\"]\n",
        server.addr("udp")
    );
    publish_approved(&data, &write(&dir, "topology.toml", &doc), &[]);
    let id = json(&run(with_data_dir(&MERGE, &data), None))["change"].to_string();
    common::store::approve_and_implement(&data, &id, &[]);
    (data, dir, id)
}

const MERGE: [&str; 8] = [
    "migrate",
    "merge",
    "kamailio",
    "--pool",
    "kamailio",
    "--next-hop",
    "udp://127.0.0.1:9",
    "--json",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_users_are_imported_with_their_passwords() {
    let server = Running::start(
        &[
            "--listen",
            "udp://127.0.0.1:0",
            "--pool",
            "default",
            // What a deployment coexisting with Kamailio offers: its clients, and the users
            // that kept only their MD5 ha1, answer MD5.
            "--digest-algorithms",
            "MD5",
        ],
        1,
    );
    let (data, dir, _) = merged(&server);
    let pools = json(&run(
        with_data_dir(&["pool", "list", "--json"], &data),
        None,
    ));
    assert!(
        pools
            .as_array()
            .expect("pools")
            .iter()
            .any(|p| p["name"] == "kamailio" && p["kind"] == "legacy"),
        "{pools}"
    );
    let out = run(with_data_dir(&MERGE, &data), None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has a pool 'kamailio' already"));
    let mut cmd = confab(&["user", "add", "carol@localhost", "--password-stdin"]);
    cmd.arg("--data-dir").arg(&data);
    assert_success(&run(cmd, Some("carols password\n")));
    let db = dir.join("kamailio.db");
    kamailio_db(&db).await;

    // Onto a Confab pool: refused, nothing imported.
    let mut cmd = with_data_dir(
        &["migrate", "import", "kamailio", "--pool", "default"],
        &data,
    );
    cmd.arg("--db").arg(&db);
    let out = run(cmd, None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a Confab pool"));

    // A dry run says what would happen.
    let dry = outcome(&import(&data, &db, &["--dry-run"]));
    assert_eq!(dry["imported"], 195);
    let users = json(&run(
        with_data_dir(&["user", "list", "--json"], &data),
        None,
    ));
    assert_eq!(
        users.as_array().map(Vec::len),
        Some(1),
        "a dry run imports nobody"
    );

    let out = import(&data, &db, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "conflicts are reported with status 1"
    );
    let first = outcome(&out);
    assert_eq!(first["legacy"], 200);
    assert_eq!(first["imported"], 195);
    assert_eq!(first["md5_only"], 45);
    let conflicts: Vec<String> = first["conflicts"]
        .as_array()
        .expect("conflicts")
        .iter()
        .map(|c| format!("{}: {}", c["address"], c["problem"]))
        .collect();
    assert_eq!(conflicts.len(), 5, "{conflicts:#?}");
    assert!(conflicts[4].contains("carol") && conflicts[4].contains("homed on pool 'default'"));
    assert!(conflicts
        .iter()
        .any(|c| c.contains("u199") && c.contains("neither a password")));
    assert!(conflicts
        .iter()
        .any(|c| c.contains("u196") && c.contains("other.example")));

    // Again: nothing new, nothing overwritten.
    let again = outcome(&import(&data, &db, &[]));
    assert_eq!(
        (again["imported"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(195))
    );
    // A password changed at Kamailio meanwhile is carried over.
    let url = format!("sqlite://{}", db.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("db");
    sqlx::query("UPDATE subscriber SET password = 'changed-at-kamailio' WHERE username = 'u2'")
        .execute(&mut conn)
        .await
        .expect("update");
    conn.close().await.expect("close");
    let changed = outcome(&import(&data, &db, &[]));
    assert_eq!(changed["updated"], 1);
    // Another realm at Kamailio: the ha1-only users cannot come over (dry run).
    let realm = outcome(&import(&data, &db, &["--dry-run", "--realm", "corp"]));
    assert_eq!(realm["conflicts"].as_array().map(Vec::len), Some(5 + 45));

    // Moved to the Confab pool, users sign in with the passwords Kamailio had: from the
    // password (u1, u2's new one), and from the MD5 ha1 alone (u151).
    let out = run(
        with_data_dir(
            &[
                "user",
                "move",
                "u1@localhost",
                "u2@localhost",
                "u151@localhost",
                "--to",
                "default",
            ],
            &data,
        ),
        None,
    );
    assert_success(&out);
    // The front-end hears of the move within a second (until then it would send the REGISTER
    // to the legacy pool, which this test does not run).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for (user, password) in [
        ("u1", "kam-pw-1"),
        ("u2", "changed-at-kamailio"),
        ("u151", "kam-pw-151"),
    ] {
        let ua = UserAgent::bind(UaConfig {
            server: Some(server.addr("udp")),
            secret: Some(Secret::Password(password.to_owned())),
            ..UaConfig::new(format!("sip:{user}@localhost"))
        })
        .await
        .expect("UA binds");
        tokio::time::timeout(Duration::from_secs(30), register_retrying(&ua))
            .await
            .unwrap_or_else(|_| panic!("{user} never signs in: {}", server.stderr()));
    }
    let changes = json(&run(
        with_data_dir(&["change", "list", "--json"], &data),
        None,
    ));
    assert!(changes
        .as_array()
        .expect("changes")
        .iter()
        .any(|c| c["title"] == "import 195 Kamailio subscriber(s) onto legacy pool kamailio"));
}

/// The rows of the `confab_moved` table Confab keeps in Kamailio's database.
async fn moved_table(db: &Path) -> Vec<String> {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("db");
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT username, domain, pool FROM confab_moved ORDER BY username")
            .fetch_all(&mut conn)
            .await
            .expect("confab_moved");
    conn.close().await.expect("close");
    rows.into_iter()
        .map(|(u, d, p)| format!("{u}@{d} {p}"))
        .collect()
}

/// The migration's commands that need no Kamailio running (the whole migration, with one, is
/// `migrate_kamailio.rs`): a plan that does not hold together is refused and stores nothing;
/// `advance` passes a phase whose checks pass and refuses one whose checks fail, recording
/// both; the routing block names Confab's front-ends and Kamailio's database; every move off
/// or back onto the legacy pool is written to Kamailio's `confab_moved` table at once, `sync`
/// rewrites it whole, and `migrate rollback` sends a moved batch back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_is_planned_checked_and_kamailio_told_of_every_move() {
    let server = Running::start(&["--listen", "udp://127.0.0.1:0"], 1);
    let (data, dir, id) = merged(&server);
    let db = dir.join("kamailio.db");
    kamailio_db(&db).await;
    let db_arg = db.display().to_string();
    let imported = outcome(&import(&data, &db, &[]));
    assert_eq!(imported["imported"], 196);
    let confab = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = with_data_dir(args, &data);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(cmd, None)
    };
    let passwords = [
        ("CONFAB_LEGACY_ACCOUNT_PASSWORD", "kam-pw-150"),
        ("CONFAB_PILOT_ACCOUNT_PASSWORD", "kam-pw-1"),
    ];
    let plan = |pilot: &'static str, env: &[(&str, &str)]| {
        confab(
            &[
                "migrate",
                "plan",
                "kamailio",
                "--db",
                &db_arg,
                "--pool",
                "kamailio",
                "--pilot-pool",
                pilot,
                "--legacy-account",
                "u150@localhost",
                "--pilot-account",
                "u1@localhost",
            ],
            env,
        )
    };
    // Refused, nothing stored: no passwords; the legacy pool as the pilot.
    let out = plan("default", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CONFAB_LEGACY_ACCOUNT_PASSWORD"));
    let out = plan("kamailio", &passwords);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("none may be the legacy pool"));
    assert!(stdout(&confab(&["migrate", "status"], &[])).contains("no migration planned"));
    assert_success(&plan("default", &passwords));
    let again = plan("default", &passwords);
    assert_eq!(
        again.status.code(),
        Some(1),
        "a legacy pool is migrated once"
    );
    // Another machine of the operator's is given the passwords too (here: again).
    let mut cmd = with_data_dir(&["migrate", "accounts", "--passwords-stdin"], &data);
    cmd.env_remove("CONFAB_LEGACY_ACCOUNT_PASSWORD");
    assert_success(&run(cmd, Some("kam-pw-150\nkam-pw-1\n")));
    let accounts = std::fs::metadata(data.join("test-users/migration-kamailio.toml"))
        .expect("the accounts' passwords are kept");
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(accounts.permissions().mode() & 0o777, 0o600);
    }

    // The plan phase passes (the database is read, the accounts are subscribers); prepare
    // is refused without a verified backup, and the refusal is recorded.
    let advanced = confab(&["migrate", "advance", "--json"], &[]);
    let v = json(&advanced);
    assert_eq!(
        (&v["outcome"], &v["phase"]),
        (&"passed".into(), &"prepare".into())
    );
    let refused = confab(&["migrate", "advance"], &[]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stdout(&refused).contains("FAIL verified-backup"),
        "{}",
        stdout(&refused)
    );
    let verify = confab(&["migrate", "verify", "--json"], &[]);
    assert_eq!(verify.status.code(), Some(1));
    let status = stdout(&confab(&["migrate", "status"], &[]));
    assert!(status.contains("NOW   prepare"), "{status}");
    assert!(
        status.contains("advance refused: verified-backup failed"),
        "{status}"
    );
    assert!(status.contains("200 subscriber(s)"), "{status}");

    // The routing block for Kamailio.
    let block = stdout(&confab(&["migrate", "legacy-config", "kamailio"], &[]));
    assert!(block.contains("route[CONFAB]") && block.contains("route[CONFAB_TARGET]"));
    let front = server.addr("udp");
    assert!(
        block.contains(&format!(
            "($si == \"{}\" && $sp == {} && $proto == \"udp\")",
            front.ip(),
            front.port()
        )),
        "{block}"
    );
    assert!(block.contains(&format!("confab=>sqlite://{}", db.display())));
    let out = confab(
        &[
            "migrate",
            "legacy-config",
            "kamailio",
            "--confab",
            "ws://127.0.0.1:80",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));

    // Front-ends named: tried in that order, a WebSocket listener refused.
    let named = stdout(&confab(
        &[
            "migrate",
            "legacy-config",
            "kamailio",
            "--confab",
            "udp://127.0.0.1:5999",
            "--confab",
            "tcp://127.0.0.1:5998",
        ],
        &[],
    ));
    assert!(
        named.contains("$du = \"sip:127.0.0.1:5999;transport=udp\";"),
        "{named}"
    );
    assert!(
        named.contains("$du = \"sip:127.0.0.1:5998;transport=tcp\";"),
        "{named}"
    );
    // Moves tell Kamailio at once.
    let moved = json(&confab(
        &[
            "user",
            "move",
            "u1@localhost",
            "u2@localhost",
            "u3@localhost",
            "--to",
            "default",
            "--json",
        ],
        &[],
    ));
    assert_eq!(
        moved_table(&db).await,
        [
            "u1@localhost default",
            "u2@localhost default",
            "u3@localhost default"
        ]
    );
    assert_success(&confab(
        &["user", "move", "u3@localhost", "--to", "kamailio"],
        &[],
    ));
    assert_eq!(moved_table(&db).await.len(), 2);
    // A rerun of the import counts the moved users as moved, not as conflicts.
    let rerun = outcome(&import(&data, &db, &[]));
    assert_eq!(rerun["moved"], 2, "{rerun:#}");
    // Kamailio's table damaged (a restore of its database): sync rewrites it.
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("db");
    sqlx::query("INSERT INTO confab_moved VALUES ('u9', 'localhost', 'default', 0)")
        .execute(&mut conn)
        .await
        .expect("insert");
    conn.close().await.expect("close");
    let synced = json(&confab(&["migrate", "sync", "kamailio", "--json"], &[]));
    assert_eq!(synced["rows"], 2);
    assert_eq!(moved_table(&db).await.len(), 2);

    // A move rolled back through the migration: a normal change; the users go back to
    // Kamailio's pool and out of its table.
    let out = confab(
        &[
            "migrate",
            "rollback",
            "--change",
            &id,
            "--reason",
            "wrong change",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "the merge is not a move");
    // At 3 a.m., as an emergency change: at once, reviewed afterwards.
    let back = json(&confab(
        &[
            "migrate",
            "rollback",
            "--change",
            &moved["change"].to_string(),
            "--reason",
            "the pilot users cannot call out",
            "--emergency",
            "--json",
        ],
        &[],
    ));
    assert_eq!((&back["users"], &back["done"]), (&3.into(), &true.into()));
    assert!(moved_table(&db).await.is_empty());
    let change = json(&confab(
        &["change", "show", &back["change"].to_string(), "--json"],
        &[],
    ));
    assert_eq!(change["class"], "emergency", "{change:#}");
    let users = json(&confab(
        &["user", "list", "--pool", "kamailio", "--json"],
        &[],
    ));
    assert_eq!(users.as_array().map(Vec::len), Some(196));
}
