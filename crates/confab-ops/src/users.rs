//! Users: add, list, show, set a password, disable, enable, remove, and import in bulk. A
//! user is `user@domain` in one of the deployment's SIP domains, homed on one pool, and signs
//! in with digest credentials made from a password ([`crate::Password`]); what is shown of a
//! user never includes them.
//!
//! Each operation checks what it can first (domain, pool, existing user) and refuses with the
//! fix, changing nothing; then it makes its change in one store transaction (a user and its
//! credentials together), which the store's change feed carries to running front-ends.
//!
//! A bulk import ([`check_import`], then [`apply_import`]) checks every row before storing
//! any, so that one run reports every bad row; it then stores the users in transactions of
//! [`IMPORT_BATCH`] and, should one fail, removes the batches stored before it.
//!
//! Change control: each mutating function takes a [`ChangeContext`] authorised to manage
//! users, and records what it did as a standard change ([`control::record`]: the record with
//! its before and after, and its audit entry). A refused operation records nothing.

use std::time::{SystemTime, UNIX_EPOCH};

use confab_store::{
    Address, Credential, NewUser, Store, StoreError, UnixTime, User, UserFilter, DEFAULT_POOL,
};
use serde::{Serialize, Serializer};

use crate::control::{self, ChangeContext, Done, Right};
use crate::{OpsError, Password};

mod import;

pub use import::{
    apply_import, check_import, ImportError, ImportOptions, ImportPlan, ImportReport, ImportRow,
    RowProblem, IMPORT_BATCH,
};

/// A user as lists show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserSummary {
    /// `user@domain`.
    #[serde(serialize_with = "as_text")]
    pub address: Address,
    /// The name shown to others, if set.
    pub display_name: Option<String>,
    /// The home pool.
    pub pool: String,
    /// Whether the user may sign in.
    pub enabled: bool,
    /// When the account was created (Unix seconds).
    pub created_at: UnixTime,
    /// When the account or its credentials last changed (Unix seconds).
    pub updated_at: UnixTime,
}

/// Which credentials a user has, without their values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialInfo {
    /// The realm.
    pub realm: String,
    /// The digest algorithm, e.g. `SHA-256`.
    pub algorithm: String,
}

/// A user as `show` shows it: the summary, which credentials exist (never an HA1 value) and
/// how many registrations are active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserDetails {
    /// The account.
    #[serde(flatten)]
    pub user: UserSummary,
    /// The credentials for the realm of the user's domain.
    pub credentials: Vec<CredentialInfo>,
    /// Registrations that have not expired.
    pub registrations: usize,
}

/// What [`set_enabled`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnabledChange {
    /// The user.
    #[serde(serialize_with = "as_text")]
    pub address: Address,
    /// Whether the user is now enabled.
    pub enabled: bool,
    /// Whether that is a change (false: the user already was).
    pub changed: bool,
}

/// A user to add.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// `user@domain`, in a domain of the deployment.
    pub address: Address,
    /// The home pool; `None` means [`DEFAULT_POOL`].
    pub pool: Option<String>,
    /// The name shown to others.
    pub display_name: Option<String>,
    /// The password the credentials are made from.
    pub password: Password,
}

fn as_text<S: Serializer>(address: &Address, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(address)
}

