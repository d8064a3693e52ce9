//! Change control: who may do what, and the proof that they may.
//!
//! An administrator signs in with a name and a secret token ([`sign_in`]) and becomes an
//! [`Operator`]. What an operation needs is a [`Right`]; each role
//! grants some ([`grants`]): `viewer` reads, `user-admin` manages users, contacts and moves
//! of up to [`STANDARD_MOVE_LIMIT`] users, `admin` everything but approving and emergencies,
//! `approver` approves others' normal changes, `emergency` makes emergency changes.
//!
//! Every mutating function of this crate takes a [`ChangeContext`], and the only way to get
//! one is [`authorize`], which checks the operator's rights for the change's class: the type
//! system keeps an unauthorised caller from reaching a mutation at all. Each function also
//! checks that the context covers what it does ([`ChangeContext::require`]), so a context
//! authorised to manage users cannot publish a topology. Once the operation has succeeded,
//! [`record`] writes its change record (a standard change, requested and implemented at
//! once, with what it changed) and the store appends it to the audit log.
//!
//! A normal change ([`request`]) carries its [`Operation`] in its record; another
//! administrator with the approver role approves or rejects it ([`decide`]); then an
//! administrator allowed to make it [`implement`]s it, in a context bound to that record.
//! Publishing a topology and changing an administrator's roles or state are normal changes.
//!
//! An emergency change ([`emergency`]) needs the emergency right besides the operation's:
//! a snapshot of the store is written first, the change is carried out at once, and its
//! record stays implemented, awaiting review, due within [`REVIEW_WITHIN`] ([`review`]).
//!
//! A rollback ([`request_rollback`], [`emergency_rollback`]) is a change of its own carrying
//! the [`inverse`] of the change it undoes, linked to it both ways.
//!
//! A move of more than [`STANDARD_MOVE_LIMIT`] users is a normal change whoever asks for
//! it: [`authorize`] refuses it as a standard one.

use confab_store::{Administrator, ChangeClass, ChangeRecord, NewChange, Role, Store, StoreError};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::OpsError;

/// The most users a `user-admin` moves in one change; beyond it, an `admin`.
pub const STANDARD_MOVE_LIMIT: usize = 100;

/// The administrator a new deployment starts with, holding every role.
pub const FIRST_ADMINISTRATOR: &str = "admin";

/// What an operation needs its operator to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    /// Read the deployment: users, pools, topology, changes, the audit log.
    View,
    /// Users, their credentials, contact lists and presence rules.
    ManageUsers,
    /// Move this many users between pools.
    MoveUsers(usize),
    /// The topology: domains, sites, pools.
    ManageTopology,
    /// Administrators and their roles.
    ManageAdministrators,
    /// Approve or reject another administrator's normal change.
    Approve,
    /// Make an emergency change.
    Emergency,
    /// Take a backup (it holds every credential hash) or restore one.
    Backup,
}

impl std::fmt::Display for Right {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Right::View => f.write_str("read the deployment"),
            Right::ManageUsers => f.write_str("manage users"),
            Right::MoveUsers(n) => write!(f, "move {n} user(s)"),
            Right::ManageTopology => f.write_str("change the topology"),
            Right::ManageAdministrators => f.write_str("manage administrators"),
            Right::Approve => f.write_str("approve changes"),
            Right::Emergency => f.write_str("make emergency changes"),
            Right::Backup => f.write_str("take or restore backups"),
        }
    }
}

/// True when `role` grants `right`.
pub fn grants(role: Role, right: Right) -> bool {
    match role {
        Role::Viewer => right == Right::View,
        Role::UserAdmin => {
            matches!(right, Right::View | Right::ManageUsers)
                || matches!(right, Right::MoveUsers(n) if n <= STANDARD_MOVE_LIMIT)
        }
        Role::Admin => !matches!(right, Right::Approve | Right::Emergency),
        Role::Approver => matches!(right, Right::View | Right::Approve),
        Role::Emergency => matches!(right, Right::View | Right::Emergency),
    }
}

/// The roles that grant `right`, for an error that says whom to ask.
pub fn roles_granting(right: Right) -> Vec<&'static str> {
    Role::ALL
        .iter()
        .filter(|r| grants(**r, right))
        .map(|r| r.as_str())
        .collect()
}

/// An administrator who signed in. Only [`sign_in`] makes one.
#[derive(Debug, Clone)]
pub struct Operator {
    name: String,
    roles: Vec<Role>,
}

impl Operator {
    /// The administrator's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The administrator's roles.
    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    /// True when one of the roles grants `right`.
    pub fn may(&self, right: Right) -> bool {
        self.roles.iter().any(|r| grants(*r, right))
    }

    /// `Ok` when the operator may `right`, else the refusal that names the roles to ask for.
    pub fn check(&self, right: Right) -> Result<(), OpsError> {
        if self.may(right) {
            return Ok(());
        }
        Err(OpsError::Denied {
            administrator: self.name.clone(),
            right: right.to_string(),
            roles: roles_granting(right).join(", "),
        })
    }
}

