//! The part of the topology that exists so far: the SIP domains a deployment serves, and the
//! defaults a first start creates (one domain and the pool `default`).
//!
//! Adding a domain by hand is the stopgap until topology documents arrive (`confab topology
//! publish FILE`: validated, versioned, diffed, published as a change record), which will then
//! own domains, sites and pools. Change control hooks in here as in [`crate::users`]: each
//! mutation will take its change record and write the audit log in the same transaction.

use confab_store::{Defaults, Domain, Store, UnixTime};
use serde::Serialize;

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
pub async fn add_domain(store: &Store, name: &str) -> Result<DomainSummary, OpsError> {
    let domain = store.add_domain(name).await?;
    tracing::info!(domain = %domain.name, "SIP domain added");
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
/// once; returns what it created, so that the caller can tell a first start.
pub async fn ensure_defaults(store: &Store, default_domain: &str) -> Result<Defaults, OpsError> {
    Ok(store.ensure_defaults(default_domain).await?)
}
