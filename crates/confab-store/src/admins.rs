//! The administrators of the deployment: who may act on it, with which roles, signing in with
//! a secret token the store keeps only as a hash. Every change to them is in the audit log,
//! and the store refuses any that would leave no enabled administrator with the `admin` role
//! (nobody could repair that from the command line).

use std::str::FromStr;

use crate::audit;
use crate::db::{Row, Tx};
use crate::error::Context;
use crate::feed;
use crate::model::unix_now;
use crate::{Store, StoreError};

/// What an administrator may do, by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Users, contacts, presence rules, moves within limits.
    UserAdmin,
    /// Topology, policies, everything but approving and emergencies.
    Admin,
    /// Approves or rejects other administrators' normal changes.
    Approver,
    /// Makes emergency changes.
    Emergency,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::UserAdmin,
        Role::Admin,
        Role::Approver,
        Role::Emergency,
    ];

    /// Its name: `viewer`, `user-admin`, `admin`, `approver`, `emergency`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::UserAdmin => "user-admin",
            Role::Admin => "admin",
            Role::Approver => "approver",
            Role::Emergency => "emergency",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                StoreError::invalid(
                    "role",
                    s,
                    "give one of viewer, user-admin, admin, approver, emergency",
                )
            })
    }
}

/// An administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Administrator {
    /// The name it signs in with.
    pub name: String,
    /// Its roles.
    pub roles: Vec<Role>,
    /// A disabled administrator cannot sign in.
    pub enabled: bool,
    /// When it was created, Unix seconds.
    pub created_at: i64,
    /// Who created it (`None`: the deployment's first start).
    pub created_by: Option<String>,
}

fn check_admin_name(name: &str) -> Result<(), StoreError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "administrator name",
            name,
            "use 1 to 64 letters, digits, '.', '-' or '_'",
        ))
    }
}

fn roles_text(roles: &[Role]) -> String {
    let mut sorted = roles.to_vec();
    sorted.sort();
    sorted.dedup();
    sorted
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn roles_json(roles: &[Role]) -> String {
    let names: Vec<String> = roles
        .iter()
        .map(|r| format!("\"{}\"", r.as_str()))
        .collect();
    format!("[{}]", names.join(","))
}

fn administrator(row: &Row) -> Result<Administrator, StoreError> {
    let roles = row
        .text("roles")?
        .split(',')
        .filter(|r| !r.is_empty())
        .map(|r| {
            r.parse()
                .map_err(|_| StoreError::corrupt(format!("administrator role '{r}'")))
        })
        .collect::<Result<Vec<Role>, _>>()?;
    Ok(Administrator {
        name: row.text("name")?,
        roles,
        enabled: row.bool("enabled")?,
        created_at: row.int("created_at")?,
        created_by: row.opt_text("created_by")?,
    })
}

const COLUMNS: &str = "name, roles, enabled, created_at, created_by";

async fn read(tx: &mut Tx, name: &str) -> Result<Option<Administrator>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM administrators WHERE name = $1");
    tx.fetch_optional(&sql, &[name.into()])
        .await
        .ctx("reading an administrator")?
        .as_ref()
        .map(administrator)
        .transpose()
}

fn not_found(name: &str) -> StoreError {
    StoreError::NotFound {
        what: "administrator",
        name: name.to_owned(),
        fix: "list the administrators with `confab admin list`",
    }
}

/// Refuses, inside the transaction, a state with no enabled administrator holding `admin`.
async fn keep_an_admin(tx: &mut Tx, name: &str) -> Result<(), StoreError> {
    let rows = tx
        .fetch_all(&format!("SELECT {COLUMNS} FROM administrators"), &[])
        .await
        .ctx("checking the administrators")?;
    let admins = rows
        .iter()
        .map(administrator)
        .collect::<Result<Vec<_>, _>>()?;
    if admins
        .iter()
        .any(|a| a.enabled && a.roles.contains(&Role::Admin))
    {
        return Ok(());
    }
    Err(StoreError::invalid(
        "administrator change",
        name,
        "it would leave no enabled administrator with the admin role; give another \
         administrator the admin role first",
    ))
}