/// The hex SHA-256 of a token: what the store keeps instead of the token.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new secret token: 32 random bytes, hex.
pub fn new_token() -> Result<String, OpsError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| OpsError::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Gives a deployment without administrators its first one, [`FIRST_ADMINISTRATOR`], with
/// every role; returns its token (to write to the credentials file), or `None` when the
/// store has administrators already.
pub async fn bootstrap(store: &Store) -> Result<Option<String>, OpsError> {
    if !store.administrators().await?.is_empty() {
        return Ok(None);
    }
    let token = new_token()?;
    match store
        .add_administrator(FIRST_ADMINISTRATOR, &Role::ALL, &token_hash(&token), None)
        .await
    {
        Ok(_) => Ok(Some(token)),
        // Another process bootstrapped at the same moment: its administrator stands.
        Err(StoreError::AlreadyExists { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Signs `name` in with `token` through `via` (`cli`, `api`): the administrator must exist,
/// be enabled, and the token must be its own. Every sign-in is appended to the audit log —
/// `login`, or `login.refused` with why — and a sign-in that cannot be recorded is refused.
pub async fn sign_in(
    store: &Store,
    name: &str,
    token: &str,
    via: &str,
) -> Result<Operator, OpsError> {
    sign_in_recording(store, name, token, via, true).await
}

/// [`sign_in`], recording a refusal only when `record_refusal` (a caller that throttles a
/// source after many refusals records the throttling once instead of every guess). A
/// sign-in that succeeds is always recorded.
pub async fn sign_in_recording(
    store: &Store,
    name: &str,
    token: &str,
    via: &str,
    record_refusal: bool,
) -> Result<Operator, OpsError> {
    let refused = || OpsError::SignIn {
        name: name.to_owned(),
    };
    // What an unknown caller typed is kept, but not at any length.
    let actor: String = name.chars().take(64).collect();
    let found = (
        store.administrator(name).await?,
        store.administrator_token_hash(name).await?,
    );
    let (Some(admin), Some(hash)) = found else {
        if record_refusal {
            record_login(store, &actor, via, Some("no such administrator")).await?;
        }
        return Err(refused());
    };
    let given = token_hash(token);
    if !bool::from(given.as_bytes().ct_eq(hash.as_bytes())) {
        if record_refusal {
            record_login(store, &actor, via, Some("wrong token")).await?;
        }
        return Err(refused());
    }
    if !admin.enabled {
        if record_refusal {
            record_login(store, &actor, via, Some("disabled")).await?;
        }
        return Err(OpsError::Disabled {
            name: name.to_owned(),
        });
    }
    record_login(store, &actor, via, None).await?;
    Ok(operator(admin))
}

async fn record_login(
    store: &Store,
    actor: &str,
    via: &str,
    refused: Option<&str>,
) -> Result<(), OpsError> {
    let (action, detail) = match refused {
        None => ("login", json(&serde_json::json!({ "via": via }))),
        Some(why) => (
            "login.refused",
            json(&serde_json::json!({ "via": via, "reason": why })),
        ),
    };
    store.audit(actor, action, actor, &detail).await?;
    Ok(())
}

fn operator(admin: Administrator) -> Operator {
    Operator {
        name: admin.name,
        roles: admin.roles,
    }
}

/// The proof that an operator may make one change: its class and the right it was
/// authorised for. Only [`authorize`] makes one.
#[derive(Debug)]
pub struct ChangeContext<'a> {
    operator: &'a Operator,
    class: ChangeClass,
    right: Right,
    /// The approved change being implemented, when it is one ([`implement`]).
    change: Option<i64>,
    /// The snapshot taken before an emergency change.
    snapshot: Option<String>,
}

impl ChangeContext<'_> {
    /// Who makes the change.
    pub fn operator(&self) -> &Operator {
        self.operator
    }

    /// Standard, normal or emergency.
    pub fn class(&self) -> ChangeClass {
        self.class
    }

    /// `Ok` when this context was authorised for `right` (a mutating function calls this
    /// first): a context for managing users does not publish a topology.
    pub fn require(&self, right: Right) -> Result<(), OpsError> {
        let covered = match (self.right, right) {
            (Right::MoveUsers(granted), Right::MoveUsers(n)) => n <= granted,
            (granted, wanted) => granted == wanted,
        };
        if covered {
            Ok(())
        } else {
            Err(OpsError::OutsideChange {
                authorised: self.right.to_string(),
                wanted: right.to_string(),
            })
        }
    }
}

/// Authorises `operator` to make a change of `class` that needs `right`. An emergency change
/// needs the emergency right besides.
pub fn authorize(
    operator: &Operator,
    right: Right,
    class: ChangeClass,
) -> Result<ChangeContext<'_>, OpsError> {
    operator.check(right)?;
    if class == ChangeClass::Emergency {
        operator.check(Right::Emergency)?;
    }
    if let (ChangeClass::Standard, Right::MoveUsers(n)) = (class, right) {
        if n > STANDARD_MOVE_LIMIT {
            return Err(OpsError::NeedsApproval {
                what: format!("a move of {n} users (more than {STANDARD_MOVE_LIMIT})"),
            });
        }
    }
    Ok(ChangeContext {
        operator,
        class,
        right,
        change: None,
        snapshot: None,
    })
}

/// What a change did, for its record.
#[derive(Debug, Clone, Default)]
pub struct Done {
    /// A title: `add user alice@example.com`.
    pub title: String,
    /// Why; for a standard change, the template's name.
    pub reason: String,
    /// The operation as JSON (what would redo it).
    pub operation: String,
    /// The state before, JSON, when there was one.
    pub before: Option<String>,
    /// The state after, JSON.
    pub after: Option<String>,
}

/// `value` as compact JSON, for a change record (a value that cannot be written as JSON is
/// recorded as `null`: the record of a change must not fail the change).
pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// Records a standard change that `ctx` made: requested and implemented at once, by its
/// operator (the store writes both to the audit log).
pub async fn record(
    store: &Store,
    ctx: &ChangeContext<'_>,
    done: Done,
) -> Result<ChangeRecord, OpsError> {
    let (before, after) = (done.before.clone(), done.after.clone());
    let id = match ctx.change {
        // An approved change being implemented: its record exists.
        Some(id) => id,
        None => {
            // The change is made: it is recorded whatever happens. A standard change outside
            // the catalogue is a bug of this crate, caught by its tests.
            let listed = ctx.class != ChangeClass::Standard || template(&done.operation).is_some();
            debug_assert!(
                listed,
                "standard change outside the catalogue: {}",
                done.operation
            );
            if !listed {
                tracing::error!(operation = %done.operation, "standard change outside the catalogue");
            }
            open_record(store, ctx, done).await?
        }
    };
    finish(store, ctx, id, before.as_deref(), after.as_deref()).await
}

/// A standard change: a pre-approved procedure, made at once by an administrator whose role
/// grants its right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    /// The operation's name in its change record (`user.add`).
    pub op: &'static str,
    /// What it does.
    pub what: &'static str,
    /// What it needs.
    pub right: Right,
}

