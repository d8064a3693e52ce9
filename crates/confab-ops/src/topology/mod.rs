//! The topology of a deployment: its SIP domains, sites and pools, described by a TOML
//! document that is validated ([`validate`], every problem with its line and column and a
//! fix), diffed against the deployment ([`diff`]), published as the next version (in one
//! store transaction) and exported back ([`export`]); plus what `confab pool` and `confab
//! topology show` print, `confab domain add`, and the defaults of a first start.
//!
//! The document format is in the README (section "Topology") and `docs/topology.example.toml`.
//! Change control hooks in here as in [`crate::users`]: publishing will open its change record
//! (kind, reason, approvals, before/after: the two versions) and write the audit log in the
//! same transaction; today it records who published and the comment with the version.

pub mod diff;
pub mod document;
pub mod export;
pub mod validate;

use crate::control::{self, ChangeContext, Done, Right};
use std::collections::HashMap;

use confab_store::{Defaults, Domain, Store, TopologySpec, UnixTime, UserFilter};
use serde::Serialize;

pub use diff::TopologyDiff;
pub use document::{Pos, Problem, Severity};
pub use validate::{check_document, kind_name, parse_uri, Checked};

use crate::OpsError;

/// A SIP domain as lists show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DomainSummary {
    /// The name, in lower case.
    pub name: String,
    /// When it was added (Unix seconds).
    pub created_at: UnixTime,
}

impl From<Domain> for DomainSummary {
    fn from(domain: Domain) -> Self {
        DomainSummary {
            name: domain.name,
            created_at: domain.created_at,
        }
    }
}

/// Adds a SIP domain for users to be added in.
pub async fn add_domain(
    store: &Store,
    ctx: &ChangeContext<'_>,
    name: &str,
) -> Result<DomainSummary, OpsError> {
    ctx.require(Right::ManageTopology)?;
    let domain = store.add_domain(name).await?;
    tracing::info!(domain = %domain.name, "SIP domain added");
    control::record(
        store,
        ctx,
        Done {
            title: format!("add SIP domain {}", domain.name),
            reason: "add a SIP domain".into(),
            operation: control::json(&serde_json::json!({
                "op": "domain.add",
                "domain": domain.name,
            })),
            before: None,
            after: None,
        },
    )
    .await?;
    Ok(domain.into())
}

/// The deployment's SIP domains, by name.
pub async fn domains(store: &Store) -> Result<Vec<DomainSummary>, OpsError> {
    Ok(store
        .domains()
        .await?
        .into_iter()
        .map(DomainSummary::from)
        .collect())
}

/// What a first start needs: the SIP domain `default_domain` if the deployment has none, and
/// the pool `default` if it has no pool. Safe on every start and from several front-ends at
/// once; returns what it created, so that the caller can tell a first start. The one change
/// made without a change context: the deployment makes it itself, before it has any
/// administrator (see [`crate::control::bootstrap`]).
pub async fn ensure_defaults(store: &Store, default_domain: &str) -> Result<Defaults, OpsError> {
    Ok(store.ensure_defaults(default_domain).await?)
}

/// The deployment's topology as it is, read from the store's tables (not from the last
/// published document: `confab domain add` and first starts change it too).
pub async fn current(store: &Store) -> Result<TopologySpec, OpsError> {
    Ok(TopologySpec {
        domains: store.domains().await?.into_iter().map(|d| d.name).collect(),
        sites: store.sites().await?,
        pools: store.pools().await?,
    })
}

/// Users per pool and per domain, for the checks that need the deployment.
async fn usage(store: &Store) -> Result<(HashMap<String, i64>, HashMap<String, i64>), OpsError> {
    let pools = store
        .pool_usage()
        .await?
        .into_iter()
        .map(|u| (u.pool, u.users))
        .collect();
    let mut domains = HashMap::new();
    for domain in store.domains().await? {
        let filter = UserFilter {
            domain: Some(domain.name.clone()),
            ..UserFilter::default()
        };
        let users = store.list_users(&filter).await?.len();
        domains.insert(domain.name, i64::try_from(users).unwrap_or(i64::MAX));
    }
    Ok((pools, domains))
}

