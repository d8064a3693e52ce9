//! TLS (rustls with the ring provider): loading the certificate chain and key from PEM files
//! once at start-up, and SIP over TLS, which is SIP over TCP after a handshake that must
//! finish within the header timeout. The same acceptor serves `wss://` listeners.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tracing::debug;

use super::stream;
use super::tcp::Accepted;
use super::Shared;
use crate::config::TlsFiles;
use crate::error::ConfigError;

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::TlsFile {
        what,
        path: path.to_owned(),
        source,
    })
}

/// Builds the TLS acceptor from the configured PEM files.
pub(crate) fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, ConfigError> {
    let pem = |what, problem: String| ConfigError::TlsPem {
        what,
        path: if what == "key" {
            files.key.clone()
        } else {
            files.cert.clone()
        },
        problem,
    };
    let cert_pem = read("certificate", &files.cert)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem("certificate", format!("not a PEM certificate chain ({e})")))?;
    if certs.is_empty() {
        return Err(pem(
            "certificate",
            "holds no CERTIFICATE block; give the PEM certificate chain, leaf first".into(),
        ));
    }
    let key_pem = read("key", &files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        pem(
            "key",
            format!("holds no PEM private key (PKCS#8, PKCS#1 or SEC1) ({e})"),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::TlsConfig(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ConfigError::TlsConfig(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves one SIP-over-TLS connection.
pub(crate) async fn serve(conn: Accepted, shared: Arc<Shared>, acceptor: TlsAcceptor) {
    let Accepted {
        stream,
        source,
        registration,
        outbound,
        at,
    } = conn;
    // The handshake counts against the first message's deadline: a client that opens a
    // connection and stalls in the handshake is a slow loris too.
    let tls = match timeout(shared.limits.header_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            debug!(error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            debug!("TLS handshake not complete within the header timeout");
            return;
        }
    };
    debug!("TLS connection established");
    let closed = stream::serve(tls, source, &shared, outbound, at).await;
    stream::log_close(&source, &closed);
    drop(registration);
}
