//! `confab serve`: resolves the settings, starts logging, binds the SIP listeners with the
//! transaction driver installed, prints where they are, and runs until SIGINT or SIGTERM.
//!
//! Standard output carries only the `listening TRANSPORT://IP:PORT` lines (JSON objects with
//! `--json`), so that scripts and tests can read the actual ports; logs go to standard error.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use confab_server::{Server, ServerError, TransactionDriver};
use tracing::{error, info};

use crate::settings::{ServeSettings, SettingsError};

/// Exit status for settings an operator must fix.
const EXIT_SETTINGS: u8 = 2;
/// Exit status for failures at run time (a port in use, an unwritable directory).
const EXIT_RUNTIME: u8 = 1;

/// Runs a front-end with resolved settings.
pub fn run(settings: ServeSettings, json: bool) -> ExitCode {
    init_logging(&settings.log_level);
    if let Err(e) = std::fs::create_dir_all(&settings.data_dir) {
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
    match &settings.store {
        // The URL may carry a password: log its scheme only.
        Some(url) => info!(
            store = url.split_once(':').map_or("?", |(s, _)| s),
            "management store given; the store arrives in a later issue and is not opened yet"
        ),
        None => info!("management store: SQLite in the data directory (arrives in a later issue)"),
    }
    info!(
        admin_listen = %settings.admin_listen,
        "the admin API arrives in a later issue; not listening on admin_listen yet"
    );
    // The server hands the driver its transmitter and runs its timers until shutdown.
    let driver = Arc::new(TransactionDriver::new(&settings.server));
    let timers = settings.server.timers;
    info!(
        t1 = ?timers.t1(),
        t2 = ?timers.t2(),
        t4 = ?timers.t4(),
        max_transactions = settings.server.limits.max_transactions,
        "SIP transactions"
    );
    let server = match Server::bind_with(settings.server.clone(), Some(driver)).await {
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
    let shutdown = match shutdown_signal() {
        Ok(signal) => signal,
        Err(e) => {
            eprintln!("error: cannot install the SIGINT/SIGTERM handlers: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    if let Err(e) = announce(&server, json) {
        error!(error = %e, "cannot write the listening addresses to standard output");
        return ExitCode::from(EXIT_RUNTIME);
    }
    server.run(shutdown).await;
    info!("confab serve stopped");
    ExitCode::SUCCESS
}

fn report(e: &SettingsError) {
    eprintln!("error: {e}");
}

/// One line per listener on standard output, flushed at once.
fn announce(server: &Server, json: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for uri in server.local_addrs() {
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
