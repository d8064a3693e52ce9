//! `confab migrate`: the migration from a legacy deployment, over `confab_ops::migrate`
//! (import, merge), `confab_ops::migration` (the phases, their checks, rollback, Kamailio's
//! table) and `confab_ops::legacy_config` (Kamailio's routing block). The passwords of a
//! migration's two test accounts are kept in the data directory, as the synthetic
//! transactions' are.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use confab_ops::control::Right;
use confab_ops::legacy_config::{self, Front, KamailioBlock};
use confab_ops::migrate::{self, KamailioImport};
use confab_ops::migration::{self, Accounts, Advanced, Migration, Phase, PhaseRun};
use confab_ops::synthetic::TestUser;

use crate::cli::{DeploymentArgs, MigrateCommand};
use crate::manage::{self, print, print_json, Failure};

/// Where this machine keeps the passwords of the two accounts of `legacy_pool`'s migration.
fn accounts_file(data_dir: &Path, legacy_pool: &str) -> PathBuf {
    data_dir
        .join("test-users")
        .join(format!("migration-{legacy_pool}.toml"))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct AccountsFile {
    legacy: TestUser,
    pilot: TestUser,
}

/// The two passwords: two lines of standard input, or the environment.
fn read_passwords(stdin: bool) -> Result<(String, String), Failure> {
    if stdin {
        let mut lines = std::io::stdin().lock().lines();
        let mut next = |what: &str| -> Result<String, Failure> {
            match lines.next() {
                Some(Ok(line)) if !line.is_empty() => Ok(line.trim_end_matches('\r').to_owned()),
                Some(Err(e)) => Err(Failure::Usage(format!("cannot read the {what}: {e}"))),
                _ => Err(Failure::Usage(format!(
                    "standard input ended before the {what}: give two lines, the legacy \
                     account's password then the pilot account's"
                ))),
            }
        };
        let legacy = next("legacy account's password")?;
        let pilot = next("pilot account's password")?;
        return Ok((legacy, pilot));
    }
    let var = |name: &str| {
        std::env::var(name).map_err(|_| {
            Failure::Usage(format!(
                "give the accounts' passwords with --passwords-stdin (two lines: the legacy \
                 account's, then the pilot account's), or in CONFAB_LEGACY_ACCOUNT_PASSWORD and \
                 CONFAB_PILOT_ACCOUNT_PASSWORD ({name} is not set)"
            ))
        })
    };
    Ok((
        var("CONFAB_LEGACY_ACCOUNT_PASSWORD")?,
        var("CONFAB_PILOT_ACCOUNT_PASSWORD")?,
    ))
}

/// Keeps the two accounts' passwords of migration `m` in the data directory `dir`.
pub(crate) fn keep_accounts(
    dir: &Path,
    m: &Migration,
    passwords: (String, String),
) -> Result<(), String> {
    write_accounts(&accounts_file(dir, &m.plan.legacy_pool), m, passwords)
        .map(|_| ())
        .map_err(|e| match e {
            Failure::Usage(m) | Failure::Failed(m) => m,
        })
}

fn write_accounts(path: &Path, m: &Migration, passwords: (String, String)) -> Result<(), Failure> {
    let file = AccountsFile {
        legacy: TestUser {
            address: m.plan.legacy_account.clone(),
            password: passwords.0,
        },
        pilot: TestUser {
            address: m.plan.pilot_account.clone(),
            password: passwords.1,
        },
    };
    let text = toml::to_string(&file).map_err(|e| Failure::Failed(e.to_string()))?;
    crate::synthetic::write_secret(
        path,
        &format!(
            "# The passwords of the test accounts of the migration of legacy pool {}; keep \
             this file secret.\n{text}",
            m.plan.legacy_pool
        ),
    )
}

/// The accounts' passwords known on this machine (missing ones are reported by the checks
/// that need them).
fn accounts(deployment: &DeploymentArgs, m: &Migration) -> Accounts {
    accounts_in(&manage::data_dir(deployment), m)
}

/// The accounts' passwords kept in the data directory `dir`, and the pilot pool's test users.
pub(crate) fn accounts_in(dir: &Path, m: &Migration) -> Accounts {
    let mut out = Accounts::default();
    if let Ok(text) = std::fs::read_to_string(accounts_file(dir, &m.plan.legacy_pool)) {
        if let Ok(file) = toml::from_str::<AccountsFile>(&text) {
            out.legacy = Some(file.legacy);
            out.pilot = Some(file.pilot);
        }
    }
    let pilot_users = crate::synthetic::users_file(dir, &m.plan.pilot_pool);
    if pilot_users.exists() {
        out.pilot_test_users =
            crate::synthetic::read_users(&pilot_users, &m.plan.pilot_pool).unwrap_or_default();
    }
    out
}

fn when(at: i64) -> String {
    confab_ops::time::utc(at)
}

fn run_text(run: &PhaseRun) -> String {
    let mut out = String::new();
    for c in &run.checks {
        out.push_str(&format!(
            "    {:<4} {:<34} {:>6} ms  {}\n",
            if c.passed { "ok" } else { "FAIL" },
            c.name,
            c.ms,
            c.evidence
        ));
    }
    out
}

fn status_text(m: &Migration) -> String {
    let mut out = format!(
        "migration of legacy pool {} ({}), planned {}: phase {} — {}\n  Kamailio's database \
         {}; pilot pool {}; production pool(s) {}; legacy account {}, pilot account {}\n\n",
        m.plan.legacy_pool,
        m.plan.system,
        when(m.created_at),
        m.phase.as_str(),
        m.phase.title(),
        confab_store::redact_url(&m.plan.db),
        m.plan.pilot_pool,
        if m.plan.production_pools.is_empty() {
            "(none named)".to_owned()
        } else {
            m.plan.production_pools.join(", ")
        },
        m.plan.legacy_account,
        m.plan.pilot_account,
    );
    for phase in Phase::ALL {
        if phase == Phase::Complete {
            break;
        }
        let mark = match m.state_of(phase) {
            "done" => "done",
            "current" => "NOW",
            _ => "--",
        };
        out.push_str(&format!(
            "{mark:<5} {:<16} {}\n",
            phase.as_str(),
            phase.title()
        ));
        if let Some(run) = m.passed(phase).filter(|_| mark == "done") {
            out.push_str(&format!("    passed {} by {}\n", when(run.at), run.by));
            out.push_str(&run_text(run));
        }
        if phase == m.phase {
            out.push_str(&format!("    to do: {}\n", phase.todo()));
            if let Some(run) = m.record.last_check.as_ref().filter(|r| r.phase == phase) {
                out.push_str(&format!(
                    "    last checked {} by {}:\n",
                    when(run.at),
                    run.by
                ));
                out.push_str(&run_text(run));
            }
        }
    }
    if m.phase == Phase::Complete {
        out.push_str("\nthe migration is complete\n");
    }
    if !m.record.events.is_empty() {
        out.push_str("\nevents:\n");
        for e in &m.record.events {
            out.push_str(&format!(
                "  {} {} ({}): {}\n",
                when(e.at),
                e.by,
                e.phase.as_str(),
                e.what
            ));
        }
    }
    out
}

/// The Confab front-ends Kamailio relays to: `--confab`, else every udp/tcp/tls server of
/// the topology's front-end pools.
async fn fronts(store: &confab_store::Store, given: &[String]) -> Result<Vec<Front>, Failure> {
    if !given.is_empty() {
        return given
            .iter()
            .map(|g| {
                Front::parse(g).ok_or_else(|| {
                    Failure::Usage(format!(
                        "--confab {g}: give udp://IP:PORT, tcp:// or tls://"
                    ))
                })
            })
            .collect();
    }
    Ok(legacy_config::topology_fronts(store).await?)
}

/// Runs one `confab migrate` command.
pub fn run(deployment: &DeploymentArgs, command: &MigrateCommand, json: bool) -> ExitCode {
    match command {
        MigrateCommand::Merge(args) => manage::run(deployment, |store| async move {
            let operator = manage::sign_in(&store, deployment).await?;
            let document =
                migrate::merged_topology(&store, &args.pool, &args.next_hop, args.site.as_deref())
                    .await?;
            let reason = args.reason.clone().unwrap_or_else(|| {
                format!(
                    "merge the topologies: {} as legacy pool {}",
                    args.system, args.pool
                )
            });
            let c = confab_ops::control::request(
                &store,
                &operator,
                &confab_ops::control::Operation::PublishTopology {
                    document,
                    comment: Some(reason.clone()),
                },
                &reason,
                Some("requests for the legacy pool's users go to its next hop"),
            )
            .await?;
            if json {
                return print_json(&serde_json::json!({
                    "change": c.id,
                    "state": c.state.as_str(),
                }));
            }
            print(&crate::change::requested_text(&c))
        }),
        MigrateCommand::Plan(args) => {
            let passwords = match read_passwords(args.passwords_stdin) {
                Ok(p) => p,
                Err(f) => return f.report(),
            };
            manage::run(deployment, |store| async move {
                let operator = manage::sign_in(&store, deployment).await?;
                let ctx = manage::standard(&operator, Right::ManageTopology)?;
                let m = migration::plan(
                    &store,
                    &ctx,
                    migration::Plan {
                        system: args.system.clone(),
                        legacy_pool: args.pool.clone(),
                        db: args.db.clone(),
                        pilot_pool: args.pilot_pool.clone(),
                        production_pools: args.production_pools.clone(),
                        legacy_account: args.legacy_account.clone(),
                        pilot_account: args.pilot_account.clone(),
                    },
                )
                .await?;
                let path = accounts_file(&manage::data_dir(deployment), &m.plan.legacy_pool);
                write_accounts(&path, &m, passwords)?;
                if json {
                    return print_json(&m.json());
                }
                print(&format!(
                    "migration of legacy pool {} planned; the accounts' passwords are in {}\n\
                     next: `confab migrate advance` checks the plan against Kamailio's database\n",
                    m.plan.legacy_pool,
                    path.display()
                ))
            })
        }
        MigrateCommand::Accounts(args) => {
            let passwords = match read_passwords(args.passwords_stdin) {
                Ok(p) => p,
                Err(f) => return f.report(),
            };
            manage::run(deployment, |store| async move {
                let operator = manage::sign_in(&store, deployment).await?;
                operator.check(Right::View)?;
                let m = migration::load(&store, args.pool.as_deref()).await?;
                let path = accounts_file(&manage::data_dir(deployment), &m.plan.legacy_pool);
                write_accounts(&path, &m, passwords)?;
                print(&format!(
                    "the accounts' passwords are in {}\n",
                    path.display()
                ))
            })
        }
        MigrateCommand::Status(args) => manage::run(deployment, |store| async move {
            let operator = manage::sign_in(&store, deployment).await?;
            operator.check(Right::View)?;
            let all = match &args.pool {
                Some(p) => vec![migration::load(&store, Some(p)).await?],
                None => migration::all(&store).await?,
            };
            if json {
                return print_json(&all.iter().map(|m| m.json()).collect::<Vec<_>>());
            }
            if all.is_empty() {
                return print(
                    "no migration planned; plan one with `confab migrate plan kamailio`\n",
                );
            }
            print(&all.iter().map(status_text).collect::<Vec<_>>().join("\n"))
        }),
        MigrateCommand::Verify(args) => {
            let result = manage::run_with(deployment, |store| async move {
                let operator = manage::sign_in(&store, deployment).await?;
                let m = migration::load(&store, args.pool.as_deref()).await?;
                let accounts = accounts(deployment, &m);
                let (_, run) = migration::verify(&store, &operator, m, &accounts).await?;
                if json {
                    print_json(&run)?;
                } else {
                    print(&format!(
                        "phase {}: {}\n{}",
                        run.phase.as_str(),
                        if run.passed() {
                            "every check passes"
                        } else {
                            "a check fails"
                        },
                        run_text(&run)
                    ))?;
                }
                Ok(if run.passed() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                })
            });
            result.unwrap_or_else(Failure::report)
        }
        MigrateCommand::Advance(args) => {
            let result = manage::run_with(deployment, |store| async move {
                let operator = manage::sign_in(&store, deployment).await?;
                let ctx = manage::standard(&operator, Right::ManageTopology)?;
                let m = migration::load(&store, args.pool.as_deref()).await?;
                let accounts = accounts(deployment, &m);
                let (m, outcome) = migration::advance(&store, &ctx, m, &accounts).await?;
                let (run, code, text) = match &outcome {
                    Advanced::Passed(run) => (
                        run,
                        ExitCode::SUCCESS,
                        format!(
                            "phase {} passed; now {}: {}\nto do: {}\n",
                            run.phase.as_str(),
                            m.phase.as_str(),
                            m.phase.title(),
                            m.phase.todo()
                        ),
                    ),
                    Advanced::Refused(run) => (
                        run,
                        ExitCode::from(1),
                        format!(
                            "refused: phase {} has failing checks (recorded); fix them and \
                             advance again\n",
                            run.phase.as_str()
                        ),
                    ),
                    Advanced::Requested(run, change) => (
                        run,
                        ExitCode::SUCCESS,
                        format!(
                            "the legacy pool is empty: change {change} requested to remove it \
                             from the topology; once another administrator approves it and \
                             `confab change implement {change}` publishes it, advance again\n"
                        ),
                    ),
                };
                if json {
                    print_json(&serde_json::json!({
                        "outcome": match outcome {
                            Advanced::Passed(_) => "passed",
                            Advanced::Refused(_) => "refused",
                            Advanced::Requested(..) => "requested",
                        },
                        "change": match outcome {
                            Advanced::Requested(_, c) => Some(c),
                            _ => None,
                        },
                        "phase": m.phase,
                        "checks": run,
                    }))?;
                } else {
                    print(&format!("{}{text}", run_text(run)))?;
                }
                Ok(code)
            });
            result.unwrap_or_else(Failure::report)
        }
        MigrateCommand::Rollback(args) => manage::run(deployment, |store| async move {
            let operator = manage::sign_in(&store, deployment).await?;
            let m = migration::load(&store, args.pool.as_deref()).await?;
            let snapshots = manage::data_dir(deployment).join("snapshots");
            let (m, r) = migration::rollback(
                &store,
                &operator,
                m,
                args.change,
                &args.reason,
                args.emergency.then_some(snapshots.as_path()),
            )
            .await?;
            if json {
                return print_json(&serde_json::json!({
                    "change": r.change.id,
                    "state": r.change.state.as_str(),
                    "users": r.users,
                    "done": r.done,
                    "phase": m.phase,
                }));
            }
            let mut out = if r.done {
                format!(
                    "{} user(s) are back on {} (emergency change {}, to be reviewed)\n",
                    r.users, m.plan.legacy_pool, r.change.id
                )
            } else {
                crate::change::requested_text(&r.change)
            };
            out.push_str(&format!(
                "the migration is in phase {}: {}\n",
                m.phase.as_str(),
                m.phase.title()
            ));
            print(&out)
        }),
        MigrateCommand::Sync(args) => manage::run(deployment, |store| async move {
            let operator = manage::sign_in(&store, deployment).await?;
            operator.check(Right::ManageTopology)?;
            let m = migration::load(&store, args.pool.as_deref()).await?;
            let rows = migration::sync(&store, &m).await?;
            if json {
                return print_json(&serde_json::json!({ "rows": rows }));
            }
            print(&format!(
                "Kamailio's confab_moved table rewritten: {rows} user(s) homed on Confab pools\n"
            ))
        }),
        MigrateCommand::LegacyConfig(args) => manage::run(deployment, |store| async move {
            let operator = manage::sign_in(&store, deployment).await?;
            operator.check(Right::View)?;
            let (legacy_pool, db) = match (&args.db, &args.pool) {
                (Some(db), Some(pool)) => (pool.clone(), db.clone()),
                _ => {
                    let m = migration::load(&store, args.pool.as_deref()).await?;
                    let db = args.db.clone().unwrap_or(m.plan.db.clone());
                    (m.plan.legacy_pool, db)
                }
            };
            let text = legacy_config::kamailio(&KamailioBlock {
                legacy_pool,
                db_url: legacy_config::kamailio_db_url(&db),
                fronts: fronts(&store, &args.confab).await?,
            })?;
            match &args.out {
                Some(path) => {
                    std::fs::write(path, &text).map_err(|e| {
                        Failure::Failed(format!("cannot write {}: {e}", path.display()))
                    })?;
                    print(&format!(
                        "Kamailio's routing block written to {}; include it in kamailio.cfg as \
                         its first lines say\n",
                        path.display()
                    ))
                }
                None => print(&text),
            }
        }),
        MigrateCommand::Import(args) => {
            let result = manage::run_with(deployment, |store| async move {
                let operator = manage::sign_in(&store, deployment).await?;
                let ctx = manage::standard(&operator, Right::ManageUsers)?;
                let subscribers = confab_store::read_kamailio_subscribers(&args.db).await?;
                let outcome = migrate::import_kamailio(
                    &store,
                    &ctx,
                    &subscribers,
                    &KamailioImport {
                        pool: args.pool.clone(),
                        realm: args.realm.clone(),
                        dry_run: args.dry_run,
                    },
                )
                .await?;
                if json {
                    print_json(&outcome)?;
                } else {
                    let verb = if args.dry_run {
                        "would import"
                    } else {
                        "imported"
                    };
                    let mut out = format!(
                        "{} subscriber(s) read from Kamailio; {verb} {} onto pool {}, {} \
                         updated (password changed at Kamailio), {} unchanged, {} moved to \
                         Confab pools since (left there), {} not imported\n",
                        outcome.legacy,
                        outcome.imported,
                        args.pool,
                        outcome.updated,
                        outcome.unchanged,
                        outcome.moved,
                        outcome.conflicts.len()
                    );
                    if outcome.md5_only > 0 {
                        out.push_str(&format!(
                            "{} user(s) kept only their MD5 HA1 (Kamailio keeps no password for \
                             them): they sign in with MD5 digest until a password reset\n",
                            outcome.md5_only
                        ));
                    }
                    for c in &outcome.conflicts {
                        out.push_str(&format!("not imported: {}: {}\n", c.address, c.problem));
                    }
                    print(&out)?;
                }
                Ok(if outcome.conflicts.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                })
            });
            result.unwrap_or_else(Failure::report)
        }
    }
}
