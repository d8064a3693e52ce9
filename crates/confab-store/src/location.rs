//! Where a deployment's management store is: the SQLite file in the data directory (the
//! default), another SQLite file named by a `sqlite:` URL, or a PostgreSQL database named by a
//! `postgres://` or `postgresql://` URL — the forms `confab`'s `--data-dir` and `--store`
//! accept. A URL may carry a password, so a location only ever shows itself without one.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::StoreError;

/// The name of the SQLite file inside a data directory.
pub const SQLITE_FILE: &str = "confab.db";

const URL_FIX: &str = "use postgres://USER@HOST/DB (or postgresql://) for a shared PostgreSQL \
                       store, sqlite:PATH for a SQLite file, or leave the store unset for the \
                       SQLite file in the data directory";

/// Where the management store lives.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite database file, created with its directory on first open.
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// A PostgreSQL database.
    Postgres {
        /// The connection URL, as given (it may carry a password: never log it).
        url: String,
    },
}

impl StoreLocation {
    /// The location named by `confab`'s `--data-dir` and `--store`: the store URL if one is
    /// given, else the SQLite file [`SQLITE_FILE`] in the data directory.
    pub fn resolve(data_dir: &Path, store_url: Option<&str>) -> Result<Self, StoreError> {
        match store_url {
            Some(url) => Self::parse_url(url),
            None => Ok(Self::in_data_dir(data_dir)),
        }
    }

    /// The SQLite file in a data directory.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        StoreLocation::Sqlite {
            path: data_dir.join(SQLITE_FILE),
        }
    }

    /// A store URL: `postgres://…`, `postgresql://…` (scheme case-insensitive, the rest
    /// passed to the driver as given), or `sqlite:PATH`, `sqlite://PATH`, `sqlite:///ABS/PATH`
    /// (a relative path is relative to the working directory).
    pub fn parse_url(url: &str) -> Result<Self, StoreError> {
        let url = url.trim();
        let scheme_end = url.find(':').unwrap_or(url.len());
        let scheme = url[..scheme_end].to_ascii_lowercase();
        let rest = &url[scheme_end..];
        match scheme.as_str() {
            "postgres" | "postgresql" if rest.starts_with("://") => {
                if rest.len() == 3 {
                    return Err(location_error(url, URL_FIX));
                }
                Ok(StoreLocation::Postgres {
                    url: url.to_owned(),
                })
            }
            "sqlite" => {
                let path = rest.strip_prefix(':').unwrap_or(rest);
                // sqlite://rel/x.db and sqlite:///abs/x.db, as other tools write them.
                let path = match path.strip_prefix("//") {
                    Some(p) if p.starts_with('/') => p,
                    Some(p) => p,
                    None => path,
                };
                if path.is_empty() || path == ":memory:" {
                    return Err(location_error(
                        url,
                        "name the database file, e.g. sqlite:/srv/confab/confab.db (a store \
                         in memory would lose everything on exit)",
                    ));
                }
                if path.contains(['?', '#']) {
                    return Err(location_error(
                        url,
                        "give the file path only: options such as ?mode= are not supported \
                         (the store sets WAL mode, the busy timeout and foreign keys itself)",
                    ));
                }
                Ok(StoreLocation::Sqlite {
                    path: PathBuf::from(path),
                })
            }
            _ => Err(location_error(url, URL_FIX)),
        }
    }
}

fn location_error(url: &str, fix: &str) -> StoreError {
    StoreError::Location {
        location: redact(url),
        fix: fix.to_owned(),
    }
}

/// A URL without the password of its user info (`postgres://u:secret@h/db` shows as
/// `postgres://u:…@h/db`), and anything unparseable shown by its scheme only.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return match url.split_once(':') {
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("sqlite") => url.to_owned(),
            Some((scheme, _)) => format!("{scheme}:…"),
            None => "…".to_owned(),
        };
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:…@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    // A password may also sit in the query string (?password=…).
    let tail = match tail.split_once('?') {
        Some((path, query)) if query.to_ascii_lowercase().contains("password") => {
            format!("{path}?…")
        }
        _ => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite { path } => write!(f, "sqlite:{}", path.display()),
            StoreLocation::Postgres { url } => f.write_str(&redact(url)),
        }
    }
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug output ends up in logs too: never the password.
        write!(f, "StoreLocation({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dir_and_urls() {
        let dir = Path::new("/srv/confab");
        assert_eq!(
            StoreLocation::resolve(dir, None).ok(),
            Some(StoreLocation::Sqlite {
                path: PathBuf::from("/srv/confab/confab.db")
            })
        );
        for (url, path) in [
            ("sqlite:x.db", "x.db"),
            ("sqlite://rel/x.db", "rel/x.db"),
            ("sqlite:///abs/x.db", "/abs/x.db"),
            ("SQLITE:/abs/x.db", "/abs/x.db"),
        ] {
            let want = StoreLocation::Sqlite { path: path.into() };
            assert_eq!(StoreLocation::parse_url(url).ok(), Some(want), "{url}");
        }
        for url in [
            "postgres://u@h/db",
            "PostgreSQL://u:pw@h:5433/db?sslmode=disable",
        ] {
            assert!(matches!(
                StoreLocation::parse_url(url),
                Ok(StoreLocation::Postgres { .. })
            ));
        }
        for bad in [
            "mysql://h/db",
            "postgres:/h",
            "postgres://",
            "sqlite:",
            "sqlite::memory:",
            "sqlite:x.db?mode=ro",
            "",
        ] {
            assert!(StoreLocation::parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_never_shown() {
        let loc = StoreLocation::parse_url("postgres://confab:hunter2@db:5432/confab");
        let shown = loc.map(|l| format!("{l} {l:?}")).unwrap_or_default();
        assert!(
            shown.contains("postgres://confab:…@db:5432/confab"),
            "{shown}"
        );
        assert!(!shown.contains("hunter2"));
        assert_eq!(
            redact("postgres://h/db?user=u&password=hunter2"),
            "postgres://h/db?…"
        );
        let err = StoreLocation::parse_url("mysql://u:hunter2@h/db")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            !err.contains("hunter2") && err.contains("postgres://"),
            "{err}"
        );
    }
}
