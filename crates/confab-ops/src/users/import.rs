//! Bulk import of users (`confab user import`): every row checked before any is stored, then
//! the users stored in batches of [`IMPORT_BATCH`] per transaction, all or nothing. The rows
//! come from the caller already split into fields (the CLI reads the CSV); their line numbers
//! are only carried into the messages.

use crate::control::{self, ChangeContext, Done, Right};
use std::collections::{HashMap, HashSet};

use confab_store::{Address, Credential, NewUser, Store, StoreError, UserFilter};
use serde::Serialize;

use super::{check_pool, pool_or_default};
use crate::{OpsError, Password};

/// One row of a bulk import, as read from the operator's file.
#[derive(Clone)]
pub struct ImportRow {
    /// Where the row is in the file (its line number), for messages.
    pub line: u64,
    /// `user@domain` as written.
    pub address: String,
    /// The password as written.
    pub password: String,
    /// The display name, if the row has one (empty means none).
    pub display_name: Option<String>,
}

impl std::fmt::Debug for ImportRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportRow")
            .field("line", &self.line)
            .field("address", &self.address)
            .field("display_name", &self.display_name)
            .finish_non_exhaustive()
    }
}

/// How an import treats its rows.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The pool every imported user is homed on; `None` means [`confab_store::DEFAULT_POOL`].
    pub pool: Option<String>,
    /// Leave users that exist already as they are (their password too) instead of refusing
    /// the import.
    pub skip_existing: bool,
}

/// A row that cannot be imported, and why, with the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowProblem {
    /// The row's line.
    pub line: u64,
    /// What is wrong and what to do.
    pub problem: String,
}

/// Why an import did not happen. Nothing was changed, except after [`ImportError::Partial`].
#[derive(Debug)]
pub enum ImportError {
    /// These rows cannot be imported (every bad row, in file order).
    Rows(Vec<RowProblem>),
    /// The import as a whole was refused or failed.
    Ops(OpsError),
    /// Storing failed half-way and removing the users stored until then failed too: the
    /// store holds part of the import. Rare (the store became unusable meanwhile).
    Partial {
        /// Users of the import still in the store.
        stored: usize,
        /// Why storing failed.
        cause: OpsError,
        /// Why removing them again failed.
        undo: OpsError,
    },
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportError::Rows(problems) => {
                write!(
                    f,
                    "{} row(s) cannot be imported; nothing was changed",
                    problems.len()
                )?;
                for p in problems {
                    write!(f, "\n  line {}: {}", p.line, p.problem)?;
                }
                Ok(())
            }
            ImportError::Ops(e) => write!(f, "{e}"),
            ImportError::Partial {
                stored,
                cause,
                undo,
            } => write!(
                f,
                "the import failed ({cause}) and removing the {stored} user(s) it had stored \
                 failed too ({undo}); list them with `confab user list`, then fix the store \
                 and import the remaining rows with --skip-existing"
            ),
        }
    }
}

impl std::error::Error for ImportError {}

impl From<OpsError> for ImportError {
    fn from(e: OpsError) -> Self {
        ImportError::Ops(e)
    }
}

impl From<StoreError> for ImportError {
    fn from(e: StoreError) -> Self {
        ImportError::Ops(e.into())
    }
}

/// Checked rows, ready to store: users with the credentials made from their passwords (the
/// passwords themselves are gone).
pub struct ImportPlan {
    users: Vec<(NewUser, Vec<Credential>)>,
    skipped: usize,
    weak: Vec<u64>,
    pool: String,
}

impl ImportPlan {
    /// How many users will be added.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there is nobody to add.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The lines whose passwords are shorter than recommended (accepted, worth a warning).
    pub fn weak_passwords(&self) -> &[u64] {
        &self.weak
    }
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Users added.
    pub imported: usize,
    /// Rows left out because the user existed already (with `skip_existing`).
    pub skipped: usize,
    /// The pool the users were homed on.
    pub pool: String,
    /// Rows whose passwords are shorter than recommended.
    pub weak_passwords: usize,
}

/// Users per store transaction of [`apply_import`]: large enough to be fast, small enough
/// that the store's write lock is never held for long (running front-ends write their
/// registrations behind through the same store).
pub const IMPORT_BATCH: usize = 1000;