impl From<User> for UserSummary {
    fn from(user: User) -> Self {
        UserSummary {
            address: user.address,
            display_name: user.display_name,
            pool: user.pool,
            enabled: user.enabled,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

fn infos(credentials: &[Credential]) -> Vec<CredentialInfo> {
    credentials
        .iter()
        .map(|c| CredentialInfo {
            realm: c.realm.clone(),
            algorithm: c.algorithm.clone(),
        })
        .collect()
}

/// The pool a new user is homed on when none is given.
pub fn pool_or_default(pool: Option<&str>) -> &str {
    pool.unwrap_or(DEFAULT_POOL)
}

/// Checks, without changing anything, that `address` can be added on `pool`: its domain and
/// the pool exist and the address is free. [`add`] checks the same; an interactive caller
/// checks first so that nobody types a password twice for nothing.
pub async fn check_new(store: &Store, address: &Address, pool: &str) -> Result<(), OpsError> {
    check_domain(store, address.domain()).await?;
    check_pool(store, pool).await?;
    if store.find_user(address).await?.is_some() {
        return Err(OpsError::UserExists {
            address: address.clone(),
        });
    }
    Ok(())
}

/// Adds a user with credentials made from its password.
pub async fn add(
    store: &Store,
    ctx: &ChangeContext<'_>,
    new: NewAccount,
) -> Result<UserDetails, OpsError> {
    ctx.require(Right::ManageUsers)?;
    let pool = pool_or_default(new.pool.as_deref()).to_owned();
    let display_name = match new.display_name {
        None => None,
        Some(name) if name.trim().is_empty() => {
            return Err(OpsError::DisplayName {
                reason: "it is empty; give a name, or leave the display name out",
            })
        }
        Some(name) => Some(name.trim().to_owned()),
    };
    check_new(store, &new.address, &pool).await?;
    let credentials = new.password.credentials(&new.address);
    // One transaction: the user and its credentials are stored together or not at all.
    let user = store
        .add_user_with_credentials(
            &NewUser {
                address: new.address.clone(),
                display_name,
                pool,
                enabled: true,
            },
            &credentials,
        )
        .await;
    let user = match user {
        Ok(user) => user,
        // Another administrator got there between the check and the transaction.
        Err(StoreError::AlreadyExists { .. }) => {
            return Err(OpsError::UserExists {
                address: new.address,
            })
        }
        Err(StoreError::NotFound {
            what: "SIP domain", ..
        }) => return Err(unknown_domain(store, new.address.domain()).await),
        Err(StoreError::NotFound {
            what: "pool", name, ..
        }) => return Err(unknown_pool(store, &name).await),
        Err(e) => return Err(e.into()),
    };
    tracing::info!(user = %user.address, pool = %user.pool, "user added");
    let details = UserDetails {
        user: user.into(),
        credentials: infos(&credentials),
        registrations: 0,
    };
    control::record(
        store,
        ctx,
        Done {
            title: format!("add user {}", details.user.address),
            reason: "standard change: add a user".into(),
            operation: control::json(&serde_json::json!({
                "op": "user.add",
                "address": details.user.address.to_string(),
                "pool": details.user.pool,
            })),
            before: None,
            after: Some(control::json(&details.user)),
        },
    )
    .await?;
    Ok(details)
}

/// The users matching `filter`, by domain and user part. A pool or domain in the filter that
/// the deployment does not have is an error (a typo would otherwise look like "no users").
pub async fn list(store: &Store, filter: &UserFilter) -> Result<Vec<UserSummary>, OpsError> {
    if let Some(pool) = &filter.pool {
        check_pool(store, pool).await?;
    }
    if let Some(domain) = &filter.domain {
        check_domain(store, domain).await?;
    }
    let users = store.list_users(filter).await?;
    Ok(users.into_iter().map(UserSummary::from).collect())
}

/// One user: the account, which credentials it has for its domain's realm (not their values),
/// and its active registrations.
pub async fn show(store: &Store, address: &Address) -> Result<UserDetails, OpsError> {
    let Some(user) = store.find_user(address).await? else {
        return Err(unknown_user(address));
    };
    let credentials = store.credentials(address, address.domain()).await?;
    let now = unix_now();
    let registrations = store
        .registrations_of(address)
        .await?
        .iter()
        .filter(|r| r.expires_at > now)
        .count();
    Ok(UserDetails {
        user: user.into(),
        credentials: infos(&credentials),
        registrations,
    })
}

/// Replaces all of a user's credentials with ones made from `password`, in one transaction.
pub async fn set_password(
    store: &Store,
    ctx: &ChangeContext<'_>,
    address: &Address,
    password: &Password,
) -> Result<UserDetails, OpsError> {
    ctx.require(Right::ManageUsers)?;
    let credentials = password.credentials(address);
    store
        .set_credentials(address, &credentials)
        .await
        .map_err(|e| user_error(address, e))?;
    tracing::info!(user = %address, "password set");
    control::record(
        store,
        ctx,
        Done {
            title: format!("reset the password of {address}"),
            reason: "standard change: reset a password".into(),
            // Never the password nor its digests.
            operation: control::json(&serde_json::json!({
                "op": "user.passwd",
                "address": address.to_string(),
            })),
            before: None,
            after: None,
        },
    )
    .await?;
    show(store, address).await
}

/// Enables or disables a user. Disabling keeps everything (credentials, home pool, offline
/// messages) but the user may not sign in; front-ends learn of it from the change feed.
pub async fn set_enabled(
    store: &Store,
    ctx: &ChangeContext<'_>,
    address: &Address,
    enabled: bool,
) -> Result<EnabledChange, OpsError> {
    ctx.require(Right::ManageUsers)?;
    let changed = store
        .set_enabled(address, enabled)
        .await
        .map_err(|e| user_error(address, e))?;
    if changed {
        tracing::info!(user = %address, enabled, "user enabled or disabled");
        let verb = if enabled { "enable" } else { "disable" };
        control::record(
            store,
            ctx,
            Done {
                title: format!("{verb} user {address}"),
                reason: format!("standard change: {verb} a user"),
                operation: control::json(&serde_json::json!({
                    "op": format!("user.{verb}"),
                    "address": address.to_string(),
                })),
                before: Some(control::json(&serde_json::json!({ "enabled": !enabled }))),
                after: Some(control::json(&serde_json::json!({ "enabled": enabled }))),
            },
        )
        .await?;
    }
    Ok(EnabledChange {
        address: address.clone(),
        enabled,
        changed,
    })
}

/// Removes a user with their credentials, registrations and offline messages.
pub async fn remove(
    store: &Store,
    ctx: &ChangeContext<'_>,
    address: &Address,
) -> Result<(), OpsError> {
    ctx.require(Right::ManageUsers)?;
    let before = show(store, address).await?;
    store
        .remove_user(address)
        .await
        .map_err(|e| user_error(address, e))?;
    tracing::info!(user = %address, "user removed");
    control::record(
        store,
        ctx,
        Done {
            title: format!("remove user {address}"),
            reason: "standard change: remove a user".into(),
            operation: control::json(&serde_json::json!({
                "op": "user.remove",
                "address": address.to_string(),
            })),
            before: Some(control::json(&before)),
            after: None,
        },
    )
    .await?;
    Ok(())
}

pub(crate) async fn check_domain(store: &Store, domain: &str) -> Result<(), OpsError> {
    let domain = domain.trim().to_ascii_lowercase();
    let domains = store.domains().await?;
    if domains.iter().any(|d| d.name == domain) {
        Ok(())
    } else {
        Err(OpsError::UnknownDomain {
            domain,
            known: domains.into_iter().map(|d| d.name).collect(),
        })
    }
}

pub(crate) async fn check_pool(store: &Store, pool: &str) -> Result<(), OpsError> {
    if store.get_pool(pool).await?.is_some() {
        Ok(())
    } else {
        Err(unknown_pool(store, pool).await)
    }
}

async fn unknown_domain(store: &Store, domain: &str) -> OpsError {
    match store.domains().await {
        Ok(domains) => OpsError::UnknownDomain {
            domain: domain.to_owned(),
            known: domains.into_iter().map(|d| d.name).collect(),
        },
        Err(e) => e.into(),
    }
}

async fn unknown_pool(store: &Store, pool: &str) -> OpsError {
    match store.pools().await {
        Ok(pools) => OpsError::UnknownPool {
            pool: pool.to_owned(),
            known: pools.into_iter().map(|p| p.name).collect(),
        },
        Err(e) => e.into(),
    }
}

fn unknown_user(address: &Address) -> OpsError {
    OpsError::UnknownUser {
        address: address.clone(),
    }
}

/// The store's "no such user", in this crate's words; anything else as it is.
fn user_error(address: &Address, error: StoreError) -> OpsError {
    match error {
        StoreError::NotFound { what: "user", .. } => unknown_user(address),
        e => e.into(),
    }
}

fn unix_now() -> UnixTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// What [`restore_user_data`] brought back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoredUser {
    /// Contact groups.
    pub groups: usize,
    /// Contacts.
    pub contacts: usize,
    /// Presence rules.
    pub rules: usize,
}

/// Gives `user` back its contact groups, contacts and presence rules as the backup `loaded`
/// holds them, replacing what it has now (a standard change). The user must exist here and
/// in the backup.
pub async fn restore_user_data(
    store: &Store,
    ctx: &ChangeContext<'_>,
    loaded: &crate::backup::Loaded,
    user: &Address,
) -> Result<RestoredUser, OpsError> {
    ctx.require(Right::ManageUsers)?;
    let Some(data) = loaded.dump.user_data(user) else {
        return Err(OpsError::Backup {
            problem: format!("the backup has no user {user}"),
        });
    };
    if store.find_user(user).await?.is_none() {
        return Err(OpsError::UnknownUser {
            address: user.clone(),
        });
    }
    let now = store.contact_list(user).await?;
    let before_counts = serde_json::json!({
        "groups": now.groups.len(),
        "contacts": now.contacts.len(),
        "presence_rules": now.presence_rules.len(),
    });
    store.replace_user_data(user, &data).await?;
    let restored = RestoredUser {
        groups: data.groups.len(),
        contacts: data.contacts.len(),
        rules: data.rules.len(),
    };
    control::record(
        store,
        ctx,
        Done {
            title: format!("restore the contacts and presence rules of {user}"),
            reason: "standard change: restore a user's data from a backup".into(),
            operation: control::json(&serde_json::json!({
                "op": "user.restore",
                "address": user.to_string(),
                "sha256": loaded.sha256,
                "taken_at": loaded.manifest.created_at,
            })),
            before: Some(control::json(&before_counts)),
            after: Some(control::json(&serde_json::json!({
                "groups": restored.groups,
                "contacts": restored.contacts,
                "presence_rules": restored.rules,
            }))),
        },
    )
    .await?;
    Ok(restored)
}
