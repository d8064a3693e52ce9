//! `confab change`, `confab audit` and `confab admin`: the change records, the hash-chained
//! audit log and the administrators, as the store keeps them. Reading only, for now: changes
//! are recorded by the operations that make them.

use std::process::ExitCode;

use confab_ops::control::{self, Operation, Outcome, Right};
use confab_store::{AuditEntry, ChangeFilter, ChangeRecord, Decision};
use serde::Serialize;

use crate::cli::{AdminCommand, AuditCommand, ChangeCommand, DeploymentArgs};
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
struct ChangeJson<'a> {
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

fn change_json(c: &ChangeRecord) -> ChangeJson<'_> {
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
        ChangeCommand::Emergency(args) => {
            let operation = match emergency_operation(&args.operation) {
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
            if args.emergency {
                let snapshots = manage::data_dir(deployment).join("snapshots");
                let (c, outcome) = control::emergency_rollback(
                    &store,
                    &operator,
                    args.id,
                    &args.reason,
                    &snapshots,
                )
                .await?;
                if json {
                    return print_json(&change_json(&c));
                }
                return print(&format!(
                    "change {} rolled back by emergency change {}\n{}its review is due by {}\n",
                    args.id,
                    c.id,
                    outcome_text(&outcome),
                    c.review_due.map(utc).unwrap_or_default()
                ));
            }
            let c = control::request_rollback(&store, &operator, args.id, &args.reason).await?;
            if json {
                return print_json(&change_json(&c));
            }
            print(&format!(
                "change {0} requested: {1}\nanother administrator with the approver role \
                 approves it with `confab change approve {0}`; then `confab change implement \
                 {0}` rolls change {2} back\n",
                c.id, c.title, args.id
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
    }
}

/// The operation after `confab change emergency … --`.
fn emergency_operation(words: &[String]) -> Result<Operation, Failure> {
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
        _ => Err(Failure::Usage(format!(
            "no emergency operation `{}`; give one of: user disable USER@DOMAIN, user enable \
             USER@DOMAIN, source block CIDR, source unblock CIDR, topology publish FILE",
            words.join(" ")
        ))),
    }
}

/// Runs `confab status`.
pub fn run_status(deployment: &DeploymentArgs, json: bool) -> ExitCode {
    let result = manage::run_with(deployment, |store| async move {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let usage = store.pool_usage().await?;
        let waiting = store
            .changes(&ChangeFilter {
                state: Some(confab_store::ChangeState::Requested),
                class: Some(confab_store::ChangeClass::Normal),
            })
            .await?;
        let approved = store
            .changes(&ChangeFilter {
                state: Some(confab_store::ChangeState::Approved),
                class: None,
            })
            .await?;
        let review: Vec<ChangeRecord> = store
            .changes(&ChangeFilter {
                state: Some(confab_store::ChangeState::Implemented),
                class: Some(confab_store::ChangeClass::Emergency),
            })
            .await?;
        let overdue: Vec<&ChangeRecord> = review
            .iter()
            .filter(|c| c.review_due.is_some_and(|due| due < now))
            .collect();
        let audit = store.verify_audit().await?;
        let blocked = store.blocked_sources().await?;
        let healthy = overdue.is_empty() && audit.first_bad.is_none();
        if json {
            print_json(&serde_json::json!({
                "pools": usage.iter().map(|u| serde_json::json!({
                    "pool": u.pool, "users": u.users, "registrations": u.registrations,
                })).collect::<Vec<_>>(),
                "awaiting_approval": waiting.iter().map(|c| c.id).collect::<Vec<_>>(),
                "approved_not_implemented": approved.iter().map(|c| c.id).collect::<Vec<_>>(),
                "emergency_awaiting_review": review.iter().map(|c| c.id).collect::<Vec<_>>(),
                "overdue_reviews": overdue.iter().map(|c| c.id).collect::<Vec<_>>(),
                "blocked_sources": blocked.iter().map(|b| b.cidr.as_str()).collect::<Vec<_>>(),
                "audit_entries": audit.entries,
                "audit_intact": audit.first_bad.is_none(),
            }))?;
        } else {
            let mut out = String::new();
            for u in &usage {
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
            out.push_str(&line("changes awaiting approval", waiting.iter().collect()));
            out.push_str(&line(
                "approved, not implemented",
                approved.iter().collect(),
            ));
            out.push_str(&line(
                "emergency changes awaiting review",
                review.iter().collect(),
            ));
            if !overdue.is_empty() {
                out.push_str(&format!(
                    "OVERDUE reviews: {} — review them with `confab change review ID --comment …`\n",
                    ids(&overdue)
                ));
            }
            if blocked.is_empty() {
                out.push_str("blocked sources: none\n");
            }
            for b in &blocked {
                out.push_str(&format!(
                    "blocked source {} since {} by {}: {}\n",
                    b.cidr,
                    utc(b.created_at),
                    b.created_by,
                    b.reason
                ));
            }
            out.push_str(&match &audit.first_bad {
                None => format!("audit log: intact, {} entries\n", audit.entries),
                Some(b) => format!("audit log: BROKEN at entry {} ({})\n", b.seq, b.problem),
            });
            print(&out)?;
        }
        Ok(if healthy {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    });
    result.unwrap_or_else(|f| f.report_as(2))
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
        print(&format!(
            "change {0} requested: {1}\nanother administrator with the approver role approves \
             it with `confab change approve {0}`; then `confab change implement {0}` carries it \
             out\n",
            c.id, c.title
        ))
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