impl Store {
    /// Adds an administrator with `roles`, signing in with the token whose SHA-256 (hex) is
    /// `token_hash`; `created_by` is the administrator adding it (`None`: a first start).
    pub async fn add_administrator(
        &self,
        name: &str,
        roles: &[Role],
        token_hash: &str,
        created_by: Option<&str>,
    ) -> Result<Administrator, StoreError> {
        const CONTEXT: &str = "adding an administrator";
        check_admin_name(name)?;
        if token_hash.len() != 64 || !token_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::invalid(
                "token hash",
                "(hidden)",
                "give the SHA-256 of the token as 64 hex digits",
            ));
        }
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        feed::lock(&mut tx).await?;
        let now = unix_now();
        let added = tx
            .execute(
                "INSERT INTO administrators (name, roles, token_hash, enabled, created_at, \
                 created_by) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                &[
                    name.into(),
                    roles_text(roles).as_str().into(),
                    token_hash.into(),
                    true.into(),
                    now.into(),
                    created_by.into(),
                ],
            )
            .await
            .ctx(CONTEXT)?;
        if added == 0 {
            return Err(StoreError::AlreadyExists {
                what: "administrator",
                name: name.to_owned(),
                fix: "choose another name, or list them with `confab admin list`",
            });
        }
        audit::append(
            &mut tx,
            created_by.unwrap_or("confab"),
            "admin.add",
            name,
            &format!("{{\"roles\":{}}}", roles_json(roles)),
        )
        .await?;
        let admin = read(&mut tx, name).await?.ok_or_else(|| not_found(name))?;
        tx.commit().await.ctx(CONTEXT)?;
        Ok(admin)
    }

    /// Every administrator, by name.
    pub async fn administrators(&self) -> Result<Vec<Administrator>, StoreError> {
        let rows = self
            .db
            .fetch_all(
                &format!("SELECT {COLUMNS} FROM administrators ORDER BY name"),
                &[],
            )
            .await
            .ctx("listing administrators")?;
        rows.iter().map(administrator).collect()
    }

    /// One administrator.
    pub async fn administrator(&self, name: &str) -> Result<Option<Administrator>, StoreError> {
        self.db
            .fetch_optional(
                &format!("SELECT {COLUMNS} FROM administrators WHERE name = $1"),
                &[name.into()],
            )
            .await
            .ctx("reading an administrator")?
            .as_ref()
            .map(administrator)
            .transpose()
    }

    /// The SHA-256 (hex) of an administrator's token, to check a sign-in against.
    pub async fn administrator_token_hash(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.db
            .fetch_optional(
                "SELECT token_hash FROM administrators WHERE name = $1",
                &[name.into()],
            )
            .await
            .ctx("reading an administrator")?
            .map(|row| row.text("token_hash"))
            .transpose()
    }

    /// Gives `name` exactly `roles`.
    pub async fn set_administrator_roles(
        &self,
        name: &str,
        roles: &[Role],
        by: &str,
    ) -> Result<Administrator, StoreError> {
        self.update_administrator(
            name,
            by,
            "admin.roles",
            &format!("{{\"roles\":{}}}", roles_json(roles)),
            "UPDATE administrators SET roles = $2 WHERE name = $1",
            roles_text(roles),
        )
        .await
    }

    /// Enables or disables `name`.
    pub async fn set_administrator_enabled(
        &self,
        name: &str,
        enabled: bool,
        by: &str,
    ) -> Result<Administrator, StoreError> {
        const CONTEXT: &str = "enabling or disabling an administrator";
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        feed::lock(&mut tx).await?;
        let changed = tx
            .execute(
                "UPDATE administrators SET enabled = $2 WHERE name = $1",
                &[name.into(), enabled.into()],
            )
            .await
            .ctx(CONTEXT)?;
        if changed == 0 {
            return Err(not_found(name));
        }
        keep_an_admin(&mut tx, name).await?;
        let action = if enabled {
            "admin.enable"
        } else {
            "admin.disable"
        };
        audit::append(&mut tx, by, action, name, "{}").await?;
        let admin = read(&mut tx, name).await?.ok_or_else(|| not_found(name))?;
        tx.commit().await.ctx(CONTEXT)?;
        Ok(admin)
    }

    /// Replaces `name`'s token (given as its SHA-256, hex).
    pub async fn set_administrator_token(
        &self,
        name: &str,
        token_hash: &str,
        by: &str,
    ) -> Result<Administrator, StoreError> {
        self.update_administrator(
            name,
            by,
            "admin.token",
            "{}",
            "UPDATE administrators SET token_hash = $2 WHERE name = $1",
            token_hash.to_owned(),
        )
        .await
    }

    /// Removes `name`.
    pub async fn remove_administrator(&self, name: &str, by: &str) -> Result<(), StoreError> {
        const CONTEXT: &str = "removing an administrator";
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        feed::lock(&mut tx).await?;
        let removed = tx
            .execute("DELETE FROM administrators WHERE name = $1", &[name.into()])
            .await
            .ctx(CONTEXT)?;
        if removed == 0 {
            return Err(not_found(name));
        }
        keep_an_admin(&mut tx, name).await?;
        audit::append(&mut tx, by, "admin.remove", name, "{}").await?;
        tx.commit().await.ctx(CONTEXT)
    }

    async fn update_administrator(
        &self,
        name: &str,
        by: &str,
        action: &str,
        detail: &str,
        sql: &str,
        value: String,
    ) -> Result<Administrator, StoreError> {
        const CONTEXT: &str = "changing an administrator";
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        feed::lock(&mut tx).await?;
        let changed = tx
            .execute(sql, &[name.into(), value.as_str().into()])
            .await
            .ctx(CONTEXT)?;
        if changed == 0 {
            return Err(not_found(name));
        }
        keep_an_admin(&mut tx, name).await?;
        audit::append(&mut tx, by, action, name, detail).await?;
        let admin = read(&mut tx, name).await?.ok_or_else(|| not_found(name))?;
        tx.commit().await.ctx(CONTEXT)?;
        Ok(admin)
    }
}
