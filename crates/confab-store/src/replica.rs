//! What a front-end keeps of the directory in memory: every user with its enabled flag, home
//! pool and digest credentials ([`DirectoryEntry`]), read whole at start
//! ([`Store::directory_snapshot`], two queries per page of users) and one user at
//! a time when the change feed names it ([`Store::directory_entry`]).
//!
//! This is the front-end's local replica of the user data, as Lync front-ends keep one of
//! their pool's users: authentication then needs no store round trip, and a store that is
//! briefly unreachable does not stop users signing in.

use std::collections::HashMap;

use crate::db::Arg;
use crate::error::Context;
use crate::users::credential;
use crate::{Address, Credential, Store, StoreError};

/// How many users [`Store::directory_snapshot`] reads per query.
pub const DIRECTORY_PAGE: u32 = 2_000;

/// One user as a front-end's replica of the directory keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    /// `user@domain`.
    pub address: Address,
    /// Whether the user may sign in.
    pub enabled: bool,
    /// The home pool.
    pub pool: String,
    /// Every stored credential, for every realm, by realm and algorithm.
    pub credentials: Vec<Credential>,
}

impl Store {
    /// Every user with its credentials, read [`DIRECTORY_PAGE`] users at a time.
    pub async fn directory_snapshot(&self) -> Result<Vec<DirectoryEntry>, StoreError> {
        self.directory_snapshot_paged(DIRECTORY_PAGE).await
    }

    /// Every user with its credentials, by the store's user number, read `page` users (and
    /// their credentials) per query pair, so that what the database driver holds at once is
    /// one page, not the whole directory (100,000 users read at once left some 390 MB of
    /// heap behind). A user added while the pages are read may or may not be in the result;
    /// a front-end follows the change feed from a position read before, so it sees it then.
    pub async fn directory_snapshot_paged(
        &self,
        page: u32,
    ) -> Result<Vec<DirectoryEntry>, StoreError> {
        const CONTEXT: &str = "reading the directory";
        let page = i64::from(page.max(1));
        let mut entries = Vec::new();
        let mut after = i64::MIN;
        loop {
            let users = self
                .db
                .fetch_all(
                    "SELECT id, user_part, domain, pool, enabled FROM users WHERE id > $1 \
                     ORDER BY id LIMIT $2",
                    &[Arg::Int(after), Arg::Int(page)],
                )
                .await
                .ctx(CONTEXT)?;
            let (Some(first), Some(last)) = (users.first(), users.last()) else {
                break;
            };
            let (first, last) = (first.int("id")?, last.int("id")?);
            let mut by_id = HashMap::with_capacity(users.len());
            let base = entries.len();
            for row in &users {
                by_id.insert(row.int("id")?, entries.len());
                entries.push(entry(
                    &row.text("user_part")?,
                    &row.text("domain")?,
                    row.text("pool")?,
                    row.bool("enabled")?,
                )?);
            }
            let credentials = self
                .db
                .fetch_all(
                    "SELECT user_id, realm, algorithm, ha1 FROM credentials \
                     WHERE user_id >= $1 AND user_id <= $2 ORDER BY user_id, realm, algorithm",
                    &[Arg::Int(first), Arg::Int(last)],
                )
                .await
                .ctx(CONTEXT)?;
            for row in &credentials {
                // A credential whose user went between the two reads belongs to nobody now.
                if let Some(&at) = by_id.get(&row.int("user_id")?) {
                    entries[at].credentials.push(credential(row)?);
                }
            }
            let read = entries.len() - base;
            after = last;
            if i64::try_from(read).unwrap_or(i64::MAX) < page {
                break;
            }
        }
        Ok(entries)
    }

    /// One user with its credentials, or `None` if there is no such user (any more).
    pub async fn directory_entry(
        &self,
        address: &Address,
    ) -> Result<Option<DirectoryEntry>, StoreError> {
        const CONTEXT: &str = "reading a user of the directory";
        let Some(user) = self.find_user(address).await? else {
            return Ok(None);
        };
        let rows = self
            .db
            .fetch_all(
                "SELECT realm, algorithm, ha1 FROM credentials WHERE user_id = $1 \
                 ORDER BY realm, algorithm",
                &[Arg::Int(user.id.0)],
            )
            .await
            .ctx(CONTEXT)?;
        let credentials = rows.iter().map(credential).collect::<Result<_, _>>()?;
        Ok(Some(DirectoryEntry {
            address: user.address,
            enabled: user.enabled,
            pool: user.pool,
            credentials,
        }))
    }
}

fn entry(
    user_part: &str,
    domain: &str,
    pool: String,
    enabled: bool,
) -> Result<DirectoryEntry, StoreError> {
    Ok(DirectoryEntry {
        address: Address::new(user_part, domain)
            .map_err(|e| StoreError::corrupt(format!("user address: {e}")))?,
        enabled,
        pool,
        credentials: Vec::new(),
    })
}