/// Checks a document, against the deployment when `store` is given. `Ok(Err(problems))` is a
/// document that cannot be published (every problem, warnings included, in document order).
pub async fn validate(
    store: Option<&Store>,
    text: &str,
) -> Result<Result<Checked, Vec<Problem>>, OpsError> {
    let checked = match check_document(text) {
        Ok(checked) => checked,
        Err(problems) => return Ok(Err(problems)),
    };
    let Some(store) = store else {
        return Ok(Ok(checked));
    };
    let (pools, domains) = usage(store).await?;
    let mut problems = validate::check_against(&checked, &pools, &domains);
    if problems.is_empty() {
        return Ok(Ok(checked));
    }
    problems.extend(checked.warnings.iter().cloned());
    problems.sort_by_key(|p| p.pos);
    Ok(Err(problems))
}

/// What a publication did.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    /// The new topology version.
    pub version: i64,
    /// Who published it.
    pub published_by: String,
    /// What changed.
    pub changes: TopologyDiff,
    /// The document's warnings.
    pub warnings: Vec<Problem>,
}

/// Validates `text` against the deployment and publishes it as the next version: domains,
/// sites and pools become the document's. Refused with every problem, changing nothing.
pub async fn publish(
    store: &Store,
    ctx: &ChangeContext<'_>,
    text: &str,
    comment: Option<&str>,
) -> Result<Published, OpsError> {
    ctx.require(Right::ManageTopology)?;
    let published_by = ctx.operator().name();
    let checked = validate(Some(store), text)
        .await?
        .map_err(|problems| OpsError::InvalidTopology { problems })?;
    let before = current(store).await?;
    let previous = store.topology_version().await?.map(|v| v.version);
    let version = store
        .publish_topology(&checked.spec, text, published_by, comment)
        .await?;
    tracing::info!(
        version = version.version,
        by = published_by,
        "topology published"
    );
    control::record(
        store,
        ctx,
        Done {
            title: format!("publish topology version {}", version.version),
            reason: comment.unwrap_or("publish a topology document").to_owned(),
            operation: control::json(&serde_json::json!({
                "op": "topology.publish",
                "version": version.version,
            })),
            before: Some(control::json(&serde_json::json!({ "version": previous }))),
            after: Some(control::json(
                &serde_json::json!({ "version": version.version }),
            )),
        },
    )
    .await?;
    Ok(Published {
        version: version.version,
        published_by: version.published_by,
        changes: diff::diff(&before, &checked.spec),
        warnings: checked.warnings,
    })
}

/// What publishing `text` would change, with the document's warnings; refused like
/// [`publish`] when the document has problems.
pub async fn diff_document(
    store: &Store,
    text: &str,
) -> Result<(TopologyDiff, Vec<Problem>), OpsError> {
    let checked = validate(Some(store), text)
        .await?
        .map_err(|problems| OpsError::InvalidTopology { problems })?;
    let now = current(store).await?;
    Ok((diff::diff(&now, &checked.spec), checked.warnings))
}

/// What published version `n` changed from the version before it: `None` for the first
/// version, or when either document no longer reads.
pub async fn version_diff(store: &Store, n: i64) -> Result<Option<TopologyDiff>, OpsError> {
    let Some(prev) = n.checked_sub(1).filter(|p| *p >= 1) else {
        return Ok(None);
    };
    let (Some(before), Some(after)) = (
        store.topology_version_number(prev).await?,
        store.topology_version_number(n).await?,
    ) else {
        return Ok(None);
    };
    Ok(
        match (
            check_document(&before.document),
            check_document(&after.document),
        ) {
            (Ok(a), Ok(b)) => Some(diff::diff(&a.spec, &b.spec)),
            _ => None,
        },
    )
}

/// The deployment as a topology document that `publish` accepts unchanged.
pub async fn export(store: &Store) -> Result<String, OpsError> {
    let spec = current(store).await?;
    let header = match store.topology_version().await? {
        Some(v) => format!(
            "Confab topology, exported from the deployment (last published: version {} by {})",
            v.version, v.published_by
        ),
        None => "Confab topology, exported from the deployment (never published)".to_owned(),
    };
    export::to_document(&spec, &header).map_err(|e| OpsError::Export {
        reason: e.to_string(),
    })
}

