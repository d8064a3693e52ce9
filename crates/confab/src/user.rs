//! `confab user …`: reads what the operator gives (the address, a password, a confirmation),
//! calls `confab_ops::users`, and prints the outcome as text or, with `--json`, as JSON. What
//! each command means, and every check it makes, lives in `confab-ops`.

use std::process::ExitCode;

use confab_ops::control::Right;
use confab_ops::users::{self, EnabledChange, NewAccount, UserDetails, UserSummary};
use confab_store::{Address, UserFilter};

use crate::cli::{
    DeploymentArgs, UserAddArgs, UserArg, UserCommand, UserListArgs, UserPasswdArgs, UserRemoveArgs,
};
use crate::manage::{self, print, print_json, table, utc, warn, Failure};
use crate::prompt;

/// Runs one `confab user` command.
pub fn run(deployment: &DeploymentArgs, command: &UserCommand, json: bool) -> ExitCode {
    match command {
        UserCommand::Add(args) => add(deployment, args, json),
        UserCommand::Import(args) => crate::user_import::run(deployment, args, json),
        UserCommand::List(args) => list(deployment, args, json),
        UserCommand::Show(args) => show(deployment, args, json),
        UserCommand::Passwd(args) => passwd(deployment, args, json),
        UserCommand::Disable(args) => set_enabled(deployment, args, false, json),
        UserCommand::Enable(args) => set_enabled(deployment, args, true, json),
        UserCommand::Remove(args) => remove(deployment, args, json),
        UserCommand::Move(args) => crate::user_move::run(deployment, args, json),
    }
}

fn add(deployment: &DeploymentArgs, args: &UserAddArgs, json: bool) -> ExitCode {
    let source =
        match prompt::password_source(args.password_stdin, &format!("user add {}", args.address)) {
            Ok(source) => source,
            Err(usage) => return usage.report(),
        };
    manage::run(deployment, |store| async move {
        let operator = manage::sign_in(&store, deployment).await?;
        let ctx = manage::standard(&operator, Right::ManageUsers)?;
        let pool = users::pool_or_default(args.pool.as_deref());
        // Refuse an unknown domain or pool or an existing user before asking for a password.
        users::check_new(&store, &args.address, pool).await?;
        let password = prompt::read_password(source, &args.address)?;
        if let Some(warning) = password.warning() {
            warn(&warning);
        }
        let added = users::add(
            &store,
            &ctx,
            NewAccount {
                address: args.address.clone(),
                pool: args.pool.clone(),
                display_name: args.display_name.clone(),
                password,
            },
        )
        .await?;
        if json {
            return print_json(&added);
        }
        let user = &added.user;
        print(&format!(
            "added {} on pool {}; a SIP client signs in with user name {}, domain {} and the \
             password\n",
            user.address,
            user.pool,
            user.address.user(),
            user.address.domain()
        ))
    })
}

fn list(deployment: &DeploymentArgs, args: &UserListArgs, json: bool) -> ExitCode {
    let filter = UserFilter {
        pool: args.pool.clone(),
        domain: args.domain.clone(),
    };
    manage::run(deployment, |store| async move {
        let found = users::list(&store, &filter).await?;
        if json {
            return print_json(&found);
        }
        if found.is_empty() {
            return print("no users\n");
        }
        print(&user_table(&found))
    })
}

fn user_table(found: &[UserSummary]) -> String {
    let mut rows = vec![["USER", "POOL", "ENABLED", "DISPLAY NAME"]
        .map(str::to_owned)
        .to_vec()];
    for user in found {
        rows.push(vec![
            user.address.to_string(),
            user.pool.clone(),
            yes_no(user.enabled).to_owned(),
            user.display_name.clone().unwrap_or_default(),
        ]);
    }
    table(&rows)
}

fn show(deployment: &DeploymentArgs, args: &UserArg, json: bool) -> ExitCode {
    manage::run(deployment, |store| async move {
        let details = users::show(&store, &args.address).await?;
        if json {
            return print_json(&details);
        }
        print(&details_text(&details))
    })
}

