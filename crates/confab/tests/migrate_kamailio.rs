//! A migration from a real Kamailio (Debian's package, on 127.0.0.1) to Confab, phase by
//! phase, as docs/migration.md walks an operator through it: Kamailio with 200 subscribers
//! in SQLite and the routing block of `confab migrate legacy-config kamailio` included; two
//! Confab pools (`pilot`, and `default` for production) as separate `confab serve`
//! processes. Every `confab migrate advance` runs the phase's checks with real SIP, so at
//! every stage a legacy-homed user and a Confab-homed user exchange messages in both
//! directions and moved users sign in with their Kamailio passwords (directly, and through
//! Kamailio, which must hand the registration to Confab); advancing is refused while a check
//! fails; a batch is rolled back to Kamailio; decommissioning is refused while a user remains
//! and accepted after.
//!
//! `#[ignore]`d: it needs Kamailio (`kamailio`, `kamailio-sqlite-modules`);
//! `scripts/migrate-kamailio.sh` installs them and runs it.
#![cfg(unix)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::store::{
    approve_and_implement, assert_success, json, publish_approved, run, stdout, with_data_dir,
};
use common::{confab, register_retrying, write, Running, WAIT};
use confab_ops::synthetic::{self, TestUser};
use confab_ua::{Secret, UaConfig, UserAgent};
use sqlx::Connection as _;

/// Where Debian's Kamailio keeps its SQLite schema.
const SCHEMA: &str = "/usr/share/kamailio/db_sqlite";

/// Kamailio's database: the `standard` and `auth_db` schemas of the installed Kamailio, and
/// subscribers u1 … u`n`@localhost with passwords kam-pw-N.
async fn kamailio_db(path: &Path, n: u32) {
    let mut conn =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .expect("db");
    for file in ["standard-create.sql", "auth_db-create.sql"] {
        let schema = std::fs::read_to_string(Path::new(SCHEMA).join(file)).unwrap_or_else(|e| {
            panic!("{SCHEMA}/{file}: {e}; install kamailio-sqlite-modules (scripts/migrate-kamailio.sh)")
        });
        sqlx::raw_sql(&schema)
            .execute(&mut conn)
            .await
            .expect("schema");
    }
    for i in 1..=n {
        add_subscriber(&mut conn, i).await;
    }
    conn.close().await.expect("close");
}

async fn add_subscriber(conn: &mut sqlx::SqliteConnection, i: u32) {
    let user = format!("u{i}");
    let password = format!("kam-pw-{i}");
    let ha1 = confab_ua::credentials::ha1(
        confab_ua::credentials::Algorithm::Md5,
        &user,
        "localhost",
        &password,
    );
    sqlx::query(
        "INSERT INTO subscriber (username, domain, password, ha1, ha1b) \
         VALUES (?, 'localhost', ?, ?, '')",
    )
    .bind(&user)
    .bind(&password)
    .bind(&ha1)
    .execute(conn)
    .await
    .expect("subscriber");
}

/// The rows of Kamailio's confab_moved table, `user@domain`, sorted.
async fn moved_table(db: &Path) -> Vec<String> {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("db");
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT username, domain FROM confab_moved ORDER BY username")
            .fetch_all(&mut conn)
            .await
            .expect("confab_moved");
    conn.close().await.expect("close");
    let mut out: Vec<String> = rows.into_iter().map(|(u, d)| format!("{u}@{d}")).collect();
    out.sort();
    out
}

/// Kamailio, running until dropped.
struct Kamailio {
    child: Child,
    log: PathBuf,
    addr: SocketAddr,
}

impl Kamailio {
    fn binary() -> PathBuf {
        std::env::var_os("KAMAILIO")
            .map(PathBuf::from)
            .or_else(|| {
                ["/usr/sbin/kamailio", "/usr/local/sbin/kamailio"]
                    .iter()
                    .map(PathBuf::from)
                    .find(|p| p.exists())
            })
            .expect("no kamailio: install it (scripts/migrate-kamailio.sh) or set KAMAILIO")
    }

