//! The store suite on PostgreSQL: each test gets a database of its own, created on the server
//! named by `CONFAB_TEST_POSTGRES_URL` (a user allowed to create databases). Ignored in a plain
//! `cargo test`; `scripts/store-postgres.sh` starts a throwaway PostgreSQL and runs them.

#[macro_use]
mod common;

use std::sync::atomic::{AtomicU32, Ordering};

use confab_store::StoreLocation;
use sqlx::{Connection as _, Executor as _};

use common::{BoxFuture, Fixture};

const URL_VAR: &str = "CONFAB_TEST_POSTGRES_URL";

/// The server's URL with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

async fn fixture() -> Fixture {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let url = std::env::var(URL_VAR).unwrap_or_else(|_| {
        panic!(
            "set {URL_VAR}=postgres://USER:PASSWORD@HOST:PORT/DB, or run scripts/store-postgres.sh"
        )
    });
    let database = format!(
        "confab_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = sqlx::PgConnection::connect(&url)
        .await
        .expect("connect to the test server");
    admin
        .execute(format!("CREATE DATABASE {database}").as_str())
        .await
        .expect("create the test database");
    admin.close().await.expect("close");
    let db_url = with_database(&url, &database);
    let location = StoreLocation::resolve("unused".as_ref(), Some(&db_url)).expect("location");
    Fixture {
        location,
        raw: Box::new(move |sql| raw(db_url.clone(), sql)),
        _keep: None,
    }
}

fn raw(url: String, sql: String) -> BoxFuture<()> {
    Box::pin(async move {
        let mut conn = sqlx::PgConnection::connect(&url)
            .await
            .expect("raw connect");
        conn.execute(sql.as_str()).await.expect("raw sql");
        conn.close().await.expect("raw close");
    })
}

store_suite! {
    #[ignore = "needs PostgreSQL from Debian's packages: scripts/store-postgres.sh"]
    fixture = fixture;
}

#[test]
fn database_swapped_in_url() {
    assert_eq!(
        with_database("postgres://u:p@127.0.0.1:5433/confab?sslmode=disable", "t1"),
        "postgres://u:p@127.0.0.1:5433/t1?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "t2"), "postgres://h/t2");
}

#[tokio::test]
async fn unreachable_server_says_why_without_the_password() {
    // Nothing listens on port 1 of the loopback address: the error comes at once, names the
    // cause and the server, and keeps the password out.
    let location =
        StoreLocation::parse_url("postgres://confab:hunter2@127.0.0.1:1/confab").expect("location");
    let started = std::time::Instant::now();
    let err = confab_store::Store::open(&location)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        err.contains("127.0.0.1:1") && err.contains("refused"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL from Debian's packages: scripts/store-postgres.sh"]
async fn wrong_password_says_so() {
    let url = std::env::var(URL_VAR).expect(URL_VAR);
    let Some((head, tail)) = url.split_once('@') else {
        panic!("{URL_VAR} has no user");
    };
    let user = head.rsplit_once(':').map_or(head, |(u, _)| u);
    let location =
        StoreLocation::parse_url(&format!("{user}:wrong-password@{tail}")).expect("location");
    let err = confab_store::Store::open(&location)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("wrong-password"), "{err}");
}

/// A SQLite store in a temporary directory (kept alive by the returned guard).
async fn sqlite_store() -> (confab_store::Store, tempfile::TempDir) {
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let store = confab_store::Store::open(&StoreLocation::in_data_dir(&dir.path().join("data")))
        .await
        .expect("SQLite store");
    (store, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL from Debian's packages: scripts/store-postgres.sh"]
async fn backup_from_sqlite_restores_into_postgres() {
    let (from, _dir) = sqlite_store().await;
    from.ensure_defaults("example.com").await.expect("defaults");
    common::populate(&from).await;
    let dump = from.dump().await.expect("dump");
    assert_eq!(dump.backend, "sqlite");
    let to = fixture().await.open().await;
    common::restores_the_same(&dump, &to).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL from Debian's packages: scripts/store-postgres.sh"]
async fn backup_from_postgres_restores_into_sqlite() {
    let from = fixture().await.open_with_defaults().await;
    common::populate(&from).await;
    let dump = from.dump().await.expect("dump");
    assert_eq!(dump.backend, "postgres");
    let (to, _dir) = sqlite_store().await;
    common::restores_the_same(&dump, &to).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL from Debian's packages: scripts/store-postgres.sh"]
async fn kamailio_subscribers_are_read_from_postgres() {
    // A database shaped like Kamailio's auth_db schema (version 7) on PostgreSQL.
    let fx = fixture().await;
    fx.raw(
        "CREATE TABLE subscriber (id SERIAL PRIMARY KEY NOT NULL, \
         username VARCHAR(64) DEFAULT '' NOT NULL, domain VARCHAR(64) DEFAULT '' NOT NULL, \
         password VARCHAR(64) DEFAULT '' NOT NULL, ha1 VARCHAR(128) DEFAULT '' NOT NULL, \
         ha1b VARCHAR(128) DEFAULT '' NOT NULL, CONSTRAINT subscriber_account_idx UNIQUE \
         (username, domain))",
    )
    .await;
    fx.raw(
        "INSERT INTO subscriber (username, domain, password, ha1) VALUES \
         ('alice', 'example.com', 'secret', ''), \
         ('bob', 'example.com', '', '0123456789abcdef0123456789abcdef')",
    )
    .await;
    let url = match &fx.location {
        StoreLocation::Postgres { url } => url.clone(),
        other => panic!("a PostgreSQL fixture: {other}"),
    };
    let rows = confab_store::read_kamailio_subscribers(&url)
        .await
        .expect("read");
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].username.as_str(), rows[0].password.as_str()),
        ("alice", "secret")
    );
    assert_eq!(rows[1].ha1, "0123456789abcdef0123456789abcdef");
    // The users homed on Confab, written into Kamailio's database: created on first write,
    // updated in place, removed when they go back, rewritten whole.
    assert_eq!(
        confab_store::read_kamailio_moved(&url).await.expect("read"),
        None
    );
    let moved = |u: &str, p: &str| confab_store::LegacyMoved {
        username: u.into(),
        domain: "Example.com".into(),
        pool: p.into(),
    };
    let update = confab_store::MovedUpdate {
        moved: vec![moved("alice", "pilot"), moved("bob", "pilot")],
        ..Default::default()
    };
    assert_eq!(
        confab_store::write_kamailio_moved(&url, &update)
            .await
            .expect("write"),
        2
    );
    let update = confab_store::MovedUpdate {
        moved: vec![moved("alice", "fe-paris")],
        returned: vec![("bob".into(), "example.com".into())],
        ..Default::default()
    };
    assert_eq!(
        confab_store::write_kamailio_moved(&url, &update)
            .await
            .expect("write"),
        1
    );
    let rows = confab_store::read_kamailio_moved(&url)
        .await
        .expect("read")
        .expect("table");
    assert_eq!(
        rows,
        [confab_store::LegacyMoved {
            username: "alice".into(),
            domain: "example.com".into(),
            pool: "fe-paris".into(),
        }]
    );
    let update = confab_store::MovedUpdate {
        replace: true,
        moved: vec![moved("bob", "pilot")],
        ..Default::default()
    };
    confab_store::write_kamailio_moved(&url, &update)
        .await
        .expect("write");
    let rows = confab_store::read_kamailio_moved(&url)
        .await
        .expect("read")
        .expect("table");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].username, "bob");
    // A database without the table: a clear refusal.
    let other = fixture().await;
    let url = match &other.location {
        StoreLocation::Postgres { url } => url.clone(),
        other => panic!("a PostgreSQL fixture: {other}"),
    };
    let e = confab_store::read_kamailio_subscribers(&url)
        .await
        .expect_err("no table");
    assert!(e.to_string().contains("subscriber"), "{e}");
}
