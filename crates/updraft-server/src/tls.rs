//! HTTPS/WSS: a listener whose accepted connections are TLS streams (rustls, ring provider).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::ServerConfig;
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

pub(crate) fn server_config(files: &TlsFiles) -> anyhow::Result<Arc<ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("reading {}", files.cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", files.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&files.key).with_context(|| format!("reading {}", files.key.display()))?;
    let mut config =
        ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key).context("TLS certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
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
