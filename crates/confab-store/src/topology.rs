//! The topology as the store keeps it: the SIP domains a deployment serves, its sites, its
//! pools with their servers and pairs, how many users each pool serves, and the defaults a
//! first start creates (one domain, the pool `default`). A whole topology is published in
//! `topology_publish`; the single-record operations here remain for `confab domain add` and
//! first starts. A domain or pool that users still reference cannot be removed: the error
//! names how many users to move or remove first.

use crate::db::{Arg, Row, Tx};
use crate::error::Context;
use crate::feed::{self, ChangeKind};
use crate::model::{check_domain, check_name, check_token, unix_now};
use crate::{Defaults, Domain, Pool, PoolKind, PoolUsage, Site, Store, StoreError, DEFAULT_POOL};

fn domain(row: &Row) -> Result<Domain, StoreError> {
    Ok(Domain {
        name: row.text("name")?,
        created_at: row.int("created_at")?,
    })
}

fn pool(row: &Row) -> Result<Pool, StoreError> {
    let kind = row.text("kind")?;
    Ok(Pool {
        name: row.text("name")?,
        kind: kind
            .parse()
            .map_err(|_| StoreError::corrupt(format!("pool kind '{kind}'")))?,
        site: row.opt_text("site")?,
        next_hop: row.opt_text("next_hop")?,
        servers: Vec::new(),
        pair: row.opt_text("pair")?,
    })
}

const POOL_COLUMNS: &str = "name, kind, site, next_hop, pair";

/// Every pool with its servers, by name; read in the caller's transaction or on the pool.
pub(crate) async fn read_pools(tx: &mut Tx) -> Result<Vec<Pool>, StoreError> {
    const CONTEXT: &str = "listing pools";
    let sql = format!("SELECT {POOL_COLUMNS} FROM pools ORDER BY name");
    let rows = tx.fetch_all(&sql, &[]).await.ctx(CONTEXT)?;
    let mut pools = rows.iter().map(pool).collect::<Result<Vec<_>, _>>()?;
    let servers = tx
        .fetch_all(
            "SELECT pool, address FROM pool_servers ORDER BY pool, position",
            &[],
        )
        .await
        .ctx(CONTEXT)?;
    for row in &servers {
        let name = row.text("pool")?;
        if let Some(p) = pools.iter_mut().find(|p| p.name == name) {
            p.servers.push(row.text("address")?);
        }
    }
    Ok(pools)
}

/// Replaces the servers of `pool` with `servers`, in order.
pub(crate) async fn write_servers(
    tx: &mut Tx,
    pool: &str,
    servers: &[String],
) -> Result<(), StoreError> {
    const CONTEXT: &str = "writing a pool's servers";
    tx.execute("DELETE FROM pool_servers WHERE pool = $1", &[pool.into()])
        .await
        .ctx(CONTEXT)?;
    for (position, address) in (0_i64..).zip(servers) {
        let added = tx
            .execute(
                "INSERT INTO pool_servers (pool, position, address) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
                &[pool.into(), position.into(), address.as_str().into()],
            )
            .await
            .ctx(CONTEXT)?;
        if added == 0 {
            return Err(StoreError::Conflict {
                message: format!(
                    "server address {address} of pool '{pool}' belongs to another pool (or is \
                     listed twice); a front-end serves one pool: give each pool its own addresses"
                ),
            });
        }
    }
    Ok(())
}

fn domain_name(name: &str) -> Result<String, StoreError> {
    check_domain(name.trim()).map_err(|fix| StoreError::invalid("SIP domain", name, fix))
}

impl Store {
    /// The SIP domains, by name.
    pub async fn domains(&self) -> Result<Vec<Domain>, StoreError> {
        let rows = self
            .db
            .fetch_all("SELECT name, created_at FROM domains ORDER BY name", &[])
            .await
            .ctx("listing SIP domains")?;
        rows.iter().map(domain).collect()
    }

    /// Adds a SIP domain (kept in lower case).
    pub async fn add_domain(&self, name: &str) -> Result<Domain, StoreError> {
        const CONTEXT: &str = "adding a SIP domain";
        let name = domain_name(name)?;
        let now = unix_now();
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        feed::lock(&mut tx).await?;
        if !insert_domain(&mut tx, &name, now).await? {
            return Err(StoreError::AlreadyExists {
                what: "SIP domain",
                name,
                fix: "a domain is added once; list the domains to see them",
            });
        }
        tx.commit().await.ctx(CONTEXT)?;
        Ok(Domain {
            name,
            created_at: now,
        })
    }