/// The catalogue of standard changes: the only operations recorded as standard changes (any
/// other is refused as one, [`begin`]). Everything else is a normal change (approved first)
/// or an emergency.
pub const CATALOGUE: &[Template] = &[
    Template {
        op: "user.add",
        what: "add a user",
        right: Right::ManageUsers,
    },
    Template {
        op: "user.import",
        what: "import users from a CSV file",
        right: Right::ManageUsers,
    },
    Template {
        op: "user.passwd",
        what: "reset a user's password",
        right: Right::ManageUsers,
    },
    Template {
        op: "user.disable",
        what: "disable a user (signed out at once)",
        right: Right::ManageUsers,
    },
    Template {
        op: "user.enable",
        what: "enable a user",
        right: Right::ManageUsers,
    },
    Template {
        op: "user.remove",
        what: "remove a user and what it owns",
        right: Right::ManageUsers,
    },
    Template {
        op: "user.move",
        what: "move up to 100 users to another pool",
        right: Right::MoveUsers(STANDARD_MOVE_LIMIT),
    },
    Template {
        op: "contacts.add",
        what: "add a contact to a user's list",
        right: Right::ManageUsers,
    },
    Template {
        op: "contacts.remove",
        what: "remove a contact from a user's list",
        right: Right::ManageUsers,
    },
    Template {
        op: "contacts.group.add",
        what: "add a contact group",
        right: Right::ManageUsers,
    },
    Template {
        op: "contacts.group.rename",
        what: "rename a contact group",
        right: Right::ManageUsers,
    },
    Template {
        op: "contacts.group.remove",
        what: "remove a contact group",
        right: Right::ManageUsers,
    },
    Template {
        op: "presence-rules.set",
        what: "set a user's presence rule for a watcher",
        right: Right::ManageUsers,
    },
    Template {
        op: "presence-rules.remove",
        what: "remove a user's presence rule",
        right: Right::ManageUsers,
    },
    Template {
        op: "user.restore",
        what: "give a user back its contacts and presence rules from a backup",
        right: Right::ManageUsers,
    },
    Template {
        op: "migrate.import",
        what: "import a legacy system's users onto its legacy pool",
        right: Right::ManageUsers,
    },
    Template {
        op: "migrate.plan",
        what: "plan the migration of a legacy pool",
        right: Right::ManageTopology,
    },
    Template {
        op: "migrate.advance",
        what: "advance a migration to its next phase, once the phase's checks pass",
        right: Right::ManageTopology,
    },
    Template {
        op: "domain.add",
        what: "add a SIP domain",
        right: Right::ManageTopology,
    },
    Template {
        op: "admin.add",
        what: "add an administrator (its roles then change by normal changes)",
        right: Right::ManageAdministrators,
    },
];

/// The catalogue's template for the operation recorded as `operation` (JSON with an `op`).
pub fn template(operation: &str) -> Option<&'static Template> {
    let value: serde_json::Value = serde_json::from_str(operation).ok()?;
    let op = value.get("op")?.as_str()?;
    CATALOGUE.iter().find(|t| t.op == op)
}

/// Opens the record of a change `ctx` is about to make in several steps (a move in
/// batches): requested, with what it will do. Returns its number for [`finish`]. A standard
/// change must be one of the [`CATALOGUE`].
pub async fn begin(store: &Store, ctx: &ChangeContext<'_>, done: Done) -> Result<i64, OpsError> {
    if let Some(id) = ctx.change {
        return Ok(id);
    }
    if ctx.class == ChangeClass::Standard && template(&done.operation).is_none() {
        return Err(OpsError::NeedsApproval {
            what: done.title.clone(),
        });
    }
    open_record(store, ctx, done).await
}

async fn open_record(store: &Store, ctx: &ChangeContext<'_>, done: Done) -> Result<i64, OpsError> {
    let requested = store
        .request_change(&NewChange {
            class: ctx.class,
            title: done.title,
            reason: done.reason,
            impact: None,
            requested_by: ctx.operator.name.clone(),
            operation: done.operation,
            rolls_back: None,
        })
        .await?;
    Ok(requested.id)
}

/// Marks change `id` implemented by `ctx`'s operator, with the state before and after.
pub async fn finish(
    store: &Store,
    ctx: &ChangeContext<'_>,
    id: i64,
    before: Option<&str>,
    after: Option<&str>,
) -> Result<ChangeRecord, OpsError> {
    finish_with(store, ctx, id, before, after, ctx.snapshot.as_deref()).await
}

/// [`finish`], with the snapshot taken before the change named explicitly.
async fn finish_with(
    store: &Store,
    ctx: &ChangeContext<'_>,
    id: i64,
    before: Option<&str>,
    after: Option<&str>,
    snapshot: Option<&str>,
) -> Result<ChangeRecord, OpsError> {
    // An emergency change is reviewed afterwards, within REVIEW_WITHIN.
    let review_due = (ctx.class == ChangeClass::Emergency).then(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        i64::try_from(now + REVIEW_WITHIN.as_secs()).unwrap_or(i64::MAX)
    });
    Ok(store
        .record_implemented(id, &ctx.operator.name, before, after, snapshot, review_due)
        .await?)
}

