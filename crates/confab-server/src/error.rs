//! Typed errors, one per area: [`ConfigError`] for settings a front-end refuses before it
//! opens any socket, [`TransportError`] for sockets that cannot be opened, and
//! [`ServerError`], what [`crate::Server::bind`] returns. Every message says what is wrong
//! and, where the operator can fix it, how.

use std::io;
use std::path::PathBuf;

/// A setting the server cannot run with. Nothing has been bound when this is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A listen URI that does not parse.
    #[error(
        "invalid listen URI '{uri}': {problem}; write it as TRANSPORT://IP:PORT with TRANSPORT \
         one of udp, tcp, tls, ws, wss (e.g. udp://0.0.0.0:5060, tls://[::]:5061)"
    )]
    ListenUri {
        /// The URI as given.
        uri: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// No listener at all.
    #[error("no SIP listener configured; give at least one --listen URI, e.g. udp://0.0.0.0:5060")]
    NoListeners,
    /// The same transport and address twice.
    #[error("listener {uri} is given twice; remove one of them")]
    DuplicateListener {
        /// The repeated URI.
        uri: String,
    },
    /// A limit outside its allowed range.
    #[error("{name} = {value} is out of range; {allowed}")]
    Limit {
        /// The setting's name.
        name: &'static str,
        /// The value given.
        value: String,
        /// The allowed range, in the operator's words.
        allowed: &'static str,
    },
    /// A TLS listener without certificate and key.
    #[error(
        "listener {uri} needs a certificate and key: set tls_cert and tls_key (--tls-cert FILE \
         --tls-key FILE, or CONFAB_TLS_CERT / CONFAB_TLS_KEY); for development create a pair \
         with `confab tls generate --cert cert.pem --key key.pem`"
    )]
    TlsFilesMissing {
        /// The listener that needs them.
        uri: String,
    },
    /// A certificate or key file that cannot be read.
    #[error("cannot read TLS {what} file {}: {source}", path.display())]
    TlsFile {
        /// "certificate" or "key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        source: io::Error,
    },
    /// A certificate or key file that holds no usable PEM.
    #[error("TLS {what} file {}: {problem}", path.display())]
    TlsPem {
        /// "certificate" or "key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// rustls refused the certificate and key (e.g. they do not belong together).
    #[error("TLS certificate and key cannot be used: {0}; check that the key belongs to the certificate")]
    TlsConfig(String),
}

/// A socket that could not be opened or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A listener could not be bound.
    #[error("cannot listen on {uri}: {source}{}", bind_hint(source))]
    Bind {
        /// The listener.
        uri: String,
        /// The operating system's reason.
        source: io::Error,
    },
}

fn bind_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::AddrInUse => {
            "; another process (another confab?) holds this port: stop it or choose another \
             port with --listen"
        }
        io::ErrorKind::PermissionDenied => {
            "; ports below 1024 need privileges: choose a port of 1024 or more, or grant \
             CAP_NET_BIND_SERVICE"
        }
        io::ErrorKind::AddrNotAvailable => {
            "; this machine has no such address: use one of its own addresses, or 0.0.0.0 / [::] \
             for all of them"
        }
        _ => "",
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A setting is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A socket could not be opened.
    #[error(transparent)]
    Transport(#[from] TransportError),
}