/// Checks every row of a bulk import without changing anything: the address (its domain must
/// be one of the deployment's), the password, the display name, an address given twice, and
/// a user that exists already (a problem unless `skip_existing`). Every bad row is reported,
/// not just the first. Credentials are made here, one HA1 per algorithm as [`super::add`] makes them.
pub async fn check_import(
    store: &Store,
    rows: Vec<ImportRow>,
    options: &ImportOptions,
) -> Result<ImportPlan, ImportError> {
    let pool = pool_or_default(options.pool.as_deref()).to_owned();
    check_pool(store, &pool).await?;
    let domains: Vec<String> = store.domains().await?.into_iter().map(|d| d.name).collect();
    // Existing users of the domains the file names, read once per domain.
    let mut existing: HashSet<Address> = HashSet::new();
    let mut read: HashSet<String> = HashSet::new();
    let mut first_line: HashMap<Address, u64> = HashMap::with_capacity(rows.len());
    let mut problems = Vec::new();
    let mut plan = ImportPlan {
        users: Vec::with_capacity(rows.len()),
        skipped: 0,
        weak: Vec::new(),
        pool,
    };
    for row in rows {
        let mut problem = |text: String| {
            problems.push(RowProblem {
                line: row.line,
                problem: text,
            })
        };
        let address = match Address::parse(&row.address) {
            Ok(address) => address,
            Err(e) => {
                problem(e.to_string());
                continue;
            }
        };
        let domain = address.domain();
        if !domains.iter().any(|d| d == domain) {
            problem(
                OpsError::UnknownDomain {
                    domain: domain.to_owned(),
                    known: domains.clone(),
                }
                .to_string(),
            );
            continue;
        }
        if read.insert(domain.to_owned()) {
            let filter = UserFilter {
                pool: None,
                domain: Some(domain.to_owned()),
            };
            existing.extend(
                store
                    .list_users(&filter)
                    .await?
                    .into_iter()
                    .map(|u| u.address),
            );
        }
        if let Some(first) = first_line.get(&address) {
            problem(format!(
                "{address} is given again (first on line {first}); give each user once"
            ));
            continue;
        }
        first_line.insert(address.clone(), row.line);
        let display_name = match row.display_name.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(name) if name.len() > 255 || name.chars().any(char::is_control) => {
                problem(
                    "invalid display name: give at most 255 octets without line breaks or \
                     other control characters, or leave it empty"
                        .to_owned(),
                );
                continue;
            }
            Some(name) => Some(name.to_owned()),
        };
        let password = match Password::new(row.password) {
            Ok(password) => password,
            Err(e) => {
                problem(e.to_string());
                continue;
            }
        };
        if existing.contains(&address) {
            if options.skip_existing {
                plan.skipped += 1;
            } else {
                problem(format!(
                    "user {address} exists already; remove the line, or import with \
                     --skip-existing to leave existing users as they are"
                ));
            }
            continue;
        }
        if password.warning().is_some() {
            plan.weak.push(row.line);
        }
        let credentials = password.credentials(&address);
        plan.users.push((
            NewUser {
                address,
                display_name,
                pool: plan.pool.clone(),
                enabled: true,
            },
            credentials,
        ));
    }
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(ImportError::Rows(problems))
    }
}

/// Stores a checked import in transactions of [`IMPORT_BATCH`] users. All or nothing: should
/// a batch fail (another administrator added one of the users meanwhile, the disk is full),
/// the batches stored before it are removed again and the error returned.
pub async fn apply_import(
    store: &Store,
    ctx: &ChangeContext<'_>,
    plan: ImportPlan,
) -> Result<ImportReport, ImportError> {
    ctx.require(Right::ManageUsers).map_err(ImportError::Ops)?;
    let mut done = 0;
    for batch in plan.users.chunks(IMPORT_BATCH) {
        match store.add_users_with_credentials(batch).await {
            Ok(n) => done += n,
            Err(e) => {
                let error = match e {
                    StoreError::AlreadyExists { name, .. } => match Address::parse(&name) {
                        Ok(address) => OpsError::UserExists { address },
                        Err(e) => e.into(),
                    },
                    e => e.into(),
                };
                let stored: Vec<Address> = plan.users[..done]
                    .iter()
                    .map(|(u, _)| u.address.clone())
                    .collect();
                let mut left = stored.len();
                for undo in stored.chunks(IMPORT_BATCH).rev() {
                    if let Err(e) = store.remove_users(undo).await {
                        tracing::error!(error = %e, "undoing a failed import failed");
                        return Err(ImportError::Partial {
                            stored: left,
                            cause: error,
                            undo: e.into(),
                        });
                    }
                    left -= undo.len();
                }
                return Err(ImportError::Ops(error));
            }
        }
    }
    tracing::info!(users = done, pool = %plan.pool, "users imported");
    let addresses: Vec<String> = plan
        .users
        .iter()
        .map(|(u, _)| u.address.to_string())
        .collect();
    control::record(
        store,
        ctx,
        Done {
            title: format!("import {done} user(s) to pool {}", plan.pool),
            reason: "standard change: import users".into(),
            operation: control::json(&serde_json::json!({
                "op": "user.import",
                "pool": plan.pool,
                "users": addresses,
            })),
            before: None,
            after: None,
        },
    )
    .await
    .map_err(ImportError::Ops)?;
    Ok(ImportReport {
        imported: done,
        skipped: plan.skipped,
        pool: plan.pool,
        weak_passwords: plan.weak.len(),
    })
}