/// How long after an emergency change its review is due.
pub const REVIEW_WITHIN: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// An operation a normal change carries, kept in its record as JSON until it is implemented.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op")]
pub enum Operation {
    /// Publish a topology document.
    #[serde(rename = "topology.publish")]
    PublishTopology {
        /// The document, as the operator gave it.
        document: String,
        /// Why, as `--comment` said.
        comment: Option<String>,
    },
    /// Disable a user (block it: its registrations and subscriptions go at once).
    #[serde(rename = "user.disable")]
    DisableUser {
        /// `user@domain`.
        address: String,
    },
    /// Enable a user again.
    #[serde(rename = "user.enable")]
    EnableUser {
        /// `user@domain`.
        address: String,
    },
    /// Drop every message from a source network at ingress.
    #[serde(rename = "source.block")]
    BlockSource {
        /// An address or a network, `203.0.113.0/24`.
        cidr: String,
    },
    /// Stop dropping a source network.
    #[serde(rename = "source.unblock")]
    UnblockSource {
        /// An address or a network.
        cidr: String,
    },
    /// Give an administrator exactly these roles.
    #[serde(rename = "admin.roles")]
    SetRoles {
        /// The administrator.
        name: String,
        /// Its roles from now on.
        roles: Vec<String>,
    },
    /// Move users to a pool (a move of more than [`STANDARD_MOVE_LIMIT`] users is a normal
    /// change).
    #[serde(rename = "user.move")]
    MoveUsers {
        /// The pool they move to.
        to: String,
        /// Who moves, and from where, as planned when the change was asked for.
        users: Vec<crate::moves::Planned>,
        /// Users per store transaction (default [`crate::moves::DEFAULT_BATCH`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        batch: Option<usize>,
    },
    /// Send moved users back where they came from (a move rolled back).
    #[serde(rename = "user.return")]
    ReturnUsers {
        /// Who goes back, from where, to where.
        users: Vec<crate::moves::Return>,
    },
    /// Put a front-end pool into maintenance (its paired pool serves its users) or take it
    /// out.
    #[serde(rename = "pool.maintenance")]
    PoolMaintenance {
        /// The pool.
        pool: String,
        /// Into maintenance (true) or out of it.
        on: bool,
    },
    /// Replace the whole deployment with a backup's state.
    #[serde(rename = "store.restore")]
    RestoreBackup {
        /// The archive.
        archive: String,
        /// Its SHA-256 when the change was asked for: a different file is refused.
        sha256: String,
    },
    /// Enable or disable an administrator.
    #[serde(rename = "admin.enabled")]
    SetAdministratorEnabled {
        /// The administrator.
        name: String,
        /// Enabled from now on.
        enabled: bool,
    },
}

impl Operation {
    /// What the operation needs of whoever requests or implements it.
    pub fn right(&self) -> Right {
        match self {
            Operation::PublishTopology { .. } => Right::ManageTopology,
            Operation::DisableUser { .. } | Operation::EnableUser { .. } => Right::ManageUsers,
            Operation::BlockSource { .. } | Operation::UnblockSource { .. } => {
                Right::ManageTopology
            }
            Operation::SetRoles { .. } | Operation::SetAdministratorEnabled { .. } => {
                Right::ManageAdministrators
            }
            Operation::MoveUsers { users, .. } => Right::MoveUsers(users.len()),
            Operation::PoolMaintenance { .. } => Right::ManageTopology,
            Operation::RestoreBackup { .. } => Right::Backup,
            Operation::ReturnUsers { users } => Right::MoveUsers(users.len()),
        }
    }

    /// What its change record calls it: `move 250 user(s) to pool b`.
    pub fn title(&self) -> String {
        match self {
            Operation::PublishTopology { .. } => "publish a topology document".to_owned(),
            Operation::DisableUser { address } => format!("disable user {address}"),
            Operation::EnableUser { address } => format!("enable user {address}"),
            Operation::BlockSource { cidr } => format!("block source {cidr}"),
            Operation::UnblockSource { cidr } => format!("unblock source {cidr}"),
            Operation::SetRoles { name, roles } => {
                format!("give administrator {name} the roles {}", roles.join(", "))
            }
            Operation::SetAdministratorEnabled { name, enabled } => format!(
                "{} administrator {name}",
                if *enabled { "enable" } else { "disable" }
            ),
            Operation::MoveUsers { to, users, .. } => {
                format!("move {} user(s) to pool {to}", users.len())
            }
            Operation::RestoreBackup { archive, .. } => {
                format!("replace the deployment with the backup {archive}")
            }
            Operation::PoolMaintenance { pool, on: true } => {
                format!("put pool {pool} into maintenance")
            }
            Operation::PoolMaintenance { pool, on: false } => {
                format!("take pool {pool} out of maintenance")
            }
            Operation::ReturnUsers { users } => format!(
                "send {} moved user(s) back to the pools they came from",
                users.len()
            ),
        }
    }
}

/// Carries out `operation` in `ctx` (bound to its change record), and makes sure the record
/// ends implemented even when the operation found nothing to change.
async fn carry_out(
    store: &Store,
    ctx: &ChangeContext<'_>,
    operation: &Operation,
) -> Result<Outcome, OpsError> {
    // The record the context is bound to, as requested (its reason names a block, a
    // maintenance; a restore records it again).
    let bound = match ctx.change {
        Some(id) => store.change(id).await?,
        None => None,
    };
    let reason = bound.as_ref().map(|c| c.reason.as_str());
    let outcome = match operation {
        Operation::RestoreBackup { archive, sha256 } => {
            // Returns at once: the record this change was bound to is gone with the state it
            // replaced, and the restored store gets it anew.
            return restore_backup(store, ctx, bound.as_ref(), operation, archive, sha256).await;
        }
        Operation::PublishTopology { document, comment } => Outcome::Published(
            crate::topology::publish(store, ctx, document, comment.as_deref()).await?,
        ),
        Operation::DisableUser { address } | Operation::EnableUser { address } => {
            let address = confab_store::Address::parse(address)?;
            let enable = matches!(operation, Operation::EnableUser { .. });
            Outcome::Enabled(crate::users::set_enabled(store, ctx, &address, enable).await?)
        }
        Operation::BlockSource { cidr } => Outcome::Source(
            crate::sources::block(store, ctx, cidr, reason.unwrap_or("blocked")).await?,
        ),
        Operation::UnblockSource { cidr } => {
            Outcome::Source(crate::sources::unblock(store, ctx, cidr).await?)
        }
        Operation::PoolMaintenance { pool, on } => {
            ctx.require(Right::ManageTopology)?;
            let changed = store
                .set_pool_maintenance(
                    pool,
                    *on,
                    reason.unwrap_or("maintenance"),
                    ctx.operator().name(),
                )
                .await?;
            let pair = store.get_pool(pool).await?.and_then(|p| p.pair);
            Outcome::Maintenance {
                pool: pool.clone(),
                on: *on,
                changed,
                pair,
            }
        }
        Operation::SetRoles { name, roles } => {
            ctx.require(Right::ManageAdministrators)?;
            let roles = roles
                .iter()
                .map(|r| r.parse::<Role>())
                .collect::<Result<Vec<_>, _>>()?;
            let before = store.administrator(name).await?;
            let after = store
                .set_administrator_roles(name, &roles, ctx.operator().name())
                .await?;
            if let Some(id) = ctx.change {
                let roles_of = |a: &Administrator| {
                    json(&serde_json::json!({
                        "roles": a.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                    }))
                };
                let before = before.as_ref().map(roles_of);
                finish(store, ctx, id, before.as_deref(), Some(&roles_of(&after))).await?;
            }
            Outcome::Administrator(after)
        }
        Operation::MoveUsers { to, users, batch } => {
            let addresses = users
                .iter()
                .map(|u| confab_store::Address::parse(&u.address))
                .collect::<Result<Vec<_>, _>>()?;
            let again = again(ctx);
            let moved = crate::moves::carry(
                store,
                ctx,
                &addresses,
                to,
                batch.unwrap_or(crate::moves::DEFAULT_BATCH),
                &again,
                &mut |_| {},
            )
            .await?;
            if let Some(id) = ctx.change {
                let after = json(&serde_json::json!({ "moved": moved.len() }));
                finish(store, ctx, id, None, Some(&after)).await?;
            }
            Outcome::Moved {
                moved: moved.len(),
                passed: Vec::new(),
            }
        }
        Operation::ReturnUsers { users } => {
            let again = again(ctx);
            let (moved, passed) = crate::moves::carry_back(store, ctx, users, &again).await?;
            if let Some(id) = ctx.change {
                let after = json(&serde_json::json!({
                    "returned": moved.len(),
                    "passed_over": passed,
                }));
                finish(store, ctx, id, None, Some(&after)).await?;
            }
            Outcome::Moved {
                moved: moved.len(),
                passed,
            }
        }
        Operation::SetAdministratorEnabled { name, enabled } => {
            ctx.require(Right::ManageAdministrators)?;
            Outcome::Administrator(
                store
                    .set_administrator_enabled(name, *enabled, ctx.operator().name())
                    .await?,
            )
        }
    };
    if let Some(id) = ctx.change {
        let state = store.change(id).await?.map(|c| c.state);
        if state != Some(confab_store::ChangeState::Implemented) {
            finish(store, ctx, id, None, None).await?;
        }
    }
    Ok(outcome)
}

