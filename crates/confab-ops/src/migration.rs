//! The phases of a migration from a legacy system (`confab migrate plan|status|verify|
//! advance|rollback|sync`), after the phased migration of Lync Server 2013's guide: plan,
//! prepare, deploy the pilot pool, merge the topologies, configure the pilot pool, move users
//! to the pilot pool, the edge (recorded as not applicable: Confab has no edge role), move
//! users to production, post-migration tasks, decommission the legacy pool.
//!
//! A migration belongs to one legacy pool. Its [`Plan`] names Kamailio's database, the pilot
//! and production pools, and two of Kamailio's subscribers the checks sign in as: the *pilot
//! account*, moved to the pilot pool first, and the *legacy account*, which stays on Kamailio
//! until every other user has left (so that coexistence can be tested in both directions at
//! every stage) and moves last. Their passwords are given by the operator and kept by the
//! caller (the CLI keeps them in the data directory, readable by its owner only), never in
//! the store.
//!
//! Each phase has checks, run with real SIP and against the real databases ([`checks`]):
//! the legacy pool answers OPTIONS, every subscriber was imported, a moved user signs in with
//! its old password and exchanges messages with a legacy user in both directions, Kamailio's
//! `confab_moved` table agrees with Confab's homes, no user is left on the legacy pool before
//! it is decommissioned. [`advance`] runs the current phase's checks and moves on only when
//! all pass, recording them as the phase's evidence (a refusal is recorded too); [`verify`]
//! runs them without moving on. [`rollback`] sends a batch of moved users back to the legacy
//! pool (a normal change, or an emergency one) and reopens the phase that moved them.
//!
//! Coexistence needs Kamailio to know who moved: every move from or to the legacy pool writes
//! the users concerned into Kamailio's `confab_moved` table ([`after_move`], called by
//! `moves::move_batch`), and [`sync`] rewrites it whole.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Instant;

use confab_store::{
    Address, LegacyMoved, LegacySubscriber, MigrationRow, MovedUpdate, MovedUser, PoolKind, Store,
    UserFilter,
};
use serde::{Deserialize, Serialize};

use crate::control::{self, ChangeContext, Done, Operator, Right};
use crate::synthetic::{self, Report, TestUser};
use crate::OpsError;

/// A phase of the migration, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The plan is made: what moves where, which accounts test it.
    Plan,
    /// A verified backup and the inventory of which users live on which pool.
    Prepare,
    /// The pilot pool is in the topology and its front-ends answer.
    DeployPilot,
    /// The legacy system is a legacy pool of the topology, its users imported.
    Merge,
    /// The pilot pool works, and reaches the legacy system's users and back.
    ConfigurePilot,
    /// The pilot users are on the pilot pool.
    MovePilot,
    /// The edge: not applicable until Confab has an edge role.
    Edge,
    /// Everyone but the legacy account is on a Confab pool.
    MoveProduction,
    /// The legacy account moved too; everything checked once more.
    PostMigration,
    /// The legacy pool is empty and out of the topology.
    Decommission,
    /// Nothing left to do.
    Complete,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 11] = [
        Phase::Plan,
        Phase::Prepare,
        Phase::DeployPilot,
        Phase::Merge,
        Phase::ConfigurePilot,
        Phase::MovePilot,
        Phase::Edge,
        Phase::MoveProduction,
        Phase::PostMigration,
        Phase::Decommission,
        Phase::Complete,
    ];

    /// Its name: `move-pilot`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Plan => "plan",
            Phase::Prepare => "prepare",
            Phase::DeployPilot => "deploy-pilot",
            Phase::Merge => "merge",
            Phase::ConfigurePilot => "configure-pilot",
            Phase::MovePilot => "move-pilot",
            Phase::Edge => "edge",
            Phase::MoveProduction => "move-production",
            Phase::PostMigration => "post-migration",
            Phase::Decommission => "decommission",
            Phase::Complete => "complete",
        }
    }

    /// The phase named `name`.
    pub fn parse(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// What is done in it, for people.
    pub fn title(self) -> &'static str {
        match self {
            Phase::Plan => "plan the migration",
            Phase::Prepare => "prepare: a verified backup and the inventory",
            Phase::DeployPilot => "deploy the pilot pool",
            Phase::Merge => "merge the topologies and import the legacy users",
            Phase::ConfigurePilot => "configure the pilot pool and coexistence",
            Phase::MovePilot => "move the pilot users to the pilot pool",
            Phase::Edge => "edge (not applicable: Confab has no edge role)",
            Phase::MoveProduction => "move the users to the production pools",
            Phase::PostMigration => "post-migration tasks",
            Phase::Decommission => "decommission the legacy pool",
            Phase::Complete => "migration complete",
        }
    }

    /// What the operator does to pass it.
    pub fn todo(self) -> &'static str {
        match self {
            Phase::Plan => "`confab migrate advance` checks the plan against Kamailio's database",
            Phase::Prepare => {
                "`confab backup create` and `confab backup verify` (after the plan was made)"
            }
            Phase::DeployPilot => {
                "publish the pilot pool with its servers in the topology and start its front-ends"
            }
            Phase::Merge => {
                "`confab migrate merge kamailio` (approved and implemented), then \
                 `confab migrate import kamailio` until nothing is reported"
            }
            Phase::ConfigurePilot => {
                "`confab test setup --pool PILOT`, `confab migrate sync kamailio`, and the block \
                 of `confab migrate legacy-config kamailio` in Kamailio's configuration"
            }
            Phase::MovePilot => "`confab user move PILOT-ACCOUNT … --to PILOT`",
            Phase::Edge => "nothing: `confab migrate advance` records it",
            Phase::MoveProduction => {
                "`confab user move --from LEGACY --to POOL` in batches (normal changes), \
                 leaving the legacy account"
            }
            Phase::PostMigration => "move the legacy account to a Confab pool",
            Phase::Decommission => {
                "`confab migrate advance` requests the topology without the legacy pool; \
                 approve and implement it, then advance again"
            }
            Phase::Complete => "nothing",
        }
    }

    /// The phase after it.
    pub fn next(self) -> Phase {
        let i = Phase::ALL.iter().position(|p| *p == self).unwrap_or(0);
        Phase::ALL.get(i + 1).copied().unwrap_or(Phase::Complete)
    }
}

