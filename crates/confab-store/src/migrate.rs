//! Versioned schema migrations. Each migration has a version number, a name and one script per
//! backend (`migrations/{sqlite,postgres}/NNNN_name.sql`); the table `schema_migrations`
//! records which ones a store has. Opening a store applies the missing ones in one
//! transaction, under a lock that makes two processes opening the same store at once take
//! turns: `BEGIN IMMEDIATE` on SQLite, a transaction-scoped advisory lock on PostgreSQL. The
//! second process then finds everything applied and changes nothing.
//!
//! A migration, once released, is never edited: a schema change is a new migration. A store
//! whose schema is newer than this build knows is refused, not downgraded.

use crate::db::{Arg, BackendKind, Db};
use crate::error::Context;
use crate::model::unix_now;
use crate::StoreError;

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sqlite: include_str!("../migrations/sqlite/0001_initial.sql"),
        postgres: include_str!("../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "contacts",
        sqlite: include_str!("../migrations/sqlite/0002_contacts.sql"),
        postgres: include_str!("../migrations/postgres/0002_contacts.sql"),
    },
    Migration {
        version: 3,
        name: "presence",
        sqlite: include_str!("../migrations/sqlite/0003_presence.sql"),
        postgres: include_str!("../migrations/postgres/0003_presence.sql"),
    },
    Migration {
        version: 4,
        name: "topology",
        sqlite: include_str!("../migrations/sqlite/0004_topology.sql"),
        postgres: include_str!("../migrations/postgres/0004_topology.sql"),
    },
    Migration {
        version: 5,
        name: "pool_members",
        sqlite: include_str!("../migrations/sqlite/0005_pool_members.sql"),
        postgres: include_str!("../migrations/postgres/0005_pool_members.sql"),
    },
    Migration {
        version: 6,
        name: "change_control",
        sqlite: include_str!("../migrations/sqlite/0006_change_control.sql"),
        postgres: include_str!("../migrations/postgres/0006_change_control.sql"),
    },
    Migration {
        version: 7,
        name: "blocked_sources",
        sqlite: include_str!("../migrations/sqlite/0007_blocked_sources.sql"),
        postgres: include_str!("../migrations/postgres/0007_blocked_sources.sql"),
    },
    Migration {
        version: 8,
        name: "pool_maintenance",
        sqlite: include_str!("../migrations/sqlite/0008_pool_maintenance.sql"),
        postgres: include_str!("../migrations/postgres/0008_pool_maintenance.sql"),
    },
    Migration {
        version: 9,
        name: "backups",
        sqlite: include_str!("../migrations/sqlite/0009_backups.sql"),
        postgres: include_str!("../migrations/postgres/0009_backups.sql"),
    },
    Migration {
        version: 10,
        name: "migrations",
        sqlite: include_str!("../migrations/sqlite/0010_migrations.sql"),
        postgres: include_str!("../migrations/postgres/0010_migrations.sql"),
    },
    Migration {
        version: 11,
        name: "pool_usage_history",
        sqlite: include_str!("../migrations/sqlite/0011_pool_usage_history.sql"),
        postgres: include_str!("../migrations/postgres/0011_pool_usage_history.sql"),
    },
];

/// The schema version this build creates and expects.
pub const SCHEMA_VERSION: i64 = 11;

/// The advisory lock key that serialises migrations on PostgreSQL ("confab" and 1).
const POSTGRES_LOCK_KEY: i64 = 0x0063_6f6e_6661_6201;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)";

/// Brings the schema to [`SCHEMA_VERSION`]; returns the versions it applied (none when the
/// store was up to date).
pub(crate) async fn migrate(db: &Db) -> Result<Vec<i64>, StoreError> {
    const CONTEXT: &str = "migrating the schema";
    let mut tx = db.begin().await.ctx(CONTEXT)?;
    if db.kind() == BackendKind::Postgres {
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[Arg::Int(POSTGRES_LOCK_KEY)],
        )
        .await
        .ctx(CONTEXT)?;
    }
    tx.execute(CREATE_TABLE, &[]).await.ctx(CONTEXT)?;
    let rows = tx
        .fetch_all(
            "SELECT version, name FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .ctx(CONTEXT)?;
    let mut applied = Vec::with_capacity(rows.len());
    for row in rows {
        applied.push((row.int("version")?, row.text("name")?));
    }
    check_applied(&applied)?;

    let mut newly = Vec::new();
    for m in MIGRATIONS {
        if applied.iter().any(|(v, _)| *v == m.version) {
            continue;
        }
        let script = match db.kind() {
            BackendKind::Sqlite => m.sqlite,
            BackendKind::Postgres => m.postgres,
        };
        tx.execute_script(script)
            .await
            .map_err(|e| StoreError::Migration {
                message: format!(
                    "migration {} ({}) failed: {e}; nothing was changed: fix the cause (disk \
                     space, permissions) and start again",
                    m.version, m.name
                ),
            })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            &[m.version.into(), m.name.into(), unix_now().into()],
        )
        .await
        .ctx(CONTEXT)?;
        newly.push(m.version);
    }
    tx.commit().await.ctx(CONTEXT)?;
    if !newly.is_empty() {
        tracing::info!(versions = ?newly, "management store schema migrated");
    }
    Ok(newly)
}

/// Refuses a store that a newer build has migrated, or whose history differs from ours.
fn check_applied(applied: &[(i64, String)]) -> Result<(), StoreError> {
    for (version, name) in applied {
        match MIGRATIONS.iter().find(|m| m.version == *version) {
            Some(m) if m.name == name => {}
            Some(m) => {
                return Err(StoreError::Migration {
                    message: format!(
                        "the store's migration {version} is '{name}' but this build's is '{}'; \
                         the store was made by a different build of confab: use that build, \
                         or restore a backup made by this one",
                        m.name
                    ),
                })
            }
            None => {
                return Err(StoreError::Migration {
                    message: format!(
                        "the store has schema version {version} but this confab knows versions \
                         up to {SCHEMA_VERSION}; a newer confab has upgraded it: upgrade confab \
                         on this machine too"
                    ),
                })
            }
        }
    }
    Ok(())
}

/// The highest schema version a store has.
pub(crate) async fn current_version(db: &Db) -> Result<i64, StoreError> {
    let row = db
        .fetch_optional(
            "SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations",
            &[],
        )
        .await
        .ctx("reading the schema version")?;
    match row {
        Some(row) => row.int("version"),
        None => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_consecutive_and_latest_is_schema_version() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1);
            assert!(!m.sqlite.trim().is_empty() && !m.postgres.trim().is_empty());
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(SCHEMA_VERSION));
    }

    #[test]
    fn newer_or_foreign_history_is_refused() {
        assert!(check_applied(&[(1, "initial".into())]).is_ok());
        assert!(check_applied(&[(1, "initial".into()), (2, "contacts".into())]).is_ok());
        let newer = check_applied(&[(1, "initial".into()), (SCHEMA_VERSION + 1, "x".into())]);
        assert!(
            matches!(newer, Err(StoreError::Migration { message }) if message.contains("upgrade confab"))
        );
        assert!(check_applied(&[(1, "other".into())]).is_err());
    }
}
