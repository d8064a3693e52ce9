//! `confab tls generate`: a self-signed certificate and key (rcgen, ring) for development and
//! tests, so that `tls://` and `wss://` listeners can be tried without a certificate
//! authority. Existing files are kept unless `--force`; the key is written readable by its
//! owner only.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use rcgen::{CertificateParams, DnType, KeyPair};

use crate::cli::TlsGenerateArgs;

/// The names of a certificate made without `--name`.
pub const DEFAULT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Why no certificate was written.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// A target file exists.
    #[error("{} exists; choose another path or pass --force to overwrite it", .0.display())]
    Exists(std::path::PathBuf),
    /// rcgen refused (an unusable name, say).
    #[error("cannot create the certificate: {0}; names must be host names or IP addresses")]
    Certificate(#[from] rcgen::Error),
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Creates the certificate and key.
pub fn generate(args: &TlsGenerateArgs) -> Result<Vec<String>, GenerateError> {
    let names: Vec<String> = if args.names.is_empty() {
        DEFAULT_NAMES.iter().map(|n| (*n).to_owned()).collect()
    } else {
        args.names.iter().map(|n| n.trim().to_owned()).collect()
    };
    if !args.force {
        for path in [&args.cert, &args.key] {
            if path.exists() {
                return Err(GenerateError::Exists(path.clone()));
            }
        }
    }
    let mut params = CertificateParams::new(names.clone())?;
    if let Some(first) = names.first() {
        params
            .distinguished_name
            .push(DnType::CommonName, first.as_str());
    }
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Confab development certificate");
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    write(&args.cert, cert.pem().as_bytes(), false)?;
    write(&args.key, key.serialize_pem().as_bytes(), true)?;
    Ok(names)
}

fn write(path: &Path, contents: &[u8], private: bool) -> Result<(), GenerateError> {
    let failed = |source| GenerateError::Write {
        path: path.to_owned(),
        source,
    };
    // With --force, start from a new file, so that the key gets its owner-only mode.
    if path.exists() {
        std::fs::remove_file(path).map_err(failed)?;
    }
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).map_err(failed)?;
    file.write_all(contents).map_err(failed)?;
    file.sync_all().map_err(failed)
}

/// Runs `confab tls generate`, reporting to the operator.
pub fn run(args: &TlsGenerateArgs, json: bool) -> ExitCode {
    match generate(args) {
        Ok(names) => {
            if json {
                let names: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
                println!(
                    "{{\"cert\":{:?},\"key\":{:?},\"names\":[{}]}}",
                    args.cert.display().to_string(),
                    args.key.display().to_string(),
                    names.join(",")
                );
            } else {
                println!(
                    "wrote certificate {} and key {} for {}",
                    args.cert.display(),
                    args.key.display(),
                    names.join(", ")
                );
                println!(
                    "self-signed, for development: clients must be told to trust {}",
                    args.cert.display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
