//! The state of a deployment at a glance, read from its management store: users and
//! registrations per pool, changes waiting for approval, implementation or review (and the
//! reviews overdue), pools in maintenance, blocked sources, the last backup and the last
//! verified one, migrations and their phases, and, when asked for, whether the audit log's
//! chain is intact. `confab status`, the admin API's dashboard and `/metrics` all show this
//! one reading, each in its own form; [`Exposition`] writes the Prometheus text format the
//! latter needs.

use std::collections::HashMap;
use std::fmt::Write as _;

use confab_store::{
    AuditVerdict, BackupRecord, BlockedSource, ChangeClass, ChangeFilter, ChangeRecord,
    ChangeState, PoolMaintenance, PoolUsage, Store,
};
use serde::Serialize;

use crate::OpsError;

/// A pool in maintenance and who serves its users meanwhile.
#[derive(Debug, Clone, Serialize)]
pub struct InMaintenance {
    /// The pool.
    pub pool: String,
    /// The pool serving its users (its pair).
    pub served_by: Option<String>,
    /// Since when, Unix seconds.
    pub since: i64,
    /// Who put it there.
    pub by: String,
    /// Why.
    pub reason: String,
}

/// The phase a migration is in.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationPhase {
    /// The legacy pool.
    pub legacy_pool: String,
    /// Its phase.
    pub phase: String,
}

/// One reading of the deployment.
#[derive(Debug, Clone)]
pub struct DeploymentStatus {
    /// When it was read, Unix seconds.
    pub at: i64,
    /// Users and registrations per pool.
    pub pools: Vec<PoolUsage>,
    /// Normal changes requested, not yet decided.
    pub awaiting_approval: Vec<ChangeRecord>,
    /// Changes approved, not yet implemented.
    pub approved: Vec<ChangeRecord>,
    /// Emergency changes implemented, not yet reviewed.
    pub awaiting_review: Vec<ChangeRecord>,
    /// Pools in maintenance.
    pub maintenance: Vec<InMaintenance>,
    /// Source networks blocked at ingress.
    pub blocked: Vec<BlockedSource>,
    /// The newest backup.
    pub last_backup: Option<BackupRecord>,
    /// The newest backup that verified.
    pub last_verified_backup: Option<BackupRecord>,
    /// Migrations and their phases.
    pub migrations: Vec<MigrationPhase>,
    /// The audit log's chain, when it was checked.
    pub audit: Option<AuditVerdict>,
}

/// Reads the deployment; `audit` also walks the audit log's chain (which reads every entry).
pub async fn deployment(store: &Store, audit: bool) -> Result<DeploymentStatus, OpsError> {
    let at = crate::time::now();
    let filter = |state, class| ChangeFilter {
        state: Some(state),
        class,
    };
    let awaiting_approval = store
        .changes(&filter(ChangeState::Requested, Some(ChangeClass::Normal)))
        .await?;
    let approved = store.changes(&filter(ChangeState::Approved, None)).await?;
    let awaiting_review = store
        .changes(&filter(
            ChangeState::Implemented,
            Some(ChangeClass::Emergency),
        ))
        .await?;
    let pairs: HashMap<String, Option<String>> = store
        .pools()
        .await?
        .into_iter()
        .map(|p| (p.name, p.pair))
        .collect();
    let maintenance = store
        .pools_in_maintenance()
        .await?
        .into_iter()
        .map(|m: PoolMaintenance| InMaintenance {
            served_by: pairs.get(&m.pool).cloned().flatten(),
            pool: m.pool,
            since: m.since,
            by: m.started_by,
            reason: m.reason,
        })
        .collect();
    let backups = store.backups().await?;
    let last_verified_backup = backups
        .iter()
        .filter(|b| b.verified_ok == Some(true))
        .max_by_key(|b| b.created_at)
        .cloned();
    let migrations = store
        .migrations()
        .await?
        .into_iter()
        .map(|m| MigrationPhase {
            legacy_pool: m.legacy_pool,
            phase: m.phase,
        })
        .collect();
    Ok(DeploymentStatus {
        at,
        pools: store.pool_usage().await?,
        awaiting_approval,
        approved,
        awaiting_review,
        maintenance,
        blocked: store.blocked_sources().await?,
        last_backup: backups.into_iter().next(),
        last_verified_backup,
        migrations,
        audit: if audit {
            Some(store.verify_audit().await?)
        } else {
            None
        },
    })
}