/// What the operator plans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The legacy system: `kamailio`.
    pub system: String,
    /// Its pool in Confab's topology.
    pub legacy_pool: String,
    /// Kamailio's database (its `db_url`).
    pub db: String,
    /// The pool the pilot users move to first.
    pub pilot_pool: String,
    /// The pools everyone else moves to.
    pub production_pools: Vec<String>,
    /// The subscriber that stays on the legacy pool until the end.
    pub legacy_account: String,
    /// The subscriber moved to the pilot pool first.
    pub pilot_account: String,
}

/// One check and what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Its name: `legacy-answers-options`.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// What it found: the evidence, or what is wrong and what to do.
    pub evidence: String,
    /// How long it took, in milliseconds.
    pub ms: u64,
}

/// A phase's checks, run once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseRun {
    /// The phase.
    pub phase: Phase,
    /// When, Unix seconds.
    pub at: i64,
    /// By whom.
    pub by: String,
    /// What was found.
    pub checks: Vec<Check>,
}

impl PhaseRun {
    /// Every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

/// Something that happened to the migration besides a phase passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When, Unix seconds.
    pub at: i64,
    /// By whom.
    pub by: String,
    /// The phase it happened in.
    pub phase: Phase,
    /// What.
    pub what: String,
}

/// What was done: each phase passed with its evidence, the last verification, the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The phases passed, in order (a phase reopened by a rollback is passed again later).
    pub done: Vec<PhaseRun>,
    /// The last `verify` or refused `advance`.
    pub last_check: Option<PhaseRun>,
    /// Refusals, rollbacks, changes requested.
    pub events: Vec<Event>,
    /// The change requested to remove the legacy pool from the topology, once it is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removal: Option<i64>,
}

/// A migration as read from the store.
#[derive(Debug, Clone)]
pub struct Migration {
    /// The plan.
    pub plan: Plan,
    /// The phase it is in (whose checks `advance` runs).
    pub phase: Phase,
    /// What was done.
    pub record: Record,
    /// When it was planned, Unix seconds.
    pub created_at: i64,
    row: MigrationRow,
}

impl Migration {
    fn from_row(row: MigrationRow) -> Result<Migration, OpsError> {
        let broken = |what: &str, e: String| OpsError::Migration {
            problem: format!(
                "the migration of legacy pool '{}' has an unreadable {what} ({e}); restore the \
                 store from a backup",
                row.legacy_pool
            ),
        };
        Ok(Migration {
            plan: serde_json::from_str(&row.plan).map_err(|e| broken("plan", e.to_string()))?,
            phase: Phase::parse(&row.phase).ok_or_else(|| broken("phase", row.phase.clone()))?,
            record: serde_json::from_str(&row.record)
                .map_err(|e| broken("record", e.to_string()))?,
            created_at: row.created_at,
            row,
        })
    }

    /// Where `phase` stands: `done`, `current` or `pending`.
    pub fn state_of(&self, phase: Phase) -> &'static str {
        if phase < self.phase || self.phase == Phase::Complete {
            "done"
        } else if phase == self.phase {
            "current"
        } else {
            "pending"
        }
    }

    /// As JSON (`confab migrate status --json`, the admin API): the plan without the
    /// database's password, each phase with its state and the evidence it passed with, the
    /// last check and the events.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "legacy_pool": self.plan.legacy_pool,
            "system": self.plan.system,
            "phase": self.phase,
            "title": self.phase.title(),
            "todo": self.phase.todo(),
            "plan": {
                "db": confab_store::redact_url(&self.plan.db),
                "pilot_pool": self.plan.pilot_pool,
                "production_pools": self.plan.production_pools,
                "legacy_account": self.plan.legacy_account,
                "pilot_account": self.plan.pilot_account,
            },
            "phases": Phase::ALL
                .iter()
                .filter(|p| **p != Phase::Complete)
                .map(|p| serde_json::json!({
                    "phase": p,
                    "title": p.title(),
                    "state": self.state_of(*p),
                    "evidence": self.passed(*p).filter(|_| self.state_of(*p) == "done"),
                }))
                .collect::<Vec<_>>(),
            "last_check": self.record.last_check,
            "events": self.record.events,
        })
    }

    /// The run that passed `phase`, the last one when it was passed more than once.
    pub fn passed(&self, phase: Phase) -> Option<&PhaseRun> {
        self.record.done.iter().rev().find(|r| r.phase == phase)
    }

    async fn save(
        mut self,
        store: &Store,
        by: &str,
        action: &str,
        detail: &serde_json::Value,
    ) -> Result<Migration, OpsError> {
        self.row.phase = self.phase.as_str().to_owned();
        self.row.record = control::json(&self.record);
        let row = store
            .update_migration(&self.row, by, action, &control::json(detail))
            .await?;
        Ok(Migration { row, ..self })
    }
}

/// The passwords the checks sign in with.
#[derive(Clone, Default)]
pub struct Accounts {
    /// The legacy account's.
    pub legacy: Option<TestUser>,
    /// The pilot account's.
    pub pilot: Option<TestUser>,
    /// The pilot pool's test users (`confab test setup --pool PILOT`).
    pub pilot_test_users: Vec<TestUser>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").finish_non_exhaustive()
    }
}

fn problem(text: impl Into<String>) -> OpsError {
    OpsError::Migration {
        problem: text.into(),
    }
}

