//! What a topology document means, checked: every problem found, not just the first, each at
//! its place with a fix. [`check_document`] needs the document alone; [`check_against`] adds
//! what needs the deployment (users homed on a pool or in a domain the document drops).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use confab_store::{check_domain, is_pool_name, Pool, PoolKind, Site, TopologySpec};

use super::document::{parse, At, Pos, Problem, RawDocument, RawPool};

/// A document that passed [`check_document`]: the topology it describes, its warnings, and the
/// places later checks point at.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The topology, with domains in lower case and addresses in their canonical form.
    pub spec: TopologySpec,
    /// Problems that do not stop publishing.
    pub warnings: Vec<Problem>,
    domains_pos: Pos,
}

/// The schemes of a server or next-hop URI.
const SCHEMES: [&str; 4] = ["udp", "tcp", "tls", "ws"];

const URI_FIX: &str =
    "write scheme://IP:PORT with scheme udp, tcp, tls or ws, an IP address (IPv6 in brackets) \
     and a port from 1 to 65535, e.g. udp://192.0.2.10:5060 or tcp://[2001:db8::1]:5060";

/// The canonical form of a server or next-hop URI (`udp://192.0.2.1:5060`), or the fix.
pub fn parse_uri(text: &str) -> Result<String, &'static str> {
    let (scheme, rest) = text.split_once("://").ok_or(URI_FIX)?;
    let scheme = scheme.to_ascii_lowercase();
    if !SCHEMES.contains(&scheme.as_str()) {
        return Err(URI_FIX);
    }
    let addr: SocketAddr = rest.parse().map_err(|_| URI_FIX)?;
    if addr.port() == 0 {
        return Err(URI_FIX);
    }
    Ok(format!("{scheme}://{addr}"))
}

/// `front-end` or `legacy`, as a document writes a pool's kind.
pub fn kind_name(kind: PoolKind) -> &'static str {
    match kind {
        PoolKind::Confab => "front-end",
        PoolKind::Legacy => "legacy",
    }
}

/// Checks a document on its own. `Err` holds every problem, warnings included, in the order
/// of the document; `Ok` a topology that may be published (warnings aside).
pub fn check_document(text: &str) -> Result<Checked, Vec<Problem>> {
    let (raw, mut problems) = parse(text);
    if let Some(raw) = raw {
        let spec = meaning(&raw, &mut problems);
        if problems
            .iter()
            .all(|p| p.severity == super::Severity::Warning)
        {
            problems.sort_by_key(|p| p.pos);
            return Ok(Checked {
                spec,
                warnings: problems,
                domains_pos: raw.domains.as_ref().map_or(Pos::START, |d| d.pos),
            });
        }
    }
    problems.sort_by_key(|p| p.pos);
    Err(problems)
}

/// What needs the deployment: a pool dropped by the document that users are still homed on,
/// a domain dropped that users are still in. `homed` counts users per pool, `in_domain` per
/// domain, of the deployment as it is.
pub fn check_against(
    checked: &Checked,
    homed: &HashMap<String, i64>,
    in_domain: &HashMap<String, i64>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut pools: Vec<_> = homed
        .iter()
        .filter(|(name, n)| **n > 0 && !checked.spec.pools.iter().any(|p| &p.name == *name))
        .collect();
    pools.sort();
    for (pool, users) in pools {
        problems.push(Problem::error(
            Pos::START,
            format!(
                "the document removes pool '{pool}', the home pool of {users} user(s) \
                 (`confab user list --pool {pool}`)"
            ),
            "move them to another pool first, or keep the pool in the document",
        ));
    }
    let mut domains: Vec<_> = in_domain
        .iter()
        .filter(|(name, n)| **n > 0 && !checked.spec.domains.contains(name))
        .collect();
    domains.sort();
    for (domain, users) in domains {
        problems.push(Problem::error(
            checked.domains_pos,
            format!(
                "the document removes SIP domain '{domain}', which still has {users} user(s) \
                 (`confab user list --domain {domain}`)"
            ),
            "remove those users first, or keep the domain in domains",
        ));
    }
    problems
}

