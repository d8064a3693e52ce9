//! Backups at the store's level: the whole management store read in one consistent view
//! ([`Store::dump`]) as backend-neutral rows, and written back in one transaction
//! ([`Store::restore`]) — so that a backup of a SQLite deployment restores into PostgreSQL
//! and the other way round, and a restore killed half-way leaves the store as it was.
//!
//! [`TABLES`] says what a backup holds: every table of the deployment's state, parents before
//! children, each with its columns, their types and the order its rows are read in (so that
//! two dumps of the same state are equal, whatever the backend). Not in it: the change feed
//! (`changes`, `change_head`: a restore appends to the target's feed, `store.restored`, so
//! running front-ends read everything again), the live members of pools (`pool_members`,
//! heartbeats), the schema's own bookkeeping, the list of backups (`backups`, which is
//! about the deployment's files, not its state), and the history of users per pool
//! (`pool_usage_history`, the past rather than the state). The audit log is restored as it was, and the
//! restore appends its own entry to it, continuing the restored chain.
//!
//! Also here: the record of the backups a deployment knows about ([`Store::record_backup`],
//! [`Store::backups`]), each verified or not.

use crate::audit;
use crate::db::{value_rows, Arg, BackendKind, Row, Tx};
use crate::error::Context;
use crate::feed::{self, ChangeKind};
use crate::model::unix_now;
use crate::{Store, StoreError};

/// The type of a column, as a backup writes and reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// A 64-bit integer, never null.
    Int,
    /// A 64-bit integer or null.
    OptInt,
    /// Text, never null.
    Text,
    /// Text or null.
    OptText,
    /// A boolean (INTEGER 0/1 on SQLite, BOOLEAN on PostgreSQL).
    Bool,
    /// Bytes (BLOB, BYTEA).
    Bytes,
}

impl ColumnType {
    /// The name a manifest gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Int => "int",
            ColumnType::OptInt => "int?",
            ColumnType::Text => "text",
            ColumnType::OptText => "text?",
            ColumnType::Bool => "bool",
            ColumnType::Bytes => "bytes",
        }
    }
}

/// A table a backup holds.
#[derive(Debug, PartialEq, Eq)]
pub struct TableSpec {
    /// Its name.
    pub name: &'static str,
    /// Its columns, in the order a backup writes them.
    pub columns: &'static [(&'static str, ColumnType)],
    /// The order its rows are read in: its primary key.
    pub order_by: &'static str,
    /// A column generated from a sequence on PostgreSQL, set past the restored rows after a
    /// restore.
    pub identity: Option<&'static str>,
    /// Columns that reference rows of the same table written later: written null first, then
    /// set once every row is in.
    pub deferred: &'static [&'static str],
}

use ColumnType::{Bool, Bytes, Int, OptInt, OptText, Text};

