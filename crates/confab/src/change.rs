//! `confab change`, `confab audit`, `confab admin` and `confab status`: the change records
//! and their life (request, approval, implementation, review, rollback, emergencies), the
//! hash-chained audit log, the administrators, and the deployment at a glance. What a change
//! may do and who may make it lives in `confab_ops::control`.

use std::process::ExitCode;

use confab_ops::control::{self, Operation, Outcome, Right};
use confab_store::{AuditEntry, ChangeFilter, ChangeRecord, Decision};
use serde::Serialize;

use crate::cli::{
    AdminCommand, AuditCommand, ChangeCommand, ChangeRef, DeploymentArgs, StatusArgs,
};
use crate::manage::{self, print, print_json, table, utc, Failure};

/// The credentials file a first start writes in the data directory: the first
/// administrator's name and token, readable by its owner only.
pub const CREDENTIALS_FILE: &str = "admin.credentials";

/// Writes the first administrator's credentials to `dir/admin.credentials` (mode 0600), so
/// that the operator who started the deployment can act as it.
pub fn write_credentials(
    dir: &std::path::Path,
    name: &str,
    token: &str,
) -> std::io::Result<std::path::PathBuf> {
    use std::io::Write;
    let path = dir.join(CREDENTIALS_FILE);
    let mut options = std::fs::OpenOptions::new();
    // A file left by an earlier store of this directory holds credentials that store had:
    // replaced.
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    writeln!(
        file,
        "# Confab administrator credentials: keep this file secret.\n\
         name = \"{name}\"\ntoken = \"{token}\""
    )?;
    file.sync_all()?;
    Ok(path)
}

#[derive(Serialize)]
pub(crate) struct ChangeJson<'a> {
    id: i64,
    class: &'a str,
    state: &'a str,
    title: &'a str,
    reason: &'a str,
    impact: Option<&'a str>,
    requested_by: &'a str,
    requested_at: i64,
    implemented_at: Option<i64>,
    reviewed_at: Option<i64>,
    review_due: Option<i64>,
    operation: &'a str,
    before: Option<&'a str>,
    after: Option<&'a str>,
    rolls_back: Option<i64>,
    rolled_back_by: Option<i64>,
    snapshot: Option<&'a str>,
    reviewed_by: Option<&'a str>,
    review_comment: Option<&'a str>,
    approvals: Vec<ApprovalJson<'a>>,
}

#[derive(Serialize)]
struct ApprovalJson<'a> {
    approver: &'a str,
    decision: &'a str,
    comment: Option<&'a str>,
    at: i64,
}

pub(crate) fn change_json(c: &ChangeRecord) -> ChangeJson<'_> {
    ChangeJson {
        id: c.id,
        class: c.class.as_str(),
        state: c.state.as_str(),
        title: &c.title,
        reason: &c.reason,
        impact: c.impact.as_deref(),
        requested_by: &c.requested_by,
        requested_at: c.requested_at,
        implemented_at: c.implemented_at,
        reviewed_at: c.reviewed_at,
        review_due: c.review_due,
        operation: &c.operation,
        before: c.before.as_deref(),
        after: c.after.as_deref(),
        rolls_back: c.rolls_back,
        rolled_back_by: c.rolled_back_by,
        snapshot: c.snapshot.as_deref(),
        reviewed_by: c.reviewed_by.as_deref(),
        review_comment: c.review_comment.as_deref(),
        approvals: c
            .approvals
            .iter()
            .map(|a| ApprovalJson {
                approver: &a.approver,
                decision: a.decision.as_str(),
                comment: a.comment.as_deref(),
                at: a.at,
            })
            .collect(),
    }
}

