//! What a front-end keeps of the directory in memory: every user with its enabled flag, home
//! pool and digest credentials ([`DirectoryEntry`]), read whole at start
//! ([`Store::directory_snapshot`], two queries whatever the number of users) and one user at
//! a time when the change feed names it ([`Store::directory_entry`]).
//!
//! This is the front-end's local replica of the user data, as Lync front-ends keep one of
//! their pool's users: authentication then needs no store round trip, and a store that is
//! briefly unreachable does not stop users signing in.

use std::collections::HashMap;

use crate::db::Arg;
use crate::error::Context;
use crate::{Address, Credential, Store, StoreError};

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
    /// Every user with its credentials, by domain and user part.
    pub async fn directory_snapshot(&self) -> Result<Vec<DirectoryEntry>, StoreError> {
        const CONTEXT: &str = "reading the directory";
        let users = self
            .db
            .fetch_all(
                "SELECT id, user_part, domain, pool, enabled FROM users \
                 ORDER BY domain, user_part",
                &[],
            )
            .await
            .ctx(CONTEXT)?;
        let mut entries = Vec::with_capacity(users.len());
        let mut by_id = HashMap::with_capacity(users.len());
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
                 ORDER BY user_id, realm, algorithm",
                &[],
            )
            .await
            .ctx(CONTEXT)?;
        for row in &credentials {
            // A credential whose user went between the two reads belongs to nobody now.
            if let Some(&at) = by_id.get(&row.int("user_id")?) {
                entries[at].credentials.push(Credential {
                    realm: row.text("realm")?,
                    algorithm: row.text("algorithm")?,
                    ha1: row.text("ha1")?,
                });
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
        let credentials = rows
            .iter()
            .map(|row| {
                Ok(Credential {
                    realm: row.text("realm")?,
                    algorithm: row.text("algorithm")?,
                    ha1: row.text("ha1")?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
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
