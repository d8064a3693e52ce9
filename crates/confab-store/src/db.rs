//! The two backends behind one small interface. [`Db`] is a pool, [`Tx`] a transaction and
//! [`Row`] a result row of either SQLite or PostgreSQL; each forwards to the concrete driver
//! type, so that every query of the store is written once, in the SQL both databases speak
//! (`$1` parameters, `ON CONFLICT`, `RETURNING`), and backend differences stay in this file
//! and in the migrations.
//!
//! Connection settings live here too: SQLite in WAL mode with a busy timeout, foreign keys on
//! and `synchronous = FULL` (an acknowledged write survives a power cut, which the promise
//! that stored messages are never lost needs), and every SQLite write transaction begun with
//! `BEGIN IMMEDIATE`, so that two writers queue on the busy timeout instead of failing when a
//! reader tries to become a writer.

use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection as _, Executor as _, Postgres, Row as _, Sqlite, Transaction};

use crate::location::redact;
use crate::StoreError;

/// How long a SQLite writer waits for another one before giving up with [`StoreError::Busy`].
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long any caller waits for a free pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// SQLite connections per store handle: WAL lets readers run beside the one writer.
const SQLITE_CONNECTIONS: u32 = 4;
/// PostgreSQL connections per store handle (one front-end or one CLI command).
const POSTGRES_CONNECTIONS: u32 = 8;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// SQLite, the embedded default.
    Sqlite,
    /// PostgreSQL, shared by many front-ends.
    Postgres,
}

impl BackendKind {
    /// `sqlite` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Sqlite => "sqlite",
            BackendKind::Postgres => "postgres",
        }
    }
}

/// A connection pool of either backend.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// An open transaction; dropped without [`Tx::commit`], it rolls back.
pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// A result row.
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

/// A query parameter of one of the few types the schema uses.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Int(i64),
    OptInt(Option<i64>),
    Text(&'a str),
    OptText(Option<&'a str>),
    Bool(bool),
    Bytes(&'a [u8]),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::OptInt(v)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(v)
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::OptText(v)
    }
}

impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(v: &'a [u8]) -> Self {
        Arg::Bytes(v)
    }
}

/// `sqlx::query(sql)` with `args` bound in order; expands to the concrete driver's query.
macro_rules! bind {
    ($sql:expr, $args:expr) => {{
        let mut query = sqlx::query($sql);
        for arg in $args {
            query = match *arg {
                Arg::Int(v) => query.bind(v),
                Arg::OptInt(v) => query.bind(v),
                Arg::Text(v) => query.bind(v),
                Arg::OptText(v) => query.bind(v),
                Arg::Bool(v) => query.bind(v),
                Arg::Bytes(v) => query.bind(v),
            };
        }
        query
    }};
}

/// Runs the same expression on whichever concrete pool or transaction `$on` holds.
macro_rules! each {
    ($on:expr, $ty:ident, |$x:ident| $body:expr) => {
        match $on {
            $ty::Sqlite($x) => $body,
            $ty::Postgres($x) => $body,
        }
    };
}