/// Every table a backup holds, parents before children (see the module documentation).
pub const TABLES: &[TableSpec] = &[
    TableSpec {
        name: "domains",
        columns: &[("name", Text), ("created_at", Int)],
        order_by: "name",
        identity: None,
        deferred: &[],
    },
    TableSpec {
        name: "sites",
        columns: &[
            ("name", Text),
            ("description", OptText),
            ("created_at", Int),
        ],
        order_by: "name",
        identity: None,
        deferred: &[],
    },
    TableSpec {
        name: "pools",
        columns: &[
            ("name", Text),
            ("kind", Text),
            ("site", OptText),
            ("next_hop", OptText),
            ("created_at", Int),
            ("pair", OptText),
        ],
        order_by: "name",
        identity: None,
        deferred: &[],
    },
    TableSpec {
        name: "pool_servers",
        columns: &[("pool", Text), ("position", Int), ("address", Text)],
        order_by: "pool, position",
        identity: None,
        deferred: &[],
    },
    TableSpec {
        name: "topology_versions",
        columns: &[
            ("version", Int),
            ("document", Text),
            ("published_at", Int),
            ("published_by", Text),
            ("comment", OptText),
        ],
        order_by: "version",
        identity: None,
        deferred: &[],
    },
    TableSpec {
        name: "users",
        columns: &[
            ("id", Int),
            ("user_part", Text),
            ("domain", Text),
            ("display_name", OptText),
            ("pool", Text),
            ("enabled", Bool),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        order_by: "id",
        identity: Some("id"),
        deferred: &[],
    },
    TableSpec {
        name: "credentials",
        columns: &[
            ("user_id", Int),
            ("realm", Text),
            ("algorithm", Text),
            ("ha1", Text),
        ],
        order_by: "user_id, realm, algorithm",
        identity: None,
        deferred: &[],
    },
    TableSpec {
        name: "registrations",
        columns: &[
            ("user_id", Int),
            ("contact", Text),
            ("instance_id", OptText),
            ("q", Int),
            ("expires_at", Int),
            ("call_id", Text),
            ("cseq", Int),
            ("path", OptText),
            ("source", OptText),
            ("transport", Text),
            ("updated_at", Int),
        ],
        order_by: "user_id, contact",
        identity: None,
        deferred: &[],
    },
    TableSpec {
        name: "offline_messages",
        columns: &[
            ("id", Int),
            ("user_id", Int),
            ("from_uri", Text),
            ("content_type", Text),
            ("body", Bytes),
            ("received_at", Int),
            ("expires_at", Int),
            ("claimed_until", OptInt),
        ],
        order_by: "id",
        identity: Some("id"),
        deferred: &[],
    },
    TableSpec {
        name: "contact_groups",
        columns: &[
            ("id", Int),
            ("user_id", Int),
            ("name", Text),
            ("position", Int),
            ("created_at", Int),
        ],
        order_by: "id",
        identity: Some("id"),
        deferred: &[],
    },
    TableSpec {
        name: "contacts",
        columns: &[
            ("id", Int),
            ("user_id", Int),
            ("contact_user", Text),
            ("contact_domain", Text),
            ("display_name", OptText),
            ("group_id", OptInt),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        order_by: "id",
        identity: Some("id"),
        deferred: &[],
    },
    TableSpec {
        name: "presence_rules",
        columns: &[
            ("user_id", Int),
            ("watcher_user", Text),
            ("watcher_domain", Text),
            ("level", Text),
            ("updated_at", Int),
        ],
        order_by: "user_id, watcher_user, watcher_domain",
        identity: None,
        deferred: &[],
    },
    TableSpec {
        name: "presence_publications",
        columns: &[
            ("user_id", Int),
            ("etag", Text),
            ("expires_at", Int),
            ("content_type", Text),
            ("body", Bytes),
            ("updated_at", Int),
        ],
        order_by: "user_id, etag",
        identity: None,
        deferred: &[],
    },
    TableSpec {
        name: "presence_subscriptions",
        columns: &[
            ("id", Text),
            ("user_id", Int),
            ("event", Text),
            ("watcher", Text),
            ("expires_at", Int),
            ("dialog", Text),
            ("updated_at", Int),
        ],
        order_by: "id",
        identity: None,
        deferred: &[],
    },
    TableSpec {
        name: "administrators",
        columns: &[
            ("name", Text),
            ("roles", Text),
            ("token_hash", Text),
            ("enabled", Bool),
            ("created_at", Int),
            ("created_by", OptText),
        ],
        order_by: "name",
        identity: None,
        deferred: &[],
    },
    TableSpec {
        name: "change_records",
        columns: &[
            ("id", Int),
            ("class", Text),
            ("title", Text),
            ("reason", Text),
            ("impact", OptText),
            ("requested_by", Text),
            ("state", Text),
            ("operation", Text),
            ("before_state", OptText),
            ("after_state", OptText),
            ("snapshot", OptText),
            ("rolls_back", OptInt),
            ("rolled_back_by", OptInt),
            ("requested_at", Int),
            ("decided_at", OptInt),
            ("implemented_at", OptInt),
            ("implemented_by", OptText),
            ("review_due", OptInt),
            ("reviewed_at", OptInt),
            ("reviewed_by", OptText),
            ("review_comment", OptText),
        ],
        order_by: "id",
        identity: Some("id"),
        deferred: &["rolled_back_by"],
    },
    TableSpec {
        name: "change_approvals",
        columns: &[
            ("change_id", Int),
            ("approver", Text),
            ("decision", Text),
            ("comment", OptText),
            ("at", Int),
        ],
        order_by: "change_id, approver",
        identity: None,
        deferred: &[],
    },
    TableSpec {
        name: "audit_log",
        columns: &[
            ("seq", Int),
            ("at", Int),
            ("actor", Text),
            ("action", Text),
            ("subject", Text),
            ("detail", Text),
            ("prev_hash", Text),
            ("hash", Text),
        ],
        order_by: "seq",
        identity: None,
        deferred: &[],
    },
    TableSpec {
        name: "audit_head",
        columns: &[("id", Int), ("seq", Int), ("hash", Text)],
        order_by: "id",
        identity: None,
        deferred: &[],
    },
    TableSpec {
        name: "blocked_sources",
        columns: &[
            ("cidr", Text),
            ("reason", Text),
            ("created_at", Int),
            ("created_by", Text),
        ],
        order_by: "cidr",
        identity: None,
        deferred: &[],
    },
    TableSpec {
        name: "pool_maintenance",
        columns: &[
            ("pool", Text),
            ("reason", Text),
            ("since", Int),
            ("started_by", Text),
        ],
        order_by: "pool",
        identity: None,
        deferred: &[],
    },
    TableSpec {
        name: "migrations",
        columns: &[
            ("legacy_pool", Text),
            ("system", Text),
            ("plan", Text),
            ("phase", Text),
            ("record", Text),
            ("revision", Int),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        order_by: "legacy_pool",
        identity: None,
        deferred: &[],
    },
];

impl TableSpec {
    /// The position of column `name` in the table's rows (`usize::MAX`, which no row has,
    /// when the table has no such column).
    pub fn column(&self, name: &str) -> usize {
        self.columns
            .iter()
            .position(|(c, _)| *c == name)
            .unwrap_or(usize::MAX)
    }

    /// The cell of `row` in column `name`.
    pub fn cell<'r>(&self, row: &'r [Cell], name: &str) -> Option<&'r Cell> {
        row.get(self.column(name))
    }
}

/// The spec of table `name`, if a backup holds it.
pub fn table_spec(name: &str) -> Option<&'static TableSpec> {
    TABLES.iter().find(|t| t.name == name)
}

