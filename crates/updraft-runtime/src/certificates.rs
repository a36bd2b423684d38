//! Apps' own TLS certificates (`/v1/apps/:id/ssl_certificate`, docs/runtime.md): the TLS listener asks
//! [`Runtime::certificate_for`] with the name a client sent (SNI), and serves the app's certificate for its host
//! under the apps domain and its custom domains, the server's own otherwise.
//!
//! A certificate is checked (PEM, a key that signs for it) before it is kept. The key is kept in
//! `certs/<app-id>.pem`, in a directory only Updraft's user may read, and never shown again.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::records::write_atomically;
use crate::runtime::{Runtime, RuntimeError};

/// The parsed certificates of apps that have one, by app id.
pub(crate) struct Certificates {
    dir: PathBuf,
    loaded: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

/// A key and its chain, checked: the key signs for the first certificate.
fn certified(pem: &str) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the certificate is not PEM: {e}"))?;
    if chain.is_empty() {
        return Err("no certificate in certificateBody".to_owned());
    }
    let key = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| format!("privateKey is not a PEM key: {e}"))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("privateKey is of no supported kind: {e}"))?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|_| "privateKey does not belong to the certificate".to_owned())?;
    Ok(certified)
}

impl Certificates {
    /// Loads the kept certificates of `apps`; one that no longer parses is skipped with a warning.
    pub(crate) fn open(dir: PathBuf, apps: &[String]) -> std::io::Result<Certificates> {
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let mut loaded = HashMap::new();
        for app in apps {
            let Ok(pem) = std::fs::read_to_string(dir.join(format!("{app}.pem"))) else { continue };
            match certified(&pem) {
                Ok(key) => {
                    loaded.insert(app.clone(), Arc::new(key));
                }
                Err(why) => tracing::warn!(%app, %why, "the app's certificate is not served"),
            }
        }
        Ok(Certificates { dir, loaded: RwLock::new(loaded) })
    }

    fn get(&self, app: &str) -> Option<Arc<CertifiedKey>> {
        self.loaded.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(app).cloned()
    }
}

impl Runtime {
    /// Checks and keeps the app's certificate (`privateKey`, `certificateBody`, `certificateChain`), served at
    /// once to clients naming the app's hosts.
    pub async fn set_certificate(
        &self,
        id: &str,
        name: &str,
        key: &str,
        body: &str,
        chain: Option<&str>,
    ) -> Result<(), RuntimeError> {
        let lock = self.app_lock(id);
        let _guard = lock.lock().await;
        let mut app = self.app(id).ok_or(RuntimeError::NotFound)?;
        let pem = format!("{}\n{}\n{}\n", key.trim(), body.trim(), chain.unwrap_or_default().trim());
        let key = certified(&pem).map_err(RuntimeError::Invalid)?;
        let file = self.certificates.dir.join(format!("{id}.pem"));
        let written = pem.clone();
        tokio::task::spawn_blocking(move || write_atomically(&file, written.as_bytes()))
            .await
            .map_err(std::io::Error::other)??;
        app.ssl_certificate = Some(if name.is_empty() { id.to_owned() } else { name.to_owned() });
        self.put(app).await?;
        self.certificates
            .loaded
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id.to_owned(), Arc::new(key));
        Ok(())
    }

    /// Forgets the app's certificate: its hosts get the server's again.
    pub async fn remove_certificate(&self, id: &str) -> Result<(), RuntimeError> {
        let lock = self.app_lock(id);
        let _guard = lock.lock().await;
        let mut app = self.app(id).ok_or(RuntimeError::NotFound)?;
        if app.ssl_certificate.take().is_none() {
            return Err(RuntimeError::Invalid("the app has no certificate".into()));
        }
        self.put(app).await?;
        self.forget_certificate(id).await;
        Ok(())
    }

    pub(crate) async fn forget_certificate(&self, id: &str) {
        self.certificates.loaded.write().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(id);
        let _ = tokio::fs::remove_file(self.certificates.dir.join(format!("{id}.pem"))).await;
    }

    /// The certificate to present to a client that named `server_name`: its app's, if it has one.
    pub fn certificate_for(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        let app = self.app_label(server_name).or_else(|| self.domain_app(server_name))?;
        self.certificates.get(&app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_needs_its_own_key() {
        let one = rcgen::generate_simple_self_signed(vec!["a.apps.test".into()]).unwrap();
        let two = rcgen::generate_simple_self_signed(vec!["b.apps.test".into()]).unwrap();
        let pem = |key: &rcgen::KeyPair, cert: &rcgen::Certificate| format!("{}\n{}", key.serialize_pem(), cert.pem());
        assert!(certified(&pem(&one.signing_key, &one.cert)).is_ok());
        assert!(certified(&pem(&two.signing_key, &one.cert)).unwrap_err().contains("does not belong"));
        assert!(certified(&one.cert.pem()).is_err(), "no key");
        assert!(certified(&one.signing_key.serialize_pem()).unwrap_err().contains("no certificate"));
        assert!(certified("junk").is_err());
    }
}
