//! Publishing a whole topology: the deployment's domains, sites and pools made to match a
//! validated [`TopologySpec`] in one transaction, the document kept as the next version, and
//! one `topology.published` entry on the change feed. `confab-ops` validates the document
//! first and reports every problem with its place in the file; this module holds the rules
//! the store must keep whatever its caller (names, one pool per server address, no domain or
//! pool removed while users reference it), so that a wrong caller fails and changes nothing.

use std::collections::HashSet;

use crate::db::{Row, Tx};
use crate::error::Context;
use crate::feed::{self, ChangeKind};
use crate::model::{check_domain, check_name, check_token, unix_now};
use crate::topology::{count, read_pools, write_servers};
use crate::{PoolKind, Store, StoreError, TopologySpec, TopologyVersion};

/// Users named in a refusal, per pool or domain: enough to start moving them.
const NAMED_USERS: i64 = 5;

impl Store {
    /// Makes the deployment's domains, sites and pools those of `spec` (adding, updating and
    /// removing), keeps `document` as the next topology version published by `published_by`,
    /// and appends one [`ChangeKind::TopologyPublished`] entry whose subject is the version
    /// number; all in one transaction under the change feed's lock. Refused, changing
    /// nothing, when it would remove a pool or domain that users still reference: the error
    /// names them.
    pub async fn publish_topology(
        &self,
        spec: &TopologySpec,
        document: &str,
        published_by: &str,
        comment: Option<&str>,
    ) -> Result<TopologyVersion, StoreError> {
        const CONTEXT: &str = "publishing the topology";
        let spec = checked(spec)?;
        check_token("publisher", published_by, 255)?;
        let now = unix_now();
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        feed::lock(&mut tx).await?;

        let domains: Vec<String> = tx
            .fetch_all("SELECT name FROM domains", &[])
            .await
            .ctx(CONTEXT)?
            .iter()
            .map(|r| r.text("name"))
            .collect::<Result<_, _>>()?;
        let pools = read_pools(&mut tx).await?;
        let sites: Vec<String> = tx
            .fetch_all("SELECT name FROM sites", &[])
            .await
            .ctx(CONTEXT)?
            .iter()
            .map(|r| r.text("name"))
            .collect::<Result<_, _>>()?;
        let removed_domains: Vec<&String> = domains
            .iter()
            .filter(|d| !spec.domains.contains(d))
            .collect();
        let removed_pools: Vec<&str> = pools
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| !spec.pools.iter().any(|p| p.name == *name))
            .collect();

        let mut refusals = Vec::new();
        for domain in &removed_domains {
            if let Some(users) = referencing(&mut tx, "domain", domain).await? {
                refusals.push(format!(
                    "SIP domain '{domain}' still has {users}; remove them (or change their \
                     addresses) first, or keep the domain"
                ));
            }
        }
        for pool in &removed_pools {
            if let Some(users) = referencing(&mut tx, "pool", pool).await? {
                refusals.push(format!(
                    "pool '{pool}' is the home pool of {users}; move them to another pool \
                     first, or keep the pool"
                ));
            }
        }
        if !refusals.is_empty() {
            return Err(StoreError::Conflict {
                message: format!("the topology was not published: {}", refusals.join("; ")),
            });
        }

        // Servers first, all of them: an address may move from one pool to another.
        tx.execute("DELETE FROM pool_servers", &[])
            .await
            .ctx(CONTEXT)?;
        for pool in &removed_pools {
            tx.execute("DELETE FROM pools WHERE name = $1", &[(*pool).into()])
                .await
                .ctx(CONTEXT)?;
            // A pool that goes is in maintenance no more (a pool of that name added later
            // starts in service).
            tx.execute(
                "DELETE FROM pool_maintenance WHERE pool = $1",
                &[(*pool).into()],
            )
            .await
            .ctx(CONTEXT)?;
        }
        for pool in &spec.pools {
            tx.execute(
                "INSERT INTO pools (name, kind, site, next_hop, pair, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, site = excluded.site, \
                 next_hop = excluded.next_hop, pair = excluded.pair",
                &[
                    pool.name.as_str().into(),
                    pool.kind.as_str().into(),
                    pool.site.as_deref().into(),
                    pool.next_hop.as_deref().into(),
                    pool.pair.as_deref().into(),
                    now.into(),
                ],
            )
            .await
            .ctx(CONTEXT)?;
            write_servers(&mut tx, &pool.name, &pool.servers).await?;
        }
        for domain in &removed_domains {
            tx.execute(
                "DELETE FROM domains WHERE name = $1",
                &[domain.as_str().into()],
            )
            .await
            .ctx(CONTEXT)?;
        }
        for domain in &spec.domains {
            tx.execute(
                "INSERT INTO domains (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[domain.as_str().into(), now.into()],
            )
            .await
            .ctx(CONTEXT)?;
        }
        for site in sites
            .iter()
            .filter(|s| !spec.sites.iter().any(|n| n.name == **s))
        {
            tx.execute("DELETE FROM sites WHERE name = $1", &[site.as_str().into()])
                .await
                .ctx(CONTEXT)?;
        }
        for site in &spec.sites {
            tx.execute(
                "INSERT INTO sites (name, description, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET description = excluded.description",
                &[
                    site.name.as_str().into(),
                    site.description.as_deref().into(),
                    now.into(),
                ],
            )
            .await
            .ctx(CONTEXT)?;
        }