/// Replaces the deployment with the backup at `archive` in `ctx` and records the change anew
/// in the restored store (implemented, with the number it had before, its approvals and the
/// snapshot taken before it), since the restore replaced the change records too.
async fn restore_backup(
    store: &Store,
    ctx: &ChangeContext<'_>,
    before: Option<&ChangeRecord>,
    operation: &Operation,
    archive: &str,
    sha256: &str,
) -> Result<Outcome, OpsError> {
    ctx.require(Right::Backup)?;
    let path = std::path::Path::new(archive);
    let loaded = crate::backup::load(path)?;
    if loaded.sha256 != sha256 {
        return Err(OpsError::Backup {
            problem: format!(
                "{archive} is not the file this change was asked for (its SHA-256 changed);                  request the restore again"
            ),
        });
    }
    // The deployment as it is, first: a backup beside the one restored (on any backend; an
    // emergency also has its store snapshot). Rolling the restore back restores it.
    let stamp = crate::time::rfc3339(crate::time::now()).replace([':', '-'], "");
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let saved = crate::backup::create(
        store,
        crate::backup::TakenBy::Operator(ctx),
        &dir.join(format!("confab-before-restore-{stamp}.tar.gz")),
        &mut |_| {},
    )
    .await?;
    let restored = crate::backup::restore(
        store,
        &loaded,
        confab_store::RestoreInto::Replace,
        ctx.operator().name(),
        path,
    )
    .await?;
    let (reason, impact, requested_by) = match before {
        Some(c) => (c.reason.clone(), c.impact.clone(), c.requested_by.clone()),
        None => ("restore".to_owned(), None, ctx.operator().name().to_owned()),
    };
    let record = store
        .request_change(&NewChange {
            class: ctx.class,
            title: operation.title(),
            reason,
            impact,
            requested_by,
            operation: json(operation),
            rolls_back: None,
        })
        .await?;
    // The approvals it had, again (a normal change is implemented once approved).
    if let Some(c) = before {
        for a in &c.approvals {
            store
                .decide_change(record.id, &a.approver, a.decision, a.comment.as_deref())
                .await?;
        }
    }
    let after = json(&serde_json::json!({
        "backup_before": saved.path.display().to_string(),
        "backup_before_sha256": saved.sha256,
        "restored_from": archive,
        "taken_at": loaded.manifest.created_at,
        "users": loaded.manifest.users,
        "change_before_restore": before.map(|c| c.id),
        "approved_by": before.map(|c| {
            c.approvals.iter().map(|a| a.approver.clone()).collect::<Vec<_>>()
        }),
    }));
    let snapshot = ctx
        .snapshot
        .clone()
        .unwrap_or_else(|| saved.path.display().to_string());
    finish_with(store, ctx, record.id, None, Some(&after), Some(&snapshot)).await?;
    Ok(Outcome::Restored {
        change: record.id,
        users: loaded.manifest.users,
        rows: restored.rows.iter().map(|(_, n)| n).sum(),
    })
}

/// True when `outcome` is a restore: the change records are the restored ones now.
fn is_restore(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Restored { .. })
}

/// The change record an outcome belongs to: the restored store's own for a restore.
fn record_of(outcome: &Outcome, id: i64) -> i64 {
    match outcome {
        Outcome::Restored { change, .. } => *change,
        _ => id,
    }
}

/// The command that carries on the change `ctx` is bound to, after a failure part-way.
fn again(ctx: &ChangeContext<'_>) -> String {
    match ctx.change {
        Some(id) if ctx.class == ChangeClass::Normal => format!("`confab change implement {id}`"),
        _ => "the same command again".to_owned(),
    }
}

