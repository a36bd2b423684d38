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

/// Which cloud an instance of another service (an EDS app, an MWS gateway) was made in, and its tags: those
/// services keep no such thing themselves. An instance with no placement is in `default`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Placement {
    /// The EDS app's or the gateway's id.
    pub id: String,
    /// `eds` or `mws`.
    pub provider: String,
    pub cloud: String,
    pub tags: Vec<String>,
}

pub struct Placements(JsonList<Placement>);

impl Placements {
    pub fn open(file: PathBuf) -> anyhow::Result<Placements> {
        JsonList::open(file).map(Placements)
    }

    /// The instance's placement, `default` and no tags when none was recorded.
    pub fn of(&self, provider: &str, id: &str) -> Placement {
        let found = self.0.all().into_iter().find(|p| p.provider == provider && p.id == id);
        found.unwrap_or_else(|| Placement {
            id: id.to_owned(),
            provider: provider.to_owned(),
            cloud: DEFAULT_CLOUD.to_owned(),
            tags: Vec::new(),
        })
    }

    /// Records (or replaces) a placement.
    pub fn set(&self, placement: Placement) -> std::io::Result<Placement> {
        let (provider, id) = (placement.provider.clone(), placement.id.clone());
        self.0.replace(placement, |p| p.provider == provider && p.id == id)
    }

    pub fn remove(&self, provider: &str, id: &str) -> std::io::Result<()> {
        self.0.remove(|p| p.provider == provider && p.id == id).map(drop)
    }
}
