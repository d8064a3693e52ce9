//! `confab topology …` and `confab pool …`: reads the document the operator gives, calls
//! `confab_ops::topology`, and prints the outcome as text or, with `--json`, as JSON. Every
//! check and what publishing means live in `confab-ops`; here are the file, the exit statuses
//! and the words on the terminal.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use confab_ops::control::{self, Operation};
use confab_ops::topology::{self, MemberSummary, PoolSummary, Problem, Severity};
use confab_ops::OpsError;
use confab_store::SQLITE_FILE;
use serde::Serialize;

use crate::cli::{DeploymentArgs, PoolCommand, TopologyCommand, TopologyFileArgs};
use crate::manage::{self, print, print_json, shell_word, table, utc, Failure};
use crate::settings::DEFAULT_DATA_DIR;

/// Runs one `confab topology` command.
pub fn run(deployment: &DeploymentArgs, command: &TopologyCommand, json: bool) -> ExitCode {
    match command {
        TopologyCommand::Validate(args) => validate(deployment, args, json),
        TopologyCommand::Publish(args) => {
            let file = &args.document.file;
            let text = match read(file) {
                Ok(text) => text,
                Err(f) => return f.report(),
            };
            let comment = args.comment.clone();
            manage::run(deployment, |store| async move {
                let operator = manage::sign_in(&store, deployment).await?;
                // Checked now, so that a bad document is refused before anyone approves it
                // (and checked again when the change is implemented).
                let checked = topology::validate(Some(&store), &text)
                    .await?
                    .map_err(|problems| OpsError::InvalidTopology { problems })
                    .map_err(|e| problems_failure(file, e))?;
                print_warnings(file, &checked.warnings);
                let reason = comment
                    .clone()
                    .unwrap_or_else(|| format!("publish {}", file.display()));
                let change = control::request(
                    &store,
                    &operator,
                    &Operation::PublishTopology {
                        document: text.clone(),
                        comment: comment.clone(),
                    },
                    &reason,
                    None,
                )
                .await?;
                if json {
                    return print_json(&serde_json::json!({
                        "change": change.id,
                        "state": change.state.as_str(),
                        "class": change.class.as_str(),
                    }));
                }
                print(&format!(
                    "change {0} requested: publish {1}\nanother administrator with the approver \
                     role approves it with `confab change approve {0}`; then `confab change \
                     implement {0}` publishes it\n",
                    change.id,
                    file.display()
                ))
            })
        }
        TopologyCommand::Show => manage::run(deployment, |store| async move {
            let view = topology::show(&store).await?;
            if json {
                return print_json(&view);
            }
            let mut out = match &view.version {
                Some(v) => format!(
                    "topology version {}, published {} by {}{}\n",
                    v.version,
                    utc(v.published_at),
                    v.published_by,
                    v.comment
                        .as_deref()
                        .map(|c| format!(": {c}"))
                        .unwrap_or_default()
                ),
                None => "topology never published (first-start defaults and `confab domain add`)\n"
                    .to_owned(),
            };
            out.push_str(&format!("domains: {}\n", view.domains.join(", ")));
            if !view.sites.is_empty() {
                let mut rows = vec![vec!["SITE".to_owned(), "DESCRIPTION".to_owned()]];
                rows.extend(
                    view.sites
                        .iter()
                        .map(|s| vec![s.name.clone(), s.description.clone().unwrap_or_default()]),
                );
                out.push('\n');
                out.push_str(&table(&rows));
            }
            out.push('\n');
            out.push_str(&pool_table(&view.pools));
            print(&out)
        }),
        TopologyCommand::Diff(args) => diff(deployment, args, json),
        TopologyCommand::Export(args) => {
            let output = args.output.clone();
            manage::run(deployment, |store| async move {
                let text = topology::export(&store).await?;
                match output {
                    None => print(&text),
                    Some(path) => std::fs::write(&path, text).map_err(|e| {
                        Failure::Failed(format!(
                            "cannot write {}: {e}; check the directory exists and is writable",
                            path.display()
                        ))
                    }),
                }
            })
        }
    }
}