/// What an implemented operation did.
#[derive(Debug)]
pub enum Outcome {
    /// The deployment was replaced with a backup's state.
    Restored {
        /// The change's record in the restored store.
        change: i64,
        /// Users restored.
        users: usize,
        /// Rows restored in all.
        rows: usize,
    },
    /// Users moved (or sent back); those passed over had moved again since, or are gone.
    Moved {
        /// How many moved.
        moved: usize,
        /// The users passed over.
        passed: Vec<String>,
    },
    /// A topology was published.
    Published(crate::topology::Published),
    /// A user was enabled or disabled (or was already).
    Enabled(crate::users::EnabledChange),
    /// A source network was blocked or unblocked (or was already).
    Source(crate::sources::SourceChange),
    /// An administrator's roles or state changed.
    Administrator(Administrator),
    /// A pool went into maintenance or left it (or was already where it was asked to be).
    Maintenance {
        /// The pool.
        pool: String,
        /// In maintenance now.
        on: bool,
        /// False when it already was.
        changed: bool,
        /// The pool serving its users meanwhile.
        pair: Option<String>,
    },
}

/// Asks for a normal change carrying `operation`, which the operator must be allowed to
/// make; it waits for another administrator's approval ([`decide`]), then [`implement`].
pub async fn request(
    store: &Store,
    operator: &Operator,
    operation: &Operation,
    reason: &str,
    impact: Option<&str>,
) -> Result<ChangeRecord, OpsError> {
    operator.check(operation.right())?;
    // What can be checked now is, so that nobody approves a change bound to fail.
    if let Operation::SetRoles { name, .. } | Operation::SetAdministratorEnabled { name, .. } =
        operation
    {
        if store.administrator(name).await?.is_none() {
            return Err(StoreError::NotFound {
                what: "administrator",
                name: name.clone(),
                fix: "list the administrators with `confab admin list`",
            }
            .into());
        }
    }
    if let Operation::RestoreBackup { archive, sha256 } = operation {
        let loaded = crate::backup::load(std::path::Path::new(archive))?;
        if loaded.sha256 != *sha256 {
            return Err(OpsError::Backup {
                problem: format!("{archive} changed while the restore was being asked for"),
            });
        }
    }
    if let Operation::PoolMaintenance { pool, on } = operation {
        let Some(p) = store.get_pool(pool).await? else {
            return Err(StoreError::NotFound {
                what: "pool",
                name: pool.clone(),
                fix: "list the pools with `confab pool list`",
            }
            .into());
        };
        if *on && p.pair.is_none() {
            return Err(OpsError::NoPair { pool: pool.clone() });
        }
    }
    Ok(store
        .request_change(&NewChange {
            class: ChangeClass::Normal,
            title: operation.title(),
            reason: reason.to_owned(),
            impact: impact.map(str::to_owned),
            requested_by: operator.name.clone(),
            operation: json(operation),
            rolls_back: None,
        })
        .await?)
}

/// Approves or rejects change `id` as `operator`, who must hold the approver role and not be
/// its requester (the store checks that inside its transaction).
pub async fn decide(
    store: &Store,
    operator: &Operator,
    id: i64,
    decision: confab_store::Decision,
    comment: Option<&str>,
) -> Result<ChangeRecord, OpsError> {
    operator.check(Right::Approve)?;
    // Four eyes: the store refuses it too; said here as what it is, a refusal of rights.
    if let Some(c) = store.change(id).await? {
        if c.requested_by == operator.name {
            return Err(OpsError::OwnChange {
                id,
                name: operator.name.clone(),
            });
        }
    }
    Ok(store
        .decide_change(id, &operator.name, decision, comment)
        .await?)
}

/// Implements the approved normal change `id`: its operation, run by `operator` (who must be
/// allowed to make it) in a context bound to the change, which records it implemented.
pub async fn implement(
    store: &Store,
    operator: &Operator,
    id: i64,
) -> Result<(ChangeRecord, Outcome), OpsError> {
    let change = changed(store, id).await?;
    if change.state != confab_store::ChangeState::Approved {
        return Err(OpsError::NotApproved {
            id,
            state: change.state.as_str().to_owned(),
        });
    }
    let operation: Operation =
        serde_json::from_str(&change.operation).map_err(|e| OpsError::Operation {
            id,
            reason: e.to_string(),
        })?;
    let mut ctx = authorize(operator, operation.right(), ChangeClass::Normal)?;
    ctx.change = Some(id);
    let outcome = carry_out(store, &ctx, &operation).await?;
    // (A restore replaced the records, the one rolled back with them: nothing to link.)
    if let (Some(target), false) = (change.rolls_back, is_restore(&outcome)) {
        store.record_rolled_back(target, id, &operator.name).await?;
    }
    let record = store
        .change(record_of(&outcome, id))
        .await?
        .unwrap_or(change);
    Ok((record, outcome))
}