/// Records a new migration of `plan.legacy_pool`, in phase `plan`, as a standard change.
/// Refused, with nothing stored, when the plan does not hold together.
pub async fn plan(
    store: &Store,
    ctx: &ChangeContext<'_>,
    plan: Plan,
) -> Result<Migration, OpsError> {
    ctx.require(Right::ManageTopology)?;
    if plan.system != "kamailio" {
        return Err(problem(format!(
            "Confab migrates from Kamailio; '{}' is not a system it knows",
            plan.system
        )));
    }
    let mut pools = vec![&plan.pilot_pool];
    pools.extend(&plan.production_pools);
    if pools.iter().any(|p| **p == plan.legacy_pool) {
        return Err(problem(
            "the pilot and production pools are Confab pools: none may be the legacy pool",
        ));
    }
    if let Some(p) = store.get_pool(&plan.legacy_pool).await? {
        if p.kind != PoolKind::Legacy {
            return Err(problem(format!(
                "pool '{}' is a Confab front-end pool; name the legacy system's pool (kind \
                 \"legacy\"), or a name for it that `confab migrate merge` will add",
                plan.legacy_pool
            )));
        }
    }
    for p in pools {
        if let Some(pool) = store.get_pool(p).await? {
            if pool.kind == PoolKind::Legacy {
                return Err(problem(format!(
                    "pool '{p}' is a legacy pool; users move to Confab front-end pools"
                )));
            }
        }
    }
    let legacy = Address::parse(&plan.legacy_account)?;
    let pilot = Address::parse(&plan.pilot_account)?;
    if legacy == pilot {
        return Err(problem(
            "the legacy account and the pilot account must be two different subscribers: one \
             moves first, the other last",
        ));
    }
    let row = store
        .add_migration(
            &plan.legacy_pool,
            &plan.system,
            &control::json(&plan),
            Phase::Plan.as_str(),
            &control::json(&Record::default()),
            ctx.operator().name(),
        )
        .await?;
    control::record(
        store,
        ctx,
        Done {
            title: format!(
                "plan the migration of legacy pool {} ({})",
                plan.legacy_pool, plan.system
            ),
            reason: "standard change: plan a migration from a legacy system".into(),
            operation: control::json(&serde_json::json!({
                "op": "migrate.plan",
                "legacy_pool": plan.legacy_pool,
                "pilot_pool": plan.pilot_pool,
                "production_pools": plan.production_pools,
            })),
            before: None,
            after: Some(control::json(&serde_json::json!({ "phase": "plan" }))),
        },
    )
    .await?;
    Migration::from_row(row)
}

