//! What publishing a topology would change: domains, sites and pools added or removed, and
//! every field of a site or pool that changes, compared with the deployment as it is.

use confab_store::{Pool, TopologySpec};
use serde::Serialize;

use super::validate::kind_name;

/// The differences between two topologies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TopologyDiff {
    /// Domains the new topology adds.
    pub domains_added: Vec<String>,
    /// Domains it removes.
    pub domains_removed: Vec<String>,
    /// Sites it adds.
    pub sites_added: Vec<String>,
    /// Sites it removes.
    pub sites_removed: Vec<String>,
    /// Pools it adds.
    pub pools_added: Vec<String>,
    /// Pools it removes.
    pub pools_removed: Vec<String>,
    /// Sites and pools kept but changed, field by field.
    pub changed: Vec<FieldChange>,
}

/// One field of a site or pool that changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// `site` or `pool`.
    pub what: &'static str,
    /// Its name.
    pub name: String,
    /// The field, as the document names it.
    pub field: &'static str,
    /// Its value now, as the document would write it (empty when unset).
    pub before: String,
    /// Its value after.
    pub after: String,
}

impl TopologyDiff {
    /// Whether publishing would change nothing.
    pub fn is_empty(&self) -> bool {
        *self == TopologyDiff::default()
    }

    /// One line per difference: `+ pool fe-lyon`, `- domain old.example`,
    /// `~ pool fe-paris: servers [udp://…] -> [udp://…, tcp://…]`.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (sign, what, names) in [
            ("+", "domain", &self.domains_added),
            ("-", "domain", &self.domains_removed),
            ("+", "site", &self.sites_added),
            ("-", "site", &self.sites_removed),
            ("+", "pool", &self.pools_added),
            ("-", "pool", &self.pools_removed),
        ] {
            out.extend(names.iter().map(|n| format!("{sign} {what} {n}")));
        }
        for c in &self.changed {
            out.push(format!(
                "~ {} {}: {} {} -> {}",
                c.what,
                c.name,
                c.field,
                shown(&c.before),
                shown(&c.after)
            ));
        }
        out
    }
}

fn shown(value: &str) -> &str {
    if value.is_empty() {
        "(none)"
    } else {
        value
    }
}

/// What changes from `now` to `next`.
pub fn diff(now: &TopologySpec, next: &TopologySpec) -> TopologyDiff {
    let mut d = TopologyDiff::default();
    let (added, removed) = added_removed(&now.domains, &next.domains);
    d.domains_added = added;
    d.domains_removed = removed;
    let names = |s: &TopologySpec| s.sites.iter().map(|x| x.name.clone()).collect::<Vec<_>>();
    let (added, removed) = added_removed(&names(now), &names(next));
    d.sites_added = added;
    d.sites_removed = removed;
    let names = |s: &TopologySpec| s.pools.iter().map(|x| x.name.clone()).collect::<Vec<_>>();
    let (added, removed) = added_removed(&names(now), &names(next));
    d.pools_added = added;
    d.pools_removed = removed;
    for site in &next.sites {
        if let Some(old) = now.sites.iter().find(|s| s.name == site.name) {
            let (before, after) = (opt(&old.description), opt(&site.description));
            if before != after {
                d.changed.push(FieldChange {
                    what: "site",
                    name: site.name.clone(),
                    field: "description",
                    before,
                    after,
                });
            }
        }
    }
    for pool in &next.pools {
        if let Some(old) = now.pools.iter().find(|p| p.name == pool.name) {
            for (field, before, after) in fields(old)
                .into_iter()
                .zip(fields(pool))
                .map(|((field, before), (_, after))| (field, before, after))
            {
                if before != after {
                    d.changed.push(FieldChange {
                        what: "pool",
                        name: pool.name.clone(),
                        field,
                        before,
                        after,
                    });
                }
            }
        }
    }
    d
}

fn fields(p: &Pool) -> [(&'static str, String); 5] {
    let servers = if p.servers.is_empty() {
        String::new()
    } else {
        format!("[{}]", p.servers.join(", "))
    };
    [
        ("kind", kind_name(p.kind).to_owned()),
        ("site", opt(&p.site)),
        ("servers", servers),
        ("next_hop", opt(&p.next_hop)),
        ("pair", opt(&p.pair)),
    ]
}

fn opt(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}

fn added_removed(now: &[String], next: &[String]) -> (Vec<String>, Vec<String>) {
    let mut added: Vec<String> = next.iter().filter(|n| !now.contains(n)).cloned().collect();
    let mut removed: Vec<String> = now.iter().filter(|n| !next.contains(n)).cloned().collect();
    added.sort();
    removed.sort();
    (added, removed)
}