/// One value of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
    /// A boolean.
    Bool(bool),
    /// Bytes.
    Bytes(Vec<u8>),
}

impl Cell {
    /// The integer it holds, if it is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Cell::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// The text it holds, if it is text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Cell::Text(v) => Some(v),
            _ => None,
        }
    }
}

/// The rows of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDump {
    /// Which table.
    pub spec: &'static TableSpec,
    /// Its rows, in [`TableSpec::order_by`] order, each with a cell per column.
    pub rows: Vec<Vec<Cell>>,
}

/// The whole store at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dump {
    /// The schema version it was read from.
    pub schema_version: i64,
    /// The backend it was read from (`sqlite`, `postgres`).
    pub backend: &'static str,
    /// Every table of [`TABLES`], in that order.
    pub tables: Vec<TableDump>,
}

impl Dump {
    /// The rows of table `name`.
    pub fn table(&self, name: &str) -> Option<&TableDump> {
        self.tables.iter().find(|t| t.spec.name == name)
    }
}

/// How a restore treats the target store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreInto {
    /// An empty store (no users, no change records, no published topology): refused
    /// otherwise.
    Empty,
    /// Whatever is there is replaced.
    Replace,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// Rows written per table, in [`TABLES`] order.
    pub rows: Vec<(&'static str, usize)>,
}

/// A backup the deployment knows about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRecord {
    /// Where the archive is.
    pub path: String,
    /// When it was written, Unix seconds.
    pub created_at: i64,
    /// By whom (an administrator, or `schedule`).
    pub created_by: String,
    /// The SHA-256 of the archive, hex.
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: i64,
    /// The users it holds.
    pub users: i64,
    /// When it was last verified, if ever.
    pub verified_at: Option<i64>,
    /// Whether that verification passed.
    pub verified_ok: Option<bool>,
    /// What the verification found.
    pub verify_note: Option<String>,
}

fn read_cell(row: &Row, column: &str, ty: ColumnType) -> Result<Cell, StoreError> {
    Ok(match ty {
        Int => Cell::Int(row.int(column)?),
        OptInt => row.opt_int(column)?.map_or(Cell::Null, Cell::Int),
        Text => Cell::Text(row.text(column)?),
        OptText => row.opt_text(column)?.map_or(Cell::Null, Cell::Text),
        Bool => Cell::Bool(row.bool(column)?),
        Bytes => Cell::Bytes(row.bytes(column)?),
    })
}