/// The migration of `legacy_pool`, or the only one when `None`.
pub async fn load(store: &Store, legacy_pool: Option<&str>) -> Result<Migration, OpsError> {
    let row = match legacy_pool {
        Some(pool) => store.migration(pool).await?.ok_or_else(|| {
            problem(format!(
                "no migration of legacy pool '{pool}'; plan one with `confab migrate plan \
                 kamailio`"
            ))
        })?,
        None => {
            let mut all = store.migrations().await?;
            match all.len() {
                0 => {
                    return Err(problem(
                        "no migration planned; plan one with `confab migrate plan kamailio`",
                    ))
                }
                1 => all.remove(0),
                _ => {
                    return Err(problem(format!(
                        "{} migrations are planned ({}); name one with --pool",
                        all.len(),
                        all.iter()
                            .map(|m| m.legacy_pool.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )))
                }
            }
        }
    };
    Migration::from_row(row)
}

/// Every migration.
pub async fn all(store: &Store) -> Result<Vec<Migration>, OpsError> {
    store
        .migrations()
        .await?
        .into_iter()
        .map(Migration::from_row)
        .collect()
}

fn ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn check(name: &str, since: Instant, outcome: Result<String, String>) -> Check {
    let (passed, evidence) = match outcome {
        Ok(e) => (true, e),
        Err(e) => (false, e),
    };
    Check {
        name: name.to_owned(),
        passed,
        evidence,
        ms: ms(since),
    }
}

/// A synthetic transaction's report as a check: its steps are the evidence.
fn from_report(name: &str, since: Instant, r: &Report) -> Check {
    let steps = r
        .steps
        .iter()
        .map(|s| {
            format!(
                "{}{}: {} ({} ms)",
                if s.ok { "" } else { "FAILED " },
                s.step,
                s.detail,
                s.ms
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    check(name, since, if r.passed { Ok(steps) } else { Err(steps) })
}

/// The first UDP front-end of `pool` in the topology.
pub async fn pool_server(store: &Store, pool: &str) -> Result<SocketAddr, String> {
    let Some(p) = store.get_pool(pool).await.map_err(|e| e.to_string())? else {
        return Err(format!("no pool '{pool}' in the topology"));
    };
    let hops: &[String] = match p.kind {
        PoolKind::Legacy => p.next_hop.as_slice(),
        PoolKind::Confab => &p.servers,
    };
    hops.iter()
        .find_map(|s| s.strip_prefix("udp://").and_then(|a| a.parse().ok()))
        .ok_or_else(|| {
            format!("pool '{pool}' has no udp://IP:PORT address in the topology to test it at")
        })
}

fn address_key(user: &str, domain: &str) -> String {
    format!("{user}@{}", domain.to_ascii_lowercase())
}

/// Where each subscriber is homed in Confab (`None`: not imported).
async fn homes(
    store: &Store,
    subscribers: &[LegacySubscriber],
) -> Result<Vec<(String, Option<String>)>, OpsError> {
    let users: HashMap<String, String> = store
        .list_users(&UserFilter::default())
        .await?
        .into_iter()
        .map(|u| (u.address.to_string(), u.pool))
        .collect();
    Ok(subscribers
        .iter()
        .map(|s| {
            let key = address_key(&s.username, &s.domain);
            let home = users.get(&key).cloned();
            (key, home)
        })
        .collect())
}

/// The rows `confab_moved` must have: the subscribers homed on a Confab pool.
async fn expected_moved(
    store: &Store,
    subscribers: &[LegacySubscriber],
    legacy_pool: &str,
) -> Result<Vec<LegacyMoved>, OpsError> {
    let homes = homes(store, subscribers).await?;
    let mut out: Vec<LegacyMoved> = subscribers
        .iter()
        .zip(homes)
        .filter_map(|(s, (_, home))| {
            let pool = home?;
            (pool != legacy_pool).then(|| LegacyMoved {
                username: s.username.clone(),
                domain: s.domain.to_ascii_lowercase(),
                pool,
            })
        })
        .collect();
    out.sort();
    out.dedup_by(|a, b| a.username == b.username && a.domain == b.domain);
    Ok(out)
}

async fn table_in_sync(store: &Store, plan: &Plan) -> Result<String, String> {
    let subscribers = confab_store::read_kamailio_subscribers(&plan.db)
        .await
        .map_err(|e| e.to_string())?;
    let expected = expected_moved(store, &subscribers, &plan.legacy_pool)
        .await
        .map_err(|e| e.to_string())?;
    let Some(actual) = confab_store::read_kamailio_moved(&plan.db)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Err(
            "Kamailio's database has no confab_moved table: run `confab migrate sync kamailio`, \
             and install the block of `confab migrate legacy-config kamailio`"
                .to_owned(),
        );
    };
    let key = |m: &LegacyMoved| (m.username.clone(), m.domain.clone());
    let want: HashSet<_> = expected.iter().map(key).collect();
    let have: HashSet<_> = actual.iter().map(key).collect();
    let missing = want.difference(&have).count();
    let extra = have.difference(&want).count();
    if missing + extra > 0 {
        return Err(format!(
            "Kamailio's confab_moved table disagrees with Confab: {missing} user(s) homed on \
             Confab missing from it, {extra} listed but homed on the legacy pool; run `confab \
             migrate sync kamailio`"
        ));
    }
    Ok(format!(
        "confab_moved lists the {} subscriber(s) homed on Confab pools, and no other",
        want.len()
    ))
}

fn account<'a>(who: &'a Option<TestUser>, what: &str) -> Result<&'a TestUser, String> {
    who.as_ref().ok_or_else(|| {
        format!(
            "the {what} account's password is not known here: give it to `confab migrate \
             plan` (or `confab migrate accounts`) on this machine"
        )
    })
}

async fn users_per_pool(store: &Store) -> Result<String, OpsError> {
    Ok(store
        .pool_usage()
        .await?
        .iter()
        .map(|u| format!("{} {}", u.pool, u.users))
        .collect::<Vec<_>>()
        .join(", "))
}

/// Runs the checks of `m`'s current phase.
pub async fn checks(store: &Store, m: &Migration, accounts: &Accounts) -> Vec<Check> {
    let plan = &m.plan;
    let mut out = Vec::new();
    match m.phase {
        Phase::Plan => {
            let t = Instant::now();
            match confab_store::read_kamailio_subscribers(&plan.db).await {
                Err(e) => out.push(check("legacy-database", t, Err(e.to_string()))),
                Ok(subs) => {
                    out.push(check(
                        "legacy-database",
                        t,
                        Ok(format!(
                            "{} subscriber(s) in Kamailio's database {}",
                            subs.len(),
                            confab_store::redact_url(&plan.db)
                        )),
                    ));
                    let t = Instant::now();
                    let known: HashSet<String> = subs
                        .iter()
                        .map(|s| address_key(&s.username, &s.domain))
                        .collect();
                    let missing: Vec<&str> = [&plan.legacy_account, &plan.pilot_account]
                        .into_iter()
                        .filter(|a| {
                            !Address::parse(a).is_ok_and(|a| known.contains(&a.to_string()))
                        })
                        .map(String::as_str)
                        .collect();
                    out.push(check(
                        "accounts-are-subscribers",
                        t,
                        if missing.is_empty() {
                            Ok(format!(
                                "{} and {} are Kamailio subscribers",
                                plan.legacy_account, plan.pilot_account
                            ))
                        } else {
                            Err(format!(
                                "not Kamailio subscribers: {}; the checks need two of \
                                 Kamailio's own users",
                                missing.join(", ")
                            ))
                        },
                    ));
                }
            }
            let t = Instant::now();
            out.push(check(
                "accounts-known",
                t,
                account(&accounts.legacy, "legacy")
                    .and(account(&accounts.pilot, "pilot"))
                    .map(|_| "the passwords of both accounts are known here".to_owned()),
            ));
        }
        Phase::Prepare => {
            let t = Instant::now();
            let backups = match store.backups().await {
                Ok(b) => b,
                Err(e) => {
                    out.push(check("verified-backup", t, Err(e.to_string())));
                    return out;
                }
            };
            let found = backups
                .iter()
                .find(|b| b.created_at >= m.created_at && b.verified_ok == Some(true));
            let outcome = match found {
                None => Err(
                    "no backup taken since the migration was planned has been verified: run \
                     `confab backup create --out FILE` and `confab backup verify FILE`"
                        .to_owned(),
                ),
                Some(b) => match crate::backup::file_sha256(std::path::Path::new(&b.path)) {
                    Ok(sha256) if sha256 == b.sha256 => Ok(format!(
                        "{} ({} users, sha256 {}), verified {}",
                        b.path,
                        b.users,
                        b.sha256,
                        b.verify_note.clone().unwrap_or_default()
                    )),
                    Ok(_) => Err(format!(
                        "{} changed since it was verified; take and verify a new backup",
                        b.path
                    )),
                    Err(e) => Err(format!("{}: {e}; take and verify a new backup", b.path)),
                },
            };
            out.push(check("verified-backup", t, outcome));
            let t = Instant::now();
            out.push(check(
                "inventory",
                t,
                users_per_pool(store)
                    .await
                    .map(|p| format!("users per pool: {p}"))
                    .map_err(|e| e.to_string()),
            ));
        }
        Phase::DeployPilot => {
            let t = Instant::now();
            let pool = store.get_pool(&plan.pilot_pool).await.ok().flatten();
            out.push(check(
                "pilot-pool-in-topology",
                t,
                match pool {
                    Some(p) if p.kind == PoolKind::Confab && !p.servers.is_empty() => Ok(format!(
                        "pool {} with server(s) {}",
                        p.name,
                        p.servers.join(", ")
                    )),
                    Some(_) => Err(format!(
                        "pool {} lists no servers: list its front-ends in the topology",
                        plan.pilot_pool
                    )),
                    None => Err(format!(
                        "no pool {} in the topology: add it (kind \"front-end\", its servers) \
                         and publish the topology",
                        plan.pilot_pool
                    )),
                },
            ));
            out.push(options_check(store, "pilot-answers-options", &plan.pilot_pool).await);
        }
        Phase::Merge => {
            let t = Instant::now();
            let pool = store.get_pool(&plan.legacy_pool).await.ok().flatten();
            out.push(check(
                "legacy-pool-in-topology",
                t,
                match pool {
                    Some(p) if p.kind == PoolKind::Legacy => Ok(format!(
                        "legacy pool {} reached at {}",
                        p.name,
                        p.next_hop.unwrap_or_default()
                    )),
                    _ => Err(format!(
                        "no legacy pool {} in the topology: `confab migrate merge kamailio \
                         --pool {} --next-hop udp://IP:PORT`, approved and implemented",
                        plan.legacy_pool, plan.legacy_pool
                    )),
                },
            ));
            out.push(options_check(store, "legacy-answers-options", &plan.legacy_pool).await);
            let t = Instant::now();
            out.push(check("all-imported", t, imported(store, plan).await));
        }
        Phase::ConfigurePilot => {
            let t = Instant::now();
            out.push(check("kamailio-table", t, table_in_sync(store, plan).await));
            let pilot = pool_server(store, &plan.pilot_pool).await;
            let legacy = pool_server(store, &plan.legacy_pool).await;
            let t = Instant::now();
            match (&pilot, accounts.pilot_test_users.as_slice()) {
                (Ok(server), [a, b, ..]) => {
                    let r = synthetic::im(*server, a, b).await;
                    out.push(from_report("pilot-im", t, &r));
                }
                (Err(e), _) => out.push(check("pilot-im", t, Err(e.clone()))),
                _ => out.push(check(
                    "pilot-im",
                    t,
                    Err(format!(
                        "no test users for pool {}: run `confab test setup --pool {}` on this \
                         machine",
                        plan.pilot_pool, plan.pilot_pool
                    )),
                )),
            }
            let t = Instant::now();
            let coexistence = match (
                &pilot,
                &legacy,
                accounts.pilot_test_users.first(),
                account(&accounts.legacy, "legacy"),
            ) {
                (Ok(p), Ok(l), Some(test_user), Ok(legacy_account)) => {
                    let r = synthetic::im_both_ways(*p, test_user, *l, legacy_account).await;
                    from_report("coexistence-im", t, &r)
                }
                (Err(e), _, _, _) | (_, Err(e), _, _) => check("coexistence-im", t, Err(e.clone())),
                (_, _, None, _) => check(
                    "coexistence-im",
                    t,
                    Err("no test users for the pilot pool".into()),
                ),
                (_, _, _, Err(e)) => check("coexistence-im", t, Err(e)),
            };
            out.push(coexistence);
        }
        Phase::MovePilot => {
            let t = Instant::now();
            out.push(check(
                "pilot-account-moved",
                t,
                homed_on(store, &plan.pilot_account, |p| p == plan.pilot_pool).await,
            ));
            moved_user_checks(store, plan, accounts, &mut out).await;
        }
        Phase::Edge => {
            out.push(Check {
                name: "edge".into(),
                passed: true,
                evidence: "Confab has no edge role yet: the phase does not apply, and is \
                           recorded so"
                    .into(),
                ms: 0,
            });
        }
        Phase::MoveProduction => {
            let t = Instant::now();
            let outcome = match store
                .list_users(&UserFilter {
                    pool: Some(plan.legacy_pool.clone()),
                    ..UserFilter::default()
                })
                .await
            {
                Err(e) => Err(e.to_string()),
                Ok(left) => {
                    let others: Vec<String> = left
                        .iter()
                        .map(|u| u.address.to_string())
                        .filter(|a| {
                            Address::parse(&plan.legacy_account)
                                .map(|l| l.to_string())
                                .ok()
                                .as_deref()
                                != Some(a.as_str())
                        })
                        .collect();
                    if others.is_empty() {
                        Ok(format!(
                            "only the legacy account is left on {}; users per pool: {}",
                            plan.legacy_pool,
                            users_per_pool(store).await.unwrap_or_default()
                        ))
                    } else {
                        Err(format!(
                            "{} user(s) besides the legacy account are still on {} (first: \
                             {}); move them with `confab user move --from {} --to POOL`",
                            others.len(),
                            plan.legacy_pool,
                            others
                                .iter()
                                .take(3)
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", "),
                            plan.legacy_pool
                        ))
                    }
                }
            };
            out.push(check("legacy-pool-drained", t, outcome));
            moved_user_checks(store, plan, accounts, &mut out).await;
        }
        Phase::PostMigration => {
            let t = Instant::now();
            out.push(check(
                "legacy-account-moved",
                t,
                homed_on(store, &plan.legacy_account, |p| p != plan.legacy_pool).await,
            ));
            let t = Instant::now();
            out.push(check("kamailio-table", t, table_in_sync(store, plan).await));
            let t = Instant::now();
            let outcome = match (
                account(&accounts.pilot, "pilot"),
                account(&accounts.legacy, "legacy"),
            ) {
                (Ok(pilot), Ok(legacy)) => {
                    let a = server_of_user(store, &pilot.address).await;
                    let b = server_of_user(store, &legacy.address).await;
                    match (a, b) {
                        (Ok(a), Ok(b)) => {
                            let r = synthetic::im_both_ways(a, pilot, b, legacy).await;
                            from_report("former-legacy-users-im", t, &r)
                        }
                        (Err(e), _) | (_, Err(e)) => check("former-legacy-users-im", t, Err(e)),
                    }
                }
                (Err(e), _) | (_, Err(e)) => check("former-legacy-users-im", t, Err(e)),
            };
            out.push(outcome);
            let t = Instant::now();
            out.push(check("all-imported", t, imported(store, plan).await));
        }
        Phase::Decommission => {
            let t = Instant::now();
            let left = store
                .pool_usage()
                .await
                .ok()
                .and_then(|u| u.into_iter().find(|u| u.pool == plan.legacy_pool))
                .map_or(0, |u| u.users);
            out.push(check(
                "legacy-pool-empty",
                t,
                if left == 0 {
                    Ok(format!("no user is homed on {}", plan.legacy_pool))
                } else {
                    Err(format!(
                        "{left} user(s) are still homed on {}: move them first (`confab user \
                         move --from {} --to POOL`)",
                        plan.legacy_pool, plan.legacy_pool
                    ))
                },
            ));
            let t = Instant::now();
            out.push(check(
                "legacy-pool-removed",
                t,
                match store.get_pool(&plan.legacy_pool).await {
                    Ok(None) => Ok(format!(
                        "{} is no longer in the topology (version {})",
                        plan.legacy_pool,
                        store
                            .topology_version()
                            .await
                            .ok()
                            .flatten()
                            .map_or(0, |v| v.version)
                    )),
                    Ok(Some(_)) => Err(format!(
                        "{} is still in the topology: `confab migrate advance` requests its \
                         removal once it is empty",
                        plan.legacy_pool
                    )),
                    Err(e) => Err(e.to_string()),
                },
            ));
        }
        Phase::Complete => {}
    }
    out
}