impl Db {
    /// Opens (creating it and its directory if needed) a SQLite database file.
    pub(crate) async fn open_sqlite(path: &Path) -> Result<Db, StoreError> {
        let shown = format!("sqlite:{}", path.display());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(|e| StoreError::Unavailable {
                location: shown.clone(),
                reason: format!("cannot create the directory {}: {e}", dir.display()),
                fix: "check that the data directory's parent exists and is writable by this user",
            })?;
        }
        create_private_file(path).map_err(|e| StoreError::Unavailable {
            location: shown.clone(),
            reason: format!("cannot create the file: {e}"),
            fix: "check that the data directory is writable by this user",
        })?;
        // No journal_mode here: the driver would set it on every new connection, and
        // switching a database to WAL takes a lock that the busy timeout does not wait for,
        // so two processes creating the store at once would fail. See `ensure_wal`.
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .foreign_keys(true);
        let unavailable = |e: sqlx::Error| StoreError::Unavailable {
            location: shown.clone(),
            reason: e.to_string(),
            fix: "check that the file is a SQLite database, that this user may read and write \
                  it and its directory, and that the disk is not full",
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(SQLITE_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        match ensure_wal(&pool).await {
            Ok(()) => Ok(Db::Sqlite(pool)),
            Err(e) => {
                pool.close().await;
                Err(match e {
                    WalError::Db(e) => unavailable(e),
                    WalError::Refused(mode) => StoreError::Unavailable {
                        location: shown,
                        reason: format!(
                            "SQLite cannot use WAL mode there (it stays in {mode} mode)"
                        ),
                        fix: "put the data directory on a local file system: network file \
                              systems cannot share SQLite's WAL index",
                    },
                })
            }
        }
    }

    /// Connects to a PostgreSQL database.
    pub(crate) async fn open_postgres(url: &str) -> Result<Db, StoreError> {
        let options: PgConnectOptions = url.parse().map_err(|e: sqlx::Error| {
            StoreError::Location {
                location: redact(url),
                fix: format!(
                    "{}; write it as postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE",
                    // The driver's message may quote the URL: show only its kind.
                    match e {
                        sqlx::Error::Configuration(_) => "the URL does not parse",
                        _ => "the URL is not usable",
                    }
                ),
            }
        })?;
        let options = options.application_name("confab");
        let unavailable = |reason: String| StoreError::Unavailable {
            location: redact(url),
            reason,
            fix: "check that PostgreSQL runs and accepts connections from this host, and the \
                  user, password and database in the store URL",
        };
        // One connection first, alone: a pool retries until its timeout and then reports only
        // the timeout, where an operator needs "connection refused" or "password failed".
        match tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(&options)).await {
            Ok(Ok(probe)) => drop(probe.close().await),
            Ok(Err(e)) => return Err(unavailable(e.to_string())),
            Err(_) => {
                return Err(unavailable(format!(
                    "no answer within {} s",
                    ACQUIRE_TIMEOUT.as_secs()
                )))
            }
        }
        PgPoolOptions::new()
            .max_connections(POSTGRES_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map(Db::Postgres)
            .map_err(|e| unavailable(e.to_string()))
    }

    pub(crate) fn kind(&self) -> BackendKind {
        match self {
            Db::Sqlite(_) => BackendKind::Sqlite,
            Db::Postgres(_) => BackendKind::Postgres,
        }
    }

    /// Begins a write transaction: `BEGIN IMMEDIATE` on SQLite takes the write lock now.
    pub(crate) async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Begins a read-only transaction: one consistent view over several queries, without
    /// taking SQLite's write lock.
    pub(crate) async fn begin_read(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN DEFERRED").await?),
            Db::Postgres(pool) => Tx::Postgres(
                pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?,
            ),
        })
    }

    pub(crate) async fn execute<'q>(
        &self,
        sql: &'q str,
        args: &[Arg<'q>],
    ) -> Result<u64, sqlx::Error> {
        each!(self, Db, |pool| Ok(bind!(sql, args)
            .execute(pool)
            .await?
            .rows_affected()))
    }

    pub(crate) async fn fetch_all<'q>(
        &self,
        sql: &'q str,
        args: &[Arg<'q>],
    ) -> Result<Vec<Row>, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => bind!(sql, args)
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            Db::Postgres(pool) => bind!(sql, args)
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect(),
        })
    }

    pub(crate) async fn fetch_optional<'q>(
        &self,
        sql: &'q str,
        args: &[Arg<'q>],
    ) -> Result<Option<Row>, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => bind!(sql, args)
                .fetch_optional(pool)
                .await?
                .map(Row::Sqlite),
            Db::Postgres(pool) => bind!(sql, args)
                .fetch_optional(pool)
                .await?
                .map(Row::Postgres),
        })
    }

    pub(crate) async fn close(&self) {
        each!(self, Db, |pool| pool.close().await)
    }
}

impl Tx {
    pub(crate) fn kind(&self) -> BackendKind {
        match self {
            Tx::Sqlite(_) => BackendKind::Sqlite,
            Tx::Postgres(_) => BackendKind::Postgres,
        }
    }

    pub(crate) async fn execute<'q>(
        &mut self,
        sql: &'q str,
        args: &[Arg<'q>],
    ) -> Result<u64, sqlx::Error> {
        each!(self, Tx, |tx| Ok(bind!(sql, args)
            .execute(&mut **tx)
            .await?
            .rows_affected()))
    }

    /// Runs a script of several statements without parameters (a migration).
    pub(crate) async fn execute_script(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        // A plain string runs unprepared (PostgreSQL's simple protocol), which is what
        // allows several statements in one call.
        each!(self, Tx, |tx| (&mut **tx).execute(sql).await.map(drop))
    }

    pub(crate) async fn fetch_all<'q>(
        &mut self,
        sql: &'q str,
        args: &[Arg<'q>],
    ) -> Result<Vec<Row>, sqlx::Error> {
        Ok(match self {
            Tx::Sqlite(tx) => bind!(sql, args)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            Tx::Postgres(tx) => bind!(sql, args)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect(),
        })
    }

