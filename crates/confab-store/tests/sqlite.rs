//! The store suite on SQLite: each test gets a fresh data directory (not yet created) in a
//! temporary directory. Plus what only SQLite has: the file, WAL mode, and store URLs.

#[macro_use]
mod common;

use std::path::PathBuf;

use confab_store::{Store, StoreError, StoreLocation};
use sqlx::{Connection as _, Executor as _};
use tempfile::TempDir;

use common::{BoxFuture, Fixture};

async fn fixture() -> Fixture {
    let dir = TempDir::new().expect("temporary directory");
    let data_dir = dir.path().join("confab-data");
    let location = StoreLocation::resolve(&data_dir, None).expect("location");
    let file = data_dir.join(confab_store::SQLITE_FILE);
    Fixture {
        location,
        raw: Box::new(move |sql| raw(file.clone(), sql)),
        _keep: Some(Box::new(dir)),
    }
}

fn raw(file: PathBuf, sql: String) -> BoxFuture<()> {
    Box::pin(async move {
        let url = format!("sqlite://{}", file.display());
        let mut conn = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("raw connect");
        conn.execute(sql.as_str()).await.expect("raw sql");
        conn.close().await.expect("raw close");
    })
}

store_suite! {
    fixture = fixture;
}

/// Set in the child processes of `concurrent_open_from_processes`: the data directory.
const CHILD_VAR: &str = "CONFAB_STORE_TEST_CHILD_DIR";

#[test]
fn concurrent_open_from_processes() {
    // SQLite locks differ between connections of one process and of several: the suite's
    // concurrent_open covers the first, this the second. Four copies of this test binary
    // create the same store at once, each adding its defaults and a user.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    if let Ok(dir) = std::env::var(CHILD_VAR) {
        let name = std::env::var("CONFAB_STORE_TEST_CHILD_NAME").unwrap_or_default();
        runtime.block_on(async {
            let store = Store::open(&StoreLocation::in_data_dir(dir.as_ref()))
                .await
                .unwrap_or_else(|e| panic!("child {name}: {e}"));
            store
                .ensure_defaults("example.com")
                .await
                .expect("defaults");
            common::add(&store, &format!("child{name}@example.com")).await;
        });
        return;
    }
    let dir = TempDir::new().expect("temporary directory");
    let data_dir = dir.path().join("shared");
    let exe = std::env::current_exe().expect("test binary");
    let children: Vec<_> = (0..4)
        .map(|i| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "concurrent_open_from_processes",
                    "--test-threads=1",
                ])
                .env(CHILD_VAR, &data_dir)
                .env("CONFAB_STORE_TEST_CHILD_NAME", i.to_string())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn a child")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("child");
        assert!(
            out.status.success(),
            "child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    runtime.block_on(async {
        let store = Store::open(&StoreLocation::in_data_dir(&data_dir))
            .await
            .expect("open");
        let users = store.list_users(&Default::default()).await.expect("users");
        assert_eq!(users.len(), 4);
        assert_eq!(store.domains().await.map(|d| d.len()).ok(), Some(1));
        assert_eq!(store.pools().await.map(|p| p.len()).ok(), Some(1));
        // One domain.added, one pool.added and four user.added.
        assert_eq!(store.last_change_seq().await.ok(), Some(6));
    });
}

#[tokio::test]
async fn file_created_in_wal_mode() {
    let fx = fixture().await;
    let StoreLocation::Sqlite { path } = &fx.location else {
        panic!("not sqlite");
    };
    assert!(!path.exists());
    let store = fx.open_with_defaults().await;
    assert!(path.is_file(), "created on first open with its directory");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &std::path::Path| {
            std::fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o777)
                .ok()
        };
        assert_eq!(
            mode(path),
            Some(0o600),
            "HA1 values are for this user's eyes only"
        );
        assert_eq!(path.parent().and_then(mode), Some(0o700));
    }
    let wal = path.with_file_name(format!("{}-wal", confab_store::SQLITE_FILE));
    assert!(
        wal.exists(),
        "WAL mode leaves a -wal file beside the database while open"
    );
    assert_eq!(store.backend(), confab_store::BackendKind::Sqlite);
    assert_eq!(store.location(), &fx.location);
}

#[tokio::test]
async fn sqlite_url_names_the_file() {
    let dir = TempDir::new().expect("temporary directory");
    let file = dir.path().join("elsewhere").join("store.db");
    let url = format!("sqlite://{}", file.display());
    let location = StoreLocation::resolve(dir.path(), Some(&url)).expect("location");
    assert_eq!(location, StoreLocation::Sqlite { path: file.clone() });
    let store = Store::open(&location).await.expect("open");
    store.ensure_defaults("localhost").await.expect("defaults");
    assert!(file.is_file());
}

#[tokio::test]
async fn unusable_file_says_what_to_check() {
    let dir = TempDir::new().expect("temporary directory");
    let file = dir.path().join("confab.db");
    std::fs::write(
        &file,
        b"this is not a database, just some text that is long enough",
    )
    .expect("write");
    let location = StoreLocation::Sqlite { path: file };
    match Store::open(&location).await {
        Err(e @ (StoreError::Unavailable { .. } | StoreError::Backend { .. })) => {
            let text = e.to_string();
            assert!(text.contains("confab.db"), "{text}");
        }
        other => panic!("expected an error naming the file, got {other:?}"),
    }
    let blocked = StoreLocation::Sqlite {
        path: dir.path().join("confab.db").join("sub").join("x.db"),
    };
    let err = Store::open(&blocked).await.err().map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("cannot create the directory")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_restores_into_a_fresh_store() {
    let from = fixture().await;
    let store = from.open_with_defaults().await;
    common::populate(&store).await;
    let dump = store.dump().await.expect("dump");
    let to = fixture().await;
    common::restores_the_same(&dump, &to.open().await).await;
}
