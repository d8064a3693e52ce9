//! `confab test setup|registration|im|presence`: synthetic transactions over
//! `confab_ops::synthetic`, with the test users' passwords kept in the data directory.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use confab_ops::control::Right;
use confab_ops::synthetic::{self, Report, TestUser};

use crate::cli::{DeploymentArgs, TestArgs, TestCommand};
use crate::manage::{self, print, print_json, Failure};

/// Where the test users of `pool` are kept.
pub(crate) fn users_file(data_dir: &Path, pool: &str) -> PathBuf {
    data_dir.join("test-users").join(format!("{pool}.toml"))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct UsersFile {
    user: Vec<TestUser>,
}

pub(crate) fn write_users(path: &Path, users: &[TestUser]) -> Result<(), Failure> {
    let text = toml::to_string(&UsersFile {
        user: users.to_vec(),
    })
    .map_err(|e| Failure::Failed(e.to_string()))?;
    write_secret(
        path,
        &format!("# Confab test users: their passwords; keep this file secret.\n{text}"),
    )
}

/// Writes `text` to `path`, readable and writable by its owner only (its directory is
/// created when missing).
pub(crate) fn write_secret(path: &Path, text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let fail = |e: std::io::Error| Failure::Failed(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)
}

pub(crate) fn read_users(path: &Path, pool: &str) -> Result<Vec<TestUser>, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::Failed(format!(
            "no test users for pool {pool} ({}: {e}); create them with `confab test setup --pool \
             {pool}`, or name a user with --user",
            path.display()
        ))
    })?;
    let file: UsersFile = toml::from_str(&text).map_err(|e| {
        Failure::Failed(format!(
            "{} is not a test users file ({e}); run `confab test setup --pool {pool}` again",
            path.display()
        ))
    })?;
    Ok(file.user)
}

/// The front-end to exercise: `--server`, else the pool's first UDP server.
async fn server_of(store: &confab_store::Store, args: &TestArgs) -> Result<SocketAddr, Failure> {
    let parse = |uri: &str| {
        uri.strip_prefix("udp://")
            .and_then(|a| a.parse::<SocketAddr>().ok())
    };
    if let Some(uri) = &args.server {
        return parse(uri)
            .ok_or_else(|| Failure::Usage(format!("--server {uri}: give udp://IP:PORT")));
    }
    let Some(pool) = store.get_pool(&args.pool).await? else {
        return Err(Failure::Failed(format!(
            "no pool '{}'; list them with `confab pool list`",
            args.pool
        )));
    };
    pool.servers.iter().find_map(|s| parse(s)).ok_or_else(|| {
        Failure::Failed(format!(
            "pool '{}' lists no UDP server in the topology; give one with --server \
                 udp://IP:PORT",
            args.pool
        ))
    })
}

fn report(r: &Report, json: bool) -> Result<ExitCode, Failure> {
    if json {
        print_json(r)?;
    } else {
        let mut out = String::new();
        for s in &r.steps {
            out.push_str(&format!(
                "{:<4} {:>6} ms  {}  ({})\n",
                if s.ok { "ok" } else { "FAIL" },
                s.ms,
                s.step,
                s.detail
            ));
        }
        out.push_str(&format!(
            "{} {} at udp://{} in {} ms\n",
            if r.passed { "PASS" } else { "FAIL" },
            r.test,
            r.server,
            r.ms
        ));
        print(&out)?;
    }
    Ok(if r.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Runs one `confab test` command.
pub fn run(deployment: &DeploymentArgs, command: &TestCommand, json: bool) -> ExitCode {
    if let TestCommand::Setup(args) = command {
        return manage::run(deployment, |store| async move {
            let operator = manage::sign_in(&store, deployment).await?;
            let ctx = manage::standard(&operator, Right::ManageUsers)?;
            let domain = match &args.domain {
                Some(d) => d.clone(),
                None => store
                    .domains()
                    .await?
                    .first()
                    .map(|d| d.name.clone())
                    .ok_or_else(|| Failure::Failed("the deployment has no domain".into()))?,
            };
            if store.get_pool(&args.pool).await?.is_none() {
                return Err(Failure::Failed(format!(
                    "no pool '{}'; list them with `confab pool list`",
                    args.pool
                )));
            }
            let users = synthetic::setup(&store, &ctx, &args.pool, &domain).await?;
            let path = users_file(&manage::data_dir(deployment), &args.pool);
            write_users(&path, &users)?;
            if json {
                return print_json(&serde_json::json!({
                    "pool": args.pool,
                    "users": users.iter().map(|u| u.address.clone()).collect::<Vec<_>>(),
                    "file": path,
                }));
            }
            print(&format!(
                "test users {} and {} on pool {}; their passwords are in {}\n",
                users[0].address,
                users[1].address,
                args.pool,
                path.display()
            ))
        });
    }
    let (TestCommand::Registration(args) | TestCommand::Im(args) | TestCommand::Presence(args)) =
        command
    else {
        return ExitCode::from(2);
    };
    let named = match &args.user {
        None => None,
        Some(address) => {
            let password = if args.password_stdin {
                let mut line = String::new();
                if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
                    return Failure::Usage(format!("cannot read the password: {e}")).report();
                }
                line.trim_end_matches(['\r', '\n']).to_owned()
            } else {
                match std::env::var("CONFAB_TEST_PASSWORD") {
                    Ok(p) => p,
                    Err(_) => {
                        return Failure::Usage(format!(
                            "give {address}'s password with --password-stdin or \
                             CONFAB_TEST_PASSWORD"
                        ))
                        .report()
                    }
                }
            };
            Some(TestUser {
                address: address.clone(),
                password,
            })
        }
    };
    let result = manage::run_with(deployment, |store| async move {
        let operator = manage::sign_in(&store, deployment).await?;
        operator.check(Right::View)?;
        let server = server_of(&store, args).await?;
        let needs_file = named.is_none() || !matches!(command, TestCommand::Registration(_));
        let file = if needs_file {
            read_users(
                &users_file(&manage::data_dir(deployment), &args.pool),
                &args.pool,
            )?
        } else {
            Vec::new()
        };
        let first = match named.clone().or_else(|| file.first().cloned()) {
            Some(u) => u,
            None => return Err(Failure::Failed("the test users file names no user".into())),
        };
        let second = file.iter().find(|u| u.address != first.address).cloned();
        let r = match command {
            TestCommand::Registration(_) => synthetic::registration(server, &first).await,
            TestCommand::Im(_) | TestCommand::Presence(_) => {
                let Some(second) = second else {
                    return Err(Failure::Failed(
                        "the test users file names one user; run `confab test setup` again".into(),
                    ));
                };
                if matches!(command, TestCommand::Im(_)) {
                    synthetic::im(server, &first, &second).await
                } else {
                    synthetic::presence(server, &first, &second).await
                }
            }
            TestCommand::Setup(_) => return Ok(ExitCode::from(2)),
        };
        report(&r, json)
    });
    result.unwrap_or_else(Failure::report)
}