/// Runs one `confab pool` command.
pub fn run_pool(deployment: &DeploymentArgs, command: &PoolCommand, json: bool) -> ExitCode {
    match command {
        PoolCommand::List => manage::run(deployment, |store| async move {
            let pools = topology::pools(&store).await?;
            if json {
                return print_json(&pools);
            }
            print(&pool_table(&pools))
        }),
        PoolCommand::Show(args) => manage::run(deployment, |store| async move {
            let pool = topology::pool(&store, &args.name).await?;
            if json {
                return print_json(&pool);
            }
            let none = || "(none)".to_owned();
            let mut rows = vec![
                vec!["pool".to_owned(), pool.name.clone()],
                vec!["kind".to_owned(), pool.kind.to_owned()],
                vec!["site".to_owned(), pool.site.clone().unwrap_or_else(none)],
            ];
            if pool.kind == "legacy" {
                rows.push(vec![
                    "next hop".to_owned(),
                    pool.next_hop.clone().unwrap_or_else(none),
                ]);
            } else if pool.servers.is_empty() {
                rows.push(vec!["servers".to_owned(), none()]);
            } else {
                for (i, server) in pool.servers.iter().enumerate() {
                    let label = if i == 0 { "servers" } else { "" };
                    rows.push(vec![label.to_owned(), server.clone()]);
                }
            }
            rows.push(vec![
                "pair".to_owned(),
                pool.pair.clone().unwrap_or_else(none),
            ]);
            if pool.kind != "legacy" {
                if pool.members.is_empty() {
                    rows.push(vec!["front-ends".to_owned(), "(none running)".to_owned()]);
                }
                for (i, m) in pool.members.iter().enumerate() {
                    let label = if i == 0 { "front-ends" } else { "" };
                    rows.push(vec![label.to_owned(), member_line(m)]);
                }
            }
            rows.push(vec!["users".to_owned(), pool.users.to_string()]);
            rows.push(vec![
                "registrations".to_owned(),
                pool.registrations.to_string(),
            ]);
            print(&table(&rows))
        }),
    }
}

/// One front-end of `pool show`: its address, whether it is up, and its heartbeat.
fn member_line(m: &MemberSummary) -> String {
    let age = std::time::Duration::from_millis(u64::try_from(m.heartbeat_age_ms).unwrap_or(0));
    if m.up {
        format!("{} up, heartbeat {:.1} s ago", m.address, age.as_secs_f64())
    } else {
        format!("{} down, last heartbeat {} ago", m.address, rough(age))
    }
}

/// A duration to the unit that matters: 42 s, 12 min, 3 h, 2 d.
fn rough(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

fn pool_table(pools: &[PoolSummary]) -> String {
    let mut rows = vec![[
        "POOL",
        "KIND",
        "SITE",
        "SERVERS / NEXT HOP",
        "PAIR",
        "UP",
        "USERS",
        "REGISTRATIONS",
    ]
    .map(str::to_owned)
    .to_vec()];
    for p in pools {
        let reached = match &p.next_hop {
            Some(hop) => hop.clone(),
            None if p.servers.is_empty() => "(none)".to_owned(),
            None => p.servers.join(" "),
        };
        rows.push(vec![
            p.name.clone(),
            p.kind.to_owned(),
            p.site.clone().unwrap_or_default(),
            reached,
            p.pair.clone().unwrap_or_default(),
            if p.kind == "legacy" {
                "-".to_owned()
            } else {
                p.members.iter().filter(|m| m.up).count().to_string()
            },
            p.users.to_string(),
            p.registrations.to_string(),
        ]);
    }
    table(&rows)
}

/// The verdict of `topology validate --json`.
#[derive(Serialize)]
struct Verdict<'a> {
    file: String,
    valid: bool,
    checked_against_store: bool,
    problems: &'a [Problem],
}

