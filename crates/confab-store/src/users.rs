//! Users and their credentials. A user is `user@domain` in one of the deployment's domains,
//! homed on one pool; removing a user removes, in the same transaction, their credentials,
//! registrations, offline messages, contact list, presence rules and presence state. Every mutation appends to the change feed.

use crate::db::{Arg, Row, Tx};
use crate::error::Context;
use crate::feed::{self, ChangeKind};
use crate::model::{check_token, unix_now};
use crate::{Address, Credential, NewUser, Store, StoreError, User, UserFilter, UserId};

const USER_COLUMNS: &str =
    "id, user_part, domain, display_name, pool, enabled, created_at, updated_at";

fn user(row: &Row) -> Result<User, StoreError> {
    let (user_part, domain) = (row.text("user_part")?, row.text("domain")?);
    Ok(User {
        id: UserId(row.int("id")?),
        address: Address::new(&user_part, &domain)
            .map_err(|e| StoreError::corrupt(format!("user address: {e}")))?,
        display_name: row.opt_text("display_name")?,
        pool: row.text("pool")?,
        enabled: row.bool("enabled")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

/// A credential from a row with `realm`, `algorithm` and `ha1` columns.
pub(crate) fn credential(row: &Row) -> Result<Credential, StoreError> {
    Ok(Credential {
        realm: row.text("realm")?,
        algorithm: row.text("algorithm")?,
        ha1: row.text("ha1")?,
    })
}

pub(crate) fn user_not_found(address: &Address) -> StoreError {
    StoreError::NotFound {
        what: "user",
        name: address.to_string(),
        fix: "check the address (the domain is matched in any case, the user part exactly), \
              or list the users",
    }
}

/// The id of a user, inside a write transaction.
pub(crate) async fn user_id(tx: &mut Tx, address: &Address) -> Result<i64, StoreError> {
    tx.fetch_optional(
        "SELECT id FROM users WHERE user_part = $1 AND domain = $2",
        &[address.user().into(), address.domain().into()],
    )
    .await
    .ctx("looking up a user")?
    .ok_or_else(|| user_not_found(address))?
    .int("id")
}

/// Checks credentials: each valid, each realm and algorithm once.
fn checked_credentials(credentials: &[Credential]) -> Result<Vec<Credential>, StoreError> {
    let mut checked: Vec<Credential> = Vec::with_capacity(credentials.len());
    for c in credentials {
        let c = c.checked()?;
        if checked
            .iter()
            .any(|o| o.realm == c.realm && o.algorithm == c.algorithm)
        {
            return Err(StoreError::invalid(
                "credentials",
                &format!("{} {}", c.realm, c.algorithm),
                "give each realm and algorithm once",
            ));
        }
        checked.push(c);
    }
    Ok(checked)
}

/// Writes a user's credentials inside `tx` (after deleting the old ones).
async fn write_credentials(tx: &mut Tx, id: i64, checked: &[Credential]) -> Result<(), StoreError> {
    const CONTEXT: &str = "setting credentials";
    tx.execute("DELETE FROM credentials WHERE user_id = $1", &[id.into()])
        .await
        .ctx(CONTEXT)?;
    for c in checked {
        tx.execute(
            "INSERT INTO credentials (user_id, realm, algorithm, ha1) VALUES ($1, $2, $3, $4)",
            &[
                id.into(),
                c.realm.as_str().into(),
                c.algorithm.as_str().into(),
                c.ha1.as_str().into(),
            ],
        )
        .await
        .ctx(CONTEXT)?;
    }
    Ok(())
}

/// Checks a batch of new users before any is written: each user's credentials (valid, each
/// realm and algorithm once) and display name.
fn checked_batch(users: &[(NewUser, Vec<Credential>)]) -> Result<Vec<Vec<Credential>>, StoreError> {
    users
        .iter()
        .map(|(new, credentials)| {
            if let Some(name) = &new.display_name {
                check_token("display name", name, 255)?;
            }
            checked_credentials(credentials)
        })
        .collect()
}

/// Credential rows per multi-row INSERT: 4 parameters each, far below both databases'
/// parameter limits, and few statements for a large batch.
const CREDENTIAL_ROWS: usize = 250;

/// Inserts `users` (with their checked credentials) inside `tx`, after checking that each
/// domain and pool named exists; records `user.added` and, for a user with credentials,
/// `user.credentials` in the change feed, as adding them one by one would. Returns the new
/// ids in order.
async fn insert_users(
    tx: &mut Tx,
    users: &[(NewUser, Vec<Credential>)],
    checked: &[Vec<Credential>],
    now: i64,
) -> Result<Vec<i64>, StoreError> {
    const CONTEXT: &str = "adding a user";
    let mut domains: Vec<&str> = users.iter().map(|(u, _)| u.address.domain()).collect();
    domains.sort_unstable();
    domains.dedup();
    for domain in domains {
        let known = tx
            .fetch_optional("SELECT name FROM domains WHERE name = $1", &[domain.into()])
            .await
            .ctx(CONTEXT)?;
        if known.is_none() {
            return Err(StoreError::NotFound {
                what: "SIP domain",
                name: domain.to_owned(),
                fix: "add the domain to the deployment first, or use one of its domains",
            });
        }
    }
    let mut pools: Vec<&str> = users.iter().map(|(u, _)| u.pool.as_str()).collect();
    pools.sort_unstable();
    pools.dedup();
    for pool in pools {
        let known = tx
            .fetch_optional("SELECT name FROM pools WHERE name = $1", &[pool.into()])
            .await
            .ctx(CONTEXT)?;
        if known.is_none() {
            return Err(StoreError::NotFound {
                what: "pool",
                name: pool.to_owned(),
                fix: "home the user on an existing pool (list the pools), or add the pool first",
            });
        }
    }
    let mut ids = Vec::with_capacity(users.len());
    let mut changes = Vec::with_capacity(users.len() * 2);
    for ((new, _), credentials) in users.iter().zip(checked) {
        let address = &new.address;
        let row = tx
            .fetch_optional(
                "INSERT INTO users (user_part, domain, display_name, pool, enabled, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT DO NOTHING \
                 RETURNING id",
                &[
                    address.user().into(),
                    address.domain().into(),
                    new.display_name.as_deref().into(),
                    new.pool.as_str().into(),
                    new.enabled.into(),
                    now.into(),
                ],
            )
            .await
            .ctx(CONTEXT)?;
        let Some(row) = row else {
            return Err(StoreError::AlreadyExists {
                what: "user",
                name: address.to_string(),
                fix: "choose another address, or change the existing user instead",
            });
        };
        ids.push(row.int("id")?);
        let subject = address.to_string();
        changes.push((ChangeKind::UserAdded, subject.clone()));
        if !credentials.is_empty() {
            changes.push((ChangeKind::CredentialsSet, subject));
        }
    }
    let rows: Vec<(i64, &Credential)> = ids
        .iter()
        .zip(checked)
        .flat_map(|(&id, credentials)| credentials.iter().map(move |c| (id, c)))
        .collect();
    for chunk in rows.chunks(CREDENTIAL_ROWS) {
        let mut sql =
            String::from("INSERT INTO credentials (user_id, realm, algorithm, ha1) VALUES ");
        let mut args: Vec<Arg> = Vec::with_capacity(chunk.len() * 4);
        for (i, (id, c)) in chunk.iter().enumerate() {
            let n = i * 4;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("(${}, ${}, ${}, ${})", n + 1, n + 2, n + 3, n + 4));
            args.extend([
                Arg::Int(*id),
                c.realm.as_str().into(),
                c.algorithm.as_str().into(),
                c.ha1.as_str().into(),
            ]);
        }
        tx.execute(&sql, &args).await.ctx("setting credentials")?;
    }
    feed::record_many(tx, &changes, now).await?;
    Ok(ids)
}

impl Store {
    /// Adds a user in an existing domain, homed on an existing pool, without credentials.
    pub async fn add_user(&self, new: &NewUser) -> Result<User, StoreError> {
        self.add_user_with_credentials(new, &[]).await
    }

    /// Adds a user and its credentials in one transaction: either both are stored or
    /// neither, so that no user is ever left unable to sign in by a failure half-way.
    pub async fn add_user_with_credentials(
        &self,
        new: &NewUser,
        credentials: &[Credential],
    ) -> Result<User, StoreError> {
        const CONTEXT: &str = "adding a user";
        let batch = [(new.clone(), credentials.to_vec())];
        let checked = checked_batch(&batch)?;
        let now = unix_now();
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        feed::lock(&mut tx).await?;
        let ids = insert_users(&mut tx, &batch, &checked, now).await?;
        tx.commit().await.ctx(CONTEXT)?;
        Ok(User {
            id: UserId(ids[0]),
            address: new.address.clone(),
            display_name: new.display_name.clone(),
            pool: new.pool.clone(),
            enabled: new.enabled,
            created_at: now,
            updated_at: now,
        })
    }

    /// Adds many users, each with its credentials, in one transaction: all of them or none
    /// (a bulk import writes its users in batches of this). Every domain and pool named must
    /// exist, and an address taken already fails the whole batch with
    /// [`StoreError::AlreadyExists`] naming it. Returns how many were added.
    pub async fn add_users_with_credentials(
        &self,
        users: &[(NewUser, Vec<Credential>)],
    ) -> Result<usize, StoreError> {
        const CONTEXT: &str = "adding users";
        let checked = checked_batch(users)?;
        if users.is_empty() {
            return Ok(0);
        }
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        feed::lock(&mut tx).await?;
        insert_users(&mut tx, users, &checked, unix_now()).await?;
        tx.commit().await.ctx(CONTEXT)?;
        Ok(users.len())
    }

    /// A user, if there is one at that address.
    pub async fn find_user(&self, address: &Address) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE user_part = $1 AND domain = $2");
        let row = self
            .db
            .fetch_optional(&sql, &[address.user().into(), address.domain().into()])
            .await
            .ctx("reading a user")?;
        row.as_ref().map(user).transpose()
    }

    /// A user, or [`StoreError::NotFound`].
    pub async fn get_user(&self, address: &Address) -> Result<User, StoreError> {
        self.find_user(address)
            .await?
            .ok_or_else(|| user_not_found(address))
    }

    /// The users matching `filter`, by domain and then user part.
    pub async fn list_users(&self, filter: &UserFilter) -> Result<Vec<User>, StoreError> {
        let domain = filter
            .domain
            .as_deref()
            .map(|d| d.trim().to_ascii_lowercase());
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users \
             WHERE ($1 IS NULL OR pool = $1) AND ($2 IS NULL OR domain = $2) \
             ORDER BY domain, user_part"
        );
        let rows = self
            .db
            .fetch_all(
                &sql,
                &[filter.pool.as_deref().into(), domain.as_deref().into()],
            )
            .await
            .ctx("listing users")?;
        rows.iter().map(user).collect()
    }

    /// Enables or disables a user; returns whether that changed anything. A disabled user
    /// keeps everything but may not sign in: front-ends drop their registrations when the
    /// change feed says so.
    pub async fn set_enabled(&self, address: &Address, enabled: bool) -> Result<bool, StoreError> {
        const CONTEXT: &str = "enabling or disabling a user";
        let now = unix_now();
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        feed::lock(&mut tx).await?;
        let id = user_id(&mut tx, address).await?;
        let changed = tx
            .execute(
                "UPDATE users SET enabled = $1, updated_at = $2 WHERE id = $3 AND enabled <> $1",
                &[enabled.into(), now.into(), id.into()],
            )
            .await
            .ctx(CONTEXT)?;
        if changed == 0 {
            return Ok(false);
        }
        let kind = if enabled {
            ChangeKind::UserEnabled
        } else {
            ChangeKind::UserDisabled
        };
        feed::record(&mut tx, kind, &address.to_string(), now).await?;
        tx.commit().await.ctx(CONTEXT)?;
        Ok(true)
    }

    /// Removes a user with their credentials, registrations and offline messages.
    pub async fn remove_user(&self, address: &Address) -> Result<(), StoreError> {
        self.remove_users(std::slice::from_ref(address)).await
    }

    /// Removes several users, each with their credentials, registrations and offline
    /// messages, in one transaction: all of them or none (an unknown address fails it with
    /// [`StoreError::NotFound`]).
    pub async fn remove_users(&self, addresses: &[Address]) -> Result<(), StoreError> {
        const CONTEXT: &str = "removing a user";
        let now = unix_now();
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        feed::lock(&mut tx).await?;
        for address in addresses {
            let id = user_id(&mut tx, address).await?;
            // The foreign keys cascade; deleting explicitly as well keeps the outcome the
            // same should a SQLite connection ever run without foreign keys.
            for sql in [
                "DELETE FROM credentials WHERE user_id = $1",
                "DELETE FROM registrations WHERE user_id = $1",
                "DELETE FROM offline_messages WHERE user_id = $1",
                "DELETE FROM contacts WHERE user_id = $1",
                "DELETE FROM contact_groups WHERE user_id = $1",
                "DELETE FROM presence_rules WHERE user_id = $1",
                "DELETE FROM presence_publications WHERE user_id = $1",
                "DELETE FROM presence_subscriptions WHERE user_id = $1",
                "DELETE FROM users WHERE id = $1",
            ] {
                tx.execute(sql, &[id.into()]).await.ctx(CONTEXT)?;
            }
            feed::record(&mut tx, ChangeKind::UserRemoved, &address.to_string(), now).await?;
        }
        tx.commit().await.ctx(CONTEXT)
    }

    /// Re-homes `addresses` on pool `to`, in one transaction: all of them or none (an unknown
    /// user or pool fails it, changing nothing). Every user stays homed on exactly one pool
    /// at every moment — the home pool is one column, changed in place. A user already on
    /// `to` is passed over, so that a batch cut short (by a crash, a kill) is completed by
    /// running it again. The state the old pool holds for a moved user is drained here: its
    /// registrations and its presence publications and subscriptions (as presentity) are
    /// deleted, and the change feed says `user.moved`, on which the old pool's front-ends
    /// sign the user out and end its watchers' subscriptions with `reason=deactivated`, so
    /// that clients register and subscribe again, at the new home pool. Everything else the
    /// user owns — credentials, contact list, presence rules, offline messages still queued
    /// — is the user's, not the pool's, and moves with it untouched.
    pub async fn move_users(
        &self,
        addresses: &[Address],
        to: &str,
    ) -> Result<Vec<MovedUser>, StoreError> {
        const CONTEXT: &str = "moving users";
        let now = unix_now();
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        feed::lock(&mut tx).await?;
        let known = tx
            .fetch_optional("SELECT name FROM pools WHERE name = $1", &[to.into()])
            .await
            .ctx(CONTEXT)?;
        if known.is_none() {
            return Err(StoreError::NotFound {
                what: "pool",
                name: to.to_owned(),
                fix: "move users to an existing pool (list the pools), or publish a topology with it first",
            });
        }
        let mut moved = Vec::new();
        for address in addresses {
            let row = tx
                .fetch_optional(
                    "SELECT id, pool FROM users WHERE user_part = $1 AND domain = $2",
                    &[address.user().into(), address.domain().into()],
                )
                .await
                .ctx(CONTEXT)?
                .ok_or_else(|| user_not_found(address))?;
            let (id, from) = (row.int("id")?, row.text("pool")?);
            if from == to {
                continue;
            }
            tx.execute(
                "UPDATE users SET pool = $1, updated_at = $2 WHERE id = $3",
                &[to.into(), now.into(), id.into()],
            )
            .await
            .ctx(CONTEXT)?;
            for sql in [
                "DELETE FROM registrations WHERE user_id = $1",
                "DELETE FROM presence_publications WHERE user_id = $1",
                "DELETE FROM presence_subscriptions WHERE user_id = $1",
            ] {
                tx.execute(sql, &[id.into()]).await.ctx(CONTEXT)?;
            }
            feed::record(&mut tx, ChangeKind::UserMoved, &address.to_string(), now).await?;
            moved.push(MovedUser {
                address: address.clone(),
                from,
            });
        }
        tx.commit().await.ctx(CONTEXT)?;
        Ok(moved)
    }

    /// Replaces all of a user's credentials with `credentials`, in one transaction (an empty
    /// list leaves the user unable to sign in).
    pub async fn set_credentials(
        &self,
        address: &Address,
        credentials: &[Credential],
    ) -> Result<(), StoreError> {
        const CONTEXT: &str = "setting credentials";
        let checked = checked_credentials(credentials)?;
        let now = unix_now();
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        feed::lock(&mut tx).await?;
        let id = user_id(&mut tx, address).await?;
        write_credentials(&mut tx, id, &checked).await?;
        tx.execute(
            "UPDATE users SET updated_at = $1 WHERE id = $2",
            &[now.into(), id.into()],
        )
        .await
        .ctx(CONTEXT)?;
        feed::record(
            &mut tx,
            ChangeKind::CredentialsSet,
            &address.to_string(),
            now,
        )
        .await?;
        tx.commit().await.ctx(CONTEXT)
    }

    /// A user's credentials for one realm, by algorithm name. Empty for a user without any and
    /// for an unknown user alike, so that a caller cannot tell the two apart by accident.
    pub async fn credentials(
        &self,
        address: &Address,
        realm: &str,
    ) -> Result<Vec<Credential>, StoreError> {
        let rows = self
            .db
            .fetch_all(
                "SELECT c.realm, c.algorithm, c.ha1 FROM credentials c \
                 JOIN users u ON u.id = c.user_id \
                 WHERE u.user_part = $1 AND u.domain = $2 AND c.realm = $3 \
                 ORDER BY c.algorithm",
                &[
                    address.user().into(),
                    address.domain().into(),
                    Arg::Text(realm),
                ],
            )
            .await
            .ctx("reading credentials")?;
        rows.iter().map(credential).collect()
    }
}

/// A user [`Store::move_users`] re-homed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedUser {
    /// The user.
    pub address: Address,
    /// The pool it was homed on before.
    pub from: String,
}
