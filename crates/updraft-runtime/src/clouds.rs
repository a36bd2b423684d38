//! Clouds, the platform's accounts (`/v1/accounts`): groups of instances. Every server has the cloud `default`;
//! `qtc-cli clouds:create` makes more, kept in one JSON file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::records::{DEFAULT_CLOUD, JsonList};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cloud {
    pub id: String,
    pub name: String,
    pub created_ms: i64,
}

pub struct Clouds(JsonList<Cloud>);

impl Clouds {
    pub fn open(file: PathBuf) -> anyhow::Result<Clouds> {
        JsonList::open(file).map(Clouds)
    }

    /// `default` first, then the others in the order they were made.
    pub fn all(&self) -> Vec<Cloud> {
        let default = Cloud { id: DEFAULT_CLOUD.to_owned(), name: "Default cloud".to_owned(), created_ms: 0 };
        std::iter::once(default).chain(self.0.all()).collect()
    }

    pub fn get(&self, id: &str) -> Option<Cloud> {
        self.all().into_iter().find(|c| c.id == id)
    }

    pub fn add(&self, name: &str) -> Result<Cloud, String> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err("a cloud's name has 1 to 100 characters".to_owned());
        }
        let cloud = Cloud {
            id: hex::encode(rand::random::<[u8; 12]>()),
            name: name.to_owned(),
            created_ms: crate::runtime::now_ms(),
        };
        self.0
            .add(cloud, |clouds| clouds.iter().any(|c| c.name == name).then(|| format!("a cloud named {name} exists")))
    }

    /// Forgets a cloud (not `default`); whether it was there. The caller checks it holds no instances.
    pub fn remove(&self, id: &str) -> std::io::Result<bool> {
        Ok(!self.0.remove(|c| c.id == id)?.is_empty())
    }
}
