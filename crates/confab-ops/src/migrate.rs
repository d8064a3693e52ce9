//! Migration from a legacy deployment: importing Kamailio's subscribers as users homed on a
//! legacy pool, with their credentials preserved so that they keep their passwords.
//!
//! Each subscriber becomes the user `username@domain` on the legacy pool the operator names
//! (a pool of kind `legacy` in the published topology: Confab routes its users' requests to
//! Kamailio until they are moved). Its credentials:
//! - with the password kept in clear (Kamailio's `calculate_ha1 yes`), HA1 values under every
//!   algorithm Confab offers, the user's domain as the realm;
//! - with only `ha1` (MD5 of `username:realm:password`), that HA1 as the user's MD5
//!   credential — valid only when Kamailio's realm is the user's domain, which is the realm
//!   Confab challenges with. A deployment whose realm differs (`--realm`) cannot carry such a
//!   user over: reported, not imported (a password reset is the way).
//!
//! Re-running imports what is new, updates the credentials of users still on the legacy pool
//! whose password changed at Kamailio, and leaves the rest: idempotent. A subscriber a move
//! took off the legacy pool (a `user.move` change record says so) is counted as moved and
//! left where it lives now; one whose address is a user homed on another pool for another
//! reason (created in Confab) is reported and left as it is, as is one of a domain the
//! deployment does not serve.

use std::collections::{HashMap, HashSet};

use confab_store::{Address, Credential, LegacySubscriber, NewUser, PoolKind, Store};
use confab_ua::credentials::Algorithm;
use serde::Serialize;

use crate::control::{self, ChangeContext, Done, Right};
use crate::OpsError;

/// Users stored per transaction.
const BATCH: usize = 1000;

/// What the importer is told.
#[derive(Debug, Clone)]
pub struct KamailioImport {
    /// The legacy pool the users are homed on.
    pub pool: String,
    /// Kamailio's realm, when it is not each user's domain (`www_authorize("REALM", …)`).
    pub realm: Option<String>,
    /// Check and report only.
    pub dry_run: bool,
}

/// A subscriber not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// `username@domain` as Kamailio has it.
    pub address: String,
    /// Why, and what to do.
    pub problem: String,
}

/// What an import did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportOutcome {
    /// Subscribers read.
    pub legacy: usize,
    /// Users added.
    pub imported: usize,
    /// Users on the legacy pool whose credentials changed at Kamailio, updated.
    pub updated: usize,
    /// Users imported before and unchanged.
    pub unchanged: usize,
    /// Users imported before and moved to a Confab pool since: left where they are.
    pub moved: usize,
    /// Subscribers left out, each with why.
    pub conflicts: Vec<Conflict>,
    /// Imported with the MD5 HA1 only (no password in clear): they sign in with MD5 digest
    /// until their password is reset.
    pub md5_only: usize,
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The credentials a subscriber keeps in Confab, or why it cannot keep any.
fn credentials(
    s: &LegacySubscriber,
    address: &Address,
    realm: Option<&str>,
) -> Result<Vec<Credential>, String> {
    let domain = address.domain();
    if !s.password.is_empty() {
        // The same HA1 values `confab user add` stores for a password.
        return crate::Password::new(s.password.clone())
            .map(|p| p.credentials(address))
            .map_err(|e| format!("its password cannot be used: {e}"));
    }
    if !is_hex(&s.ha1, 32) {
        return Err(
            "it has neither a password nor an MD5 ha1: nothing to sign in with; give it a \
             password at Kamailio, or add the user to Confab with `confab user add`"
                .to_owned(),
        );
    }
    let realm = realm.unwrap_or(domain);
    if !realm.eq_ignore_ascii_case(domain) {
        return Err(format!(
            "its ha1 is for realm '{realm}', but Confab challenges with the user's domain \
             '{domain}' as the realm: the HA1 would not match. Reset its password in Confab \
             after the import (`confab user passwd`), or import from a database that keeps \
             passwords"
        ));
    }
    Ok(vec![Credential {
        realm: domain.to_owned(),
        algorithm: Algorithm::Md5.as_str().to_owned(),
        ha1: s.ha1.to_ascii_lowercase(),
    }])
}

