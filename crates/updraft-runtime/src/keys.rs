//! The SSH public keys that may push (`/v1/user/ssh_keys`), kept in one JSON file written whole and renamed
//! into place, as the app records are.

use std::path::PathBuf;
use std::sync::Mutex;

use russh::keys::PublicKey;
use serde::{Deserialize, Serialize};

use crate::records::write_atomically;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SshKey {
    pub id: String,
    pub name: String,
    /// The OpenSSH line as given (`ssh-ed25519 AAAA… comment`).
    pub key: String,
    pub created_ms: i64,
}

pub struct SshKeys {
    file: PathBuf,
    keys: Mutex<Vec<SshKey>>,
}

impl SshKeys {
    pub fn open(file: PathBuf) -> anyhow::Result<SshKeys> {
        let keys = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::format_err!("{}: not a list of SSH keys: {e}", file.display()))?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(err.into()),
        };
        Ok(SshKeys { file, keys: Mutex::new(keys) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<SshKey>> {
        self.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn all(&self) -> Vec<SshKey> {
        self.lock().clone()
    }

    /// Registers a key; the error is why the line is no public key, or that it is registered already.
    pub fn add(&self, name: &str, line: &str) -> Result<SshKey, String> {
        let public = PublicKey::from_openssh(line.trim()).map_err(|e| format!("not an OpenSSH public key: {e}"))?;
        if name.trim().is_empty() || name.len() > 200 {
            return Err("a key's name has 1 to 200 characters".to_owned());
        }
        let mut keys = self.lock();
        if keys.iter().any(|k| PublicKey::from_openssh(&k.key).is_ok_and(|k| k.key_data() == public.key_data())) {
            return Err("this key is registered already".to_owned());
        }
        let key = SshKey {
            id: hex::encode(rand::random::<[u8; 12]>()),
            name: name.trim().to_owned(),
            key: line.trim().to_owned(),
            created_ms: crate::runtime::now_ms(),
        };
        let mut next = keys.clone();
        next.push(key.clone());
        write_atomically(&self.file, &serde_json::to_vec_pretty(&next).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        *keys = next;
        Ok(key)
    }

    /// Forgets a key; whether it was there.
    pub fn remove(&self, id: &str) -> std::io::Result<bool> {
        let mut keys = self.lock();
        let next: Vec<SshKey> = keys.iter().filter(|k| k.id != id).cloned().collect();
        if next.len() == keys.len() {
            return Ok(false);
        }
        write_atomically(&self.file, &serde_json::to_vec_pretty(&next).map_err(std::io::Error::other)?)?;
        *keys = next;
        Ok(true)
    }

    /// Whether `key` is registered.
    pub fn knows(&self, key: &PublicKey) -> bool {
        self.lock().iter().any(|k| PublicKey::from_openssh(&k.key).is_ok_and(|k| k.key_data() == key.key_data()))
    }
}