        let version = tx
            .fetch_one(
                "SELECT COALESCE(MAX(version), 0) + 1 AS v FROM topology_versions",
                &[],
            )
            .await
            .ctx(CONTEXT)?
            .int("v")?;
        tx.execute(
            "INSERT INTO topology_versions \
             (version, document, published_at, published_by, comment) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                version.into(),
                document.into(),
                now.into(),
                published_by.into(),
                comment.into(),
            ],
        )
        .await
        .ctx(CONTEXT)?;
        feed::record(
            &mut tx,
            ChangeKind::TopologyPublished,
            &version.to_string(),
            now,
        )
        .await?;
        tx.commit().await.ctx(CONTEXT)?;
        tracing::info!(version, by = published_by, "topology published");
        Ok(TopologyVersion {
            version,
            document: document.to_owned(),
            published_at: now,
            published_by: published_by.to_owned(),
            comment: comment.map(str::to_owned),
        })
    }

    /// The latest published topology version, or `None` before the first publication.
    pub async fn topology_version(&self) -> Result<Option<TopologyVersion>, StoreError> {
        self.db
            .fetch_optional(
                "SELECT version, document, published_at, published_by, comment \
                 FROM topology_versions ORDER BY version DESC LIMIT 1",
                &[],
            )
            .await
            .ctx("reading the topology version")?
            .as_ref()
            .map(version)
            .transpose()
    }
}

impl Store {
    /// Published topology version `n`, if there is one (what a rollback publishes again).
    pub async fn topology_version_number(
        &self,
        n: i64,
    ) -> Result<Option<TopologyVersion>, StoreError> {
        self.db
            .fetch_optional(
                "SELECT version, document, published_at, published_by, comment \
                 FROM topology_versions WHERE version = $1",
                &[n.into()],
            )
            .await
            .ctx("reading a topology version")?
            .as_ref()
            .map(version)
            .transpose()
    }
}

fn version(row: &Row) -> Result<TopologyVersion, StoreError> {
    Ok(TopologyVersion {
        version: row.int("version")?,
        document: row.text("document")?,
        published_at: row.int("published_at")?,
        published_by: row.text("published_by")?,
        comment: row.opt_text("comment")?,
    })
}

/// `3 user(s) (alice@example.com, bob@example.com, …)` homed on the pool or in the domain
/// (`column` is `pool` or `domain`), or `None` when there are none.
async fn referencing(tx: &mut Tx, column: &str, name: &str) -> Result<Option<String>, StoreError> {
    let total = count(
        tx,
        &format!("SELECT COUNT(*) AS n FROM users WHERE {column} = $1"),
        &[name.into()],
    )
    .await?;
    if total == 0 {
        return Ok(None);
    }
    let rows = tx
        .fetch_all(
            &format!(
                "SELECT user_part, domain FROM users WHERE {column} = $1 \
                 ORDER BY domain, user_part LIMIT $2"
            ),
            &[name.into(), NAMED_USERS.into()],
        )
        .await
        .ctx("listing users")?;
    let mut named = Vec::with_capacity(rows.len());
    for row in &rows {
        named.push(format!(
            "{}@{}",
            row.text("user_part")?,
            row.text("domain")?
        ));
    }
    if total > NAMED_USERS {
        named.push("…".to_owned());
    }
    Ok(Some(format!("{total} user(s) ({})", named.join(", "))))
}

/// The spec with domains in lower case, once every rule the store keeps has been checked.
fn checked(spec: &TopologySpec) -> Result<TopologySpec, StoreError> {
    let mut out = spec.clone();
    let mut seen = HashSet::new();
    for domain in &mut out.domains {
        *domain = check_domain(domain.trim())
            .map_err(|fix| StoreError::invalid("SIP domain", domain, fix))?;
        if !seen.insert(domain.clone()) {
            return Err(StoreError::invalid(
                "topology",
                domain,
                "the domain is listed twice: list each domain once",
            ));
        }
    }
    let mut sites = HashSet::new();
    for site in &out.sites {
        check_name("site name", &site.name)?;
        if let Some(d) = &site.description {
            check_token("site description", d, 1024)?;
        }
        if !sites.insert(site.name.as_str()) {
            return Err(StoreError::invalid(
                "topology",
                &site.name,
                "the site is listed twice: list each site once",
            ));
        }
    }
    let mut pools = HashSet::new();
    let mut addresses = HashSet::new();
    for pool in &out.pools {
        check_name("pool name", &pool.name)?;
        if !pools.insert(pool.name.as_str()) {
            return Err(StoreError::invalid(
                "topology",
                &pool.name,
                "the pool is listed twice: list each pool once",
            ));
        }
        if let Some(site) = pool.site.as_deref().filter(|s| !sites.contains(s)) {
            return Err(StoreError::invalid(
                "pool site",
                site,
                format!(
                    "pool '{}' is in a site the topology does not list",
                    pool.name
                ),
            ));
        }
        match pool.kind {
            PoolKind::Legacy if pool.next_hop.is_none() || !pool.servers.is_empty() => {
                return Err(StoreError::invalid(
                    "legacy pool",
                    &pool.name,
                    "a legacy pool is reached through its next hop alone: give next_hop and no servers",
                ))
            }
            _ => {}
        }
        if let Some(hop) = &pool.next_hop {
            check_token("next hop", hop, 255)?;
        }
        for server in &pool.servers {
            check_token("server address", server, 255)?;
            if !addresses.insert(server.as_str()) {
                return Err(StoreError::invalid(
                    "server address",
                    server,
                    "a front-end serves one pool: list each address once",
                ));
            }
        }
    }
    for pool in &out.pools {
        if let Some(pair) = &pool.pair {
            if !pools.contains(pair.as_str()) || *pair == pool.name {
                return Err(StoreError::invalid(
                    "pool pair",
                    pair,
                    format!(
                        "pair pool '{}' with another pool of the topology",
                        pool.name
                    ),
                ));
            }
        }
    }
    Ok(out)
}