/// The operation that undoes change `target`: the topology version before it published
/// again, a disabled user enabled, an enabled one disabled.
pub async fn inverse(store: &Store, target: &ChangeRecord) -> Result<Operation, OpsError> {
    let refuse = |reason: &str| OpsError::NoRollback {
        id: target.id,
        reason: reason.to_owned(),
    };
    if !matches!(
        target.state,
        confab_store::ChangeState::Implemented | confab_store::ChangeState::Reviewed
    ) {
        return Err(refuse(&format!(
            "it is {}; only a change that was made is rolled back",
            target.state.as_str()
        )));
    }
    let op: serde_json::Value = serde_json::from_str(&target.operation)
        .map_err(|_| refuse("its operation cannot be read"))?;
    match op.get("op").and_then(serde_json::Value::as_str) {
        Some("topology.publish") => {
            let before: serde_json::Value = target
                .before
                .as_deref()
                .and_then(|b| serde_json::from_str(b).ok())
                .unwrap_or(serde_json::Value::Null);
            let Some(previous) = before.get("version").and_then(serde_json::Value::as_i64) else {
                return Err(refuse(
                    "it was the first publication: there is no earlier version to publish again",
                ));
            };
            let Some(v) = store.topology_version_number(previous).await? else {
                return Err(refuse("the version before it is not in the store"));
            };
            Ok(Operation::PublishTopology {
                document: v.document,
                comment: Some(format!(
                    "rollback of change {}: version {previous} again",
                    target.id
                )),
            })
        }
        Some("source.block") | Some("source.unblock") => {
            let cidr = op
                .get("cidr")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| refuse("its operation names no network"))?
                .to_owned();
            Ok(if op["op"] == "source.block" {
                Operation::UnblockSource { cidr }
            } else {
                Operation::BlockSource { cidr }
            })
        }
        Some("user.disable") | Some("user.enable") => {
            let address = op
                .get("address")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| refuse("its operation names no user"))?
                .to_owned();
            Ok(if op["op"] == "user.disable" {
                Operation::EnableUser { address }
            } else {
                Operation::DisableUser { address }
            })
        }
        Some("user.move") | Some("user.return") => {
            let operation: Operation = serde_json::from_value(op.clone())
                .map_err(|_| refuse("its operation cannot be read"))?;
            let users = match operation {
                Operation::MoveUsers { to, users, .. } => users
                    .into_iter()
                    .filter(|u| u.from != to)
                    .map(|u| crate::moves::Return {
                        address: u.address,
                        from: to.clone(),
                        to: u.from,
                    })
                    .collect(),
                Operation::ReturnUsers { users } => users
                    .into_iter()
                    .map(|u| crate::moves::Return {
                        address: u.address,
                        from: u.to,
                        to: u.from,
                    })
                    .collect(),
                _ => return Err(refuse("its operation cannot be read")),
            };
            Ok(Operation::ReturnUsers { users })
        }
        Some("admin.roles") => {
            let name = op
                .get("name")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| refuse("its operation names no administrator"))?
                .to_owned();
            let before: serde_json::Value = target
                .before
                .as_deref()
                .and_then(|b| serde_json::from_str(b).ok())
                .ok_or_else(|| refuse("its record does not say which roles were there before"))?;
            let roles = before
                .get("roles")
                .and_then(serde_json::Value::as_array)
                .ok_or_else(|| refuse("its record does not say which roles were there before"))?
                .iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect();
            Ok(Operation::SetRoles { name, roles })
        }
        Some("admin.enabled") | Some("admin.add") => {
            let name = op
                .get("name")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| refuse("its operation names no administrator"))?
                .to_owned();
            // An added administrator is disabled: its name stays in the records it is in.
            let enabled = op["op"] == "admin.enabled"
                && !op
                    .get("enabled")
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(true);
            Ok(Operation::SetAdministratorEnabled { name, enabled })
        }
        Some("store.restore") => {
            let after: serde_json::Value = target
                .after
                .as_deref()
                .and_then(|a| serde_json::from_str(a).ok())
                .unwrap_or(serde_json::Value::Null);
            match (
                after
                    .get("backup_before")
                    .and_then(serde_json::Value::as_str),
                after
                    .get("backup_before_sha256")
                    .and_then(serde_json::Value::as_str),
            ) {
                (Some(archive), Some(sha256)) => Ok(Operation::RestoreBackup {
                    archive: archive.to_owned(),
                    sha256: sha256.to_owned(),
                }),
                _ => Err(refuse("its record names no backup taken before it")),
            }
        }
        Some("pool.maintenance") => {
            let operation: Operation = serde_json::from_value(op.clone())
                .map_err(|_| refuse("its operation cannot be read"))?;
            match operation {
                Operation::PoolMaintenance { pool, on } => {
                    Ok(Operation::PoolMaintenance { pool, on: !on })
                }
                _ => Err(refuse("its operation cannot be read")),
            }
        }
        _ => Err(refuse(
            "Confab has no inverse for it (a user added, a password reset, a contact list \
             edited: make the opposite change as a change of its own, or restore the users \
             concerned from a backup)",
        )),
    }
}

/// Asks to roll change `id` back: a normal change carrying the inverse operation, linked to
/// it, that another administrator approves and [`implement`] carries out (marking `id`
/// rolled back).
pub async fn request_rollback(
    store: &Store,
    operator: &Operator,
    id: i64,
    reason: &str,
) -> Result<ChangeRecord, OpsError> {
    let target = changed(store, id).await?;
    let operation = inverse(store, &target).await?;
    operator.check(operation.right())?;
    Ok(store
        .request_change(&NewChange {
            class: ChangeClass::Normal,
            title: format!("roll back change {id}: {}", operation.title()),
            reason: reason.to_owned(),
            impact: None,
            requested_by: operator.name.clone(),
            operation: json(&operation),
            rolls_back: Some(id),
        })
        .await?)
}

/// Rolls change `id` back at once, as an emergency change (snapshot first, review after).
pub async fn emergency_rollback(
    store: &Store,
    operator: &Operator,
    id: i64,
    reason: &str,
    snapshot_dir: &std::path::Path,
) -> Result<(ChangeRecord, Outcome), OpsError> {
    let target = changed(store, id).await?;
    let operation = inverse(store, &target).await?;
    let (record, outcome) =
        emergency_linked(store, operator, &operation, reason, snapshot_dir, Some(id)).await?;
    if !is_restore(&outcome) {
        store
            .record_rolled_back(id, record.id, &operator.name)
            .await?;
    }
    let record = store.change(record.id).await?.unwrap_or(record);
    Ok((record, outcome))
}

async fn changed(store: &Store, id: i64) -> Result<ChangeRecord, OpsError> {
    store.change(id).await?.ok_or_else(|| {
        StoreError::NotFound {
            what: "change",
            name: id.to_string(),
            fix: "list the changes with `confab change list`",
        }
        .into()
    })
}

/// Makes an emergency change at once: `operator` must hold the emergency right and the
/// operation's; a snapshot of the store is written to `snapshot_dir` first (SQLite; on
/// PostgreSQL the record says none was taken), then the change is recorded, carried out, and
/// left implemented and awaiting its review, due within [`REVIEW_WITHIN`].
pub async fn emergency(
    store: &Store,
    operator: &Operator,
    operation: &Operation,
    reason: &str,
    snapshot_dir: &std::path::Path,
) -> Result<(ChangeRecord, Outcome), OpsError> {
    emergency_linked(store, operator, operation, reason, snapshot_dir, None).await
}