/// The checks of a user moved from the legacy pool: the pilot account signs in at its new
/// home with its old password, directly and through Kamailio, and exchanges messages with the
/// legacy account at Kamailio both ways; Kamailio's table agrees.
async fn moved_user_checks(store: &Store, plan: &Plan, accounts: &Accounts, out: &mut Vec<Check>) {
    let t = Instant::now();
    out.push(check("kamailio-table", t, table_in_sync(store, plan).await));
    let (pilot, legacy) = match (
        account(&accounts.pilot, "pilot"),
        account(&accounts.legacy, "legacy"),
    ) {
        (Ok(p), Ok(l)) => (p, l),
        (Err(e), _) | (_, Err(e)) => {
            out.push(check("moved-user-registers", Instant::now(), Err(e)));
            return;
        }
    };
    let t = Instant::now();
    let home = match homed_on(store, &pilot.address, |p| p != plan.legacy_pool).await {
        Ok(_) => server_of_user(store, &pilot.address).await,
        Err(e) => Err(e),
    };
    let home = match home {
        Ok(s) => s,
        Err(e) => {
            out.push(check("moved-user-registers", t, Err(e)));
            return;
        }
    };
    let r = synthetic::registration(home, pilot).await;
    out.push(from_report("moved-user-registers", t, &r));
    let t = Instant::now();
    match pool_server(store, &plan.legacy_pool).await {
        Err(e) => out.push(check("moved-user-registers-via-legacy", t, Err(e))),
        Ok(kamailio) => {
            let r = synthetic::registration_reaching(kamailio, pilot, store).await;
            out.push(from_report("moved-user-registers-via-legacy", t, &r));
            let t = Instant::now();
            let r = synthetic::im_both_ways(home, pilot, kamailio, legacy).await;
            out.push(from_report("im-both-ways", t, &r));
        }
    }
}

