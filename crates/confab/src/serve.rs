//! `confab serve`: resolves the settings, starts logging, opens the management store (a first
//! start creates the data directory, the store, a SIP domain and the pool `default`, and says
//! what to do next), binds the SIP listeners with the transaction driver installed, prints
//! where they are, and runs until SIGINT or SIGTERM, holding the store open all along.
//!
//! Standard output carries only the `listening TRANSPORT://IP:PORT` lines (JSON objects with
//! `--json`), the admin listener's `listening http://IP:PORT` first, so that scripts and tests
//! can read the actual ports; logs and the first start's advice go to standard error.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use confab_ops::topology;
use confab_server::store_backed::StoreBacked;
use confab_server::DirectoryReplica;
use confab_server::Server;
use confab_server::{Router, ServerError, ServiceConfig, Stores};
use confab_store::{ChangeKind, Defaults, Store, StoreLocation};
use tracing::{error, info, warn};

use crate::first_start;
use crate::settings::{Origin, ServeSettings, SettingsError};

/// Exit status for settings an operator must fix.
const EXIT_SETTINGS: u8 = 2;
/// Exit status for failures at run time (a port in use, an unwritable directory).
const EXIT_RUNTIME: u8 = 1;

/// Runs a front-end with resolved settings.
pub fn run(settings: ServeSettings, json: bool) -> ExitCode {
    init_logging(&settings.log_level);
    if let Err(e) = create_data_dir(&settings.data_dir) {
        eprintln!(
            "error: cannot create the data directory {} (from {}): {e}; choose another with \
             --data-dir",
            settings.data_dir.display(),
            settings.origin("data_dir"),
        );
        return ExitCode::from(EXIT_RUNTIME);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    runtime.block_on(serve(settings, json))
}

/// Creates the data directory if it is missing, readable by its owner only: the store inside
/// holds HA1 values, each as good as a password for its realm. An existing one is left as is.
fn create_data_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn init_logging(filter: &str) {
    // The filter was checked when the settings were resolved; fall back to info regardless.
    let filter = tracing_subscriber::EnvFilter::builder()
        .parse(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

async fn serve(settings: ServeSettings, json: bool) -> ExitCode {
    info!(
        version = env!("CARGO_PKG_VERSION"),
        data_dir = %settings.data_dir.display(),
        config = ?settings.config_file,
        pool = settings.pool.as_deref().unwrap_or("(none)"),
        "confab serve starting"
    );
    let (store, location, created) = match open_store(&settings).await {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let code = front_end(&settings, &store, &location, &created, json).await;
    store.close().await;
    code
}

/// Opens (on a first start: creates) the management store and makes sure it has the defaults:
/// a SIP domain and the pool `default`. Returns what was created.
async fn open_store(
    settings: &ServeSettings,
) -> Result<(Store, StoreLocation, Defaults), ExitCode> {
    let location =
        StoreLocation::resolve(&settings.data_dir, settings.store.as_deref()).map_err(|e| {
            eprintln!("error: {e} (from {})", settings.origin("store"));
            ExitCode::from(EXIT_SETTINGS)
        })?;
    let store = Store::open(&location).await.map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_RUNTIME)
    })?;
    // The location prints itself without a URL's password.
    info!(store = %location, backend = store.backend().as_str(), "management store open");
    let created = match topology::ensure_defaults(&store, &settings.domain).await {
        Ok(created) => created,
        Err(e) => {
            eprintln!("error: {e}");
            store.close().await;
            return Err(ExitCode::from(EXIT_RUNTIME));
        }
    };
    // The first administrator, on a first start (or the first start after an upgrade to
    // change control): its credentials go to the data directory, for whoever started it.
    match confab_ops::control::bootstrap(&store).await {
        Ok(None) => {}
        Ok(Some(token)) => {
            let written = std::fs::create_dir_all(&settings.data_dir).and_then(|()| {
                crate::change::write_credentials(
                    &settings.data_dir,
                    confab_ops::control::FIRST_ADMINISTRATOR,
                    &token,
                )
            });
            match written {
                Ok(path) => info!(
                    administrator = confab_ops::control::FIRST_ADMINISTRATOR,
                    credentials = %path.display(),
                    "first administrator created, with every role"
                ),
                Err(e) => {
                    eprintln!(
                        "error: cannot write the first administrator's credentials to {}: {e}",
                        settings.data_dir.display()
                    );
                    store.close().await;
                    return Err(ExitCode::from(EXIT_RUNTIME));
                }
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            store.close().await;
            return Err(ExitCode::from(EXIT_RUNTIME));
        }
    }
    if !created.created_any() && settings.origin("domain") != Origin::Default {
        match topology::domains(&store).await {
            Ok(domains) if !domains.iter().any(|d| d.name == settings.domain) => warn!(
                domain = %settings.domain,
                from = %settings.origin("domain"),
                "the domain setting only names the domain a first start creates, and this \
                 deployment exists already without it; add it with `confab domain add {}`",
                settings.domain
            ),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "cannot list the SIP domains"),
        }
    }
    Ok((store, location, created))
}

/// The SIP side, from binding the listeners to shutdown.
async fn front_end(
    settings: &ServeSettings,
    store: &Store,
    location: &StoreLocation,
    created: &Defaults,
    json: bool,
) -> ExitCode {
    let (router, directory) = match build_router(settings, store).await {
        Ok(built) => built,
        Err(code) => return code,
    };
    let timers = settings.server.timers;
    info!(
        t1 = ?timers.t1(),
        t2 = ?timers.t2(),
        t4 = ?timers.t4(),
        max_transactions = settings.server.limits.max_transactions,
        "SIP transactions"
    );
    // The server hands the router's transaction driver its transmitter and runs its timers,
    // the expiry sweeper and the registration writer until shutdown.
    let server = match Server::bind_with_router(settings.server.clone(), Arc::clone(&router)).await
    {
        Ok(server) => server,
        Err(ServerError::Config(e)) => {
            report(&settings.explain(e));
            return ExitCode::from(EXIT_SETTINGS);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    // The admin listener: API, console, metrics, health.
    let admin_listener = match crate::admin::bind(settings.admin_listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "error: cannot listen for the admin API on {} (from {}): {e}; another process \
                 may hold the address: choose another with --admin-listen (port 0 picks a free one)",
                settings.admin_listen,
                settings.origin("admin_listen")
            );
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let admin_addr = admin_listener.local_addr().ok();
    let admin_tls = match (&settings.server.tls, settings.admin_tls) {
        (Some(files), true) => match confab_server::tls_acceptor(files) {
            Ok(a) => Some(a),
            Err(e) => {
                report(&settings.explain(e));
                return ExitCode::from(EXIT_SETTINGS);
            }
        },
        _ => None,
    };
    let shutdown = match shutdown_signal() {
        Ok(signal) => signal,
        Err(e) => {
            eprintln!("error: cannot install the SIGINT/SIGTERM handlers: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let scheme = if admin_tls.is_some() { "https" } else { "http" };
    let admin_url = admin_addr.map(|a| format!("{scheme}://{a}"));
    if created.created_any() {
        eprint!(
            "{}",
            first_start::next_steps(
                settings,
                location,
                created,
                &server.local_addrs(),
                admin_url.as_deref(),
            )
        );
    }
    if let Err(e) = announce(&server, admin_url.clone(), json) {
        error!(error = %e, "cannot write the listening addresses to standard output");
        return ExitCode::from(EXIT_RUNTIME);
    }
    let admin_state = Arc::new(crate::admin::AdminState::new(
        store.clone(),
        Arc::clone(&router),
        settings.data_dir.clone(),
        router.pool().to_owned(),
    ));
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin = tokio::spawn(crate::admin::serve(
        admin_listener,
        crate::admin::app(admin_state),
        admin_tls,
        async move {
            let _ = admin_stopped.await;
        },
    ));
    info!(admin = ?admin_addr, "admin API, web console and metrics");
    let watcher = tokio::spawn(follow_changes(
        store.clone(),
        Arc::clone(&router),
        directory,
    ));
    let sampler = tokio::spawn(sample_pool_usage(store.clone()));
    let scheduled = settings
        .backups
        .clone()
        .map(|schedule| tokio::spawn(scheduled_backups(store.clone(), schedule)));
    server.run(shutdown).await;
    let _ = stop_admin.send(());
    if tokio::time::timeout(std::time::Duration::from_secs(5), admin)
        .await
        .is_err()
    {
        warn!("the admin listener did not stop within 5 s");
    }
    watcher.abort();
    sampler.abort();
    if let Some(task) = scheduled {
        task.abort();
    }
    info!("confab serve stopped");
    ExitCode::SUCCESS
}

/// How often a front-end samples users per pool for the history the console charts.
const USAGE_SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Samples users per pool every [`USAGE_SAMPLE_EVERY`] (a row only for a pool whose count
/// changed), for as long as the server runs.
async fn sample_pool_usage(store: Store) {
    let mut tick = tokio::time::interval(USAGE_SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = store.sample_pool_usage().await {
            warn!(error = %e, "users per pool not sampled");
        }
    }
}

/// Takes a backup every `schedule.every` for as long as the server runs: written, verified
/// (restored into a scratch store and compared), recorded with its verification, and the
/// schedule's backups beyond `schedule.keep` deleted. A failure is logged and the next one is
/// tried at the next interval.
async fn scheduled_backups(store: Store, schedule: crate::settings::BackupSchedule) {
    info!(
        every = ?schedule.every,
        dir = %schedule.dir.display(),
        keep = schedule.keep,
        "scheduled backups"
    );
    let mut tick = tokio::time::interval(schedule.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is at once: the first backup comes one interval after the start.
    tick.tick().await;
    loop {
        tick.tick().await;
        let out = crate::backup::default_archive_in(&schedule.dir);
        let created = match confab_ops::backup::create(
            &store,
            confab_ops::backup::TakenBy::Schedule,
            &out,
            &mut |_| {},
        )
        .await
        {
            Ok(c) => c,
            Err(e) => {
                error!(error = %e, "scheduled backup failed");
                continue;
            }
        };
        match confab_ops::backup::verify(&created.path, Some(&store)).await {
            Ok(_) => info!(
                path = %created.path.display(),
                users = created.manifest.users,
                bytes = created.bytes,
                "scheduled backup written and verified"
            ),
            Err(e) => {
                error!(path = %created.path.display(), error = %e, "scheduled backup does not verify")
            }
        }
        match confab_ops::backup::prune(&store, &schedule.dir, schedule.keep).await {
            Ok(gone) if !gone.is_empty() => info!(?gone, "older scheduled backups deleted"),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "older scheduled backups not deleted"),
        }
    }
}

/// The front-end's replica of the directory, and where the change feed is to be followed
/// from to keep it current.
struct ReplicaFeed {
    replica: Arc<DirectoryReplica>,
    backed: Arc<StoreBacked>,
    /// The feed position read before the replica was filled: changes after it are applied
    /// again (harmlessly) rather than missed.
    from: i64,
}

/// The registrar, proxy and messaging over the management store, serving every SIP domain
/// of the deployment plus the listen addresses (so that `sip:alice@127.0.0.1` works too).
/// Users and credentials are answered from a replica of the directory filled here.
async fn build_router(
    settings: &ServeSettings,
    store: &Store,
) -> Result<(Arc<Router>, ReplicaFeed), ExitCode> {
    let mut service = ServiceConfig::for_listeners(&settings.server.listen);
    service.digest_algorithms = settings.digest_algorithms.clone();
    service.presence.unknown_watchers = settings.presence_unknown_watchers;
    let pool = settings
        .pool
        .clone()
        .unwrap_or_else(|| confab_store::DEFAULT_POOL.to_owned());
    match store.pools().await {
        Ok(pools) if pools.iter().any(|p| p.name == pool) => {}
        Ok(pools) => {
            let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
            eprintln!(
                "error: the pool '{pool}' is not in the topology (pools: {}); publish a topology \
                 that has it, or start with --pool set to one of those",
                names.join(", ")
            );
            return Err(ExitCode::from(EXIT_SETTINGS));
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Err(ExitCode::from(EXIT_RUNTIME));
        }
    }
    service.pool = pool;
    match topology::domains(store).await {
        Ok(domains) => {
            for d in domains {
                let name = d.name.to_ascii_lowercase();
                if !service.domains.contains(&name) {
                    service.domains.push(name);
                }
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Err(ExitCode::from(EXIT_RUNTIME));
        }
    }
    info!(domains = ?service.domains, "serving SIP domains");
    let backed = Arc::new(StoreBacked::new(store.clone()));
    let replica = Arc::new(DirectoryReplica::with_fallback(backed.clone()));
    let loaded = async {
        let from = store.last_change_seq().await.map_err(|e| e.to_string())?;
        let users = backed
            .load_replica(&replica)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((from, users))
    };
    let (from, users) = match loaded.await {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: cannot read the users of the management store: {e}");
            return Err(ExitCode::from(EXIT_RUNTIME));
        }
    };
    info!(users, "directory loaded");
    let stores = Stores {
        directory: replica.clone(),
        registrations: backed.clone(),
        offline: backed.clone(),
        presence: backed.clone(),
        pools: backed.clone(),
    };
    let router = Router::new(&settings.server, service, stores).map_err(|e| {
        report(&settings.explain(e));
        ExitCode::from(EXIT_SETTINGS)
    })?;
    match router.pools_changed().await {
        Ok(pools) => info!(pools, pool = router.pool(), "topology read"),
        Err(e) => {
            eprintln!("error: cannot read the pools of the management store: {e}");
            return Err(ExitCode::from(EXIT_RUNTIME));
        }
    }
    match router.sources_changed().await {
        Ok(0) => {}
        Ok(n) => info!(networks = n, "source networks blocked at ingress"),
        Err(e) => {
            eprintln!("error: cannot read the blocked sources of the management store: {e}");
            return Err(ExitCode::from(EXIT_RUNTIME));
        }
    }
    Ok((
        router,
        ReplicaFeed {
            replica,
            backed,
            from,
        },
    ))
}

/// Above this many users named in one batch of the change feed, the whole directory is read
/// again instead of each user.
const BULK_CHANGES: usize = 256;

fn is_user_change(kind: &ChangeKind) -> bool {
    matches!(
        kind,
        ChangeKind::UserAdded
            | ChangeKind::UserEnabled
            | ChangeKind::UserDisabled
            | ChangeKind::UserRemoved
            | ChangeKind::CredentialsSet
            | ChangeKind::UserMoved
    )
}

/// Follows the store's change feed for as long as the server runs, so that an operator's
/// change takes effect here within a second (the feed is polled every
/// `confab_store::POLL_INTERVAL`, or woken by PostgreSQL's NOTIFY): the replica of the
/// directory takes every change of a user (added, enabled, disabled, removed, new
/// credentials), a user disabled or removed is signed out at once, and a user for whom an
/// offline message was kept (by any front-end) gets it if signed in here. After the feed could
/// not be read, the whole replica is read again, since changes may have been missed. Domains
/// added while running are served after a restart.
async fn follow_changes(store: Store, router: Arc<Router>, directory: ReplicaFeed) {
    let mut watcher = store.watch_changes(directory.from).await;
    loop {
        let changes = match watcher.next().await {
            Ok(changes) => changes,
            Err(e) => {
                warn!(error = %e, "reading the change feed failed; retrying");
                tokio::time::sleep(confab_store::POLL_INTERVAL).await;
                // Changes may have been missed meanwhile.
                reload_directory(&directory).await;
                continue;
            }
        };
        // A bulk import names thousands of users at once: one read of the whole directory is
        // then cheaper than one read per user.
        let named = changes.iter().filter(|c| is_user_change(&c.kind)).count();
        // Users per pool may have changed (users added, removed, moved; pools published):
        // the history the console charts follows at once, whoever made the change.
        let homes_changed = named > 0
            || changes.iter().any(|c| {
                matches!(
                    c.kind,
                    ChangeKind::TopologyPublished
                        | ChangeKind::PoolAdded
                        | ChangeKind::PoolRemoved
                        | ChangeKind::StoreRestored
                )
            });
        if homes_changed {
            if let Err(e) = store.sample_pool_usage().await {
                warn!(error = %e, "users per pool not sampled");
            }
        }
        let mut reload = named > BULK_CHANGES;
        if reload {
            reload_directory(&directory).await;
        }
        for change in changes {
            if !reload && is_user_change(&change.kind) {
                let refreshed = directory
                    .backed
                    .refresh_replica(&directory.replica, &change.subject)
                    .await;
                if let Err(e) = refreshed {
                    warn!(user = %change.subject, error = %e, "cannot read a changed user; reading every user again");
                    reload_directory(&directory).await;
                    reload = true;
                }
            }
            // After the replica has the change, so that a client signing in again at once is
            // refused.
            match change.kind {
                ChangeKind::UserDisabled | ChangeKind::UserRemoved => {
                    router.drop_user(&change.subject);
                }
                ChangeKind::UserMoved => {
                    router.user_moved(&change.subject).await;
                }
                // Delivered at once if the user is signed in here, in a task of its own:
                // the round waits on the client, and the feed must not.
                ChangeKind::OfflineMessageStored => {
                    let router = Arc::clone(&router);
                    tokio::spawn(async move { router.offline_stored(&change.subject).await });
                }
                // Watchers of the user are decided anew, in a task of its own (it reads the
                // store).
                ChangeKind::ContactsChanged | ChangeKind::PresenceRulesChanged => {
                    let router = Arc::clone(&router);
                    tokio::spawn(async move {
                        if let Err(e) = router.presence_policy_changed(&change.subject).await {
                            warn!(user = %change.subject, error = %e, "presence rules not read again");
                        }
                    });
                }
                // Where users of other pools are served.
                ChangeKind::PoolAdded | ChangeKind::PoolRemoved => {
                    pools_changed(&router).await;
                }
                ChangeKind::TopologyPublished => {
                    pools_changed(&router).await;
                }
                // A pool went into maintenance or left it: its users are served by its pair,
                // or by itself again.
                // The whole store was replaced by a backup's state: every user, the pools and
                // the blocked sources are read again. (Users who are gone from it are no
                // longer found, so they cannot sign in again.)
                ChangeKind::StoreRestored => {
                    info!(by = %change.subject, "the store was restored from a backup; reading it again");
                    reload_directory(&directory).await;
                    pools_changed(&router).await;
                    if let Err(e) = router.sources_changed().await {
                        warn!(error = %e, "the blocked sources could not be read; list unchanged");
                    }
                }
                ChangeKind::PoolMaintenance => {
                    info!(pool = %change.subject, "a pool's maintenance changed");
                    pools_changed(&router).await;
                }
                // An operator blocked or unblocked a source network: at once.
                ChangeKind::SourcesChanged => match router.sources_changed().await {
                    Ok(n) => {
                        info!(networks = n, changed = %change.subject, "blocked sources read again")
                    }
                    Err(e) => {
                        warn!(error = %e, "the blocked sources could not be read; list unchanged")
                    }
                },
                ChangeKind::DomainAdded => info!(
                    domain = %change.subject,
                    "SIP domain added; this front-end serves it after a restart"
                ),
                _ => {}
            }
        }
    }
}

/// Reads the topology's pools again after a change.
async fn pools_changed(router: &Arc<Router>) {
    match router.pools_changed().await {
        Ok(pools) => info!(pools, "topology read again"),
        Err(e) => warn!(error = %e, "the changed topology could not be read; routes unchanged"),
    }
}

/// Reads the whole directory into the replica, retrying until the store answers.
async fn reload_directory(directory: &ReplicaFeed) {
    loop {
        match directory.backed.load_replica(&directory.replica).await {
            Ok(users) => {
                info!(users, "directory read again");
                return;
            }
            Err(e) => {
                warn!(error = %e, "cannot read the directory; retrying");
                tokio::time::sleep(confab_store::POLL_INTERVAL).await;
            }
        }
    }
}

fn report(e: &SettingsError) {
    eprintln!("error: {e}");
}

/// One line per listener on standard output, flushed at once.
fn announce(server: &Server, admin: Option<String>, json: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    // The admin listener first, so that a reader counting SIP listeners has seen it by then.
    for uri in admin
        .into_iter()
        .chain(server.local_addrs().iter().map(|u| u.to_string()))
    {
        if json {
            writeln!(out, "{{\"listening\":\"{uri}\"}}")?;
        } else {
            writeln!(out, "listening {uri}")?;
        }
    }
    out.flush()
}

/// A future that completes on SIGINT (Ctrl-C) or SIGTERM, logging which. The handlers are
/// installed when this is called, before the listeners are announced, so a signal sent as
/// soon as a script sees them is not lost.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => info!(signal = "SIGINT", "shutdown requested"),
            _ = term.recv() => info!(signal = "SIGTERM", "shutdown requested"),
        }
    })
}

/// A future that completes on Ctrl-C, logging it.
#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => info!(signal = "SIGINT", "shutdown requested"),
            Err(e) => {
                error!(error = %e, "cannot watch Ctrl-C; the server runs until killed");
                std::future::pending::<()>().await;
            }
        }
    })
}

/// Reports a settings error the way `serve` does, for errors found before it runs.
pub fn settings_error(e: &SettingsError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(EXIT_SETTINGS)
}
