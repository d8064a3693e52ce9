//! A legacy deployment's database: Kamailio's `subscriber` table (the `auth_db` module's
//! schema, version 7: `id`, `username`, `domain`, `password`, `ha1`, `ha1b`) in its SQLite or
//! PostgreSQL database, read-only; and the one table Confab writes there during coexistence,
//! `confab_moved` — the users Kamailio must send to Confab because they are homed on a Confab
//! pool now (the routing block of `confab migrate legacy-config kamailio` reads it). What
//! becomes of the rows is `confab-ops`' business (`migrate`, `migration`).

use sqlx::Connection as _;

use crate::db::Row;

use crate::StoreError;

/// One row of Kamailio's `subscriber` table.
#[derive(Clone, PartialEq, Eq)]
pub struct LegacySubscriber {
    /// Its `id`.
    pub id: i64,
    /// `username`: the user part.
    pub username: String,
    /// `domain`.
    pub domain: String,
    /// `password`, in clear when the deployment keeps it (empty when it keeps HA1 only).
    pub password: String,
    /// `ha1`: MD5(username:realm:password), hex.
    pub ha1: String,
    /// `ha1b`: MD5(username@domain:realm:password), hex.
    pub ha1b: String,
}

impl std::fmt::Debug for LegacySubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacySubscriber")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

// Kamailio declares `id` SERIAL (32 bits) on PostgreSQL and INTEGER on SQLite: read as 64 bits on
// both.
const QUERY: &str = "SELECT CAST(id AS BIGINT) AS id, username, domain, password, ha1, ha1b \
                     FROM subscriber ORDER BY id";

fn unreadable(url: &str, e: &sqlx::Error) -> StoreError {
    StoreError::invalid(
        "Kamailio database",
        &redact(url),
        format!(
            "{e}; give the database Kamailio's auth_db module uses (its db_url), e.g. \
             sqlite:///var/lib/kamailio/kamailio.db or postgres://kamailio:PASSWORD@HOST/kamailio, \
             with a subscriber table"
        ),
    )
}

/// `url` without a password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:…{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Reads every row of Kamailio's `subscriber` table from the database at `url`:
/// `postgres://…` (PostgreSQL), `sqlite://PATH` or a file path (SQLite, opened read-only —
/// not through the store's own pool, which would switch the file to WAL mode).
pub async fn read_kamailio_subscribers(url: &str) -> Result<Vec<LegacySubscriber>, StoreError> {
    let fail = |e: sqlx::Error| unreadable(url, &e);
    let rows: Vec<Row> = if is_postgres(url) {
        let mut conn = sqlx::PgConnection::connect(url).await.map_err(fail)?;
        let rows = sqlx::query(QUERY)
            .fetch_all(&mut conn)
            .await
            .map_err(fail)?;
        let _ = conn.close().await;
        rows.into_iter().map(Row::Postgres).collect()
    } else {
        let mut conn = sqlx::SqliteConnection::connect_with(&sqlite_options(url)?)
            .await
            .map_err(fail)?;
        let rows = sqlx::query(QUERY)
            .fetch_all(&mut conn)
            .await
            .map_err(fail)?;
        let _ = conn.close().await;
        rows.into_iter().map(Row::Sqlite).collect()
    };
    // Kamailio's columns default to '' but are not all NOT NULL in every version: NULL is ''.
    let text = |row: &Row, name| row.opt_text(name).map(Option::unwrap_or_default);
    rows.iter()
        .map(|row| {
            Ok(LegacySubscriber {
                id: row.int("id")?,
                username: text(row, "username")?,
                domain: text(row, "domain")?,
                password: text(row, "password")?,
                ha1: text(row, "ha1")?,
                ha1b: text(row, "ha1b")?,
            })
        })
        .collect()
}

/// One row of `confab_moved`: a user Kamailio sends to Confab.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LegacyMoved {
    /// The user part, as Kamailio's `subscriber` has it.
    pub username: String,
    /// The domain, in lower case (the routing block compares it so).
    pub domain: String,
    /// The Confab pool the user is homed on.
    pub pool: String,
}

/// The table in Kamailio's database, created by the first write. The same statement works on
/// SQLite and PostgreSQL.
const CREATE_MOVED: &str = "CREATE TABLE IF NOT EXISTS confab_moved (\
    username VARCHAR(64) NOT NULL, \
    domain VARCHAR(190) NOT NULL, \
    pool VARCHAR(64) NOT NULL, \
    moved_at BIGINT NOT NULL, \
    PRIMARY KEY (username, domain))";

const UPSERT_MOVED: &str = "INSERT INTO confab_moved (username, domain, pool, moved_at) \
    VALUES ($1, $2, $3, $4) ON CONFLICT (username, domain) DO UPDATE SET pool = $3, moved_at = $4";

const DELETE_MOVED: &str = "DELETE FROM confab_moved WHERE username = $1 AND domain = $2";

