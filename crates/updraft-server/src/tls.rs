//! HTTPS/WSS: a listener whose accepted connections are TLS streams (rustls, ring provider).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::TlsFiles;
use crate::conns::{Connections, OVERFLOW_LIFETIME, Slot};
use crate::serve::AcceptBackoff;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The runtime whose apps' certificates the TLS listeners serve by SNI, set once it is open.
pub(crate) type AppCertificates = Arc<OnceLock<Arc<updraft_runtime::Runtime>>>;

pub(crate) fn server_config(files: &TlsFiles, apps: AppCertificates) -> anyhow::Result<Arc<ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("reading {}", files.cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", files.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&files.key).with_context(|| format!("reading {}", files.key.display()))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).context("TLS key")?;
    let server = CertifiedKey::new(certs, signer);
    server.keys_match().context("TLS certificate: the key does not belong to it")?;
    let resolver = BySni { server: Arc::new(server), apps };
    let mut config = ServerConfig::builder().with_no_client_auth().with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// An app's own certificate for its hosts (docs/runtime.md), the server's for every other name and for clients
/// that send none.
struct BySni {
    server: Arc<CertifiedKey>,
    apps: AppCertificates,
}

impl std::fmt::Debug for BySni {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BySni")
    }
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let app = hello.server_name().and_then(|name| self.apps.get()?.certificate_for(name));
        Some(app.unwrap_or_else(|| self.server.clone()))
    }
}

/// Accepts TCP and completes TLS handshakes off the accept path, so one slow client does not
/// hold up the others. A connection takes its place under the cap at accept, handshake included.
pub(crate) struct TlsListener {
    ready: tokio::sync::Mutex<mpsc::Receiver<(TlsStream<TcpStream>, Slot)>>,
}

impl TlsListener {
    pub(crate) fn new(tcp: TcpListener, config: Arc<ServerConfig>, connections: Arc<Connections>) -> TlsListener {
        let (tx, ready) = mpsc::channel(1024);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            let mut backoff = AcceptBackoff::default();
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(conn) => conn,
                    Err(err) => {
                        backoff.wait(&err).await;
                        continue;
                    }
                };
                backoff.reset();
                let Some(slot) = connections.admit() else { continue };
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                let ready = tx.clone();
                let timeout = if slot.is_overflow() { OVERFLOW_LIFETIME } else { HANDSHAKE_TIMEOUT };
                tokio::spawn(async move {
                    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = ready.send((tls, slot)).await;
                        }
                        Ok(Err(err)) => tracing::debug!(%err, %peer, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        TlsListener { ready: tokio::sync::Mutex::new(ready) }
    }
}

impl TlsListener {
    /// The next connection whose TLS handshake completed, with its place under the cap.
    pub(crate) async fn accept(&self) -> (TlsStream<TcpStream>, Slot) {
        match self.ready.lock().await.recv().await {
            Some(accepted) => accepted,
            // The acceptor task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }
}
