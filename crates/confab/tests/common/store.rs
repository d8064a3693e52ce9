//! A deployment for the management commands' tests: a data directory whose store has the
//! defaults of a first start, `confab` run on it with or without standard input, and the store
//! read directly to check what a command changed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use confab_sip::digest::{ha1, Algorithm};
use confab_store::{Address, Credential, Store, StoreLocation, User};

use super::confab;

/// A deployment as a first `confab serve` leaves it: domain `localhost`, pool `default`.
pub struct Deployment {
    _dir: tempfile::TempDir,
    /// The data directory.
    pub data: PathBuf,
}

impl Deployment {
    pub fn new() -> Deployment {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        with_store(&data, |store| async move {
            store.ensure_defaults("localhost").await.expect("defaults");
        });
        let d = Deployment { _dir: dir, data };
        // The first administrator and its credentials file, as a first start makes them.
        assert_success(&d.run(&["admin", "list"], None));
        d
    }

    /// Runs `confab ARGS --data-dir DATA` with `stdin` (none: no input at all).
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run(with_data_dir(args, &self.data), stdin)
    }

    /// Adds `address` with `password`, expecting success.
    pub fn add(&self, address: &str, password: &str) {
        let out = self.run(
            &["user", "add", address, "--password-stdin"],
            Some(&format!("{password}\n")),
        );
        assert_success(&out);
    }

    pub fn credentials(&self, address: &str) -> Vec<Credential> {
        let who = addr(address);
        with_store(&self.data, |store| async move {
            store
                .credentials(&who, who.domain())
                .await
                .expect("credentials")
        })
    }

    pub fn user(&self, address: &str) -> Option<User> {
        let who = addr(address);
        with_store(&self.data, |store| async move {
            store.find_user(&who).await.expect("find_user")
        })
    }

    /// The change feed's head: it moves with every change to the store.
    pub fn changes(&self) -> i64 {
        with_store(&self.data, |store| async move {
            store.last_change_seq().await.expect("feed head")
        })
    }

    /// What the deployment is, as the store's tables hold it — every row of every table, the
    /// audit log aside (a refused sign-in is recorded there: the refusal is evidence, not a
    /// change). Read over a connection of this test's own, all columns quoted by SQLite.
    pub fn state(&self) -> String {
        let data = self.data.clone();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async move {
                use sqlx::{Connection as _, Row as _};
                let db = data.join(confab_store::SQLITE_FILE);
                let mut conn =
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
                        .await
                        .expect("store file opens");
                let tables: Vec<String> = sqlx::query(
                    "SELECT name FROM sqlite_master WHERE type = 'table' \
                     AND name NOT IN ('audit_log', 'audit_head') ORDER BY name",
                )
                .fetch_all(&mut conn)
                .await
                .expect("tables")
                .iter()
                .map(|r| r.get::<String, _>(0))
                .collect();
                let mut dump = String::new();
                for table in tables {
                    let columns: Vec<String> =
                        sqlx::query(&format!("SELECT name FROM pragma_table_info('{table}')"))
                            .fetch_all(&mut conn)
                            .await
                            .expect("columns")
                            .iter()
                            .map(|r| format!("quote(\"{}\")", r.get::<String, _>(0)))
                            .collect();
                    let sql = format!(
                        "SELECT {} FROM \"{table}\" ORDER BY 1",
                        columns.join(" || '|' || ")
                    );
                    dump.push_str(&format!("{table}:\n"));
                    for row in sqlx::query(&sql).fetch_all(&mut conn).await.expect("rows") {
                        dump.push_str(&row.get::<String, _>(0));
                        dump.push('\n');
                    }
                }
                conn.close().await.expect("closed");
                dump
            })
    }

    /// Every octet of the store's database file, once everything committed is in it: the WAL
    /// is checkpointed into the file first (by a connection of this test's own), so that a
    /// checkpoint some earlier command's connection finishes late (sqlx closes on a thread of
    /// its own) cannot pass for a change. Other files of the data directory (credentials)
    /// count too; the WAL and its index do not, as they are folded in.
    pub fn store_files(&self) -> Vec<u8> {
        sql_on_file_blocking(&self.data, "PRAGMA wal_checkpoint(TRUNCATE)");
        let mut names: Vec<_> = std::fs::read_dir(&self.data)
            .expect("data dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| {
                let name = p.to_string_lossy();
                !name.ends_with("-shm") && !name.ends_with("-wal") && p.is_file()
            })
            .collect();
        names.sort();
        let mut all = Vec::new();
        for path in names {
            match std::fs::read(&path) {
                Ok(bytes) => all.extend(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("store file {}: {e}", path.display()),
            }
        }
        all
    }
}

/// Runs `sql` on the SQLite file of the data directory `data` behind the store's back, over
/// a connection of its own (what someone with the file and sqlite3 would do).
pub async fn sql_on_file(data: &Path, sql: &str) {
    use sqlx::Connection as _;
    let db = data.join(confab_store::SQLITE_FILE);
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("store file opens");
    sqlx::query(sql).execute(&mut conn).await.expect("SQL runs");
    conn.close().await.expect("closed");
}