async fn emergency_linked(
    store: &Store,
    operator: &Operator,
    operation: &Operation,
    reason: &str,
    snapshot_dir: &std::path::Path,
    rolls_back: Option<i64>,
) -> Result<(ChangeRecord, Outcome), OpsError> {
    let mut ctx = authorize(operator, operation.right(), ChangeClass::Emergency)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    std::fs::create_dir_all(snapshot_dir).map_err(|e| OpsError::Snapshot {
        path: snapshot_dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let path = snapshot_dir.join(format!("before-emergency-{stamp}.sqlite"));
    ctx.snapshot = store
        .snapshot(&path)
        .await?
        .then(|| path.display().to_string());
    let change = store
        .request_change(&NewChange {
            class: ChangeClass::Emergency,
            title: operation.title(),
            reason: reason.to_owned(),
            impact: None,
            requested_by: operator.name.clone(),
            operation: json(operation),
            rolls_back,
        })
        .await?;
    ctx.change = Some(change.id);
    let outcome = carry_out(store, &ctx, operation).await?;
    let record = store
        .change(record_of(&outcome, change.id))
        .await?
        .unwrap_or(change);
    Ok((record, outcome))
}

/// Adds administrator `name` with `roles`; returns its token, which is shown once and kept
/// only as a hash. (Role changes become normal changes with the rest of issue 8; a deployment
/// with one administrator must be able to add the second, who approves from then on.)
pub async fn add_administrator(
    store: &Store,
    ctx: &ChangeContext<'_>,
    name: &str,
    roles: &[Role],
) -> Result<String, OpsError> {
    ctx.require(Right::ManageAdministrators)?;
    let token = new_token()?;
    let admin = store
        .add_administrator(name, roles, &token_hash(&token), Some(ctx.operator.name()))
        .await?;
    let roles: Vec<&str> = admin.roles.iter().map(|r| r.as_str()).collect();
    record(
        store,
        ctx,
        Done {
            title: format!("add administrator {name}"),
            reason: "add an administrator".into(),
            operation: json(&serde_json::json!({
                "op": "admin.add",
                "name": name,
                "roles": roles,
            })),
            before: None,
            after: Some(json(&serde_json::json!({ "roles": roles }))),
        },
    )
    .await?;
    Ok(token)
}

/// Records the review of an implemented change by `operator` (an approver).
pub async fn review(
    store: &Store,
    operator: &Operator,
    id: i64,
    comment: &str,
) -> Result<ChangeRecord, OpsError> {
    operator.check(Right::Approve)?;
    Ok(store.record_reviewed(id, &operator.name, comment).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(roles: &[Role]) -> Operator {
        Operator {
            name: "tester".into(),
            roles: roles.to_vec(),
        }
    }

    #[test]
    fn roles_grant_what_the_issue_says() {
        let viewer = op(&[Role::Viewer]);
        assert!(viewer.may(Right::View));
        assert!(!viewer.may(Right::ManageUsers));
        let user_admin = op(&[Role::UserAdmin]);
        assert!(user_admin.may(Right::ManageUsers));
        assert!(user_admin.may(Right::MoveUsers(STANDARD_MOVE_LIMIT)));
        assert!(!user_admin.may(Right::MoveUsers(STANDARD_MOVE_LIMIT + 1)));
        assert!(!user_admin.may(Right::ManageTopology));
        let admin = op(&[Role::Admin]);
        assert!(admin.may(Right::ManageTopology) && admin.may(Right::MoveUsers(10_000)));
        assert!(!admin.may(Right::Approve) && !admin.may(Right::Emergency));
        assert!(op(&[Role::Approver]).may(Right::Approve));
        assert!(op(&[Role::Emergency]).may(Right::Emergency));
        let refused = viewer.check(Right::ManageUsers).expect_err("refused");
        let text = refused.to_string();
        assert!(
            text.contains("tester") && text.contains("user-admin"),
            "{text}"
        );
    }

    #[test]
    fn a_context_covers_what_it_was_authorised_for() {
        let admin = op(&[Role::Admin]);
        let ctx = authorize(&admin, Right::ManageUsers, ChangeClass::Standard).expect("ok");
        assert!(ctx.require(Right::ManageUsers).is_ok());
        assert!(ctx.require(Right::ManageTopology).is_err());
        let moves = authorize(&admin, Right::MoveUsers(50), ChangeClass::Standard).expect("ok");
        assert!(moves.require(Right::MoveUsers(20)).is_ok());
        assert!(moves.require(Right::MoveUsers(51)).is_err());
        assert!(
            authorize(&admin, Right::ManageUsers, ChangeClass::Emergency).is_err(),
            "an emergency needs the emergency right"
        );
        let both = op(&[Role::Admin, Role::Emergency]);
        assert!(authorize(&both, Right::ManageUsers, ChangeClass::Emergency).is_ok());
        // A bulk move above the limit is a normal change whoever makes it.
        let bulk = Right::MoveUsers(STANDARD_MOVE_LIMIT + 1);
        assert!(matches!(
            authorize(&admin, bulk, ChangeClass::Standard),
            Err(OpsError::NeedsApproval { .. })
        ));
        assert!(authorize(&admin, bulk, ChangeClass::Normal).is_ok());
        assert!(authorize(
            &admin,
            Right::MoveUsers(STANDARD_MOVE_LIMIT),
            ChangeClass::Standard
        )
        .is_ok());
    }

    #[test]
    fn operations_keep_their_names_in_records() {
        // Records outlive versions: the names an operation is stored under are fixed.
        let op = Operation::PoolMaintenance {
            pool: "fe-paris".into(),
            on: true,
        };
        assert_eq!(
            json(&op),
            r#"{"op":"pool.maintenance","pool":"fe-paris","on":true}"#
        );
        let back: Operation = serde_json::from_str(
            r#"{"op":"user.move","to":"b","users":[{"address":"a@x","from":"default"}]}"#,
        )
        .expect("a move record of an earlier version reads");
        assert_eq!(back.right(), Right::MoveUsers(1));
    }

    #[test]
    fn tokens_are_random_and_only_their_hash_is_kept() {
        let (a, b) = (new_token().expect("random"), new_token().expect("random"));
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