/// A pool as `confab pool list|show` and `confab topology show` print it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolSummary {
    /// The name.
    pub name: String,
    /// `front-end` or `legacy`.
    pub kind: &'static str,
    /// Its site.
    pub site: Option<String>,
    /// Its front-ends' SIP addresses.
    pub servers: Vec<String>,
    /// A legacy pool's next hop.
    pub next_hop: Option<String>,
    /// The pool paired with it.
    pub pair: Option<String>,
    /// Users homed on it.
    pub users: i64,
    /// Their registrations.
    pub registrations: i64,
    /// The front-ends that announced themselves as its members (running, or stopped without
    /// leaving), by address.
    pub members: Vec<MemberSummary>,
}

/// A front-end of a pool as its heartbeat shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberSummary {
    /// Its SIP address.
    pub address: String,
    /// True when its last heartbeat is recent (`confab_store::MEMBER_DEAD_AFTER`).
    pub up: bool,
    /// How long ago its last heartbeat was, milliseconds.
    pub heartbeat_age_ms: i64,
    /// When it started serving the pool, Unix milliseconds.
    pub started_at: i64,
}

/// Every pool with its users, registrations and front-ends, by name.
pub async fn pools(store: &Store) -> Result<Vec<PoolSummary>, OpsError> {
    let usage = store.pool_usage().await?;
    let members = store.pool_members().await?;
    Ok(store
        .pools()
        .await?
        .into_iter()
        .map(|p| {
            let used = usage.iter().find(|u| u.pool == p.name);
            PoolSummary {
                kind: kind_name(p.kind),
                users: used.map_or(0, |u| u.users),
                registrations: used.map_or(0, |u| u.registrations),
                members: members
                    .iter()
                    .filter(|m| m.pool == p.name)
                    .map(|m| MemberSummary {
                        address: m.address.clone(),
                        up: m.is_up(),
                        heartbeat_age_ms: m.heartbeat_age_ms,
                        started_at: m.started_at,
                    })
                    .collect(),
                name: p.name,
                site: p.site,
                servers: p.servers,
                next_hop: p.next_hop,
                pair: p.pair,
            }
        })
        .collect())
}

/// One pool.
pub async fn pool(store: &Store, name: &str) -> Result<PoolSummary, OpsError> {
    let all = pools(store).await?;
    let known = all.iter().map(|p| p.name.clone()).collect();
    all.into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| OpsError::UnknownPool {
            pool: name.to_owned(),
            known,
        })
}

/// The last publication, as `confab topology show` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct VersionSummary {
    /// The version number.
    pub version: i64,
    /// When (Unix seconds).
    pub published_at: UnixTime,
    /// By whom.
    pub published_by: String,
    /// Why.
    pub comment: Option<String>,
}

/// A site as `confab topology show` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct SiteSummary {
    /// The name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
}

/// The deployment as it is.
#[derive(Debug, Clone, Serialize)]
pub struct TopologyView {
    /// The last published version, if any.
    pub version: Option<VersionSummary>,
    /// The SIP domains.
    pub domains: Vec<String>,
    /// The sites.
    pub sites: Vec<SiteSummary>,
    /// The pools.
    pub pools: Vec<PoolSummary>,
}

/// The deployment's topology as it is, with users per pool.
pub async fn show(store: &Store) -> Result<TopologyView, OpsError> {
    Ok(TopologyView {
        version: store.topology_version().await?.map(|v| VersionSummary {
            version: v.version,
            published_at: v.published_at,
            published_by: v.published_by,
            comment: v.comment,
        }),
        domains: store.domains().await?.into_iter().map(|d| d.name).collect(),
        sites: store
            .sites()
            .await?
            .into_iter()
            .map(|s| SiteSummary {
                name: s.name,
                description: s.description,
            })
            .collect(),
        pools: pools(store).await?,
    })
}

#[cfg(test)]
mod tests;