/// [`sql_on_file`] from outside a runtime.
pub fn sql_on_file_blocking(data: &Path, sql: &str) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(sql_on_file(data, sql));
}

/// Runs `f` on the store of a data directory (created if missing), on a runtime of its own.
pub fn with_store<T, F, Fut>(data: &Path, f: F) -> T
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = Store::open(&StoreLocation::in_data_dir(data))
            .await
            .expect("store opens");
        let result = f(store.clone()).await;
        store.close().await;
        result
    })
}

/// `confab ARGS --data-dir DATA`, the option before a `--` that ends them (what follows is an
/// operation's words).
pub fn with_data_dir(args: &[&str], data: &Path) -> Command {
    let end = args.iter().position(|a| *a == "--").unwrap_or(args.len());
    let mut cmd = confab(&args[..end]);
    cmd.arg("--data-dir").arg(data).args(&args[end..]);
    cmd
}

pub fn run(mut cmd: Command, stdin: Option<&str>) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    match stdin {
        None => {
            cmd.stdin(Stdio::null());
            cmd.output().expect("confab runs")
        }
        Some(text) => {
            cmd.stdin(Stdio::piped());
            let mut child = cmd.spawn().expect("confab runs");
            let mut input = child.stdin.take().expect("stdin");
            // A command that refuses before reading its input closes it: not an error here.
            if let Err(e) = input.write_all(text.as_bytes()) {
                assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
            }
            drop(input);
            child.wait_with_output().expect("confab exits")
        }
    }
}

pub fn addr(text: &str) -> Address {
    Address::parse(text).expect("test address")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{:?}\nstdout: {}\nstderr: {}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

/// Expects exit status `code` and `fragment` in the error.
pub fn assert_fails(out: &Output, code: i32, fragment: &str) {
    assert_eq!(out.status.code(), Some(code), "stderr: {}", stderr(out));
    assert!(
        stderr(out).contains(fragment),
        "lacks {fragment:?}: {}",
        stderr(out)
    );
}

pub fn json(out: &Output) -> serde_json::Value {
    assert_success(out);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

pub fn expected_ha1(c: &Credential, user: &str, password: &str) -> String {
    let algorithm = Algorithm::parse(&c.algorithm).expect("a known algorithm");
    ha1(algorithm, user, &c.realm, password)
}

/// The token of the approver [`publish_approved`] adds.
pub const APPROVER_TOKEN: &str = "approver-token-for-the-tests-0123456789";

/// Adds the administrator `approver` (role approver, token [`APPROVER_TOKEN`]) to the
/// deployment at `data`, unless it is there.
pub fn ensure_approver(data: &Path) {
    let who = data.to_path_buf();
    // On a thread of its own: callers may be inside a runtime already.
    std::thread::spawn(move || {
        with_store(&who, |store| async move {
            if store
                .administrator("approver")
                .await
                .expect("read")
                .is_none()
            {
                store
                    .add_administrator(
                        "approver",
                        &[confab_store::Role::Approver],
                        &confab_ops::control::token_hash(APPROVER_TOKEN),
                        Some("admin"),
                    )
                    .await
                    .expect("approver added");
            }
        });
    })
    .join()
    .expect("approver added");
}

/// Approves change `id` as `approver` (added if missing), then implements it as the first
/// administrator; returns the output of `change implement`, successful.
pub fn approve_and_implement(data: &Path, id: &str, extra: &[&str]) -> Output {
    ensure_approver(data);
    let mut cmd = confab(&["change", "approve", id, "--data-dir"]);
    cmd.arg(data)
        .env("CONFAB_ADMIN", "approver")
        .env("CONFAB_ADMIN_TOKEN", APPROVER_TOKEN);
    assert_success(&run(cmd, None));
    let mut cmd = confab(&["change", "implement", id, "--data-dir"]);
    cmd.arg(data).args(extra);
    let out = run(cmd, None);
    assert_success(&out);
    out
}

/// Publishes the topology document `file` on the deployment at `data` the way change control
/// wants it: requested by the first administrator (`extra` are more arguments for
/// `topology publish`), approved by a second one, `approver` (added the first time), then
/// implemented. Returns the output of `change implement`, successful.
pub fn publish_approved(data: &Path, file: &Path, extra: &[&str]) -> Output {
    let mut cmd = confab(&["topology", "publish"]);
    cmd.arg(file)
        .args(extra)
        .arg("--data-dir")
        .arg(data)
        .arg("--json");
    let out = run(cmd, None);
    assert_success(&out);
    let id = json(&out)["change"].to_string();
    approve_and_implement(data, &id, &[])
}

/// The first administrator's token, from the credentials file a first start writes.
pub fn admin_token(data: &Path) -> String {
    let text = std::fs::read_to_string(data.join("admin.credentials")).expect("credentials");
    text.lines()
        .find_map(|l| l.strip_prefix("token = \""))
        .and_then(|t| t.strip_suffix('"'))
        .expect("token")
        .to_owned()
}
