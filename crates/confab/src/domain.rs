//! `confab domain …`: the SIP domains of the deployment, through `confab_ops::topology`.

use std::process::ExitCode;

use confab_ops::control::Right;
use confab_ops::topology;

use crate::cli::{DeploymentArgs, DomainCommand};
use crate::manage::{self, print, print_json, table, utc};

/// Runs one `confab domain` command.
pub fn run(deployment: &DeploymentArgs, command: &DomainCommand, json: bool) -> ExitCode {
    match command {
        DomainCommand::Add(args) => manage::run(deployment, |store| async move {
            let operator = manage::sign_in(&store, deployment).await?;
            let ctx = manage::standard(&operator, Right::ManageTopology)?;
            let added = topology::add_domain(&store, &ctx, &args.name).await?;
            if json {
                return print_json(&added);
            }
            print(&format!(
                "added SIP domain {0}; add its users with `confab user add USER@{0}`\n",
                added.name
            ))
        }),
        DomainCommand::List => manage::run(deployment, |store| async move {
            let domains = topology::domains(&store).await?;
            if json {
                return print_json(&domains);
            }
            if domains.is_empty() {
                return print("no SIP domains\n");
            }
            let mut rows = vec![vec!["DOMAIN".to_owned(), "ADDED".to_owned()]];
            rows.extend(
                domains
                    .iter()
                    .map(|d| vec![d.name.clone(), utc(d.created_at)]),
            );
            print(&table(&rows))
        }),
    }
}
