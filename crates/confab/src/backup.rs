//! `confab backup create|verify|list`, `confab restore` and `confab inventory`: the
//! commands over `confab_ops::backup`, with a spinner on a terminal and a summary at the end.
//! What a backup holds and how it is proved restorable lives there.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use confab_ops::backup::{self, TakenBy};
use confab_ops::control::{self, Operation, Right};
use confab_store::{ChangeClass, RestoreInto};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{BackupCommand, DeploymentArgs, InventoryArgs, RestoreArgs};
use crate::manage::{self, print, print_json, table, utc, Failure};

/// A spinner on standard error when it is a terminal and the output is for people.
fn spinner(json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar
}

/// The default archive of a backup taken now: `backups/confab-YYYYMMDDTHHMMSSZ.tar.gz` in
/// the data directory.
pub fn default_archive(data_dir: &Path) -> PathBuf {
    default_archive_in(&data_dir.join("backups"))
}

/// `confab-YYYYMMDDTHHMMSSZ.tar.gz` in `dir`, or with `-2`, `-3` … when one of that second
/// exists.
pub fn default_archive_in(dir: &Path) -> PathBuf {
    let stamp = confab_ops::time::rfc3339(confab_ops::time::now()).replace([':', '-'], "");
    let mut path = dir.join(format!("confab-{stamp}.tar.gz"));
    let mut n = 1;
    while path.exists() {
        n += 1;
        path = dir.join(format!("confab-{stamp}-{n}.tar.gz"));
    }
    path
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30)),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// Runs one `confab backup` command.
pub fn run(deployment: &DeploymentArgs, command: &BackupCommand, json: bool) -> ExitCode {
    match command {
        BackupCommand::Create(args) => manage::run(deployment, |store| async move {
            let operator = manage::sign_in(&store, deployment).await?;
            let ctx = manage::standard(&operator, Right::Backup)?;
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| default_archive(&manage::data_dir(deployment)));
            let started = Instant::now();
            let bar = spinner(json);
            let created = backup::create(&store, TakenBy::Operator(&ctx), &out, &mut |stage| {
                bar.set_message(stage.to_owned())
            })
            .await;
            bar.finish_and_clear();
            let created = created?;
            if json {
                return print_json(&serde_json::json!({
                    "path": created.path,
                    "bytes": created.bytes,
                    "sha256": created.sha256,
                    "manifest": created.manifest,
                }));
            }
            let rows: usize = created.manifest.tables.iter().map(|t| t.rows).sum();
            print(&format!(
                "backup written to {}\n{} user(s), {} row(s) in {} tables, {}, in {:.1} s\n\
                 sha256 {}\nprove it restorable with `confab backup verify {}`\n",
                created.path.display(),
                created.manifest.users,
                rows,
                created.manifest.tables.len(),
                size(created.bytes),
                started.elapsed().as_secs_f64(),
                created.sha256,
                manage::shell_word(&created.path)
            ))
        }),
        BackupCommand::Verify(args) => {
            let result = manage::run_with(deployment, |store| async move {
                let started = Instant::now();
                let bar = spinner(json);
                bar.set_message("restoring into a scratch store and comparing");
                let verified = backup::verify(&args.file, Some(&store)).await;
                bar.finish_and_clear();
                match verified {
                    Ok(v) => {
                        if json {
                            print_json(&serde_json::json!({
                                "verified": true,
                                "manifest": v.manifest,
                            }))?;
                        } else {
                            let rows: usize = v.rows.iter().map(|(_, n)| n).sum();
                            print(&format!(
                                "{}: verified — {} user(s), {rows} row(s) restored into a \
                                 scratch store and read back as the manifest says; taken {} \
                                 by {} (Confab {}, schema {}); {:.1} s\n",
                                args.file.display(),
                                v.manifest.users,
                                utc(v.manifest.created_at),
                                v.manifest.created_by,
                                v.manifest.confab_version,
                                v.manifest.schema_version,
                                started.elapsed().as_secs_f64()
                            ))?;
                        }
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(e) => Err(Failure::Failed(format!(
                        "{}: NOT restorable: {e}",
                        args.file.display()
                    ))),
                }
            });
            result.unwrap_or_else(Failure::report)
        }
        BackupCommand::List => manage::run(deployment, |store| async move {
            let backups = backup::list(&store).await?;
            if json {
                return print_json(
                    &backups
                        .iter()
                        .map(|b| {
                            serde_json::json!({
                                "path": b.path,
                                "created_at": b.created_at,
                                "created_by": b.created_by,
                                "sha256": b.sha256,
                                "bytes": b.bytes,
                                "users": b.users,
                                "verified_at": b.verified_at,
                                "verified": b.verified_ok,
                                "verify_note": b.verify_note,
                            })
                        })
                        .collect::<Vec<_>>(),
                );
            }
            let mut rows = vec![["TAKEN", "BY", "USERS", "SIZE", "VERIFIED", "PATH"]
                .map(str::to_owned)
                .to_vec()];
            for b in &backups {
                let verified = match (b.verified_ok, b.verified_at) {
                    (Some(true), Some(at)) => format!("yes, {}", utc(at)),
                    (Some(false), Some(at)) => format!("FAILED, {}", utc(at)),
                    _ => "no".to_owned(),
                };
                let present = if Path::new(&b.path).exists() {
                    ""
                } else {
                    " (missing)"
                };
                rows.push(vec![
                    utc(b.created_at),
                    b.created_by.clone(),
                    b.users.to_string(),
                    size(u64::try_from(b.bytes).unwrap_or(0)),
                    verified,
                    format!("{}{present}", b.path),
                ]);
            }
            print(&table(&rows))
        }),
    }
}

