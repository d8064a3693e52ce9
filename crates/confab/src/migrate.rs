//! `confab migrate`: the migration from a legacy deployment, over `confab_ops::migrate`.

use std::process::ExitCode;

use confab_ops::control::Right;
use confab_ops::migrate::{self, KamailioImport};

use crate::cli::{DeploymentArgs, MigrateCommand};
use crate::manage::{self, print, print_json, Failure};

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
                         updated (password changed at Kamailio), {} unchanged, {} not imported\n",
                        outcome.legacy,
                        outcome.imported,
                        args.pool,
                        outcome.updated,
                        outcome.unchanged,
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
