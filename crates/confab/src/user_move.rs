//! `confab user move`: who moves (`confab_ops::moves::plan`), then the move a batch at a
//! time with a progress bar on a terminal, and the outcome as text or JSON. A move of more
//! users than a standard change allows is requested as a normal change instead, carried out
//! by `confab change implement` once another administrator approved it. What a move does
//! and why it is crash-safe lives in `confab_ops::moves`.

use std::io::IsTerminal;
use std::process::ExitCode;

use confab_ops::control::{self, Done, Operation, Right};
use confab_ops::moves::{self, MoveRequest};
use confab_store::Address;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::cli::{DeploymentArgs, UserMoveArgs};
use crate::manage::{self, print, print_json, table, Failure};

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct Outcome {
    to: String,
    dry_run: bool,
    /// The change record of the move (none for a dry run or when nobody moved).
    #[serde(skip_serializing_if = "Option::is_none")]
    change: Option<i64>,
    /// The users that moved (or, with --dry-run, would move), with the pool each left.
    users: Vec<MovedJson>,
}

/// What `--json` prints when the move was requested as a normal change.
#[derive(Debug, Serialize)]
struct Requested<'a> {
    change: i64,
    state: &'a str,
    to: &'a str,
    /// How many users it moves.
    users: usize,
}

#[derive(Debug, Serialize)]
struct MovedJson {
    address: String,
    from: String,
}

/// Runs `confab user move`.
pub fn run(deployment: &DeploymentArgs, args: &UserMoveArgs, json: bool) -> ExitCode {
    if args.batch == 0 {
        return Failure::Usage("--batch must be at least 1".into()).report();
    }
    let request = MoveRequest {
        users: args.users.clone(),
        from: args.from.clone(),
        domain: args.domain.clone(),
        filter: args.filter.clone(),
        to: args.to.clone(),
    };
    manage::run(deployment, |store| async move {
        let planned = moves::plan(&store, &request).await?;
        if args.dry_run {
            let users = planned
                .iter()
                .map(|u| MovedJson {
                    address: u.address.to_string(),
                    from: u.pool.clone(),
                })
                .collect();
            return report(&args.to, true, users, None, json);
        }
        if planned.is_empty() {
            return report(&args.to, false, Vec::new(), None, json);
        }
        let operator = manage::sign_in(&store, deployment).await?;
        let operation = Operation::MoveUsers {
            to: args.to.clone(),
            users: planned
                .iter()
                .map(|u| moves::Planned {
                    address: u.address.to_string(),
                    from: u.pool.clone(),
                })
                .collect(),
            batch: (args.batch != moves::DEFAULT_BATCH).then_some(args.batch),
        };
        let reason = args
            .reason
            .clone()
            .unwrap_or_else(|| "move users between pools".to_owned());
        if planned.len() > control::STANDARD_MOVE_LIMIT {
            // Too many for a standard change: a normal one, which another administrator
            // approves before it is implemented.
            let impact = format!(
                "{} user(s) signed out at their pool and signed in again at pool {}",
                planned.len(),
                args.to
            );
            let c = control::request(&store, &operator, &operation, &reason, Some(&impact)).await?;
            if json {
                return print_json(&Requested {
                    change: c.id,
                    state: c.state.as_str(),
                    to: &args.to,
                    users: planned.len(),
                });
            }
            return print(&format!(
                "a move of {} users is more than a standard change allows ({}): {}",
                planned.len(),
                control::STANDARD_MOVE_LIMIT,
                crate::change::requested_text(&c)
            ));
        }
        let ctx = manage::standard(&operator, Right::MoveUsers(planned.len()))?;
        let change = control::begin(
            &store,
            &ctx,
            Done {
                title: operation.title(),
                reason,
                operation: control::json(&operation),
                before: None,
                after: None,
            },
        )
        .await?;
        let bar = progress(planned.len() as u64, json);
        let addresses: Vec<Address> = planned.iter().map(|u| u.address.clone()).collect();
        let moved = moves::carry(
            &store,
            &ctx,
            &addresses,
            &args.to,
            args.batch,
            "running the same command again",
            &mut |n| bar.set_position(n as u64),
        )
        .await;
        let moved = match moved {
            Ok(moved) => moved,
            Err(e) => {
                bar.abandon();
                return Err(e.into());
            }
        };
        bar.finish_and_clear();
        let done: Vec<MovedJson> = moved
            .into_iter()
            .map(|m| MovedJson {
                address: m.address.to_string(),
                from: m.from,
            })
            .collect();
        control::finish(
            &store,
            &ctx,
            change,
            None,
            Some(&control::json(&serde_json::json!({ "moved": done.len() }))),
        )
        .await?;
        report(&args.to, false, done, Some(change), json)
    })
}

/// A bar on standard error when it is a terminal and the output is for people.
fn progress(total: u64, json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("moving {bar:40} {pos}/{len} users, {per_sec}, eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

fn report(
    to: &str,
    dry_run: bool,
    users: Vec<MovedJson>,
    change: Option<i64>,
    json: bool,
) -> Result<(), Failure> {
    if json {
        return print_json(&Outcome {
            to: to.to_owned(),
            dry_run,
            change,
            users,
        });
    }
    if users.is_empty() {
        return print(&format!(
            "nobody to move: every user selected is homed on {to} already\n"
        ));
    }
    let mut rows = vec![vec!["USER".to_owned(), "FROM".to_owned(), "TO".to_owned()]];
    for u in &users {
        rows.push(vec![u.address.clone(), u.from.clone(), to.to_owned()]);
    }
    let verb = if dry_run { "would move" } else { "moved" };
    print(&format!(
        "{}{} {} user(s) to {to}{}\n",
        table(&rows),
        verb,
        users.len(),
        change.map_or_else(String::new, |c| format!(
            " (change {c}: `confab change rollback {c}` sends them back)"
        ))
    ))
}
