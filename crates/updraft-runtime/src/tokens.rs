//! Personal access tokens (`/v1/authorizations`): long-lived tokens of the account for `qtc-cli` and scripts.
//! Only their hashes are kept, here (to list and revoke them) and in the store (to accept them).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::records::JsonList;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PersonalToken {
    pub id: String,
    pub name: String,
    /// The store's hash of the token, by which it is revoked.
    pub hash: String,
    pub created_ms: i64,
}

pub struct PersonalTokens(JsonList<PersonalToken>);

impl PersonalTokens {
    pub fn open(file: PathBuf) -> anyhow::Result<PersonalTokens> {
        JsonList::open(file).map(PersonalTokens)
    }

    pub fn all(&self) -> Vec<PersonalToken> {
        self.0.all()
    }

    pub fn add(&self, name: &str, hash: String) -> Result<PersonalToken, String> {
        if name.chars().count() > 200 {
            return Err("a token's name has at most 200 characters".to_owned());
        }
        let token = PersonalToken {
            id: hex::encode(rand::random::<[u8; 12]>()),
            name: name.trim().to_owned(),
            hash,
            created_ms: crate::runtime::now_ms(),
        };
        self.0.add(token, |_| None)
    }

    /// Forgets a token; the one forgotten, whose hash the caller revokes.
    pub fn remove(&self, id: &str) -> std::io::Result<Option<PersonalToken>> {
        Ok(self.0.remove(|t| t.id == id)?.pop())
    }
}