    /// Removes a SIP domain that no user belongs to.
    pub async fn remove_domain(&self, name: &str) -> Result<(), StoreError> {
        const CONTEXT: &str = "removing a SIP domain";
        let name = domain_name(name)?;
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        feed::lock(&mut tx).await?;
        let users = count(
            &mut tx,
            "SELECT COUNT(*) AS n FROM users WHERE domain = $1",
            &[name.as_str().into()],
        )
        .await?;
        if users > 0 {
            return Err(StoreError::Conflict {
                message: format!(
                    "SIP domain '{name}' still has {users} user(s); remove them (or change their \
                     addresses) before removing the domain"
                ),
            });
        }
        let gone = tx
            .execute(
                "DELETE FROM domains WHERE name = $1",
                &[name.as_str().into()],
            )
            .await
            .ctx(CONTEXT)?;
        if gone == 0 {
            return Err(StoreError::NotFound {
                what: "SIP domain",
                name,
                fix: "list the domains to see which exist",
            });
        }
        feed::record(&mut tx, ChangeKind::DomainRemoved, &name, unix_now()).await?;
        tx.commit().await.ctx(CONTEXT)
    }

    /// The pools, by name, each with its servers in order.
    pub async fn pools(&self) -> Result<Vec<Pool>, StoreError> {
        // A transaction only for one consistent read of pools and servers.
        let mut tx = self.db.begin_read().await.ctx("listing pools")?;
        let pools = read_pools(&mut tx).await?;
        tx.commit().await.ctx("listing pools")?;
        Ok(pools)
    }

    /// One pool with its servers, if it exists.
    pub async fn get_pool(&self, name: &str) -> Result<Option<Pool>, StoreError> {
        Ok(self.pools().await?.into_iter().find(|p| p.name == name))
    }

    /// The sites, by name.
    pub async fn sites(&self) -> Result<Vec<Site>, StoreError> {
        let rows = self
            .db
            .fetch_all("SELECT name, description FROM sites ORDER BY name", &[])
            .await
            .ctx("listing sites")?;
        rows.iter()
            .map(|row| {
                Ok(Site {
                    name: row.text("name")?,
                    description: row.opt_text("description")?,
                })
            })
            .collect()
    }

    /// Users homed on each pool and their registrations, by pool name (every pool, 0 for an
    /// empty one).
    pub async fn pool_usage(&self) -> Result<Vec<PoolUsage>, StoreError> {
        const CONTEXT: &str = "counting users per pool";
        let rows = self
            .db
            .fetch_all(
                "SELECT p.name AS pool, \
                   (SELECT COUNT(*) FROM users u WHERE u.pool = p.name) AS users, \
                   (SELECT COUNT(*) FROM registrations r JOIN users u ON u.id = r.user_id \
                     WHERE u.pool = p.name) AS registrations \
                 FROM pools p ORDER BY p.name",
                &[],
            )
            .await
            .ctx(CONTEXT)?;
        rows.iter()
            .map(|row| {
                Ok(PoolUsage {
                    pool: row.text("pool")?,
                    users: row.int("users")?,
                    registrations: row.int("registrations")?,
                })
            })
            .collect()
    }

    /// Adds a pool. A legacy pool needs its next hop.
    pub async fn add_pool(&self, new: &Pool) -> Result<(), StoreError> {
        const CONTEXT: &str = "adding a pool";
        check_name("pool name", &new.name)?;
        if let Some(site) = &new.site {
            check_name("site name", site)?;
        }
        if let Some(hop) = &new.next_hop {
            check_token("next hop", hop, 255)?;
        }
        for server in &new.servers {
            check_token("server address", server, 255)?;
        }
        if new.kind == PoolKind::Legacy && new.next_hop.is_none() {
            return Err(StoreError::invalid(
                "legacy pool",
                &new.name,
                "a legacy pool is reached through its SIP next hop: give one, e.g. \
                 sip:kamailio.example.com:5060",
            ));
        }
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        feed::lock(&mut tx).await?;
        if !insert_pool(&mut tx, new, unix_now()).await? {
            return Err(StoreError::AlreadyExists {
                what: "pool",
                name: new.name.clone(),
                fix: "choose another name, or list the pools to see the existing one",
            });
        }
        tx.commit().await.ctx(CONTEXT)
    }