fn same(a: &[Credential], b: &[Credential]) -> bool {
    let key = |c: &Credential| (c.realm.clone(), c.algorithm.clone(), c.ha1.clone());
    let mut a: Vec<_> = a.iter().map(key).collect();
    let mut b: Vec<_> = b.iter().map(key).collect();
    a.sort();
    b.sort();
    a == b
}

/// Imports Kamailio's `subscribers` as users of the legacy pool (see the module
/// documentation); one standard change for the whole import.
pub async fn import_kamailio(
    store: &Store,
    ctx: &ChangeContext<'_>,
    subscribers: &[LegacySubscriber],
    options: &KamailioImport,
) -> Result<ImportOutcome, OpsError> {
    ctx.require(Right::ManageUsers)?;
    let Some(pool) = store.get_pool(&options.pool).await? else {
        return Err(OpsError::Migration {
            problem: format!(
                "no pool '{}': add the legacy system to the topology as a pool of kind \
                 \"legacy\" with its next hop, and publish it (`confab topology publish`)",
                options.pool
            ),
        });
    };
    if pool.kind != PoolKind::Legacy {
        return Err(OpsError::Migration {
            problem: format!(
                "pool '{}' is a Confab pool: import legacy users onto the legacy system's pool \
                 (kind = \"legacy\" in the topology), from which they are moved",
                options.pool
            ),
        });
    }
    let domains: HashSet<String> = store
        .domains()
        .await?
        .into_iter()
        .map(|d| d.name.to_ascii_lowercase())
        .collect();
    let moved = moved_off(store, &options.pool).await?;
    let mut outcome = ImportOutcome {
        legacy: subscribers.len(),
        ..ImportOutcome::default()
    };
    let mut new = Vec::new();
    let mut seen = HashSet::new();
    let mut updates: Vec<(Address, Vec<Credential>)> = Vec::new();
    for s in subscribers {
        let written = format!("{}@{}", s.username, s.domain);
        let conflict = |problem: String| Conflict {
            address: written.clone(),
            problem,
        };
        let address = match Address::parse(&written) {
            Ok(a) => a,
            Err(e) => {
                outcome
                    .conflicts
                    .push(conflict(format!("not a user address Confab accepts: {e}")));
                continue;
            }
        };
        if !seen.insert(address.to_string()) {
            outcome.conflicts.push(conflict(
                "listed twice (the domain differs only in case): imported once".to_owned(),
            ));
            continue;
        }
        if !domains.contains(address.domain()) {
            outcome.conflicts.push(conflict(format!(
                "the deployment does not serve the domain '{}': add it to the topology first",
                address.domain()
            )));
            continue;
        }
        let creds = match credentials(s, &address, options.realm.as_deref()) {
            Ok(c) => c,
            Err(problem) => {
                outcome.conflicts.push(conflict(problem));
                continue;
            }
        };
        match store.find_user(&address).await? {
            Some(u) if u.pool != options.pool && moved.contains(&address.to_string()) => {
                outcome.moved += 1;
            }
            Some(u) if u.pool != options.pool => {
                outcome.conflicts.push(conflict(format!(
                    "already a user homed on pool '{}': left as it is (a user moved from the \
                     legacy system, or created in Confab)",
                    u.pool
                )));
            }
            Some(_) => {
                let now = store.credentials(&address, address.domain()).await?;
                if same(&now, &creds) {
                    outcome.unchanged += 1;
                } else {
                    updates.push((address, creds));
                }
            }
            None => {
                if s.password.is_empty() {
                    outcome.md5_only += 1;
                }
                new.push((
                    NewUser {
                        address,
                        display_name: None,
                        pool: options.pool.clone(),
                        enabled: true,
                    },
                    creds,
                ));
            }
        }
    }
    outcome.imported = new.len();
    outcome.updated = updates.len();
    if options.dry_run {
        return Ok(outcome);
    }
    for chunk in new.chunks(BATCH) {
        store.add_users_with_credentials(chunk).await?;
    }
    for (address, creds) in &updates {
        store.set_credentials(address, creds).await?;
    }
    let mut by_domain: HashMap<&str, usize> = HashMap::new();
    for (u, _) in &new {
        *by_domain.entry(u.address.domain()).or_default() += 1;
    }
    control::record(
        store,
        ctx,
        Done {
            title: format!(
                "import {} Kamailio subscriber(s) onto legacy pool {}",
                outcome.imported, options.pool
            ),
            reason: "standard change: import users from a legacy system".into(),
            operation: control::json(&serde_json::json!({
                "op": "migrate.import",
                "from": "kamailio",
                "pool": options.pool,
                "realm": options.realm,
            })),
            before: None,
            after: Some(control::json(&serde_json::json!({
                "legacy": outcome.legacy,
                "imported": outcome.imported,
                "updated": outcome.updated,
                "unchanged": outcome.unchanged,
                "moved": outcome.moved,
                "conflicts": outcome.conflicts.len(),
                "by_domain": by_domain,
            }))),
        },
    )
    .await?;
    Ok(outcome)
}