/// Runs one `confab change` command.
pub fn run_change(deployment: &DeploymentArgs, command: &ChangeCommand, json: bool) -> ExitCode {
    match command {
        ChangeCommand::List(args) => manage::run(deployment, |store| async move {
            let changes = store
                .changes(&ChangeFilter {
                    state: args.state,
                    class: args.class,
                })
                .await?;
            if json {
                return print_json(&changes.iter().map(change_json).collect::<Vec<_>>());
            }
            let mut rows = vec![["ID", "CLASS", "STATE", "REQUESTED", "BY", "TITLE"]
                .map(str::to_owned)
                .to_vec()];
            for c in &changes {
                rows.push(vec![
                    c.id.to_string(),
                    c.class.as_str().to_owned(),
                    c.state.as_str().to_owned(),
                    utc(c.requested_at),
                    c.requested_by.clone(),
                    c.title.clone(),
                ]);
            }
            print(&table(&rows))
        }),
        ChangeCommand::Approve(args) | ChangeCommand::Reject(args) => {
            let decision = if matches!(command, ChangeCommand::Approve(_)) {
                Decision::Approve
            } else {
                Decision::Reject
            };
            manage::run(deployment, |store| async move {
                let operator = manage::sign_in(&store, deployment).await?;
                let c = control::decide(
                    &store,
                    &operator,
                    args.id,
                    decision,
                    args.comment.as_deref(),
                )
                .await?;
                if json {
                    return print_json(&change_json(&c));
                }
                let next = match decision {
                    Decision::Approve => {
                        format!("; `confab change implement {}` carries it out", c.id)
                    }
                    Decision::Reject => String::new(),
                };
                print(&format!("change {} {}{next}\n", c.id, c.state.as_str()))
            })
        }
        ChangeCommand::Implement(args) => manage::run(deployment, |store| async move {
            let operator = manage::sign_in(&store, deployment).await?;
            let (c, outcome) = control::implement(&store, &operator, args.id).await?;
            if json {
                return print_json(&change_json(&c));
            }
            print(&format!(
                "change {} implemented\n{}",
                c.id,
                outcome_text(&outcome)
            ))
        }),
        ChangeCommand::Catalogue => {
            let rows: Vec<(&str, &str, Vec<&str>)> = control::CATALOGUE
                .iter()
                .map(|t| (t.op, t.what, control::roles_granting(t.right)))
                .collect();
            let result = if json {
                print_json(
                    &rows
                        .iter()
                        .map(|(op, what, roles)| {
                            serde_json::json!({ "op": op, "what": what, "roles": roles })
                        })
                        .collect::<Vec<_>>(),
                )
            } else {
                let mut table_rows = vec![vec![
                    "STANDARD CHANGE".to_owned(),
                    "WHAT".to_owned(),
                    "ROLES".to_owned(),
                ]];
                for (op, what, roles) in &rows {
                    table_rows.push(vec![(*op).to_owned(), (*what).to_owned(), roles.join(",")]);
                }
                print(&format!(
                    "{}\nnormal changes (approved by another administrator first): topology \
                     publish, moves of more than {} users, administrators' roles and state, \
                     pool maintenance, source blocks, and anything asked for with `confab change \
                     request`\nemergency changes (emergency role besides the operation's): see \
                     `confab change emergency --help`\n",
                    table(&table_rows),
                    control::STANDARD_MOVE_LIMIT
                ))
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(f) => f.report(),
            }
        }
        ChangeCommand::Request(args) => {
            let operation = match operation(&args.operation) {
                Ok(op) => op,
                Err(usage) => return usage.report(),
            };
            manage::run(deployment, |store| async move {
                let operator = manage::sign_in(&store, deployment).await?;
                let c = control::request(
                    &store,
                    &operator,
                    &operation,
                    &args.reason,
                    args.impact.as_deref(),
                )
                .await?;
                if json {
                    return print_json(&change_json(&c));
                }
                print(&requested_text(&c))
            })
        }
        ChangeCommand::Emergency(args) => {
            let operation = match operation(&args.operation) {
                Ok(op) => op,
                Err(usage) => return usage.report(),
            };
            manage::run(deployment, |store| async move {
                let operator = manage::sign_in(&store, deployment).await?;
                let snapshots = manage::data_dir(deployment).join("snapshots");
                let (c, outcome) =
                    control::emergency(&store, &operator, &operation, &args.reason, &snapshots)
                        .await?;
                if json {
                    return print_json(&change_json(&c));
                }
                let what = outcome_text(&outcome);
                let snapshot = c
                    .snapshot
                    .as_deref()
                    .map_or("no snapshot (PostgreSQL: take a backup)".to_owned(), |p| {
                        format!("snapshot {p}")
                    });
                print(&format!(
                    "emergency change {} implemented ({snapshot})\n{what}its review is due by {}: \
                     `confab change review {} --comment \"…\"`\n",
                    c.id,
                    c.review_due.map(utc).unwrap_or_default(),
                    c.id
                ))
            })
        }
        ChangeCommand::Rollback(args) => manage::run(deployment, |store| async move {
            let operator = manage::sign_in(&store, deployment).await?;
            let id = match args.id {
                ChangeRef::Id(id) => id,
                ChangeRef::Last => last_made(&store).await?,
            };
            if args.emergency {
                let snapshots = manage::data_dir(deployment).join("snapshots");
                let (c, outcome) =
                    control::emergency_rollback(&store, &operator, id, &args.reason, &snapshots)
                        .await?;
                if json {
                    return print_json(&change_json(&c));
                }
                return print(&format!(
                    "change {} rolled back by emergency change {}\n{}its review is due by {}\n",
                    id,
                    c.id,
                    outcome_text(&outcome),
                    c.review_due.map(utc).unwrap_or_default()
                ));
            }
            let c = control::request_rollback(&store, &operator, id, &args.reason).await?;
            if json {
                return print_json(&change_json(&c));
            }
            print(&format!(
                "change {0} requested: {1}\nanother administrator with the approver role \
                 approves it with `confab change approve {0}`; then `confab change implement \
                 {0}` rolls change {2} back\n",
                c.id, c.title, id
            ))
        }),
        ChangeCommand::Review(args) => manage::run(deployment, |store| async move {
            let operator = manage::sign_in(&store, deployment).await?;
            let c = control::review(&store, &operator, args.id, &args.comment).await?;
            if json {
                return print_json(&change_json(&c));
            }
            print(&format!("change {} reviewed\n", c.id))
        }),
        ChangeCommand::Show(args) => manage::run(deployment, |store| async move {
            let Some(c) = store.change(args.id).await? else {
                return Err(Failure::Failed(format!(
                    "no change {} in this deployment; list them with `confab change list`",
                    args.id
                )));
            };
            if json {
                return print_json(&change_json(&c));
            }
            let none = || "-".to_owned();
            let mut rows = vec![
                vec!["change".to_owned(), c.id.to_string()],
                vec!["class".to_owned(), c.class.as_str().to_owned()],
                vec!["state".to_owned(), c.state.as_str().to_owned()],
                vec!["title".to_owned(), c.title.clone()],
                vec!["reason".to_owned(), c.reason.clone()],
                vec!["impact".to_owned(), c.impact.clone().unwrap_or_else(none)],
                vec!["requested by".to_owned(), c.requested_by.clone()],
                vec!["requested".to_owned(), utc(c.requested_at)],
                vec![
                    "implemented".to_owned(),
                    c.implemented_at.map(utc).unwrap_or_else(none),
                ],
                vec![
                    "review due".to_owned(),
                    c.review_due.map(utc).unwrap_or_else(none),
                ],
                vec!["operation".to_owned(), c.operation.clone()],
                vec!["before".to_owned(), c.before.clone().unwrap_or_else(none)],
                vec!["after".to_owned(), c.after.clone().unwrap_or_else(none)],
            ];
            for a in &c.approvals {
                rows.push(vec![
                    a.decision.as_str().to_owned(),
                    format!("{} at {}", a.approver, utc(a.at)),
                ]);
            }
            print(&table(&rows))
        }),
    }
}

