//! `confab migrate import kamailio` against a database shaped like Kamailio's (the auth_db
//! module's `subscriber` table, schema version 7, in SQLite): users land on the legacy pool
//! with their credentials, conflicts are reported and left alone, a rerun is idempotent, and
//! a moved user signs in at Confab with the password it had at Kamailio — from its password,
//! or from its MD5 ha1 alone.
#![cfg(unix)]

mod common;

use std::path::Path;
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
    let data = server.data_dir();
    let dir = data.parent().expect("parent").to_path_buf();
    let doc = format!(
        "domains = [\"localhost\"]\n\n[[pool]]\nname = \"default\"\nkind = \"front-end\"\n\
         servers = [\"udp://{}\"]\n",
        server.addr("udp")
    );
    publish_approved(&data, &write(&dir, "topology.toml", &doc), &[]);
    // Kamailio joins the topology as a legacy pool: a normal change. (Its next hop is not
    // contacted here.)
    let merge = [
        "migrate",
        "merge",
        "kamailio",
        "--pool",
        "kamailio",
        "--next-hop",
        "udp://127.0.0.1:9",
        "--json",
    ];
    let id = json(&run(with_data_dir(&merge, &data), None))["change"].to_string();
    common::store::approve_and_implement(&data, &id, &[]);
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
    let out = run(with_data_dir(&merge, &data), None);
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