impl DeploymentStatus {
    /// The emergency changes whose review is overdue.
    pub fn overdue_reviews(&self) -> Vec<&ChangeRecord> {
        self.awaiting_review
            .iter()
            .filter(|c| c.review_due.is_some_and(|due| due < self.at))
            .collect()
    }

    /// No review overdue and, when checked, the audit log intact.
    pub fn healthy(&self) -> bool {
        self.overdue_reviews().is_empty()
            && self.audit.as_ref().is_none_or(|a| a.first_bad.is_none())
    }

    fn age(&self, b: Option<&BackupRecord>) -> Option<u64> {
        b.map(|b| u64::try_from(self.at - b.created_at).unwrap_or(0))
    }

    /// As JSON (`confab status --json`, the admin API).
    pub fn json(&self) -> serde_json::Value {
        let ids = |cs: &[ChangeRecord]| cs.iter().map(|c| c.id).collect::<Vec<_>>();
        serde_json::json!({
            "at": self.at,
            "healthy": self.healthy(),
            "pools": self.pools.iter().map(|u| serde_json::json!({
                "pool": u.pool, "users": u.users, "registrations": u.registrations,
            })).collect::<Vec<_>>(),
            "awaiting_approval": ids(&self.awaiting_approval),
            "approved_not_implemented": ids(&self.approved),
            "emergency_awaiting_review": ids(&self.awaiting_review),
            "overdue_reviews": self.overdue_reviews().iter().map(|c| c.id).collect::<Vec<_>>(),
            "blocked_sources": self.blocked.iter().map(|b| b.cidr.as_str()).collect::<Vec<_>>(),
            "last_backup": self.last_backup.as_ref().map(|b| serde_json::json!({
                "path": b.path, "created_at": b.created_at, "verified": b.verified_ok,
            })),
            "last_verified_backup": self.last_verified_backup.as_ref().map(|b| serde_json::json!({
                "path": b.path, "created_at": b.created_at,
            })),
            "pools_in_maintenance": self.maintenance,
            "migrations": self.migrations,
            "audit_entries": self.audit.as_ref().map(|a| a.entries),
            "audit_intact": self.audit.as_ref().map(|a| a.first_bad.is_none()),
        })
    }

