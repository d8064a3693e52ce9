//! What every management command (`confab user …`, `confab domain …`) shares: finding and
//! opening the deployment's store, running the operation, and reporting it — text for people,
//! one JSON document with `--json` for scripts, errors on standard error, and the exit status:
//! 0 done, 1 refused or failed (nothing changed), 2 a usage error.
//!
//! A management command never creates a deployment: a data directory without a store is
//! almost always a mistyped `--data-dir` (or a command run from another directory), and a new
//! empty store there would only hide that. `confab serve` creates the store on its first start.

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use confab_ops::control::{self, ChangeContext, Operator, Right};
use confab_ops::OpsError;
use confab_store::{ChangeClass, Store, StoreError, StoreLocation};
use serde::Serialize;

use crate::cli::DeploymentArgs;
use crate::settings::DEFAULT_DATA_DIR;

/// Why a management command did not do its work.
#[derive(Debug)]
pub enum Failure {
    /// The command line cannot work as given (exit status 2).
    Usage(String),
    /// The operation was refused or failed (exit status 1); the message says what to do.
    Failed(String),
}

impl From<OpsError> for Failure {
    fn from(e: OpsError) -> Self {
        Failure::Failed(e.to_string())
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Failed(e.to_string())
    }
}

impl Failure {
    /// Prints the error and gives the exit status.
    pub fn report(self) -> ExitCode {
        let code = match self {
            Failure::Usage(_) => 2,
            Failure::Failed(_) => 1,
        };
        self.report_as(code)
    }

    /// Prints the error and gives the exit status `code` (a command whose 1 means something
    /// else, like `topology diff`).
    pub fn report_as(self, code: u8) -> ExitCode {
        let message = match self {
            Failure::Usage(m) | Failure::Failed(m) => m,
        };
        eprintln!("error: {message}");
        ExitCode::from(code)
    }
}

/// Opens the deployment's store, runs `op` on it, closes the store and reports.
pub fn run<F, Fut>(deployment: &DeploymentArgs, op: F) -> ExitCode
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    match run_with(deployment, |store| async move {
        op(store).await.map(|()| ExitCode::SUCCESS)
    }) {
        Ok(code) => code,
        Err(failure) => failure.report(),
    }
}

/// As [`run`], for a command with exit statuses of its own: `op` gives the status, and a
/// failure is left to the caller to report.
pub fn run_with<F, Fut>(deployment: &DeploymentArgs, op: F) -> Result<ExitCode, Failure>
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = Result<ExitCode, Failure>>,
{
    block_on(async {
        let store = open(deployment).await?;
        let result = op(store.clone()).await;
        store.close().await;
        result
    })
}

/// Runs `fut` on a runtime of its own.
pub fn block_on<T>(fut: impl Future<Output = Result<T, Failure>>) -> Result<T, Failure> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return Err(Failure::Failed(format!(
                "cannot start the async runtime: {e}"
            )))
        }
    };
    runtime.block_on(fut)
}

/// The store named by `--store`, or the one in `--data-dir`; it must exist already.
pub async fn open(deployment: &DeploymentArgs) -> Result<Store, Failure> {
    let data_dir = data_dir(deployment);
    // A store URL that does not parse is a mistake on the command line (or in CONFAB_STORE).
    let location = StoreLocation::resolve(&data_dir, deployment.store.as_deref())
        .map_err(|e| Failure::Usage(e.to_string()))?;
    if let StoreLocation::Sqlite { path } = &location {
        // An error here (a directory we may not read) is left to the store to report.
        if let Ok(false) = path.try_exists() {
            let serve = match deployment.store {
                Some(_) => "confab serve --store URL".to_owned(),
                None => format!("confab serve --data-dir {}", shell_word(&data_dir)),
            };
            return Err(Failure::Failed(format!(
                "no management store at {location}; give the deployment's data directory with \
                 --data-dir DIR (or CONFAB_DATA_DIR) or its store with --store URL, or create a \
                 new deployment by starting `{serve}` once"
            )));
        }
    }
    Ok(Store::open(&location).await?)
}

