//! The SSH public keys that may push (`/v1/user/ssh_keys`), kept in one JSON file written whole and renamed
//! into place, as the app records are.

use std::path::PathBuf;

use russh::keys::PublicKey;
use serde::{Deserialize, Serialize};

use crate::records::JsonList;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SshKey {
    pub id: String,
    pub name: String,
    /// The OpenSSH line as given (`ssh-ed25519 AAAA… comment`).
    pub key: String,
    pub created_ms: i64,
}

pub struct SshKeys(JsonList<SshKey>);

impl SshKeys {
    pub fn open(file: PathBuf) -> anyhow::Result<SshKeys> {
        JsonList::open(file).map(SshKeys)
    }

    pub fn all(&self) -> Vec<SshKey> {
        self.0.all()
    }

    /// Registers a key; the error is why the line is no public key, or that it is registered already.
    pub fn add(&self, name: &str, line: &str) -> Result<SshKey, String> {
        let public = PublicKey::from_openssh(line.trim()).map_err(|e| format!("not an OpenSSH public key: {e}"))?;
        if name.trim().is_empty() || name.len() > 200 {
            return Err("a key's name has 1 to 200 characters".to_owned());
        }
        let key = SshKey {
            id: hex::encode(rand::random::<[u8; 12]>()),
            name: name.trim().to_owned(),
            key: line.trim().to_owned(),
            created_ms: crate::runtime::now_ms(),
        };
        self.0.add(key, |keys| {
            keys.iter().any(|k| same_key(k, &public)).then(|| "this key is registered already".to_owned())
        })
    }

    /// Forgets a key; whether it was there.
    pub fn remove(&self, id: &str) -> std::io::Result<bool> {
        Ok(!self.0.remove(|k| k.id == id)?.is_empty())
    }

    /// Whether `key` is registered.
    pub fn knows(&self, key: &PublicKey) -> bool {
        self.0.all().iter().any(|k| same_key(k, key))
    }
}

fn same_key(registered: &SshKey, key: &PublicKey) -> bool {
    PublicKey::from_openssh(&registered.key).is_ok_and(|k| k.key_data() == key.key_data())
}