/// What an implemented operation did, for people.
fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Published(p) => crate::topology::published_text(p),
        Outcome::Administrator(a) => format!(
            "administrator {}: roles {}, {}\n",
            a.name,
            a.roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(","),
            if a.enabled { "enabled" } else { "disabled" }
        ),
        Outcome::Source(s) => format!(
            "source {} is {}{}\n",
            s.cidr,
            if s.blocked { "blocked" } else { "unblocked" },
            if s.changed { "" } else { " (it was already)" }
        ),
        Outcome::Enabled(e) => format!(
            "{} is {}{}\n",
            e.address,
            if e.enabled { "enabled" } else { "disabled" },
            if e.changed { "" } else { " (it was already)" }
        ),
        Outcome::Restored {
            change,
            users,
            rows,
        } => format!(
            "the deployment now holds the backup: {users} user(s), {rows} row(s); this change \
             is recorded in it as change {change}\n"
        ),
        Outcome::Moved { moved, passed } => {
            let mut text = format!("{moved} user(s) moved\n");
            if !passed.is_empty() {
                text.push_str(&format!(
                    "{} user(s) passed over: moved again since, or removed ({})\n",
                    passed.len(),
                    passed.join(", ")
                ));
            }
            text
        }
        Outcome::Maintenance {
            pool,
            on,
            changed,
            pair,
        } => {
            let already = if *changed { "" } else { " (it was already)" };
            match (on, pair) {
                (true, Some(pair)) => format!(
                    "pool {pool} is in maintenance{already}: its users are served by pool {pair}\n"
                ),
                _ => format!("pool {pool} is out of maintenance{already}: it serves its users\n"),
            }
        }
    }
}

