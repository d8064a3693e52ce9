//! `confab user move`: who moves (`confab_ops::moves::plan`), then the move a batch at a
//! time with a progress bar on a terminal, and the outcome as text or JSON. What a move does
//! and why it is crash-safe lives in `confab_ops::moves`.

use std::io::IsTerminal;
use std::process::ExitCode;

use confab_ops::control::{self, Done, Right};
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
    /// The users that moved (or, with --dry-run, would move), with the pool each left.
    users: Vec<MovedJson>,
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
            return report(&args.to, true, users, json);
        }
        if planned.is_empty() {
            return report(&args.to, false, Vec::new(), json);
        }
        let operator = manage::sign_in(&store, deployment).await?;
        let ctx = manage::standard(&operator, Right::MoveUsers(planned.len()))?;
        let plan_json: Vec<MovedJson> = planned
            .iter()
            .map(|u| MovedJson {
                address: u.address.to_string(),
                from: u.pool.clone(),
            })
            .collect();
        let change = control::begin(
            &store,
            &ctx,
            Done {
                title: format!("move {} user(s) to pool {}", planned.len(), args.to),
                reason: "move users between pools".into(),
                operation: control::json(&serde_json::json!({
                    "op": "user.move",
                    "to": args.to,
                    "users": plan_json,
                })),
                before: None,
                after: None,
            },
        )
        .await?;
        let bar = progress(planned.len() as u64, json);
        let mut done = Vec::with_capacity(planned.len());
        for chunk in planned.chunks(args.batch) {
            let addresses: Vec<Address> = chunk.iter().map(|u| u.address.clone()).collect();
            let moved = match moves::move_batch(&store, &ctx, &addresses, &args.to).await {
                Ok(moved) => moved,
                Err(e) => {
                    bar.abandon();
                    return Err(Failure::Failed(format!(
                        "{e}\n{} of {} user(s) moved before this; running the same command \
                         again moves the rest",
                        done.len(),
                        planned.len()
                    )));
                }
            };
            bar.inc(chunk.len() as u64);
            done.extend(moved.into_iter().map(|m| MovedJson {
                address: m.address.to_string(),
                from: m.from,
            }));
        }
        bar.finish_and_clear();
        control::finish(
            &store,
            &ctx,
            change,
            None,
            Some(&control::json(&serde_json::json!({ "moved": done.len() }))),
        )
        .await?;
        report(&args.to, false, done, json)
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

fn report(to: &str, dry_run: bool, users: Vec<MovedJson>, json: bool) -> Result<(), Failure> {
    if json {
        return print_json(&Outcome {
            to: to.to_owned(),
            dry_run,
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
        "{}{} {} user(s) to {to}\n",
        table(&rows),
        verb,
        users.len()
    ))
}