/// The users implemented moves took off pool `pool` (`user@domain`).
async fn moved_off(store: &Store, pool: &str) -> Result<HashSet<String>, OpsError> {
    let mut out = HashSet::new();
    for c in store
        .changes(&confab_store::ChangeFilter::default())
        .await?
    {
        if !matches!(
            c.state,
            confab_store::ChangeState::Implemented | confab_store::ChangeState::Reviewed
        ) {
            continue;
        }
        let Ok(control::Operation::MoveUsers { users, .. }) =
            serde_json::from_str::<control::Operation>(&c.operation)
        else {
            continue;
        };
        out.extend(
            users
                .into_iter()
                .filter(|u| u.from == pool)
                .map(|u| u.address),
        );
    }
    Ok(out)
}

/// The topology document of the deployment with the legacy system added as pool `pool` of
/// kind `legacy`, reached at `next_hop` (`udp://10.0.0.5:5060`): what `confab migrate merge`
/// requests to publish. Checked as any document is; a pool of that name already in the
/// topology is refused.
pub async fn merged_topology(
    store: &Store,
    pool: &str,
    next_hop: &str,
    site: Option<&str>,
) -> Result<String, OpsError> {
    if store.get_pool(pool).await?.is_some() {
        return Err(OpsError::Migration {
            problem: format!(
                "the topology has a pool '{pool}' already: the legacy system is merged (see \
                 `confab topology show`), or name its pool otherwise"
            ),
        });
    }
    let mut document = crate::topology::export(store).await?;
    if !document.ends_with('\n') {
        document.push('\n');
    }
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    document.push_str(&format!(
        "\n# The legacy system, merged by `confab migrate merge`: its users are reached through\n\
         # its next hop until they are moved to a Confab pool.\n\
         [[pool]]\nname = {}\nkind = \"legacy\"\nnext_hop = {}\n",
        quote(pool),
        quote(next_hop)
    ));
    if let Some(site) = site {
        document.push_str(&format!("site = {}\n", quote(site)));
    }
    match crate::topology::validate(Some(store), &document).await? {
        Ok(_) => Ok(document),
        Err(problems) => Err(OpsError::InvalidTopology { problems }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_ua::credentials::ha1;

    fn sub(username: &str, password: &str, ha1: &str) -> LegacySubscriber {
        LegacySubscriber {
            id: 1,
            username: username.into(),
            domain: "example.com".into(),
            password: password.into(),
            ha1: ha1.into(),
            ha1b: String::new(),
        }
    }

    #[test]
    fn credentials_from_a_password_or_an_md5_ha1() {
        let a = Address::parse("alice@example.com").expect("address");
        let with_password = credentials(&sub("alice", "secret", ""), &a, None).expect("ok");
        assert_eq!(with_password.len(), 3);
        let md5 = ha1(Algorithm::Md5, "alice", "example.com", "secret");
        assert!(with_password
            .iter()
            .any(|c| c.algorithm == "MD5" && c.ha1 == md5));
        let only_ha1 = credentials(&sub("alice", "", &md5.to_uppercase()), &a, None).expect("ok");
        assert_eq!(only_ha1.len(), 1);
        assert_eq!(only_ha1[0].ha1, md5, "kept, in lower case");
        let e = credentials(&sub("alice", "", &md5), &a, Some("corp")).expect_err("realm");
        assert!(e.contains("realm 'corp'"), "{e}");
        assert!(credentials(&sub("alice", "", "xyz"), &a, None).is_err());
        // With the password, another realm at Kamailio does not matter.
        assert!(credentials(&sub("alice", "secret", ""), &a, Some("corp")).is_ok());
    }
}