/// What `confab change request` (and the commands that request a change) print.
pub fn requested_text(c: &ChangeRecord) -> String {
    format!(
        "change {0} requested: {1}\nanother administrator with the approver role approves it \
         with `confab change approve {0}`; then `confab change implement {0}` carries it out\n",
        c.id, c.title
    )
}

/// The newest change that was made (implemented or reviewed) and is not rolled back.
async fn last_made(store: &confab_store::Store) -> Result<i64, Failure> {
    let mut made: Vec<ChangeRecord> = store
        .changes(&ChangeFilter::default())
        .await?
        .into_iter()
        .filter(|c| {
            matches!(
                c.state,
                confab_store::ChangeState::Implemented | confab_store::ChangeState::Reviewed
            )
        })
        .collect();
    made.sort_by_key(|c| (c.implemented_at, c.id));
    made.last().map(|c| c.id).ok_or_else(|| {
        Failure::Failed(
            "no change has been made in this deployment yet: nothing to roll back".to_owned(),
        )
    })
}

/// The operation after `confab change emergency|request … --`.
fn operation(words: &[String]) -> Result<Operation, Failure> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["user", "disable", address] => Ok(Operation::DisableUser {
            address: (*address).to_owned(),
        }),
        ["user", "enable", address] => Ok(Operation::EnableUser {
            address: (*address).to_owned(),
        }),
        ["source", "block", cidr] => Ok(Operation::BlockSource {
            cidr: (*cidr).to_owned(),
        }),
        ["source", "unblock", cidr] => Ok(Operation::UnblockSource {
            cidr: (*cidr).to_owned(),
        }),
        ["topology", "publish", file] => {
            let document = std::fs::read_to_string(file)
                .map_err(|e| Failure::Usage(format!("cannot read {file}: {e}")))?;
            Ok(Operation::PublishTopology {
                document,
                comment: None,
            })
        }
        ["pool", "maintenance", on @ ("on" | "off"), pool] => Ok(Operation::PoolMaintenance {
            pool: (*pool).to_owned(),
            on: *on == "on",
        }),
        ["admin", "roles", name, roles] => {
            let roles = roles
                .split(',')
                .map(|r| {
                    r.trim()
                        .parse::<confab_store::Role>()
                        .map(|r| r.as_str().to_owned())
                        .map_err(|e| Failure::Usage(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Operation::SetRoles {
                name: (*name).to_owned(),
                roles,
            })
        }
        ["admin", verb @ ("enable" | "disable"), name] => Ok(Operation::SetAdministratorEnabled {
            name: (*name).to_owned(),
            enabled: *verb == "enable",
        }),
        _ => Err(Failure::Usage(format!(
            "no operation `{}`; give one of: user disable|enable USER@DOMAIN, source \
             block|unblock CIDR, pool maintenance on|off POOL, topology publish FILE, admin \
             roles NAME ROLE[,ROLE…], admin disable|enable NAME",
            words.join(" ")
        ))),
    }
}

/// Runs `confab status`.
pub fn run_status(deployment: &DeploymentArgs, args: &StatusArgs, json: bool) -> ExitCode {
    let result = manage::run_with(deployment, |store| async move {
        let s = confab_ops::status::deployment(&store, true).await?;
        if args.prometheus {
            let mut out = confab_ops::status::Exposition::new();
            s.write_metrics(&mut out);
            print(&out.finish())?;
        } else if json {
            print_json(&s.json())?;
        } else {
            print(&status_text(&s))?;
        }
        Ok(if s.healthy() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    });
    result.unwrap_or_else(Failure::report)
}

/// `confab status` for people.
fn status_text(s: &confab_ops::status::DeploymentStatus) -> String {
    let mut out = String::new();
    for u in &s.pools {
        out.push_str(&format!(
            "pool {}: {} user(s), {} registration(s)\n",
            u.pool, u.users, u.registrations
        ));
    }
    let ids = |cs: &[&ChangeRecord]| {
        cs.iter()
            .map(|c| c.id.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let line = |label: &str, cs: Vec<&ChangeRecord>| match cs.len() {
        0 => format!("{label}: none\n"),
        n => format!("{label}: {n} ({})\n", ids(&cs)),
    };
    out.push_str(&line(
        "changes awaiting approval",
        s.awaiting_approval.iter().collect(),
    ));
    out.push_str(&line(
        "approved, not implemented",
        s.approved.iter().collect(),
    ));
    out.push_str(&line(
        "emergency changes awaiting review",
        s.awaiting_review.iter().collect(),
    ));
    let overdue = s.overdue_reviews();
    if !overdue.is_empty() {
        out.push_str(&format!(
            "OVERDUE reviews: {} — review them with `confab change review ID --comment …`\n",
            ids(&overdue)
        ));
    }
    for m in &s.maintenance {
        out.push_str(&format!(
            "pool {} in MAINTENANCE since {} by {} ({}): its users are served by {}\n",
            m.pool,
            utc(m.since),
            m.by,
            m.reason,
            m.served_by
                .as_deref()
                .unwrap_or("itself (it has no pair any more)")
        ));
    }
    out.push_str(&match (&s.last_backup, &s.last_verified_backup) {
        (None, _) => "backups: none taken (`confab backup create`)\n".to_owned(),
        (Some(b), Some(v)) if b.path == v.path => {
            format!("last backup: {}, verified\n", utc(b.created_at))
        }
        (Some(b), Some(v)) => format!(
            "last backup: {}, not verified; last verified: {}\n",
            utc(b.created_at),
            utc(v.created_at)
        ),
        (Some(b), None) => format!(
            "last backup: {}, none verified (`confab backup verify FILE`)\n",
            utc(b.created_at)
        ),
    });
    if s.blocked.is_empty() {
        out.push_str("blocked sources: none\n");
    }
    for b in &s.blocked {
        out.push_str(&format!(
            "blocked source {} since {} by {}: {}\n",
            b.cidr,
            utc(b.created_at),
            b.created_by,
            b.reason
        ));
    }
    for m in &s.migrations {
        out.push_str(&format!(
            "migration of legacy pool {}: phase {} (`confab migrate status`)\n",
            m.legacy_pool, m.phase
        ));
    }
    if let Some(audit) = &s.audit {
        out.push_str(&match &audit.first_bad {
            None => format!("audit log: intact, {} entries\n", audit.entries),
            Some(b) => format!("audit log: BROKEN at entry {} ({})\n", b.seq, b.problem),
        });
    }
    out
}

#[derive(Serialize)]
struct AuditJson<'a> {
    seq: i64,
    at_ms: i64,
    actor: &'a str,
    action: &'a str,
    subject: &'a str,
    detail: &'a str,
    hash: &'a str,
}

fn audit_json(e: &AuditEntry) -> AuditJson<'_> {
    AuditJson {
        seq: e.seq,
        at_ms: e.at,
        actor: &e.actor,
        action: &e.action,
        subject: &e.subject,
        detail: &e.detail,
        hash: &e.hash,
    }
}

/// Runs one `confab audit` command.
pub fn run_audit(deployment: &DeploymentArgs, command: &AuditCommand, json: bool) -> ExitCode {
    match command {
        AuditCommand::List(args) => manage::run(deployment, |store| async move {
            let entries = store.audit_entries(args.after, args.limit).await?;
            if json {
                return print_json(&entries.iter().map(audit_json).collect::<Vec<_>>());
            }
            let mut rows = vec![["SEQ", "TIME", "ACTOR", "ACTION", "SUBJECT"]
                .map(str::to_owned)
                .to_vec()];
            for e in &entries {
                rows.push(vec![
                    e.seq.to_string(),
                    utc(e.at.div_euclid(1000)),
                    e.actor.clone(),
                    e.action.clone(),
                    e.subject.clone(),
                ]);
            }
            print(&table(&rows))
        }),
        AuditCommand::Verify => {
            let verdict = manage::run_with(deployment, |store| async move {
                let verdict = store.verify_audit().await?;
                #[derive(Serialize)]
                struct VerdictJson<'a> {
                    entries: u64,
                    intact: bool,
                    first_bad: Option<i64>,
                    problem: Option<&'a str>,
                }
                let bad = verdict.first_bad.as_ref();
                if json {
                    print_json(&VerdictJson {
                        entries: verdict.entries,
                        intact: bad.is_none(),
                        first_bad: bad.map(|b| b.seq),
                        problem: bad.map(|b| b.problem.as_str()),
                    })?;
                } else {
                    match bad {
                        None => print(&format!(
                            "audit log intact: {} entries, each hash chained to the one before\n",
                            verdict.entries
                        ))?,
                        Some(b) => print(&format!(
                            "audit log BROKEN at entry {}: {}\n(entries before it verify; from \
                             it on, the log cannot be trusted: compare with a backup)\n",
                            b.seq, b.problem
                        ))?,
                    }
                }
                Ok(if bad.is_none() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                })
            });
            verdict.unwrap_or_else(Failure::report)
        }
    }
}

