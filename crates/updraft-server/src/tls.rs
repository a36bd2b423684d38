//! HTTPS/WSS: a listener whose accepted connections are TLS streams (rustls, ring provider).

use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime};

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
    let server = ServerCertificate::load(files)?;
    let resolver = BySni { server, apps };
    let mut config = ServerConfig::builder().with_no_client_auth().with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// How often a handshake may look whether the certificate files changed.
const RECHECK: Duration = Duration::from_secs(1);

/// The server's certificate, read again when its files change: certbot and cert-manager renew them in place, and
/// a renewal must not need a restart. A handshake looks at the files' times at most once per [`RECHECK`]; a pair
/// that does not load (half written, or a key of another certificate) leaves the last good one served until the
/// files change again.
struct ServerCertificate {
    files: TlsFiles,
    current: RwLock<Loaded>,
}

struct Loaded {
    key: Arc<CertifiedKey>,
    /// The files' modification times when last read.
    stamp: Option<[SystemTime; 2]>,
    checked: Instant,
}

impl ServerCertificate {
    fn load(files: &TlsFiles) -> anyhow::Result<ServerCertificate> {
        let stamp = stamp(files);
        let key = Arc::new(certified_key(files)?);
        let current = RwLock::new(Loaded { key, stamp, checked: Instant::now() });
        Ok(ServerCertificate { files: files.clone(), current })
    }

    fn get(&self) -> Arc<CertifiedKey> {
        {
            let loaded = self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            if loaded.checked.elapsed() < RECHECK {
                return loaded.key.clone();
            }
        }
        let mut loaded = self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if loaded.checked.elapsed() >= RECHECK {
            loaded.checked = Instant::now();
            let stamp = stamp(&self.files);
            if stamp != loaded.stamp {
                loaded.stamp = stamp;
                match certified_key(&self.files) {
                    Ok(key) => {
                        loaded.key = Arc::new(key);
                        tracing::info!(cert = %self.files.cert.display(), "TLS certificate read again");
                    }
                    Err(err) => tracing::warn!(%err, "the changed TLS certificate does not load; the last one stays"),
                }
            }
        }
        loaded.key.clone()
    }
}

/// When the certificate and key files were last modified; `None` when either cannot be read.
fn stamp(files: &TlsFiles) -> Option<[SystemTime; 2]> {
    let modified = |path: &std::path::Path| std::fs::metadata(path).and_then(|meta| meta.modified()).ok();
    Some([modified(&files.cert)?, modified(&files.key)?])
}

fn certified_key(files: &TlsFiles) -> anyhow::Result<CertifiedKey> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("reading {}", files.cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", files.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&files.key).with_context(|| format!("reading {}", files.key.display()))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).context("TLS key")?;
    let server = CertifiedKey::new(certs, signer);
    server.keys_match().context("TLS certificate: the key does not belong to it")?;
    Ok(server)
}

/// An app's own certificate for its hosts (docs/runtime.md), the server's for every other name and for clients
/// that send none.
struct BySni {
    server: ServerCertificate,
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
        Some(app.unwrap_or_else(|| self.server.get()))
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