    /// Starts Kamailio on a free UDP port of 127.0.0.1 with `block` included, and waits until
    /// it answers OPTIONS.
    async fn start(dir: &Path, db: &Path, block: &Path) -> Kamailio {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("free port")
            .port();
        let cfg = include_str!("data/kamailio-coexistence.cfg")
            .replace("@PORT@", &port.to_string())
            .replace("@DBURL@", &format!("sqlite://{}", db.display()))
            .replace("@CONFAB_BLOCK@", &block.display().to_string());
        let cfg = write(dir, "kamailio.cfg", &cfg);
        let log = dir.join("kamailio.log");
        let child = Command::new(Self::binary())
            .args(["-DD", "-E", "-m", "64", "-M", "8", "-f"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(std::fs::File::create(dir.join("kamailio.err")).expect("log"))
            .spawn()
            .expect("kamailio starts");
        let kamailio = Kamailio {
            child,
            log: dir.join("kamailio.err"),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + WAIT;
        loop {
            if synthetic::options(kamailio.addr).await.passed {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "Kamailio does not answer OPTIONS: {}",
                kamailio.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        kamailio
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes the topology: pools `default` (at `a`) and `pilot` (at `p`).
fn publish(data: &Path, a: SocketAddr, p: SocketAddr) {
    let doc = format!(
        "domains = [\"localhost\"]\n\n\
         [[pool]]\nname = \"default\"\nkind = \"front-end\"\nservers = [\"udp://{a}\"]\n\n\
         [[pool]]\nname = \"pilot\"\nkind = \"front-end\"\nservers = [\"udp://{p}\"]\n"
    );
    let file = write(data.parent().expect("parent"), "topology.toml", &doc);
    publish_approved(data, &file, &[]);
}

/// The production pool `default` (the first start) and the pilot pool, on one store.
fn two_pools() -> (Running, Running) {
    let prod = Running::start(&["--listen", "udp://127.0.0.1:0", "--log-level", "info"], 1);
    let data = prod.data_dir();
    publish(
        &data,
        prod.addr("udp"),
        "127.0.0.1:9".parse().expect("addr"),
    );
    let pilot = Running::start_in(
        confab(&[]),
        Some(&data),
        &[
            "--listen",
            "udp://127.0.0.1:0",
            "--pool",
            "pilot",
            "--log-level",
            "info",
        ],
        1,
    );
    publish(&data, prod.addr("udp"), pilot.addr("udp"));
    let deadline = Instant::now() + WAIT;
    while prod.stderr().matches("topology read again").count() < 2 {
        assert!(Instant::now() < deadline, "{}", prod.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    (prod, pilot)
}

/// The front-ends follow the change feed within a second.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

struct Operator {
    data: PathBuf,
}

impl Operator {
    fn confab(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run(with_data_dir(args, &self.data), stdin)
    }

    /// `confab migrate advance --json`: its outcome and the migration's phase after it.
    fn advance(&self) -> (String, String, serde_json::Value) {
        let out = self.confab(&["migrate", "advance", "--json"], None);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{e}: {}\n{}",
                stdout(&out),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let outcome = v["outcome"].as_str().unwrap_or_default().to_owned();
        assert_eq!(
            out.status.code(),
            Some(if outcome == "refused" { 1 } else { 0 }),
            "{v:#}"
        );
        (
            outcome,
            v["phase"].as_str().unwrap_or_default().to_owned(),
            v,
        )
    }

    /// Advances, and asserts the phase passed into `next`.
    fn passes(&self, next: &str, kamailio: &Kamailio) -> serde_json::Value {
        let (outcome, phase, v) = self.advance();
        assert_eq!(
            (outcome.as_str(), phase.as_str()),
            ("passed", next),
            "{v:#}\nKamailio: {}",
            kamailio.log()
        );
        v
    }

    /// Advances, asserts it is refused and that `check` is among the failed checks.
    fn refused(&self, check: &str) -> serde_json::Value {
        let (outcome, _, v) = self.advance();
        assert_eq!(outcome, "refused", "{v:#}");
        let failed: Vec<&str> = v["checks"]["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .filter(|c| c["passed"] == false)
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert!(
            failed.contains(&check),
            "{check} not among {failed:?}: {v:#}"
        );
        v
    }

    fn move_users(&self, args: &[&str]) -> i64 {
        let mut all = vec!["user", "move"];
        all.extend_from_slice(args);
        all.push("--json");
        let v = json(&self.confab(&all, None));
        v["change"].as_i64().unwrap_or_else(|| panic!("{v:#}"))
    }
}

async fn store(data: &Path) -> confab_store::Store {
    confab_store::Store::open(&confab_store::StoreLocation::in_data_dir(data))
        .await
        .expect("store opens")
}

async fn homes(data: &Path) -> std::collections::HashMap<String, String> {
    let store = store(data).await;
    let homes = store
        .list_users(&confab_store::UserFilter::default())
        .await
        .expect("users")
        .into_iter()
        .map(|u| (u.address.to_string(), u.pool))
        .collect();
    store.close().await;
    homes
}

fn legacy(i: u32) -> TestUser {
    TestUser {
        address: format!("u{i}@localhost"),
        password: format!("kam-pw-{i}"),
    }
}

/// `user` signs in at `server` with its Kamailio password.
async fn signs_in(server: SocketAddr, user: &TestUser) {
    let ua = UserAgent::bind(UaConfig {
        server: Some(server),
        secret: Some(Secret::Password(user.password.clone())),
        ..UaConfig::new(format!("sip:{}", user.address))
    })
    .await
    .expect("UA binds");
    tokio::time::timeout(Duration::from_secs(20), register_retrying(&ua))
        .await
        .unwrap_or_else(|_| panic!("{} never signs in at {server}", user.address));
    let _ = ua.unregister().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Kamailio from Debian's packages: run scripts/migrate-kamailio.sh"]
async fn a_kamailio_deployment_migrates_in_phases_with_coexistence() {
    let (prod, pilot) = two_pools();
    let data = prod.data_dir();
    let dir = data.parent().expect("parent").to_path_buf();
    let op = Operator { data: data.clone() };
    let db = dir.join("kamailio.db");
    kamailio_db(&db, 200).await;
    let db_arg = db.display().to_string();

    // 1. Plan: u1 moves first (the pilot account), u200 stays on Kamailio to the end.
    assert_success(&op.confab(
        &[
            "migrate",
            "plan",
            "kamailio",
            "--db",
            &db_arg,
            "--pool",
            "kamailio",
            "--pilot-pool",
            "pilot",
            "--production-pool",
            "default",
            "--legacy-account",
            "u200@localhost",
            "--pilot-account",
            "u1@localhost",
            "--passwords-stdin",
        ],
        Some("kam-pw-200\nkam-pw-1\n"),
    ));
    // Kamailio with Confab's routing block.
    let block = dir.join("confab.cfg");
    assert_success(&op.confab(
        &[
            "migrate",
            "legacy-config",
            "kamailio",
            "--out",
            &block.display().to_string(),
        ],
        None,
    ));
    let kamailio = Kamailio::start(&dir, &db, &block).await;
    let v = op.passes("prepare", &kamailio);
    assert!(v.to_string().contains("200 subscriber(s)"), "{v:#}");

    // 2. Prepare: a verified backup is required.
    op.refused("verified-backup");
    let archive = dir.join("before-migration.tar.gz");
    let archive_arg = archive.display().to_string();
    assert_success(&op.confab(&["backup", "create", "--out", &archive_arg], None));
    assert_success(&op.confab(&["backup", "verify", &archive_arg], None));
    op.passes("deploy-pilot", &kamailio);

    // 3. The pilot pool is deployed (its front-end answers).
    op.passes("merge", &kamailio);

    // 4. Merge the topologies and import Kamailio's users.
    op.refused("legacy-pool-in-topology");
    let next_hop = format!("udp://{}", kamailio.addr);
    let merge = json(&op.confab(
        &[
            "migrate",
            "merge",
            "kamailio",
            "--pool",
            "kamailio",
            "--next-hop",
            &next_hop,
            "--json",
        ],
        None,
    ));
    approve_and_implement(&data, &merge["change"].to_string(), &[]);
    op.refused("all-imported");
    let import = json(&op.confab(
        &[
            "migrate", "import", "kamailio", "--db", &db_arg, "--pool", "kamailio", "--json",
        ],
        None,
    ));
    assert_eq!(import["imported"], 200, "{import:#}");
    settle().await;
    op.passes("configure-pilot", &kamailio);

    // 5. Configure the pilot pool: its test users, Kamailio's table; then a pilot test user
    // and the legacy account exchange messages both ways through the two systems.
    op.refused("pilot-im");
    assert_success(&op.confab(&["test", "setup", "--pool", "pilot"], None));
    assert_success(&op.confab(&["migrate", "sync", "kamailio"], None));
    assert!(moved_table(&db).await.is_empty());
    op.passes("move-pilot", &kamailio);

    // 6. Move the pilot users (10): Kamailio learns it from the move itself.
    op.refused("pilot-account-moved");
    let pilot_users: Vec<String> = (1..=10).map(|i| format!("u{i}@localhost")).collect();
    let mut args: Vec<&str> = pilot_users.iter().map(String::as_str).collect();
    args.extend(["--to", "pilot"]);
    op.move_users(&args);
    assert_eq!(moved_table(&db).await.len(), 10);
    settle().await;
    signs_in(pilot.addr("udp"), &legacy(7)).await;
    op.passes("edge", &kamailio);
    assert!(
        kamailio
            .log()
            .contains("REGISTER of u1@localhost relayed to Confab"),
        "{}",
        kamailio.log()
    );

    // 7. The edge: recorded as not applicable.
    let v = op.passes("move-production", &kamailio);
    assert!(v.to_string().contains("not apply"), "{v:#}");

    // 8. Move to production in batches; one batch is rolled back to Kamailio.
    let batch = op.move_users(&[
        "--from",
        "kamailio",
        "--filter",
        "u1??@localhost",
        "--to",
        "default",
    ]);
    assert_eq!(moved_table(&db).await.len(), 110);
    settle().await;
    signs_in(prod.addr("udp"), &legacy(150)).await;
    // Through Kamailio too: it hands the registration to Confab.
    let deployment = store(&data).await;
    let r = synthetic::registration_reaching(kamailio.addr, &legacy(151), &deployment).await;
    deployment.close().await;
    assert!(r.passed, "{r:#?}\nKamailio: {}", kamailio.log());
    let back = json(&op.confab(
        &[
            "migrate",
            "rollback",
            "--change",
            &batch.to_string(),
            "--reason",
            "the batch's users report failed calls",
            "--json",
        ],
        None,
    ));
    assert_eq!(back["users"], 100, "{back:#}");
    approve_and_implement(&data, &back["change"].to_string(), &[]);
    let homes_now = homes(&data).await;
    assert_eq!(homes_now["u150@localhost"], "kamailio");
    assert_eq!(
        moved_table(&db).await.len(),
        10,
        "Kamailio serves the batch again"
    );
    settle().await;
    // A rolled-back user is Kamailio's again: signs in there, and reaches a moved user (and
    // back).
    let r =
        synthetic::im_both_ways(kamailio.addr, &legacy(150), pilot.addr("udp"), &legacy(3)).await;
    assert!(r.passed, "{r:#?}\nKamailio: {}", kamailio.log());
    op.refused("legacy-pool-drained");
    op.move_users(&[
        "--from",
        "kamailio",
        "--filter",
        "u1??@localhost",
        "--to",
        "default",
    ]);
    op.move_users(&[
        "--from",
        "kamailio",
        "--filter",
        "u??@localhost",
        "--to",
        "default",
    ]);
    assert_eq!(moved_table(&db).await.len(), 199);
    settle().await;
    op.passes("post-migration", &kamailio);

    // 9. Post-migration: the legacy account moves last.
    op.refused("legacy-account-moved");
    op.move_users(&["u200@localhost", "--to", "default"]);
    settle().await;
    op.passes("decommission", &kamailio);

    // 10. Decommission: refused while a user remains — one added at Kamailio meanwhile.
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("db");
    add_subscriber(&mut conn, 201).await;
    conn.close().await.expect("close");
    let import = json(&op.confab(
        &[
            "migrate", "import", "kamailio", "--db", &db_arg, "--pool", "kamailio", "--json",
        ],
        None,
    ));
    assert_eq!(
        (import["imported"].as_u64(), import["moved"].as_u64()),
        (Some(1), Some(200)),
        "users moved off Kamailio are not conflicts: {import:#}"
    );
    op.refused("legacy-pool-empty");
    op.move_users(&["u201@localhost", "--to", "default"]);
    let (outcome, phase, v) = op.advance();
    assert_eq!(
        (outcome.as_str(), phase.as_str()),
        ("requested", "decommission")
    );
    let (again, _, waiting) = op.advance();
    assert_eq!(
        (again.as_str(), &waiting["change"]),
        ("requested", &v["change"]),
        "the removal is asked for once"
    );
    approve_and_implement(&data, &v["change"].to_string(), &[]);
    op.passes("complete", &kamailio);
    let homes_now = homes(&data).await;
    assert_eq!(homes_now.len(), 203, "201 imported and 2 test users");
    assert!(homes_now.values().all(|p| p == "default" || p == "pilot"));

    // The record: every phase done with its evidence, every step a change.
    let status = json(&op.confab(&["migrate", "status", "--json"], None));
    let phases = status[0]["phases"].as_array().expect("phases");
    assert_eq!(phases.len(), 10);
    assert!(
        phases
            .iter()
            .all(|p| p["state"] == "done" && p["evidence"]["checks"].is_array()),
        "{status:#}"
    );
    let text = stdout(&op.confab(&["migrate", "status"], None));
    // The record as an operator reads it, for the CI log.
    eprintln!("{text}");
    assert!(text.contains("the migration is complete"), "{text}");
    assert!(text.contains("rollback of move"), "{text}");
    let changes = json(&op.confab(&["change", "list", "--json"], None));
    let advances = changes
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| {
            c["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("migration of kamailio: phase"))
        })
        .count();
    assert_eq!(advances, 10, "one standard change per phase passed");
}