/// Requests the normal change carrying `operation` as the command's administrator, and says
/// what comes next.
fn request(deployment: &DeploymentArgs, operation: Operation, json: bool) -> ExitCode {
    manage::run(deployment, |store| async move {
        let operator = manage::sign_in(&store, deployment).await?;
        let reason = format!("requested by {}", operator.name());
        let c = control::request(&store, &operator, &operation, &reason, None).await?;
        if json {
            return print_json(&change_json(&c));
        }
        print(&requested_text(&c))
    })
}

/// Runs one `confab admin` command.
pub fn run_admin(deployment: &DeploymentArgs, command: &AdminCommand, json: bool) -> ExitCode {
    match command {
        AdminCommand::Roles(args) => request(
            deployment,
            Operation::SetRoles {
                name: args.name.clone(),
                roles: args.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            },
            json,
        ),
        AdminCommand::Disable(args) | AdminCommand::Enable(args) => request(
            deployment,
            Operation::SetAdministratorEnabled {
                name: args.name.clone(),
                enabled: matches!(command, AdminCommand::Enable(_)),
            },
            json,
        ),
        AdminCommand::Add(args) => manage::run(deployment, |store| async move {
            let operator = manage::sign_in(&store, deployment).await?;
            let ctx = manage::standard(&operator, Right::ManageAdministrators)?;
            let token = control::add_administrator(&store, &ctx, &args.name, &args.roles).await?;
            if json {
                return print_json(&serde_json::json!({
                    "name": args.name,
                    "token": token,
                }));
            }
            print(&format!(
                "added administrator {}; its token, shown this once:\n{token}\nit signs in with \
                 CONFAB_ADMIN={} and CONFAB_ADMIN_TOKEN set to the token, or a credentials file \
                 (name = \"{}\", token = \"…\") as admin.credentials in its data directory\n",
                args.name, args.name, args.name
            ))
        }),
        AdminCommand::List => manage::run(deployment, |store| async move {
            // Signing in gives a deployment without administrators its first one.
            manage::sign_in(&store, deployment).await?;
            let admins = store.administrators().await?;
            #[derive(Serialize)]
            struct AdminJson<'a> {
                name: &'a str,
                roles: Vec<&'static str>,
                enabled: bool,
                created_at: i64,
            }
            if json {
                return print_json(
                    &admins
                        .iter()
                        .map(|a| AdminJson {
                            name: &a.name,
                            roles: a.roles.iter().map(|r| r.as_str()).collect(),
                            enabled: a.enabled,
                            created_at: a.created_at,
                        })
                        .collect::<Vec<_>>(),
                );
            }
            let mut rows = vec![["NAME", "ROLES", "ENABLED", "CREATED"]
                .map(str::to_owned)
                .to_vec()];
            for a in &admins {
                rows.push(vec![
                    a.name.clone(),
                    a.roles
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    if a.enabled { "yes" } else { "no" }.to_owned(),
                    utc(a.created_at),
                ]);
            }
            print(&table(&rows))
        }),
    }
}