fn validate(deployment: &DeploymentArgs, args: &TopologyFileArgs, json: bool) -> ExitCode {
    let file = &args.file;
    let text = match read(file) {
        Ok(text) => text,
        Err(f) => return f.report_as(2),
    };
    let with_store = deployment.data_dir.is_some()
        || deployment.store.is_some()
        || Path::new(DEFAULT_DATA_DIR).join(SQLITE_FILE).exists();
    let result = manage::block_on(async {
        if !with_store {
            return Ok(topology::validate(None, &text).await?);
        }
        let store = manage::open(deployment).await?;
        let result = topology::validate(Some(&store), &text).await;
        store.close().await;
        Ok(result?)
    });
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(f) => return f.report_as(2),
    };
    if !with_store && !json {
        eprintln!(
            "note: no deployment at {} (give --data-dir or --store): checked the document alone",
            shell_word(Path::new(DEFAULT_DATA_DIR))
        );
    }
    let (valid, problems) = match &outcome {
        Ok(checked) => (true, checked.warnings.clone()),
        Err(problems) => (false, problems.clone()),
    };
    if json {
        let verdict = Verdict {
            file: file.display().to_string(),
            valid,
            checked_against_store: with_store,
            problems: &problems,
        };
        if let Err(f) = print_json(&verdict) {
            return f.report_as(2);
        }
    } else {
        print_warnings(file, &problems);
        if let Ok(checked) = &outcome {
            let spec = &checked.spec;
            let line = format!(
                "{}: valid topology: {} domain(s), {} site(s), {} pool(s)\n",
                file.display(),
                spec.domains.len(),
                spec.sites.len(),
                spec.pools.len()
            );
            if let Err(f) = print(&line) {
                return f.report_as(2);
            }
        } else {
            let errors = problems
                .iter()
                .filter(|p| p.severity == Severity::Error)
                .count();
            eprintln!("{}: {errors} problem(s); not valid", file.display());
        }
    }
    ExitCode::from(if valid { 0 } else { 1 })
}

fn diff(deployment: &DeploymentArgs, args: &TopologyFileArgs, json: bool) -> ExitCode {
    let file = &args.file;
    let text = match read(file) {
        Ok(text) => text,
        Err(f) => return f.report_as(2),
    };
    let result = manage::run_with(deployment, |store| async move {
        let (changes, warnings) = topology::diff_document(&store, &text)
            .await
            .map_err(|e| problems_failure(file, e))?;
        print_warnings(file, &warnings);
        if json {
            print_json(&changes)?;
        } else if changes.is_empty() {
            print("no differences\n")?;
        } else {
            print(&(changes.lines().join("\n") + "\n"))?;
        }
        Ok(ExitCode::from(if changes.is_empty() { 0 } else { 1 }))
    });
    result.unwrap_or_else(|f| f.report_as(2))
}

/// The document's text; a file that cannot be read is a usage error.
fn read(file: &PathBuf) -> Result<String, Failure> {
    std::fs::read_to_string(file).map_err(|e| {
        Failure::Usage(format!(
            "cannot read the topology document {}: {e}; give the path of a TOML file \
             (`confab topology export` writes one of the deployment as it is)",
            file.display()
        ))
    })
}

/// An invalid document's problems printed one a line as `FILE:LINE:COL: problem (fix)`,
/// then the error; anything else as it is.
/// What publishing did, for people.
pub fn published_text(published: &topology::Published) -> String {
    let mut out = format!(
        "published topology version {} (by {})\n",
        published.version, published.published_by
    );
    let lines = published.changes.lines();
    if lines.is_empty() {
        out.push_str("no changes to domains, sites or pools\n");
    }
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn problems_failure(file: &Path, error: OpsError) -> Failure {
    match error {
        OpsError::InvalidTopology { problems } => {
            print_warnings(file, &problems);
            let errors = problems
                .iter()
                .filter(|p| p.severity == Severity::Error)
                .count();
            Failure::Failed(format!(
                "{}: {errors} problem(s); nothing was changed",
                file.display()
            ))
        }
        e => e.into(),
    }
}

/// Every problem (warnings too) on standard error, prefixed with the file.
fn print_warnings(file: &Path, problems: &[Problem]) {
    for p in problems {
        eprintln!("{}:{p}", file.display());
    }
}
