//! `confab user move`: who moves (`confab_ops::moves::plan`), then the move a batch at a
//! time with a progress bar on a terminal, and the outcome as text or JSON. A move of more
//! users than a standard change allows is requested as a normal change instead, carried out
//! by `confab change implement` once another administrator approved it. What a move does
//! and why it is crash-safe lives in `confab_ops::moves`.

use std::io::IsTerminal;
use std::process::ExitCode;

use confab_ops::control;
use confab_ops::moves::{self, MoveRequest, Performed};
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
        let reason = args
            .reason
            .clone()
            .unwrap_or_else(|| "move users between pools".to_owned());
        let bar = progress(planned.len() as u64, json);
        let performed = moves::perform(
            &store,
            &operator,
            &planned,
            moves::Order {
                to: &args.to,
                batch: args.batch,
                reason: &reason,
                again: "running the same command again",
            },
            &mut |n| bar.set_position(n as u64),
        )
        .await;
        let performed = match performed {
            Ok(p) => p,
            Err(e) => {
                bar.abandon();
                return Err(e.into());
            }
        };
        bar.finish_and_clear();
        match performed {
            Performed::Nothing => report(&args.to, false, Vec::new(), None, json),
            Performed::Requested { change, users } => {
                if json {
                    return print_json(&Requested {
                        change: change.id,
                        state: change.state.as_str(),
                        to: &args.to,
                        users,
                    });
                }
                print(&format!(
                    "a move of {users} users is more than a standard change allows ({}): {}",
                    control::STANDARD_MOVE_LIMIT,
                    crate::change::requested_text(&change)
                ))
            }
            Performed::Moved { change, users } => {
                let done: Vec<MovedJson> = users
                    .into_iter()
                    .map(|m| MovedJson {
                        address: m.address.to_string(),
                        from: m.from,
                    })
                    .collect();
                report(&args.to, false, done, Some(change), json)
            }
        }
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