    pub(crate) async fn fetch_optional<'q>(
        &mut self,
        sql: &'q str,
        args: &[Arg<'q>],
    ) -> Result<Option<Row>, sqlx::Error> {
        Ok(match self {
            Tx::Sqlite(tx) => bind!(sql, args)
                .fetch_optional(&mut **tx)
                .await?
                .map(Row::Sqlite),
            Tx::Postgres(tx) => bind!(sql, args)
                .fetch_optional(&mut **tx)
                .await?
                .map(Row::Postgres),
        })
    }

    pub(crate) async fn fetch_one<'q>(
        &mut self,
        sql: &'q str,
        args: &[Arg<'q>],
    ) -> Result<Row, sqlx::Error> {
        self.fetch_optional(sql, args)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        each!(self, Tx, |tx| tx.commit().await)
    }
}

impl Row {
    pub(crate) fn int(&self, column: &str) -> Result<i64, StoreError> {
        each!(self, Row, |row| row.try_get(column)).map_err(|e| decode(column, e))
    }

    pub(crate) fn text(&self, column: &str) -> Result<String, StoreError> {
        each!(self, Row, |row| row.try_get(column)).map_err(|e| decode(column, e))
    }

    pub(crate) fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        each!(self, Row, |row| row.try_get(column)).map_err(|e| decode(column, e))
    }

    pub(crate) fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        each!(self, Row, |row| row.try_get(column)).map_err(|e| decode(column, e))
    }

    pub(crate) fn bool(&self, column: &str) -> Result<bool, StoreError> {
        each!(self, Row, |row| row.try_get(column)).map_err(|e| decode(column, e))
    }

    pub(crate) fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError> {
        each!(self, Row, |row| row.try_get(column)).map_err(|e| decode(column, e))
    }
}

/// The placeholders of a multi-row statement: `rows` groups of `columns` parameters,
/// `($1, $2), ($3, $4)` on PostgreSQL and `(?, ?), (?, ?)` on SQLite, numbered in order.
///
/// SQLite gets anonymous `?`: sqlx asks SQLite for the name of every parameter it binds, and
/// SQLite finds a named parameter (`$7`) by walking the list of all of them, so binding the
/// 5,632 parameters of a 512-row statement cost some 16 million string comparisons — most of
/// the server's CPU at 1,000 registrations/s. Anonymous parameters have no name to look up.
pub(crate) fn value_rows(kind: BackendKind, rows: usize, columns: usize) -> String {
    let mut out = String::with_capacity(rows * columns * 6);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..columns {
            if c > 0 {
                out.push_str(", ");
            }
            match kind {
                BackendKind::Sqlite => out.push('?'),
                BackendKind::Postgres => {
                    out.push('$');
                    out.push_str(&(r * columns + c + 1).to_string());
                }
            }
        }
        out.push(')');
    }
    out
}

fn decode(column: &str, error: sqlx::Error) -> StoreError {
    StoreError::corrupt(format!("column {column}: {error}"))
}

enum WalError {
    Db(sqlx::Error),
    Refused(String),
}

/// Puts the database in WAL mode, once for the life of the file (the mode persists). The switch
/// needs an exclusive lock that SQLite's busy handler does not wait for, so a process that
/// loses the race to another one starting at the same moment retries until the busy timeout.
async fn ensure_wal(pool: &SqlitePool) -> Result<(), WalError> {
    let deadline = Instant::now() + SQLITE_BUSY_TIMEOUT;
    let mut statement = "PRAGMA journal_mode";
    loop {
        match sqlx::query_scalar::<_, String>(statement)
            .fetch_one(pool)
            .await
        {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) if statement == "PRAGMA journal_mode" => {
                tracing::debug!(%mode, "switching the SQLite store to WAL mode");
                statement = "PRAGMA journal_mode = WAL";
            }
            Ok(mode) => return Err(WalError::Refused(mode)),
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(WalError::Db(e)),
        }
    }
}

/// SQLite's "busy" and "locked" results, with their extended codes.
pub(crate) fn is_busy(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db)
        if matches!(db.code().as_deref(), Some("5" | "6" | "261" | "262" | "517")))
}

/// Creates a missing directory (and its parents) readable by this user only: the store holds
/// HA1 values, each as good as a password for its realm. An existing directory is left as is.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates the database file empty (SQLite takes an empty file for a new database) with
/// owner-only permissions, which SQLite then gives its -wal and -shm files too.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}
