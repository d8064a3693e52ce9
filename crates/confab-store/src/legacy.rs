//! Reading a legacy deployment's users: Kamailio's `subscriber` table (the `auth_db` module's
//! schema, version 7: `id`, `username`, `domain`, `password`, `ha1`, `ha1b`) in its SQLite or
//! PostgreSQL database, read-only. What becomes of the rows is `confab-ops`' business
//! (`migrate`); this module only reads them.

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
fn redact(url: &str) -> String {
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
    let rows: Vec<Row> = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut conn = sqlx::PgConnection::connect(url).await.map_err(fail)?;
        let rows = sqlx::query(QUERY)
            .fetch_all(&mut conn)
            .await
            .map_err(fail)?;
        let _ = conn.close().await;
        rows.into_iter().map(Row::Postgres).collect()
    } else {
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        if !std::path::Path::new(path).exists() {
            return Err(StoreError::invalid(
                "Kamailio database",
                url,
                "no such file: give the SQLite file of Kamailio's db_url (sqlite://PATH), or a \
                 postgres:// URL",
            ));
        }
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .read_only(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
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