fn meaning(raw: &RawDocument, problems: &mut Vec<Problem>) -> TopologySpec {
    let mut spec = TopologySpec::default();
    domains(raw, &mut spec, problems);
    let mut sites = HashSet::new();
    for site in &raw.sites {
        let Some(name) = required(&site.name, site.pos, "site", "name", problems) else {
            continue;
        };
        if !is_pool_name(&name.value) {
            problems.push(bad_name(name, "site"));
        } else if !sites.insert(name.value.clone()) {
            problems.push(Problem::error(
                name.pos,
                format!("site '{}' is listed twice", name.value),
                "list each site once, or give this one another name",
            ));
        } else {
            spec.sites.push(Site {
                name: name.value.clone(),
                description: site.description.as_ref().map(|d| d.value.clone()),
            });
        }
    }
    let mut names = HashSet::new();
    let mut addresses: HashMap<String, (String, Pos)> = HashMap::new();
    for pool in &raw.pools {
        if let Some(p) = one_pool(pool, &sites, &mut names, &mut addresses, problems) {
            spec.pools.push(p);
        }
    }
    pairs(raw, &spec, problems);
    spec.pools.sort_by(|a, b| a.name.cmp(&b.name));
    spec.sites.sort_by(|a, b| a.name.cmp(&b.name));
    spec
}

fn domains(raw: &RawDocument, spec: &mut TopologySpec, problems: &mut Vec<Problem>) {
    let Some(list) = &raw.domains else {
        problems.push(Problem::error(
            Pos::START,
            "the document lists no SIP domains",
            "add domains = [\"example.com\"] at the top, with every domain users are in",
        ));
        return;
    };
    if list.value.is_empty() {
        problems.push(Problem::error(
            list.pos,
            "domains is empty",
            "list every SIP domain users are in, e.g. domains = [\"example.com\"]",
        ));
    }
    for domain in &list.value {
        match check_domain(domain.value.trim()) {
            Err(fix) => problems.push(Problem::error(
                domain.pos,
                format!("'{}' is not a SIP domain", domain.value),
                fix,
            )),
            Ok(name) if spec.domains.contains(&name) => problems.push(Problem::error(
                domain.pos,
                format!("domain '{name}' is listed twice"),
                "list each domain once (domains match in any case)",
            )),
            Ok(name) => spec.domains.push(name),
        }
    }
}

fn one_pool(
    pool: &RawPool,
    sites: &HashSet<String>,
    names: &mut HashSet<String>,
    addresses: &mut HashMap<String, (String, Pos)>,
    problems: &mut Vec<Problem>,
) -> Option<Pool> {
    let before = problems.len();
    let name = required(&pool.name, pool.pos, "pool", "name", problems);
    let shown = name.map_or("(unnamed)", |n| n.value.as_str()).to_owned();
    if let Some(name) = name {
        if !is_pool_name(&name.value) {
            problems.push(bad_name(name, "pool"));
        } else if !names.insert(name.value.clone()) {
            problems.push(Problem::error(
                name.pos,
                format!("pool '{}' is listed twice", name.value),
                "list each pool once, or give this one another name",
            ));
        }
    }
    let kind = match required(&pool.kind, pool.pos, "pool", "kind", problems) {
        Some(k) if k.value == "front-end" => Some(PoolKind::Confab),
        Some(k) if k.value == "legacy" => Some(PoolKind::Legacy),
        Some(k) => {
            problems.push(Problem::error(
                k.pos,
                format!("unknown pool kind '{}'", k.value),
                "kind is \"front-end\" (Confab front-ends) or \"legacy\" (another SIP system)",
            ));
            None
        }
        None => None,
    };
    if let Some(site) = &pool.site {
        if !sites.contains(&site.value) {
            problems.push(Problem::error(
                site.pos,
                format!(
                    "pool '{shown}' is in site '{}', which the document does not list",
                    site.value
                ),
                format!(
                    "add a [[site]] with name = \"{}\", or name one of the listed sites",
                    site.value
                ),
            ));
        }
    }
    let mut servers = Vec::new();
    if let Some(list) = &pool.servers {
        for server in &list.value {
            match parse_uri(&server.value) {
                Err(fix) => problems.push(Problem::error(
                    server.pos,
                    format!("'{}' is not a server address", server.value),
                    fix,
                )),
                Ok(uri) => match addresses.get(&uri) {
                    Some((owner, at)) => problems.push(Problem::error(
                        server.pos,
                        if *owner == shown {
                            format!("server {uri} is listed twice in pool '{shown}' (also at {at})")
                        } else {
                            format!("server {uri} is a server of pool '{owner}' too (at {at})")
                        },
                        "a front-end serves one pool: list each address once",
                    )),
                    None => {
                        addresses.insert(uri.clone(), (shown.clone(), server.pos));
                        servers.push(uri);
                    }
                },
            }
        }
    }
    let next_hop = pool
        .next_hop
        .as_ref()
        .and_then(|hop| match parse_uri(&hop.value) {
            Ok(uri) => Some(uri),
            Err(fix) => {
                problems.push(Problem::error(
                    hop.pos,
                    format!("'{}' is not a next hop", hop.value),
                    fix,
                ));
                None
            }
        });
    match kind {
        Some(PoolKind::Confab) => {
            if let Some(hop) = &pool.next_hop {
                problems.push(Problem::error(
                    hop.pos,
                    format!("front-end pool '{shown}' has a next_hop"),
                    "a front-end pool is reached at its servers: list them in servers and \
                     remove next_hop (or make it kind = \"legacy\")",
                ));
            }
            match &pool.servers {
                None => problems.push(Problem::error(
                    pool.pos,
                    format!("front-end pool '{shown}' lists no servers"),
                    "add servers = [\"udp://IP:PORT\", …] with its front-ends' SIP listen URIs \
                     (servers = [] if it has none yet)",
                )),
                Some(list) if list.value.is_empty() => problems.push(Problem::warning(
                    list.pos,
                    format!(
                        "front-end pool '{shown}' has no servers: requests from other pools \
                         cannot reach it"
                    ),
                    "list its front-ends' SIP listen URIs in servers",
                )),
                Some(_) => {}
            }
        }
        Some(PoolKind::Legacy) => {
            if pool.next_hop.is_none() {
                problems.push(Problem::error(
                    pool.pos,
                    format!("legacy pool '{shown}' has no next_hop"),
                    "give the SIP address of the legacy system, e.g. next_hop = \
                     \"udp://192.0.2.20:5060\"",
                ));
            }
            if let Some(list) = &pool.servers {
                problems.push(Problem::error(
                    list.pos,
                    format!("legacy pool '{shown}' lists servers"),
                    "a legacy pool is reached through its next_hop alone: remove servers",
                ));
            }
        }
        None => {}
    }
    let errors = problems[before..]
        .iter()
        .any(|p| p.severity == super::Severity::Error);
    match (name, kind) {
        (Some(name), Some(kind)) if !errors => Some(Pool {
            name: name.value.clone(),
            kind,
            site: pool.site.as_ref().map(|s| s.value.clone()),
            next_hop,
            servers,
            pair: pool.pair.as_ref().map(|p| p.value.clone()),
        }),
        _ => None,
    }
}