/// Runs `confab restore`.
pub fn run_restore(deployment: &DeploymentArgs, args: &RestoreArgs, json: bool) -> ExitCode {
    // The archive is checked before any store is opened (or created).
    let loaded = match backup::load(&args.file) {
        Ok(loaded) => loaded,
        Err(e) => return Failure::from(e).report(),
    };
    let loaded = &loaded;
    let archive = std::fs::canonicalize(&args.file).unwrap_or_else(|_| args.file.clone());
    let archive = &archive;
    // Into a new deployment, the store is created; over one, it must be there.
    let open = if args.force || !args.users.is_empty() {
        manage::run
    } else {
        manage::run_creating
    };
    open(deployment, |store| async move {
        if !args.users.is_empty() {
            let operator = manage::sign_in(&store, deployment).await?;
            let ctx = manage::standard(&operator, Right::ManageUsers)?;
            let mut out = String::new();
            let mut restored = Vec::new();
            for user in &args.users {
                let r = confab_ops::users::restore_user_data(&store, &ctx, loaded, user).await?;
                out.push_str(&format!(
                    "{user}: {} contact group(s), {} contact(s), {} presence rule(s) restored\n",
                    r.groups, r.contacts, r.rules
                ));
                restored.push(serde_json::json!({
                    "user": user.to_string(),
                    "groups": r.groups,
                    "contacts": r.contacts,
                    "presence_rules": r.rules,
                }));
            }
            if json {
                return print_json(&restored);
            }
            return print(&out);
        }
        if args.force {
            let operator = manage::sign_in(&store, deployment).await?;
            let operation = Operation::RestoreBackup {
                archive: archive.display().to_string(),
                sha256: loaded.sha256.clone(),
            };
            let reason = args.reason.clone().unwrap_or_default();
            if args.emergency {
                let snapshots = manage::data_dir(deployment).join("snapshots");
                let (c, _) =
                    control::emergency(&store, &operator, &operation, &reason, &snapshots).await?;
                if json {
                    return print_json(&serde_json::json!({
                        "change": c.id,
                        "class": c.class.as_str(),
                        "users": loaded.manifest.users,
                        "snapshot": c.snapshot,
                    }));
                }
                return print(&format!(
                    "the deployment now holds the backup of {} ({} user(s)); emergency change {} \
                     ({}); its review is due by {}\n",
                    utc(loaded.manifest.created_at),
                    loaded.manifest.users,
                    c.id,
                    c.snapshot
                        .as_deref()
                        .map_or("no snapshot: PostgreSQL".to_owned(), |p| format!(
                            "snapshot {p}"
                        )),
                    c.review_due.map(utc).unwrap_or_default()
                ));
            }
            let impact = format!(
                "every user, change record and setting replaced by the backup of {} ({} user(s))",
                utc(loaded.manifest.created_at),
                loaded.manifest.users
            );
            let c = control::request(&store, &operator, &operation, &reason, Some(&impact)).await?;
            if json {
                return print_json(
                    &serde_json::json!({ "change": c.id, "state": c.state.as_str() }),
                );
            }
            return print(&crate::change::requested_text(&c));
        }
        // Into an empty store. One that has administrators already (a first start made one)
        // is restored by one of them; one without is restored by whoever holds its files.
        let by = if store.administrators().await?.is_empty() {
            "restore".to_owned()
        } else {
            let operator = manage::sign_in(&store, deployment).await?;
            control::authorize(&operator, Right::Backup, ChangeClass::Standard)?;
            operator.name().to_owned()
        };
        let restored = backup::restore(&store, loaded, RestoreInto::Empty, &by, archive).await?;
        let rows: usize = restored.rows.iter().map(|(_, n)| n).sum();
        if json {
            return print_json(&serde_json::json!({
                "users": loaded.manifest.users,
                "rows": rows,
                "taken_at": loaded.manifest.created_at,
            }));
        }
        print(&format!(
            "restored the backup of {} into the empty store: {} user(s), {rows} row(s)\n\
             sign in with the credentials of the deployment it came from (its \
             admin.credentials, or CONFAB_ADMIN and CONFAB_ADMIN_TOKEN)\n",
            utc(loaded.manifest.created_at),
            loaded.manifest.users,
        ))
    })
}

/// Runs `confab inventory`.
pub fn run_inventory(deployment: &DeploymentArgs, args: &InventoryArgs, json: bool) -> ExitCode {
    manage::run(deployment, |store| async move {
        let operator = manage::sign_in(&store, deployment).await?;
        operator.check(Right::View)?;
        if let Some(pool) = &args.pool {
            if store.get_pool(pool).await?.is_none() {
                return Err(Failure::Failed(format!(
                    "no pool '{pool}' in this deployment; list them with `confab pool list`"
                )));
            }
        }
        let dump = store.dump().await?;
        let rows: Vec<backup::InventoryRow> = backup::inventory(&dump)
            .into_iter()
            .filter(|r| args.pool.as_ref().is_none_or(|p| *p == r.pool))
            .collect();
        let text = if json || args.format == "json" {
            backup::inventory_json(&rows)
        } else {
            backup::inventory_csv(&rows)
        };
        match &args.out {
            Some(out) => {
                backup::write_file(out, text.as_bytes())?;
                eprintln!("{} user(s) written to {}", rows.len(), out.display());
                Ok(())
            }
            None => print(&text),
        }
    })
}