/// As [`run`], on the deployment's store created when it does not exist yet (a restore into
/// a new data directory).
pub fn run_creating<F, Fut>(deployment: &DeploymentArgs, op: F) -> ExitCode
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let result = block_on(async {
        let location = StoreLocation::resolve(&data_dir(deployment), deployment.store.as_deref())
            .map_err(|e| Failure::Usage(e.to_string()))?;
        let store = Store::open(&location).await?;
        let result = op(store.clone()).await;
        store.close().await;
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

/// The deployment's data directory: --data-dir, else the default.
pub fn data_dir(deployment: &DeploymentArgs) -> PathBuf {
    deployment
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

/// The administrator a management command acts as: the credentials file `--credentials`
/// (`CONFAB_CREDENTIALS`) names, else `CONFAB_ADMIN` and `CONFAB_ADMIN_TOKEN`, else the
/// credentials file of the data directory (`admin.credentials`, which a first start writes).
/// A deployment without any administrator (one created before change control) gets its first
/// one here, as a first start would give it.
pub async fn sign_in(store: &Store, deployment: &DeploymentArgs) -> Result<Operator, Failure> {
    let data_dir = data_dir(deployment);
    let file = data_dir.join(crate::change::CREDENTIALS_FILE);
    if let Some(own) = &deployment.credentials {
        let text = std::fs::read_to_string(own).map_err(|e| {
            Failure::Failed(format!(
                "cannot read the credentials file {} (--credentials): {e}",
                own.display()
            ))
        })?;
        let (name, token) = read_credentials(&text).ok_or_else(|| {
            Failure::Failed(format!(
                "{} is not a credentials file: it needs name = \"…\" and token = \"…\"",
                own.display()
            ))
        })?;
        return Ok(control::sign_in(store, &name, &token, "cli").await?);
    }
    let (name, token) = match (
        std::env::var("CONFAB_ADMIN"),
        std::env::var("CONFAB_ADMIN_TOKEN"),
    ) {
        (Ok(name), Ok(token)) => (name, token),
        _ => match std::fs::read_to_string(&file) {
            Ok(text) => read_credentials(&text).ok_or_else(|| {
                Failure::Failed(format!(
                    "{} is not a credentials file (name = \"…\" and token = \"…\"); restore \
                     it, or set CONFAB_ADMIN and CONFAB_ADMIN_TOKEN",
                    file.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match control::bootstrap(store).await? {
                    Some(token) => {
                        let path = crate::change::write_credentials(
                            &data_dir,
                            control::FIRST_ADMINISTRATOR,
                            &token,
                        )
                        .map_err(|e| {
                            Failure::Failed(format!(
                                "cannot write the first administrator's credentials to {}: {e}",
                                file.display()
                            ))
                        })?;
                        eprintln!(
                            "note: this deployment had no administrator; created '{}' with every \
                             role, credentials in {}",
                            control::FIRST_ADMINISTRATOR,
                            path.display()
                        );
                        (control::FIRST_ADMINISTRATOR.to_owned(), token)
                    }
                    None => {
                        return Err(Failure::Failed(format!(
                            "sign in as an administrator: no credentials file at {} and no \
                             CONFAB_ADMIN and CONFAB_ADMIN_TOKEN; copy the credentials file of \
                             the data directory where the deployment first started, or ask an \
                             administrator for a token",
                            file.display()
                        )))
                    }
                }
            }
            Err(e) => {
                return Err(Failure::Failed(format!(
                    "cannot read the credentials file {}: {e}",
                    file.display()
                )))
            }
        },
    };
    Ok(control::sign_in(store, &name, &token, "cli").await?)
}

/// `name` and `token` from a credentials file.
fn read_credentials(text: &str) -> Option<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Credentials {
        name: String,
        token: String,
    }
    let c: Credentials = toml::from_str(text).ok()?;
    Some((c.name, c.token))
}

/// A standard change by `operator` needing `right`, authorised.
pub fn standard(operator: &Operator, right: Right) -> Result<ChangeContext<'_>, Failure> {
    Ok(control::authorize(operator, right, ChangeClass::Standard)?)
}

/// A path as one shell word, quoted when it needs to be.
pub fn shell_word(path: &std::path::Path) -> String {
    let text = path.display().to_string();
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '-' | '_' | '+' | ':'));
    if plain {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// Writes `text` to standard output. A reader that went away (`| head`) is not an error.
pub fn print(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::Failed(format!(
            "cannot write to standard output: {e}"
        ))),
    }
}

/// Writes `value` to standard output as one line of JSON.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string(value)
        .map_err(|e| Failure::Failed(format!("cannot write JSON: {e}")))?;
    print(&format!("{text}\n"))
}

/// A warning for the operator, on standard error.
pub fn warn(text: &str) {
    eprintln!("warning: {text}");
}

pub use confab_ops::time::utc;

/// Lines of cells as a table: columns padded to their widest cell, two spaces apart.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count()) + 2;
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn tables_align() {
        let rows = vec![
            vec!["USER".to_owned(), "POOL".to_owned(), "NAME".to_owned()],
            vec!["alice@x".to_owned(), "p".to_owned(), String::new()],
        ];
        assert_eq!(table(&rows), "USER     POOL  NAME\nalice@x  p\n");
    }

    #[test]
    fn shell_words() {
        assert_eq!(shell_word("/srv/confab-data".as_ref()), "/srv/confab-data");
        assert_eq!(shell_word("my data".as_ref()), "'my data'");
        assert_eq!(shell_word("it's".as_ref()), r"'it'\''s'");
    }
}