/// The UDP server of the pool `address` is homed on.
async fn server_of_user(store: &Store, address: &str) -> Result<SocketAddr, String> {
    let a = Address::parse(address).map_err(|e| e.to_string())?;
    match store.find_user(&a).await {
        Ok(Some(u)) => pool_server(store, &u.pool).await,
        Ok(None) => Err(format!("{address} is not a Confab user")),
        Err(e) => Err(e.to_string()),
    }
}

async fn homed_on(
    store: &Store,
    address: &str,
    wanted: impl Fn(&str) -> bool,
) -> Result<String, String> {
    let a = Address::parse(address).map_err(|e| e.to_string())?;
    match store.find_user(&a).await {
        Ok(Some(u)) if wanted(&u.pool) => Ok(format!("{address} is homed on {}", u.pool)),
        Ok(Some(u)) => Err(format!(
            "{address} is homed on {}; move it (`confab user move {address} --to POOL`)",
            u.pool
        )),
        Ok(None) => Err(format!(
            "{address} is not a Confab user: import it (`confab migrate import kamailio`)"
        )),
        Err(e) => Err(e.to_string()),
    }
}

async fn imported(store: &Store, plan: &Plan) -> Result<String, String> {
    let subs = confab_store::read_kamailio_subscribers(&plan.db)
        .await
        .map_err(|e| e.to_string())?;
    let homes = homes(store, &subs).await.map_err(|e| e.to_string())?;
    let missing: Vec<&str> = homes
        .iter()
        .filter(|(_, h)| h.is_none())
        .map(|(a, _)| a.as_str())
        .collect();
    let mut per_pool: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, h) in &homes {
        if let Some(p) = h {
            *per_pool.entry(p).or_default() += 1;
        }
    }
    let pools = per_pool
        .iter()
        .map(|(p, n)| format!("{p} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    if missing.is_empty() {
        Ok(format!(
            "all {} Kamailio subscribers are Confab users, each homed on one pool ({pools})",
            subs.len()
        ))
    } else {
        Err(format!(
            "{} of {} Kamailio subscribers are not Confab users (first: {}); run `confab \
             migrate import kamailio` and resolve what it reports",
            missing.len(),
            subs.len(),
            missing
                .iter()
                .take(3)
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

async fn options_check(store: &Store, name: &str, pool: &str) -> Check {
    let t = Instant::now();
    match pool_server(store, pool).await {
        Ok(server) => from_report(name, t, &synthetic::options(server).await),
        Err(e) => check(name, t, Err(e)),
    }
}

/// Runs the current phase's checks and records them as the last check.
pub async fn verify(
    store: &Store,
    operator: &Operator,
    m: Migration,
    accounts: &Accounts,
) -> Result<(Migration, PhaseRun), OpsError> {
    operator.check(Right::View)?;
    let run = PhaseRun {
        phase: m.phase,
        at: crate::time::now(),
        by: operator.name().to_owned(),
        checks: checks(store, &m, accounts).await,
    };
    let mut m = m;
    m.record.last_check = Some(run.clone());
    let detail = serde_json::json!({"phase": run.phase, "passed": run.passed()});
    let m = m
        .save(store, operator.name(), "migration.verify", &detail)
        .await?;
    Ok((m, run))
}

/// What [`advance`] did.
#[derive(Debug, Clone)]
pub enum Advanced {
    /// Every check passed: the phase is done, the migration in the next one.
    Passed(PhaseRun),
    /// A check failed: nothing moved on.
    Refused(PhaseRun),
    /// Decommission: the legacy pool is empty; its removal from the topology is requested
    /// as this normal change, after which `advance` passes the phase.
    Requested(PhaseRun, i64),
}

/// Runs the current phase's checks; when all pass, records the phase as done with them and
/// moves to the next phase (a standard change). A refusal is recorded too.
pub async fn advance(
    store: &Store,
    ctx: &ChangeContext<'_>,
    m: Migration,
    accounts: &Accounts,
) -> Result<(Migration, Advanced), OpsError> {
    ctx.require(Right::ManageTopology)?;
    let operator = ctx.operator().name().to_owned();
    if m.phase == Phase::Complete {
        return Err(problem("the migration is complete: nothing to advance"));
    }
    let run = PhaseRun {
        phase: m.phase,
        at: crate::time::now(),
        by: operator.clone(),
        checks: checks(store, &m, accounts).await,
    };
    let mut m = m;
    if !run.passed() {
        // Decommission with an empty pool still in the topology: ask for its removal.
        let only_removal = m.phase == Phase::Decommission
            && run
                .checks
                .iter()
                .all(|c| c.passed || c.name == "legacy-pool-removed");
        if only_removal {
            // Asked for already and still waiting: not asked twice.
            if let Some(id) = m.record.removal {
                let waiting = store.change(id).await?.is_some_and(|c| {
                    matches!(
                        c.state,
                        confab_store::ChangeState::Requested | confab_store::ChangeState::Approved
                    )
                });
                if waiting {
                    return Ok((m, Advanced::Requested(run, id)));
                }
            }
            let change = request_removal(store, ctx.operator(), &m.plan).await?;
            m.record.removal = Some(change);
            m.record.last_check = Some(run.clone());
            m.record.events.push(Event {
                at: run.at,
                by: operator.clone(),
                phase: m.phase,
                what: format!(
                    "the legacy pool is empty: change {change} requested to remove it from \
                     the topology"
                ),
            });
            let detail = serde_json::json!({"phase": m.phase, "change": change});
            let m = m
                .save(store, &operator, "migration.decommission", &detail)
                .await?;
            return Ok((m, Advanced::Requested(run, change)));
        }
        m.record.last_check = Some(run.clone());
        m.record.events.push(Event {
            at: run.at,
            by: operator.clone(),
            phase: m.phase,
            what: format!(
                "advance refused: {} failed",
                run.checks
                    .iter()
                    .filter(|c| !c.passed)
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
        let detail = serde_json::json!({"phase": m.phase, "refused": true});
        let m = m
            .save(store, &operator, "migration.refused", &detail)
            .await?;
        return Ok((m, Advanced::Refused(run)));
    }
    let from = m.phase;
    m.phase = from.next();
    m.record.done.push(run.clone());
    m.record.last_check = None;
    let detail = serde_json::json!({"from": from, "to": m.phase});
    let m = m
        .save(store, &operator, "migration.advance", &detail)
        .await?;
    control::record(
        store,
        ctx,
        Done {
            title: format!(
                "migration of {}: phase {} passed, now {}",
                m.plan.legacy_pool,
                from.as_str(),
                m.phase.as_str()
            ),
            reason: "standard change: advance a migration whose checks pass".into(),
            operation: control::json(&serde_json::json!({
                "op": "migrate.advance",
                "legacy_pool": m.plan.legacy_pool,
                "from": from,
                "to": m.phase,
            })),
            before: Some(control::json(&serde_json::json!({ "phase": from }))),
            after: Some(control::json(&serde_json::json!({
                "phase": m.phase,
                "checks": run.checks,
            }))),
        },
    )
    .await?;
    Ok((m, Advanced::Passed(run)))
}

/// Requests the topology without the legacy pool (a normal change).
async fn request_removal(store: &Store, operator: &Operator, plan: &Plan) -> Result<i64, OpsError> {
    let mut spec = crate::topology::current(store).await?;
    spec.pools.retain(|p| p.name != plan.legacy_pool);
    let document = crate::topology::export::to_document(
        &spec,
        &format!(
            "Confab topology without the legacy pool {} (decommissioned by its migration)",
            plan.legacy_pool
        ),
    )
    .map_err(|e| OpsError::Export {
        reason: e.to_string(),
    })?;
    let reason = format!(
        "decommission the legacy pool {}: no user is homed on it",
        plan.legacy_pool
    );
    let c = control::request(
        store,
        operator,
        &control::Operation::PublishTopology {
            document,
            comment: Some(reason.clone()),
        },
        &reason,
        Some("Confab stops routing to the legacy system; Kamailio can be switched off"),
    )
    .await?;
    Ok(c.id)
}

/// What [`rollback`] did.
#[derive(Debug, Clone)]
pub struct RolledBack {
    /// The change that sends the users back (requested, or implemented when an emergency).
    pub change: confab_store::ChangeRecord,
    /// Users it concerns.
    pub users: usize,
    /// Whether they are back already (an emergency change), or wait for approval.
    pub done: bool,
    /// The phase the migration is in now.
    pub phase: Phase,
}

/// Sends the users move change `move_change` took off the legacy pool back to it: requested
/// as a normal change linked to the move, or at once as an emergency change when
/// `emergency` names the snapshot directory. The migration returns to the phase that moved
/// them (`move-pilot` for the pilot account, `move-production` for the others), so that it is
/// checked again before it goes on.
pub async fn rollback(
    store: &Store,
    operator: &Operator,
    m: Migration,
    move_change: i64,
    reason: &str,
    emergency: Option<&std::path::Path>,
) -> Result<(Migration, RolledBack), OpsError> {
    let target = store.change(move_change).await?.ok_or_else(|| {
        problem(format!(
            "no change {move_change}; list the moves with `confab change list`"
        ))
    })?;
    let op: serde_json::Value = serde_json::from_str(&target.operation).unwrap_or_default();
    let users: Vec<crate::moves::Planned> = match op.get("op").and_then(|o| o.as_str()) {
        Some("user.move") => {
            serde_json::from_value(op.get("users").cloned().unwrap_or_default())
                .map_err(|e| problem(format!("change {move_change}'s users cannot be read: {e}")))?
        }
        _ => {
            return Err(problem(format!(
                "change {move_change} is not a move of users (`{}`); roll back a move from \
                 the legacy pool",
                target.title
            )))
        }
    };
    let from_legacy: Vec<&crate::moves::Planned> = users
        .iter()
        .filter(|u| u.from == m.plan.legacy_pool)
        .collect();
    if from_legacy.is_empty() {
        return Err(problem(format!(
            "change {move_change} moved nobody off the legacy pool {}",
            m.plan.legacy_pool
        )));
    }
    let (change, done) = match emergency {
        None => (
            control::request_rollback(store, operator, move_change, reason).await?,
            false,
        ),
        Some(dir) => (
            control::emergency_rollback(store, operator, move_change, reason, dir)
                .await?
                .0,
            true,
        ),
    };
    let pilot_back = from_legacy
        .iter()
        .any(|u| Address::parse(&u.address).ok() == Address::parse(&m.plan.pilot_account).ok());
    let reopen = if pilot_back {
        Phase::MovePilot
    } else {
        Phase::MoveProduction
    };
    let mut m = m;
    let before = m.phase;
    if m.phase > reopen && m.phase != Phase::Complete {
        m.phase = reopen;
    }
    m.record.events.push(Event {
        at: crate::time::now(),
        by: operator.name().to_owned(),
        phase: before,
        what: format!(
            "rollback of move {move_change}: {} user(s) back to {} by change {} ({}){}",
            from_legacy.len(),
            m.plan.legacy_pool,
            change.id,
            if done { "emergency, done" } else { "requested" },
            if m.phase == before {
                String::new()
            } else {
                format!("; phase {} reopened", m.phase.as_str())
            }
        ),
    });
    let detail = serde_json::json!({"move": move_change, "change": change.id, "phase": m.phase});
    let m = m
        .save(store, operator.name(), "migration.rollback", &detail)
        .await?;
    let phase = m.phase;
    Ok((
        m,
        RolledBack {
            change,
            users: from_legacy.len(),
            done,
            phase,
        },
    ))
}

/// Rewrites Kamailio's `confab_moved` table from Confab's homes; returns its rows.
pub async fn sync(store: &Store, m: &Migration) -> Result<u64, OpsError> {
    let subs = confab_store::read_kamailio_subscribers(&m.plan.db).await?;
    let moved = expected_moved(store, &subs, &m.plan.legacy_pool).await?;
    Ok(confab_store::write_kamailio_moved(
        &m.plan.db,
        &MovedUpdate {
            replace: true,
            moved,
            returned: Vec::new(),
        },
    )
    .await?)
}

/// Tells the legacy system of a move that committed: users that left a migrating legacy
/// pool are added to its `confab_moved` table, users that went back to it are removed.
/// Nothing to do (and no database touched) when no migration concerns the pools.
pub async fn after_move(store: &Store, moved: &[MovedUser], to: &str) -> Result<(), OpsError> {
    if moved.is_empty() {
        return Ok(());
    }
    let migrations = store.migrations().await?;
    for row in migrations {
        let legacy = row.legacy_pool.clone();
        let legacy = legacy.as_str();
        let touches = to == legacy || moved.iter().any(|m| m.from == legacy);
        if !touches || row.phase == Phase::Complete.as_str() {
            continue;
        }
        let m = Migration::from_row(row)?;
        let update = if to == legacy {
            MovedUpdate {
                returned: moved
                    .iter()
                    .map(|u| (u.address.user().to_owned(), u.address.domain().to_owned()))
                    .collect(),
                ..MovedUpdate::default()
            }
        } else {
            MovedUpdate {
                moved: moved
                    .iter()
                    .filter(|u| u.from == legacy)
                    .map(|u| LegacyMoved {
                        username: u.address.user().to_owned(),
                        domain: u.address.domain().to_owned(),
                        pool: to.to_owned(),
                    })
                    .collect(),
                ..MovedUpdate::default()
            }
        };
        confab_store::write_kamailio_moved(&m.plan.db, &update)
            .await
            .map_err(|e| {
                problem(format!(
                    "the users moved, but Kamailio could not be told ({e}); until `confab \
                     migrate sync kamailio` succeeds, Kamailio routes them as before"
                ))
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_in_order_with_names() {
        let mut p = Phase::Plan;
        let mut seen = vec![p];
        while p != Phase::Complete {
            p = p.next();
            seen.push(p);
        }
        assert_eq!(seen, Phase::ALL.to_vec());
        for p in Phase::ALL {
            assert_eq!(Phase::parse(p.as_str()), Some(p));
            assert_eq!(
                serde_json::to_value(p).expect("json"),
                serde_json::json!(p.as_str())
            );
        }
        assert!(Phase::Decommission > Phase::MoveProduction);
    }
}
