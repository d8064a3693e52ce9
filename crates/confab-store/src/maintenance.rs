//! Pools in maintenance: a front-end pool taken out of service for a while (an upgrade, a
//! failing server) whose users are served by its paired pool meanwhile — they register, and
//! are reached, there. The state lives apart from the pools a topology publication rewrites,
//! because it is operational, not part of the topology document. Each change is in the change
//! feed (`pool.maintenance`, so running front-ends re-route within a second) and in the audit
//! log, in the same transaction.

use crate::audit;
use crate::error::Context;
use crate::feed::{self, ChangeKind};
use crate::model::unix_now;
use crate::{Store, StoreError};

/// A pool in maintenance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolMaintenance {
    /// The pool.
    pub pool: String,
    /// Why.
    pub reason: String,
    /// Since when, Unix seconds.
    pub since: i64,
    /// Who put it there.
    pub started_by: String,
}

impl Store {
    /// Puts `pool` into maintenance (`on`) or takes it out; returns whether that changed
    /// anything. Refused, with nothing changed, for a pool that does not exist, a legacy
    /// pool, a pool without a pair, or one whose pair is in maintenance itself (nobody would
    /// serve its users).
    pub async fn set_pool_maintenance(
        &self,
        pool: &str,
        on: bool,
        reason: &str,
        by: &str,
    ) -> Result<bool, StoreError> {
        const CONTEXT: &str = "changing a pool's maintenance";
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        feed::lock(&mut tx).await?;
        let changed = if on {
            let row = tx
                .fetch_optional(
                    "SELECT kind, pair FROM pools WHERE name = $1",
                    &[pool.into()],
                )
                .await
                .ctx(CONTEXT)?
                .ok_or_else(|| StoreError::NotFound {
                    what: "pool",
                    name: pool.to_owned(),
                    fix: "list the pools with `confab pool list`",
                })?;
            if row.text("kind")? != "confab" {
                return Err(StoreError::invalid(
                    "pool",
                    pool,
                    "a legacy pool is not Confab's to put into maintenance; only front-end \
                     pools are",
                ));
            }
            let Some(pair) = row.opt_text("pair")? else {
                return Err(StoreError::invalid(
                    "pool",
                    pool,
                    "it has no paired pool to serve its users meanwhile: pair it with another \
                     front-end pool in the topology (pair = \"…\") and publish that first",
                ));
            };
            let pair_down = tx
                .fetch_optional(
                    "SELECT pool FROM pool_maintenance WHERE pool = $1",
                    &[pair.as_str().into()],
                )
                .await
                .ctx(CONTEXT)?
                .is_some();
            if pair_down {
                return Err(StoreError::invalid(
                    "pool",
                    pool,
                    format!(
                        "its paired pool '{pair}' is in maintenance itself and could not serve \
                         its users: take '{pair}' out of maintenance first"
                    ),
                ));
            }
            tx.execute(
                "INSERT INTO pool_maintenance (pool, reason, since, started_by) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[pool.into(), reason.into(), unix_now().into(), by.into()],
            )
            .await
            .ctx(CONTEXT)?
                > 0
        } else {
            tx.execute(
                "DELETE FROM pool_maintenance WHERE pool = $1",
                &[pool.into()],
            )
            .await
            .ctx(CONTEXT)?
                > 0
        };
        if changed {
            feed::record(&mut tx, ChangeKind::PoolMaintenance, pool, unix_now()).await?;
            let action = if on {
                "pool.maintenance.on"
            } else {
                "pool.maintenance.off"
            };
            audit::append(&mut tx, by, action, pool, "{}").await?;
        }
        tx.commit().await.ctx(CONTEXT)?;
        Ok(changed)
    }

    /// The pools in maintenance, by name.
    pub async fn pools_in_maintenance(&self) -> Result<Vec<PoolMaintenance>, StoreError> {
        let rows = self
            .db
            .fetch_all(
                "SELECT pool, reason, since, started_by FROM pool_maintenance ORDER BY pool",
                &[],
            )
            .await
            .ctx("listing pools in maintenance")?;
        rows.iter()
            .map(|row| {
                Ok(PoolMaintenance {
                    pool: row.text("pool")?,
                    reason: row.text("reason")?,
                    since: row.int("since")?,
                    started_by: row.text("started_by")?,
                })
            })
            .collect()
    }
}