/// A pair names another pool of the document that pairs back (or not at all), both front-end.
fn pairs(raw: &RawDocument, spec: &TopologySpec, problems: &mut Vec<Problem>) {
    let declared: HashMap<&str, &RawPool> = raw
        .pools
        .iter()
        .filter_map(|p| p.name.as_ref().map(|n| (n.value.as_str(), p)))
        .collect();
    for pool in &raw.pools {
        let (Some(name), Some(pair)) = (&pool.name, &pool.pair) else {
            continue;
        };
        let (name, pair_pos, target) = (name.value.as_str(), pair.pos, pair.value.as_str());
        let problem = |message: String, fix: &str| Problem::error(pair_pos, message, fix);
        if target == name {
            problems.push(problem(
                format!("pool '{name}' is paired with itself"),
                "pair it with another front-end pool, or remove pair",
            ));
            continue;
        }
        let Some(other) = declared.get(target) else {
            problems.push(problem(
                format!(
                    "pool '{name}' is paired with '{target}', which the document does not list"
                ),
                "name a pool of the document in pair, or remove pair",
            ));
            continue;
        };
        if let Some(back) = other.pair.as_ref().filter(|b| b.value != name) {
            problems.push(problem(
                format!(
                    "pool '{name}' is paired with '{target}', but '{target}' is paired with '{}'",
                    back.value
                ),
                "pairs are mutual: pair the two pools with each other, or leave one unpaired",
            ));
        }
        let legacy = |n: &str| {
            spec.pools
                .iter()
                .any(|p| p.name == n && p.kind == PoolKind::Legacy)
        };
        if legacy(name) || legacy(target) {
            problems.push(problem(
                format!("pool '{name}' pairs with '{target}', and a legacy pool cannot be paired"),
                "pair front-end pools only: Confab cannot fail over to or from a legacy system",
            ));
        }
    }
}

fn required<'a>(
    field: &'a Option<At<String>>,
    table: Pos,
    what: &str,
    key: &str,
    problems: &mut Vec<Problem>,
) -> Option<&'a At<String>> {
    if field.is_none() {
        problems.push(Problem::error(
            table,
            format!("a [[{what}]] has no {key}"),
            format!("add {key} = \"…\" to it"),
        ));
    }
    field.as_ref()
}

fn bad_name(name: &At<String>, what: &str) -> Problem {
    Problem::error(
        name.pos,
        format!("'{}' is not a valid {what} name", name.value),
        "a name is 1 to 63 letters, digits, '-', '_' or '.', starting with a letter or digit",
    )
}