    /// Removes a pool no user is homed on.
    pub async fn remove_pool(&self, name: &str) -> Result<(), StoreError> {
        const CONTEXT: &str = "removing a pool";
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        feed::lock(&mut tx).await?;
        let users = count(
            &mut tx,
            "SELECT COUNT(*) AS n FROM users WHERE pool = $1",
            &[name.into()],
        )
        .await?;
        if users > 0 {
            return Err(StoreError::Conflict {
                message: format!(
                    "pool '{name}' is the home pool of {users} user(s); move them to another \
                     pool before removing it"
                ),
            });
        }
        let gone = tx
            .execute("DELETE FROM pools WHERE name = $1", &[name.into()])
            .await
            .ctx(CONTEXT)?;
        if gone == 0 {
            return Err(StoreError::NotFound {
                what: "pool",
                name: name.to_owned(),
                fix: "list the pools to see which exist",
            });
        }
        feed::record(&mut tx, ChangeKind::PoolRemoved, name, unix_now()).await?;
        tx.commit().await.ctx(CONTEXT)
    }

    /// What a first start needs: the SIP domain `default_domain` if the store has no domain
    /// yet, and the pool [`DEFAULT_POOL`] if it has no pool. Safe to call on every start and
    /// from several processes at once; returns what it created.
    pub async fn ensure_defaults(&self, default_domain: &str) -> Result<Defaults, StoreError> {
        const CONTEXT: &str = "creating the default domain and pool";
        let name = domain_name(default_domain)?;
        let now = unix_now();
        let mut tx = self.db.begin().await.ctx(CONTEXT)?;
        feed::lock(&mut tx).await?;
        let mut created = Defaults::default();
        if count(&mut tx, "SELECT COUNT(*) AS n FROM domains", &[]).await? == 0
            && insert_domain(&mut tx, &name, now).await?
        {
            created.domain = Some(name);
        }
        let default_pool = Pool {
            name: DEFAULT_POOL.to_owned(),
            kind: PoolKind::Confab,
            site: None,
            next_hop: None,
            servers: Vec::new(),
            pair: None,
        };
        if count(&mut tx, "SELECT COUNT(*) AS n FROM pools", &[]).await? == 0
            && insert_pool(&mut tx, &default_pool, now).await?
        {
            created.pool = Some(default_pool.name);
        }
        if created.created_any() {
            tx.commit().await.ctx(CONTEXT)?;
            tracing::info!(domain = ?created.domain, pool = ?created.pool, "created defaults");
        }
        Ok(created)
    }
}

/// The `n` of a `SELECT COUNT(*) AS n …`.
pub(crate) async fn count(tx: &mut Tx, sql: &str, args: &[Arg<'_>]) -> Result<i64, StoreError> {
    tx.fetch_one(sql, args)
        .await
        .ctx("counting records")?
        .int("n")
}

pub(crate) async fn insert_domain(tx: &mut Tx, name: &str, now: i64) -> Result<bool, StoreError> {
    let added = tx
        .execute(
            "INSERT INTO domains (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[name.into(), now.into()],
        )
        .await
        .ctx("adding a SIP domain")?;
    if added == 1 {
        feed::record(tx, ChangeKind::DomainAdded, name, now).await?;
    }
    Ok(added == 1)
}

async fn insert_pool(tx: &mut Tx, new: &Pool, now: i64) -> Result<bool, StoreError> {
    let added = tx
        .execute(
            "INSERT INTO pools (name, kind, site, next_hop, pair, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            &[
                new.name.as_str().into(),
                new.kind.as_str().into(),
                new.site.as_deref().into(),
                new.next_hop.as_deref().into(),
                new.pair.as_deref().into(),
                now.into(),
            ],
        )
        .await
        .ctx("adding a pool")?;
    if added == 1 {
        if let Some(site) = &new.site {
            tx.execute(
                "INSERT INTO sites (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[site.as_str().into(), now.into()],
            )
            .await
            .ctx("adding a pool")?;
        }
        write_servers(tx, &new.name, &new.servers).await?;
        feed::record(tx, ChangeKind::PoolAdded, &new.name, now).await?;
    }
    Ok(added == 1)
}