    /// The deployment's metrics in the Prometheus text format.
    pub fn write_metrics(&self, out: &mut Exposition) {
        out.gauge(
            "confab_pool_users",
            "Users homed on each pool.",
            self.pools
                .iter()
                .map(|u| (vec![("pool", u.pool.as_str())], u.users as f64)),
        );
        out.gauge(
            "confab_pool_registrations",
            "Registrations of the users homed on each pool.",
            self.pools
                .iter()
                .map(|u| (vec![("pool", u.pool.as_str())], u.registrations as f64)),
        );
        let one = |v: usize| std::iter::once((Vec::new(), v as f64));
        out.gauge(
            "confab_changes_awaiting_approval",
            "Normal changes requested and not yet approved or rejected.",
            one(self.awaiting_approval.len()),
        );
        out.gauge(
            "confab_changes_approved_not_implemented",
            "Changes approved and not yet implemented.",
            one(self.approved.len()),
        );
        out.gauge(
            "confab_emergency_changes_awaiting_review",
            "Emergency changes implemented and not yet reviewed.",
            one(self.awaiting_review.len()),
        );
        out.gauge(
            "confab_emergency_reviews_overdue",
            "Emergency changes whose review is overdue.",
            one(self.overdue_reviews().len()),
        );
        out.gauge(
            "confab_pools_in_maintenance",
            "Pools in maintenance, served by their pair.",
            one(self.maintenance.len()),
        );
        out.gauge(
            "confab_blocked_sources",
            "Source networks blocked at ingress.",
            one(self.blocked.len()),
        );
        if let Some(age) = self.age(self.last_backup.as_ref()) {
            out.gauge(
                "confab_last_backup_age_seconds",
                "Seconds since the newest backup was taken.",
                std::iter::once((Vec::new(), age as f64)),
            );
        }
        if let Some(age) = self.age(self.last_verified_backup.as_ref()) {
            out.gauge(
                "confab_last_verified_backup_age_seconds",
                "Seconds since the newest backup that verified was taken.",
                std::iter::once((Vec::new(), age as f64)),
            );
        }
        out.gauge(
            "confab_migration_phase",
            "1 for the phase each migration is in.",
            self.migrations.iter().map(|m| {
                (
                    vec![
                        ("legacy_pool", m.legacy_pool.as_str()),
                        ("phase", m.phase.as_str()),
                    ],
                    1.0,
                )
            }),
        );
        if let Some(audit) = &self.audit {
            out.gauge(
                "confab_audit_entries",
                "Entries in the audit log.",
                std::iter::once((Vec::new(), audit.entries as f64)),
            );
            out.gauge(
                "confab_audit_intact",
                "1 when the audit log's hash chain verifies, 0 when it does not.",
                one(usize::from(audit.first_bad.is_none())),
            );
        }
    }
}

/// Metrics in the Prometheus text exposition format (version 0.0.4): families with their
/// `HELP` and `TYPE` lines, label values escaped.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

/// A sample's labels: name and value.
pub type Labels<'a> = Vec<(&'a str, &'a str)>;

impl Exposition {
    /// The media type of the format.
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    /// An empty exposition.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    fn family<'a>(
        &mut self,
        name: &str,
        help: &str,
        kind: &str,
        samples: impl IntoIterator<Item = (Labels<'a>, f64)>,
    ) {
        let _ = writeln!(self.text, "# HELP {name} {}", help.replace('\n', " "));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            self.text.push_str(name);
            if !labels.is_empty() {
                self.text.push('{');
                for (i, (k, v)) in labels.iter().enumerate() {
                    if i > 0 {
                        self.text.push(',');
                    }
                    let v = v
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', "\\n");
                    let _ = write!(self.text, "{k}=\"{v}\"");
                }
                self.text.push('}');
            }
            let _ = writeln!(self.text, " {value}");
        }
    }

    /// A gauge family.
    pub fn gauge<'a>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels<'a>, f64)>,
    ) {
        self.family(name, help, "gauge", samples);
    }

    /// A counter family (`name` ends in `_total`).
    pub fn counter<'a>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels<'a>, f64)>,
    ) {
        self.family(name, help, "counter", samples);
    }

    /// The text.
    pub fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_escaped_labels() {
        let mut e = Exposition::new();
        e.counter(
            "confab_sip_requests_total",
            "SIP requests received.",
            vec![(vec![("method", "INVITE")], 3.0)],
        );
        e.gauge(
            "confab_pool_users",
            "Users.",
            vec![(vec![("pool", "a\"b\\c")], 2.0)],
        );
        e.gauge("confab_up", "Up.", vec![(Vec::new(), 1.0)]);
        let text = e.finish();
        assert_eq!(
            text,
            "# HELP confab_sip_requests_total SIP requests received.\n\
             # TYPE confab_sip_requests_total counter\n\
             confab_sip_requests_total{method=\"INVITE\"} 3\n\
             # HELP confab_pool_users Users.\n\
             # TYPE confab_pool_users gauge\n\
             confab_pool_users{pool=\"a\\\"b\\\\c\"} 2\n\
             # HELP confab_up Up.\n\
             # TYPE confab_up gauge\n\
             confab_up 1\n"
        );
    }
}