fn arg<'a>(
    cell: &'a Cell,
    ty: ColumnType,
    table: &str,
    column: &str,
) -> Result<Arg<'a>, StoreError> {
    let mismatch = || {
        StoreError::corrupt(format!(
            "backup row of {table}: column {column} does not hold a {} value",
            ty.as_str()
        ))
    };
    Ok(match (ty, cell) {
        (Int, Cell::Int(v)) => Arg::Int(*v),
        (OptInt, Cell::Int(v)) => Arg::OptInt(Some(*v)),
        (OptInt, Cell::Null) => Arg::OptInt(None),
        (Text, Cell::Text(v)) => Arg::Text(v),
        (OptText, Cell::Text(v)) => Arg::OptText(Some(v)),
        (OptText, Cell::Null) => Arg::OptText(None),
        (Bool, Cell::Bool(v)) => Arg::Bool(*v),
        (Bytes, Cell::Bytes(v)) => Arg::Bytes(v),
        _ => return Err(mismatch()),
    })
}

/// Rows per INSERT statement: well under both backends' limits on parameters.
const INSERT_ROWS: usize = 200;

impl Store {
    /// Reads every table of [`TABLES`] in one read-only transaction: the store at one instant,
    /// while writers carry on (SQLite's WAL snapshot; PostgreSQL's repeatable read).
    pub async fn dump(&self) -> Result<Dump, StoreError> {
        const CONTEXT: &str = "reading the store for a backup";
        let schema_version = self.schema_version().await?;
        let mut tx = self.db.begin_read().await.ctx(CONTEXT)?;
        let mut tables = Vec::with_capacity(TABLES.len());
        for spec in TABLES {
            let columns: Vec<&str> = spec.columns.iter().map(|(c, _)| *c).collect();
            let sql = format!(
                "SELECT {} FROM {} ORDER BY {}",
                columns.join(", "),
                spec.name,
                spec.order_by
            );
            let rows = tx.fetch_all(&sql, &[]).await.ctx(CONTEXT)?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(
                    spec.columns
                        .iter()
                        .map(|(c, ty)| read_cell(row, c, *ty))
                        .collect::<Result<Vec<_>, _>>()?,
                );
            }
            tables.push(TableDump { spec, rows: out });
        }
        tx.commit().await.ctx(CONTEXT)?;
        Ok(Dump {
            schema_version,
            backend: match self.db.kind() {
                BackendKind::Sqlite => "sqlite",
                BackendKind::Postgres => "postgres",
            },
            tables,
        })
    }

    /// True when the store holds no deployment yet: no users, no change records, no
    /// published topology (a first start's default domain and pool do not count).
    pub async fn is_empty_for_restore(&self) -> Result<bool, StoreError> {
        let mut tx = self
            .db
            .begin_read()
            .await
            .ctx("checking the store is empty")?;
        let empty = empty(&mut tx).await?;
        tx.commit().await.ctx("checking the store is empty")?;
        Ok(empty)
    }

    /// Writes `dump` into this store in one transaction: into an empty store, or replacing
    /// everything (`into`). The schema versions must be equal. With `record` (who, and the
    /// audit entry's detail), the change feed gets a `store.restored` entry and the audit log,
    /// restored as it was, a `store.restore` entry — both in the same transaction, so a
    /// restore interrupted anywhere leaves the store as it was. Without, the store holds the
    /// dump exactly (a scratch store that verifies a backup).
    pub async fn restore(
        &self,
        dump: &Dump,
        into: RestoreInto,
        record: Option<(&str, &str)>,
    ) -> Result<Restored, StoreError> {
        const CONTEXT: &str = "restoring the store";
        let ours = self.schema_version().await?;
        if dump.schema_version != ours {
            return Err(StoreError::invalid(
                "backup",
                &format!("schema version {}", dump.schema_version),
                format!(
                    "this store is at schema version {ours}; restore the backup with the \
                     Confab version that wrote it{}",
                    if dump.schema_version > ours {
                        " (a newer one: upgrade confab first)"
                    } else {
                        ", then upgrade"
                    }
                ),
            ));
        }
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        feed::lock(&mut tx).await?;
        if into == RestoreInto::Empty && !empty(&mut tx).await? {
            return Err(StoreError::invalid(
                "restore target",
                "a deployment with users, changes or a topology",
                "restore into an empty store, or replace this deployment with --force (a \
                 change of its own, with a snapshot first)",
            ));
        }
        for spec in TABLES.iter().rev() {
            tx.execute(&format!("DELETE FROM {}", spec.name), &[])
                .await
                .ctx(CONTEXT)?;
        }
        let kind = self.db.kind();
        let mut written = Vec::with_capacity(TABLES.len());
        for spec in TABLES {
            let rows = dump.table(spec.name).map_or(&[][..], |t| &t.rows[..]);
            insert_rows(&mut tx, kind, spec, rows).await?;
            written.push((spec.name, rows.len()));
            if kind == BackendKind::Postgres {
                if let Some(id) = spec.identity {
                    let sql = format!(
                        "SELECT setval(pg_get_serial_sequence('{0}', '{id}'), \
                         COALESCE((SELECT MAX({id}) FROM {0}), 0) + 1, false)",
                        spec.name
                    );
                    tx.fetch_one(&sql, &[]).await.ctx(CONTEXT)?;
                }
            }
        }
        if let Some((by, detail)) = record {
            feed::record(&mut tx, ChangeKind::StoreRestored, by, unix_now()).await?;
            audit::append(&mut tx, by, "store.restore", "store", detail).await?;
        }
        tx.commit().await.ctx(CONTEXT)?;
        Ok(Restored { rows: written })
    }

    /// Records a backup written to `path` (replacing an earlier record of the same path).
    pub async fn record_backup(&self, b: &BackupRecord) -> Result<(), StoreError> {
        const CONTEXT: &str = "recording a backup";
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        tx.execute(
            "DELETE FROM backups WHERE path = $1",
            &[b.path.as_str().into()],
        )
        .await
        .ctx(CONTEXT)?;
        tx.execute(
            "INSERT INTO backups (path, created_at, created_by, sha256, bytes, users, \
             verified_at, verified_ok, verify_note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                b.path.as_str().into(),
                b.created_at.into(),
                b.created_by.as_str().into(),
                b.sha256.as_str().into(),
                b.bytes.into(),
                b.users.into(),
                b.verified_at.into(),
                b.verified_ok.map(i64::from).into(),
                b.verify_note.as_deref().into(),
            ],
        )
        .await
        .ctx(CONTEXT)?;
        tx.commit().await.ctx(CONTEXT)?;
        Ok(())
    }

    /// Records the outcome of verifying the backup at `path`, if the deployment knows it;
    /// returns whether it did.
    pub async fn record_verification(
        &self,
        path: &str,
        ok: bool,
        note: &str,
    ) -> Result<bool, StoreError> {
        let n = self
            .db
            .execute(
                "UPDATE backups SET verified_at = $1, verified_ok = $2, verify_note = $3 \
                 WHERE path = $4",
                &[
                    unix_now().into(),
                    i64::from(ok).into(),
                    note.into(),
                    path.into(),
                ],
            )
            .await
            .ctx("recording a verification")?;
        Ok(n > 0)
    }

    /// Forgets the backup at `path` (its file was removed).
    pub async fn forget_backup(&self, path: &str) -> Result<(), StoreError> {
        self.db
            .execute("DELETE FROM backups WHERE path = $1", &[path.into()])
            .await
            .ctx("forgetting a backup")?;
        Ok(())
    }

    /// The backups the deployment knows about, newest first.
    pub async fn backups(&self) -> Result<Vec<BackupRecord>, StoreError> {
        let rows = self
            .db
            .fetch_all(
                "SELECT path, created_at, created_by, sha256, bytes, users, verified_at, \
                 verified_ok, verify_note FROM backups ORDER BY created_at DESC, path DESC",
                &[],
            )
            .await
            .ctx("listing backups")?;
        rows.iter()
            .map(|row| {
                Ok(BackupRecord {
                    path: row.text("path")?,
                    created_at: row.int("created_at")?,
                    created_by: row.text("created_by")?,
                    sha256: row.text("sha256")?,
                    bytes: row.int("bytes")?,
                    users: row.int("users")?,
                    verified_at: row.opt_int("verified_at")?,
                    verified_ok: row.opt_int("verified_ok")?.map(|v| v != 0),
                    verify_note: row.opt_text("verify_note")?,
                })
            })
            .collect()
    }
}

