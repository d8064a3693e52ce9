//! `confab contacts …` and `confab presence-rules …`: reads what the operator gives, calls
//! `confab_ops::contacts`, and prints the outcome as text or, with `--json`, as JSON. What
//! each command means, and every check it makes, lives in `confab-ops`.

use std::process::ExitCode;

use confab_ops::contacts::{self, ContactsView, RuleView};
use confab_ops::control::{ChangeContext, Right};
use confab_store::NewContact;

use crate::cli::{ContactGroupCommand, ContactsCommand, DeploymentArgs, PresenceRulesCommand};
use crate::manage::{self, print, print_json, table};

/// Runs one `confab contacts` command.
pub fn run(deployment: &DeploymentArgs, command: &ContactsCommand, json: bool) -> ExitCode {
    manage::run(deployment, |store| async move {
        match command {
            ContactsCommand::List(args) => {
                let view = contacts::list(&store, &args.address).await?;
                if json {
                    return print_json(&view);
                }
                print(&contacts_text(&view))
            }
            ContactsCommand::Add(args) => {
                let (user, contact) = (&args.target.user, &args.target.contact);
                let operator = manage::sign_in(&store, deployment).await?;
                let ctx = manage::standard(&operator, Right::ManageUsers)?;
                let added = contacts::add(
                    &store,
                    &ctx,
                    user,
                    NewContact {
                        address: contact.clone(),
                        display_name: args.name.clone(),
                        group: args.group.clone(),
                    },
                    args.update,
                )
                .await?;
                if json {
                    return print_json(&added);
                }
                let place = match &added.group {
                    Some(group) => format!("group '{group}'"),
                    None => "no group".to_owned(),
                };
                print(&format!(
                    "{} is in the contact list of {user}, in {place}\n",
                    added.address
                ))
            }
            ContactsCommand::Remove(args) => {
                let (user, contact) = (&args.user, &args.contact);
                let operator = manage::sign_in(&store, deployment).await?;
                let ctx = manage::standard(&operator, Right::ManageUsers)?;
                contacts::remove(&store, &ctx, user, contact).await?;
                if json {
                    return print_json(&serde_json::json!({
                        "user": user.to_string(),
                        "contact": contact.to_string(),
                        "removed": true,
                    }));
                }
                print(&format!(
                    "removed {contact} from the contact list of {user}\n"
                ))
            }
            ContactsCommand::Group(group) => {
                let operator = manage::sign_in(&store, deployment).await?;
                let ctx = manage::standard(&operator, Right::ManageUsers)?;
                run_group(&store, &ctx, group, json).await
            }
        }
    })
}

async fn run_group(
    store: &confab_store::Store,
    ctx: &ChangeContext<'_>,
    command: &ContactGroupCommand,
    json: bool,
) -> Result<(), manage::Failure> {
    match command {
        ContactGroupCommand::Add(args) => {
            let group = contacts::add_group(store, ctx, &args.user, &args.group).await?;
            if json {
                return print_json(&group);
            }
            print(&format!(
                "added contact group '{}' to the list of {}\n",
                group.name, args.user
            ))
        }
        ContactGroupCommand::Rename(args) => {
            let user = &args.target.user;
            contacts::rename_group(store, ctx, user, &args.target.group, &args.new).await?;
            if json {
                return print_json(&serde_json::json!({
                    "user": user.to_string(),
                    "group": args.target.group.trim(),
                    "renamed_to": args.new.trim(),
                }));
            }
            print(&format!(
                "renamed contact group '{}' of {user} to '{}'\n",
                args.target.group.trim(),
                args.new.trim()
            ))
        }
        ContactGroupCommand::Remove(args) => {
            let user = &args.target.user;
            let removed =
                contacts::remove_group(store, ctx, user, &args.target.group, args.move_to_no_group)
                    .await?;
            if json {
                return print_json(&removed);
            }
            let moved = match removed.moved_to_no_group {
                0 => String::new(),
                n => format!("; its {n} contact(s) are now in no group"),
            };
            print(&format!(
                "removed contact group '{}' of {user}{moved}\n",
                removed.group
            ))
        }
    }
}

fn contacts_text(view: &ContactsView) -> String {
    let mut out = String::new();
    if view.groups.is_empty() {
        out.push_str("no contact groups\n");
    } else {
        let mut rows = vec![vec!["GROUP".to_owned(), "CONTACTS".to_owned()]];
        rows.extend(
            view.groups
                .iter()
                .map(|g| vec![g.name.clone(), g.contacts.to_string()]),
        );
        out.push_str(&table(&rows));
    }
    out.push('\n');
    if view.contacts.is_empty() {
        out.push_str("no contacts\n");
    } else {
        let mut rows = vec![["CONTACT", "GROUP", "NAME"].map(str::to_owned).to_vec()];
        rows.extend(view.contacts.iter().map(|c| {
            vec![
                c.address.to_string(),
                c.group.clone().unwrap_or_else(|| "-".to_owned()),
                c.display_name.clone().unwrap_or_default(),
            ]
        }));
        out.push_str(&table(&rows));
    }
    out
}

/// Runs one `confab presence-rules` command.
pub fn run_presence_rules(
    deployment: &DeploymentArgs,
    command: &PresenceRulesCommand,
    json: bool,
) -> ExitCode {
    manage::run(deployment, |store| async move {
        match command {
            PresenceRulesCommand::List(args) => {
                let rules = contacts::presence_rules(&store, &args.address).await?;
                if json {
                    return print_json(&rules);
                }
                print(&rules_text(&rules))
            }
            PresenceRulesCommand::Set(args) => {
                let (user, watcher) = (&args.target.user, &args.target.watcher);
                let operator = manage::sign_in(&store, deployment).await?;
                let ctx = manage::standard(&operator, Right::ManageUsers)?;
                let change =
                    contacts::set_presence_rule(&store, &ctx, user, watcher, args.level).await?;
                if json {
                    return print_json(&change);
                }
                if change.changed {
                    print(&format!(
                        "{watcher} now sees the presence of {user} at level {}\n",
                        change.rule.level
                    ))
                } else {
                    print(&format!(
                        "{watcher} sees the presence of {user} at level {} already; nothing \
                         changed\n",
                        change.rule.level
                    ))
                }
            }
            PresenceRulesCommand::Remove(args) => {
                let (user, watcher) = (&args.user, &args.watcher);
                let operator = manage::sign_in(&store, deployment).await?;
                let ctx = manage::standard(&operator, Right::ManageUsers)?;
                contacts::remove_presence_rule(&store, &ctx, user, watcher).await?;
                if json {
                    return print_json(&serde_json::json!({
                        "user": user.to_string(),
                        "watcher": watcher.to_string(),
                        "removed": true,
                    }));
                }
                print(&format!(
                    "removed the presence rule of {user} for {watcher}\n"
                ))
            }
        }
    })
}

fn rules_text(rules: &[RuleView]) -> String {
    if rules.is_empty() {
        return "no presence rules\n".to_owned();
    }
    let mut rows = vec![vec!["WATCHER".to_owned(), "LEVEL".to_owned()]];
    rows.extend(
        rules
            .iter()
            .map(|r| vec![r.watcher.clone(), r.level.clone()]),
    );
    table(&rows)
}
