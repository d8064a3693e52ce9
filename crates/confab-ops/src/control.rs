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
//! Not yet: normal changes waiting for another administrator's approval (topology publish,
//! bulk moves above the limit, role changes are still applied as standard changes by an
//! `admin`), emergency changes with their snapshot and review, rollback.

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
fn roles_granting(right: Right) -> Vec<&'static str> {
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

/// Signs `name` in with `token`: the administrator must exist, be enabled, and the token
/// must be its own.
pub async fn sign_in(store: &Store, name: &str, token: &str) -> Result<Operator, OpsError> {
    let refused = || OpsError::SignIn {
        name: name.to_owned(),
    };
    let (Some(admin), Some(hash)) = (
        store.administrator(name).await?,
        store.administrator_token_hash(name).await?,
    ) else {
        return Err(refused());
    };
    let given = token_hash(token);
    if !bool::from(given.as_bytes().ct_eq(hash.as_bytes())) {
        return Err(refused());
    }
    if !admin.enabled {
        return Err(OpsError::Disabled {
            name: name.to_owned(),
        });
    }
    // A command run with credentials is not a session: what it changes is recorded with
    // its change, and a refused command leaves the store as it was. Sessions of the admin
    // API record their sign-in.
    Ok(operator(admin))
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
    Ok(ChangeContext {
        operator,
        class,
        right,
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
    let id = begin(store, ctx, done).await?;
    finish(store, ctx, id, before.as_deref(), after.as_deref()).await
}

/// Opens the record of a change `ctx` is about to make in several steps (a move in
/// batches): requested, with what it will do. Returns its number for [`finish`].
pub async fn begin(store: &Store, ctx: &ChangeContext<'_>, done: Done) -> Result<i64, OpsError> {
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
    Ok(store
        .record_implemented(id, &ctx.operator.name, before, after, None, None)
        .await?)
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