async fn empty(tx: &mut Tx) -> Result<bool, StoreError> {
    const CONTEXT: &str = "checking the store is empty";
    for table in ["users", "change_records", "topology_versions"] {
        let row = tx
            .fetch_optional(&format!("SELECT 1 AS one FROM {table} LIMIT 1"), &[])
            .await
            .ctx(CONTEXT)?;
        if row.is_some() {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn insert_rows(
    tx: &mut Tx,
    kind: BackendKind,
    spec: &TableSpec,
    rows: &[Vec<Cell>],
) -> Result<(), StoreError> {
    const CONTEXT: &str = "restoring the store";
    let columns: Vec<&str> = spec.columns.iter().map(|(c, _)| *c).collect();
    let width = columns.len();
    for chunk in rows.chunks(INSERT_ROWS) {
        let sql = format!(
            "INSERT INTO {} ({}) VALUES {}",
            spec.name,
            columns.join(", "),
            value_rows(kind, chunk.len(), width)
        );
        let mut args = Vec::with_capacity(chunk.len() * width);
        for row in chunk {
            if row.len() != width {
                return Err(StoreError::corrupt(format!(
                    "backup row of {} has {} values for {width} columns",
                    spec.name,
                    row.len()
                )));
            }
            for ((column, ty), cell) in spec.columns.iter().zip(row) {
                if spec.deferred.contains(column) {
                    args.push(Arg::OptInt(None));
                } else {
                    args.push(arg(cell, *ty, spec.name, column)?);
                }
            }
        }
        tx.execute(&sql, &args).await.ctx(CONTEXT)?;
    }
    // References to rows written after theirs, now that every row is in.
    for column in spec.deferred {
        let Some(at) = spec.columns.iter().position(|(c, _)| c == column) else {
            continue;
        };
        let Some(key) = spec.identity else {
            continue;
        };
        let key_at = spec
            .columns
            .iter()
            .position(|(c, _)| *c == key)
            .unwrap_or(0);
        for row in rows {
            if let (Cell::Int(v), Cell::Int(id)) = (&row[at], &row[key_at]) {
                tx.execute(
                    &format!("UPDATE {} SET {column} = $1 WHERE {key} = $2", spec.name),
                    &[Arg::Int(*v), Arg::Int(*id)],
                )
                .await
                .ctx(CONTEXT)?;
            }
        }
    }
    Ok(())
}

/// What a backup holds of one user that is theirs alone to get back (the Import-CsUserData
/// case): contact groups, contacts and presence rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserData {
    /// Groups: name, position, created at.
    pub groups: Vec<(String, i64, i64)>,
    /// Contacts.
    pub contacts: Vec<BackedUpContact>,
    /// Presence rules: watcher user part (empty for a domain), watcher domain, level,
    /// updated at.
    pub rules: Vec<(String, String, String, i64)>,
}

/// A contact as a backup holds it, its group by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackedUpContact {
    /// The contact's user part.
    pub user: String,
    /// The contact's domain.
    pub domain: String,
    /// The name shown for it.
    pub display_name: Option<String>,
    /// Its group's name, if it is in one.
    pub group: Option<String>,
    /// When it was added.
    pub created_at: i64,
    /// When it last changed.
    pub updated_at: i64,
}

/// `row`'s integer in column `name` of `spec`.
fn cell_int(row: &[Cell], spec: &TableSpec, name: &str) -> Option<i64> {
    spec.cell(row, name).and_then(Cell::as_int)
}

/// `row`'s text in column `name` of `spec`.
fn cell_text(row: &[Cell], spec: &TableSpec, name: &str) -> Option<String> {
    spec.cell(row, name)
        .and_then(Cell::as_text)
        .map(str::to_owned)
}

impl Dump {
    /// What the dump holds of `user` (see [`UserData`]); `None` when it has no such user.
    pub fn user_data(&self, user: &crate::Address) -> Option<UserData> {
        let users = self.table("users")?;
        let uid = users.rows.iter().find_map(|r| {
            let matches = cell_text(r, users.spec, "user_part").as_deref() == Some(user.user())
                && cell_text(r, users.spec, "domain").as_deref() == Some(user.domain());
            matches.then(|| cell_int(r, users.spec, "id")).flatten()
        })?;
        let mut data = UserData::default();
        let mut group_names = std::collections::HashMap::new();
        if let Some(t) = self.table("contact_groups") {
            for r in t
                .rows
                .iter()
                .filter(|r| cell_int(r, t.spec, "user_id") == Some(uid))
            {
                let name = cell_text(r, t.spec, "name").unwrap_or_default();
                if let Some(id) = cell_int(r, t.spec, "id") {
                    group_names.insert(id, name.clone());
                }
                data.groups.push((
                    name,
                    cell_int(r, t.spec, "position").unwrap_or(0),
                    cell_int(r, t.spec, "created_at").unwrap_or(0),
                ));
            }
        }
        if let Some(t) = self.table("contacts") {
            for r in t
                .rows
                .iter()
                .filter(|r| cell_int(r, t.spec, "user_id") == Some(uid))
            {
                data.contacts.push(BackedUpContact {
                    user: cell_text(r, t.spec, "contact_user").unwrap_or_default(),
                    domain: cell_text(r, t.spec, "contact_domain").unwrap_or_default(),
                    display_name: cell_text(r, t.spec, "display_name"),
                    group: cell_int(r, t.spec, "group_id")
                        .and_then(|g| group_names.get(&g).cloned()),
                    created_at: cell_int(r, t.spec, "created_at").unwrap_or(0),
                    updated_at: cell_int(r, t.spec, "updated_at").unwrap_or(0),
                });
            }
        }
        if let Some(t) = self.table("presence_rules") {
            for r in t
                .rows
                .iter()
                .filter(|r| cell_int(r, t.spec, "user_id") == Some(uid))
            {
                data.rules.push((
                    cell_text(r, t.spec, "watcher_user").unwrap_or_default(),
                    cell_text(r, t.spec, "watcher_domain").unwrap_or_default(),
                    cell_text(r, t.spec, "level").unwrap_or_default(),
                    cell_int(r, t.spec, "updated_at").unwrap_or(0),
                ));
            }
        }
        Some(data)
    }
}

impl Store {
    /// Replaces `user`'s contact groups, contacts and presence rules with `data`, in one
    /// transaction; running front-ends hear of it (`contacts.changed`,
    /// `presence_rules.changed`).
    pub async fn replace_user_data(
        &self,
        user: &crate::Address,
        data: &UserData,
    ) -> Result<(), StoreError> {
        const CONTEXT: &str = "restoring a user's contacts and presence rules";
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        feed::lock(&mut tx).await?;
        let uid = crate::users::user_id(&mut tx, user).await?;
        for sql in [
            "DELETE FROM contacts WHERE user_id = $1",
            "DELETE FROM contact_groups WHERE user_id = $1",
            "DELETE FROM presence_rules WHERE user_id = $1",
        ] {
            tx.execute(sql, &[uid.into()]).await.ctx(CONTEXT)?;
        }
        let mut ids = std::collections::HashMap::new();
        for (name, position, created_at) in &data.groups {
            let row = tx
                .fetch_one(
                    "INSERT INTO contact_groups (user_id, name, position, created_at) \
                     VALUES ($1, $2, $3, $4) RETURNING id",
                    &[
                        uid.into(),
                        name.as_str().into(),
                        (*position).into(),
                        (*created_at).into(),
                    ],
                )
                .await
                .ctx(CONTEXT)?;
            ids.insert(name.clone(), row.int("id")?);
        }
        for c in &data.contacts {
            let group_id = c.group.as_ref().and_then(|g| ids.get(g).copied());
            tx.execute(
                "INSERT INTO contacts (user_id, contact_user, contact_domain, display_name, \
                 group_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    uid.into(),
                    c.user.as_str().into(),
                    c.domain.as_str().into(),
                    c.display_name.as_deref().into(),
                    group_id.into(),
                    c.created_at.into(),
                    c.updated_at.into(),
                ],
            )
            .await
            .ctx(CONTEXT)?;
        }
        for (wuser, wdomain, level, updated) in &data.rules {
            tx.execute(
                "INSERT INTO presence_rules (user_id, watcher_user, watcher_domain, level, \
                 updated_at) VALUES ($1, $2, $3, $4, $5)",
                &[
                    uid.into(),
                    wuser.as_str().into(),
                    wdomain.as_str().into(),
                    level.as_str().into(),
                    (*updated).into(),
                ],
            )
            .await
            .ctx(CONTEXT)?;
        }
        let subject = user.to_string();
        let now = unix_now();
        feed::record(&mut tx, ChangeKind::ContactsChanged, &subject, now).await?;
        feed::record(&mut tx, ChangeKind::PresenceRulesChanged, &subject, now).await?;
        tx.commit().await.ctx(CONTEXT)?;
        Ok(())
    }
}