fn details_text(details: &UserDetails) -> String {
    let user = &details.user;
    let credentials = if details.credentials.is_empty() {
        format!(
            "none: the user cannot sign in until a password is set with `confab user passwd {}`",
            user.address
        )
    } else {
        let algorithms: Vec<&str> = details
            .credentials
            .iter()
            .map(|c| c.algorithm.as_str())
            .collect();
        format!(
            "{} (realm {})",
            algorithms.join(", "),
            user.address.domain()
        )
    };
    let rows = [
        ["user:", &user.address.to_string()],
        ["display name:", user.display_name.as_deref().unwrap_or("-")],
        ["pool:", &user.pool],
        ["enabled:", yes_no(user.enabled)],
        ["credentials:", &credentials],
        [
            "registrations:",
            &format!("{} active", details.registrations),
        ],
        ["created:", &utc(user.created_at)],
        ["updated:", &utc(user.updated_at)],
    ];
    table(&rows.map(|r| r.map(str::to_owned).to_vec()))
}

fn passwd(deployment: &DeploymentArgs, args: &UserPasswdArgs, json: bool) -> ExitCode {
    let source = match prompt::password_source(
        args.password_stdin,
        &format!("user passwd {}", args.address),
    ) {
        Ok(source) => source,
        Err(usage) => return usage.report(),
    };
    manage::run(deployment, |store| async move {
        let operator = manage::sign_in(&store, deployment).await?;
        let ctx = manage::standard(&operator, Right::ManageUsers)?;
        // An unknown user is refused before the password is asked for.
        users::show(&store, &args.address).await?;
        let password = prompt::read_password(source, &args.address)?;
        if let Some(warning) = password.warning() {
            warn(&warning);
        }
        let details = users::set_password(&store, &ctx, &args.address, &password).await?;
        if json {
            return print_json(&details);
        }
        print(&format!(
            "password of {} set; its clients must sign in with the new one\n",
            details.user.address
        ))
    })
}

fn set_enabled(deployment: &DeploymentArgs, args: &UserArg, enabled: bool, json: bool) -> ExitCode {
    manage::run(deployment, |store| async move {
        let operator = manage::sign_in(&store, deployment).await?;
        let ctx = manage::standard(&operator, Right::ManageUsers)?;
        let change = users::set_enabled(&store, &ctx, &args.address, enabled).await?;
        if json {
            return print_json(&change);
        }
        print(&enabled_text(&change))
    })
}

fn enabled_text(change: &EnabledChange) -> String {
    match (change.enabled, change.changed) {
        (true, true) => format!("enabled {}: it can sign in again\n", change.address),
        (true, false) => format!("{} is enabled already; nothing changed\n", change.address),
        (false, true) => format!(
            "disabled {}: it can no longer sign in; its data is kept, and \
             `confab user enable {}` undoes this\n",
            change.address, change.address
        ),
        (false, false) => format!("{} is disabled already; nothing changed\n", change.address),
    }
}

fn remove(deployment: &DeploymentArgs, args: &UserRemoveArgs, json: bool) -> ExitCode {
    let ask = match prompt::confirmation(args.yes, &format!("removing {}", args.address)) {
        Ok(ask) => ask,
        Err(usage) => return usage.report(),
    };
    manage::run(deployment, |store| async move {
        let operator = manage::sign_in(&store, deployment).await?;
        let ctx = manage::standard(&operator, Right::ManageUsers)?;
        let details = users::show(&store, &args.address).await?;
        if ask && !prompt::confirm(&removal_question(&args.address, &details))? {
            return Err(Failure::Failed(format!(
                "{} not removed; nothing changed",
                args.address
            )));
        }
        users::remove(&store, &ctx, &args.address).await?;
        if json {
            return print_json(&serde_json::json!({
                "address": args.address.to_string(),
                "removed": true,
            }));
        }
        print(&format!(
            "removed {} with its credentials, registrations and offline messages\n",
            args.address
        ))
    })
}

fn removal_question(address: &Address, details: &UserDetails) -> String {
    format!(
        "Remove {address} (pool {}, {} active registration(s)) with its credentials, \
         registrations and offline messages? This cannot be undone.",
        details.user.pool, details.registrations
    )
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
