//! The record of migrations from legacy systems (`migrations`, schema version 10): one row per
//! legacy pool, holding the plan and the phase record as JSON documents that `confab-ops`
//! (`migration`) reads and writes whole. What the documents mean is the ops layer's business;
//! this module stores them, and makes two writers that read the same revision conflict
//! instead of one silently overwriting the other. Every write is in the audit log, in the
//! same transaction.

use crate::audit;
use crate::error::Context;
use crate::model::unix_now;
use crate::{Store, StoreError};

/// A migration as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationRow {
    /// The legacy pool the migration empties.
    pub legacy_pool: String,
    /// The legacy system (`kamailio`).
    pub system: String,
    /// The plan, JSON.
    pub plan: String,
    /// The phase it is in.
    pub phase: String,
    /// What was done in each phase, JSON.
    pub record: String,
    /// Bumped by every write.
    pub revision: i64,
    /// When it was planned, Unix seconds.
    pub created_at: i64,
    /// When it was last written, Unix seconds.
    pub updated_at: i64,
}

const COLUMNS: &str = "legacy_pool, system, plan, phase, record, revision, created_at, updated_at";

fn from_row(row: &crate::db::Row) -> Result<MigrationRow, StoreError> {
    Ok(MigrationRow {
        legacy_pool: row.text("legacy_pool")?,
        system: row.text("system")?,
        plan: row.text("plan")?,
        phase: row.text("phase")?,
        record: row.text("record")?,
        revision: row.int("revision")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

impl Store {
    /// Every migration, by legacy pool.
    pub async fn migrations(&self) -> Result<Vec<MigrationRow>, StoreError> {
        self.db
            .fetch_all(
                &format!("SELECT {COLUMNS} FROM migrations ORDER BY legacy_pool"),
                &[],
            )
            .await
            .ctx("reading the migrations")?
            .iter()
            .map(from_row)
            .collect()
    }

    /// The migration of legacy pool `legacy_pool`.
    pub async fn migration(&self, legacy_pool: &str) -> Result<Option<MigrationRow>, StoreError> {
        self.db
            .fetch_optional(
                &format!("SELECT {COLUMNS} FROM migrations WHERE legacy_pool = $1"),
                &[legacy_pool.into()],
            )
            .await
            .ctx("reading a migration")?
            .as_ref()
            .map(from_row)
            .transpose()
    }

    /// Stores a new migration (revision 1). Refused when the legacy pool has one already.
    pub async fn add_migration(
        &self,
        legacy_pool: &str,
        system: &str,
        plan: &str,
        phase: &str,
        record: &str,
        by: &str,
    ) -> Result<MigrationRow, StoreError> {
        const CONTEXT: &str = "recording a migration";
        let now = unix_now();
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        let exists = tx
            .fetch_optional(
                "SELECT legacy_pool FROM migrations WHERE legacy_pool = $1",
                &[legacy_pool.into()],
            )
            .await
            .ctx(CONTEXT)?;
        if exists.is_some() {
            return Err(StoreError::AlreadyExists {
                what: "migration of legacy pool",
                name: legacy_pool.to_owned(),
                fix: "see it with `confab migrate status`; a legacy pool is migrated once",
            });
        }
        tx.execute(
            &format!("INSERT INTO migrations ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, 1, $6, $6)"),
            &[
                legacy_pool.into(),
                system.into(),
                plan.into(),
                phase.into(),
                record.into(),
                now.into(),
            ],
        )
        .await
        .ctx(CONTEXT)?;
        audit::append(&mut tx, by, "migration.plan", legacy_pool, plan).await?;
        tx.commit().await.ctx(CONTEXT)?;
        Ok(MigrationRow {
            legacy_pool: legacy_pool.to_owned(),
            system: system.to_owned(),
            plan: plan.to_owned(),
            phase: phase.to_owned(),
            record: record.to_owned(),
            revision: 1,
            created_at: now,
            updated_at: now,
        })
    }

    /// Writes a migration's phase and record, if nobody wrote it since `row.revision` was
    /// read; returns it with its new revision. `action` names what happened, for the audit
    /// log (`migration.advance`, `migration.rollback` …), `detail` says what.
    pub async fn update_migration(
        &self,
        row: &MigrationRow,
        by: &str,
        action: &str,
        detail: &str,
    ) -> Result<MigrationRow, StoreError> {
        const CONTEXT: &str = "writing a migration";
        let now = unix_now();
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        let done = tx
            .execute(
                "UPDATE migrations SET phase = $1, record = $2, revision = revision + 1, \
                 updated_at = $3 WHERE legacy_pool = $4 AND revision = $5",
                &[
                    row.phase.as_str().into(),
                    row.record.as_str().into(),
                    now.into(),
                    row.legacy_pool.as_str().into(),
                    row.revision.into(),
                ],
            )
            .await
            .ctx(CONTEXT)?;
        if done == 0 {
            return Err(StoreError::Conflict {
                message: format!(
                    "the migration of legacy pool '{}' was changed by someone else while this \
                     command ran; see `confab migrate status` and run the command again",
                    row.legacy_pool
                ),
            });
        }
        audit::append(&mut tx, by, action, &row.legacy_pool, detail).await?;
        tx.commit().await.ctx(CONTEXT)?;
        Ok(MigrationRow {
            revision: row.revision + 1,
            updated_at: now,
            ..row.clone()
        })
    }
}