/// What to write into `confab_moved`.
#[derive(Debug, Clone, Default)]
pub struct MovedUpdate {
    /// Empty the table first (a full synchronisation).
    pub replace: bool,
    /// Users now homed on a Confab pool.
    pub moved: Vec<LegacyMoved>,
    /// Users back on the legacy pool: `(username, domain)`.
    pub returned: Vec<(String, String)>,
}

/// Writes `update` into the `confab_moved` table of Kamailio's database at `url` (created when
/// missing), in one transaction; returns the rows the table has after it. The SQLite file
/// must exist (Confab never creates Kamailio's database) and is not switched to WAL mode.
pub async fn write_kamailio_moved(url: &str, update: &MovedUpdate) -> Result<u64, StoreError> {
    let fail = |e: sqlx::Error| unwritable(url, &e);
    let now = crate::model::unix_now();
    macro_rules! write {
        ($conn:expr) => {{
            let mut tx = $conn.begin().await.map_err(fail)?;
            sqlx::query(CREATE_MOVED)
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
            if update.replace {
                sqlx::query("DELETE FROM confab_moved")
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?;
            }
            for (username, domain) in &update.returned {
                sqlx::query(DELETE_MOVED)
                    .bind(username)
                    .bind(domain.to_ascii_lowercase())
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?;
            }
            for m in &update.moved {
                sqlx::query(UPSERT_MOVED)
                    .bind(&m.username)
                    .bind(m.domain.to_ascii_lowercase())
                    .bind(&m.pool)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?;
            }
            let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM confab_moved")
                .fetch_one(&mut *tx)
                .await
                .map_err(fail)?;
            tx.commit().await.map_err(fail)?;
            u64::try_from(rows).unwrap_or(0)
        }};
    }
    let rows = if is_postgres(url) {
        let mut conn = sqlx::PgConnection::connect(url).await.map_err(fail)?;
        let rows = write!(conn);
        let _ = conn.close().await;
        rows
    } else {
        let mut conn = sqlx::SqliteConnection::connect_with(
            &sqlite_options(url)?
                .read_only(false)
                .busy_timeout(crate::SQLITE_BUSY_TIMEOUT),
        )
        .await
        .map_err(fail)?;
        let rows = write!(conn);
        let _ = conn.close().await;
        rows
    };
    Ok(rows)
}

/// The rows of `confab_moved` in Kamailio's database at `url` (none when the table does not
/// exist yet: nothing was written), in order.
pub async fn read_kamailio_moved(url: &str) -> Result<Option<Vec<LegacyMoved>>, StoreError> {
    let fail = |e: sqlx::Error| unreadable(url, &e);
    const EXISTS_PG: &str = "SELECT COUNT(*) FROM information_schema.tables \
                             WHERE table_name = 'confab_moved'";
    const EXISTS_SQLITE: &str =
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'confab_moved'";
    const SELECT: &str =
        "SELECT username, domain, pool FROM confab_moved ORDER BY domain, username";
    macro_rules! read {
        ($conn:expr, $exists:expr) => {{
            let (n,): (i64,) = sqlx::query_as($exists)
                .fetch_one(&mut $conn)
                .await
                .map_err(fail)?;
            let rows: Option<Vec<(String, String, String)>> = if n == 0 {
                None
            } else {
                Some(
                    sqlx::query_as(SELECT)
                        .fetch_all(&mut $conn)
                        .await
                        .map_err(fail)?,
                )
            };
            let _ = $conn.close().await;
            rows
        }};
    }
    let rows = if is_postgres(url) {
        let mut conn = sqlx::PgConnection::connect(url).await.map_err(fail)?;
        read!(conn, EXISTS_PG)
    } else {
        let mut conn = sqlx::SqliteConnection::connect_with(&sqlite_options(url)?)
            .await
            .map_err(fail)?;
        read!(conn, EXISTS_SQLITE)
    };
    let Some(rows) = rows else {
        return Ok(None);
    };
    Ok(Some(
        rows.into_iter()
            .map(|(username, domain, pool)| LegacyMoved {
                username,
                domain,
                pool,
            })
            .collect(),
    ))
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Read-only options for the SQLite file of `url`, which must exist.
fn sqlite_options(url: &str) -> Result<sqlx::sqlite::SqliteConnectOptions, StoreError> {
    let path = url.strip_prefix("sqlite://").unwrap_or(url);
    if !std::path::Path::new(path).exists() {
        return Err(StoreError::invalid(
            "Kamailio database",
            url,
            "no such file: give the SQLite file of Kamailio's db_url (sqlite://PATH), or a \
             postgres:// URL",
        ));
    }
    Ok(sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true))
}

fn unwritable(url: &str, e: &sqlx::Error) -> StoreError {
    StoreError::invalid(
        "Kamailio database",
        &redact(url),
        format!(
            "{e}; Confab writes the users homed on Confab pools into its table confab_moved: \
             give a database user that may create and write that table (the routing block of \
             `confab migrate legacy-config kamailio` reads it)"
        ),
    )
}
