//! What the MAR API changes on a deployed app: its environment (a new release of the same build), its scale,
//! and restarts. Each takes the app's deploy lock, so it never races a push.

use std::collections::BTreeMap;

use crate::build::Transcript;
use crate::names;
use crate::records::Release;
use crate::runtime::{Runtime, RuntimeError, now_ms};

impl Runtime {
    /// The app's one lock, shared by deploys and every change.
    pub(crate) fn app_lock(&self, id: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        let mut deploys = self.deploys.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        deploys.entry(id.to_owned()).or_default().clone()
    }

    async fn lock_app(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        self.app_lock(id).lock_owned().await
    }

    /// Sets (`Some`) and unsets (`None`, or an empty value) variables; a deployed app restarts with them as a new
    /// release. Names are checked before anything changes.
    pub async fn set_env(&self, id: &str, changes: BTreeMap<String, Option<String>>) -> Result<(), RuntimeError> {
        if let Some(bad) = changes.keys().find(|name| !names::env_name_ok(name)) {
            return Err(RuntimeError::Invalid(format!("{bad:?} is not a variable name (letters, digits, _)")));
        }
        let _guard = self.lock_app(id).await;
        let mut app = self.app(id).ok_or(RuntimeError::NotFound)?;
        for (name, value) in changes {
            match value.filter(|v| !v.is_empty()) {
                Some(value) => app.env.insert(name, value),
                None => app.env.remove(&name),
            };
        }
        if let Some(current) = app.current().cloned() {
            let release = Release {
                version: current.version + 1,
                env: app.env.clone(),
                commit: current.commit.clone(),
                created_ms: now_ms(),
                ..current
            };
            let (lines, _) = tokio::sync::mpsc::unbounded_channel();
            self.start_checked(&app, &release, &app.structure, &Transcript(lines))
                .await
                .map_err(RuntimeError::Conflict)?;
            app.releases.push(release);
        }
        self.put(app).await
    }

    /// Sets the stack the app's next release is built for.
    pub async fn set_stack(&self, id: &str, stack: &str) -> Result<(), RuntimeError> {
        if !crate::records::STACKS.contains(&stack) {
            return Err(RuntimeError::Invalid(format!("the stacks are {}", crate::records::STACKS.join(" and "))));
        }
        let _guard = self.lock_app(id).await;
        let mut app = self.app(id).ok_or(RuntimeError::NotFound)?;
        app.stack = stack.to_owned();
        self.put(app).await
    }

    /// Runs a kept release's build again, with its process types and the app's variables of now, as a new
    /// release (so the history only grows); the release to return to must still be kept.
    pub async fn rollback(&self, id: &str, version: u32) -> Result<u32, RuntimeError> {
        let _guard = self.lock_app(id).await;
        let app = self.app(id).ok_or(RuntimeError::NotFound)?;
        let target = app.releases.iter().find(|r| r.version == version).cloned().ok_or_else(|| {
            RuntimeError::Invalid(format!("release v{version} is not kept: the last {} are", app.releases.len()))
        })?;
        let release = Release {
            version: app.releases.last().map_or(1, |r| r.version + 1),
            env: app.env.clone(),
            created_ms: now_ms(),
            ..target
        };
        let (lines, _) = tokio::sync::mpsc::unbounded_channel();
        self.go_live(app, release, &Transcript(lines)).await.map_err(RuntimeError::Conflict)
    }

    /// Sets how many processes of each type run; only the types the current release declares.
    pub async fn scale(&self, id: &str, counts: BTreeMap<String, u32>) -> Result<(), RuntimeError> {
        let _guard = self.lock_app(id).await;
        let mut app = self.app(id).ok_or(RuntimeError::NotFound)?;
        let release =
            app.current().cloned().ok_or_else(|| RuntimeError::Invalid("the app has no release yet".into()))?;
        if let Some((name, _)) = counts.iter().find(|(name, _)| !release.process_types.contains_key(*name)) {
            return Err(RuntimeError::Invalid(format!("the release declares no process type {name:?}")));
        }
        if let Some((name, count)) = counts.iter().find(|(_, count)| **count > 16) {
            return Err(RuntimeError::Invalid(format!("{name}: {count} is more than 16 processes of a type")));
        }
        app.structure.extend(counts);
        // Only the difference starts or stops: `web.1` keeps serving while `web.2` is added.
        let running = self.running_names(id).await;
        let (unchanged, add): (Vec<_>, Vec<_>) = self
            .specs(&app, &release, &app.structure)?
            .into_iter()
            .partition(|spec| running.contains(&(spec.process_type.clone(), spec.index)));
        self.give_back(&unchanged);
        let structure = app.structure.clone();
        self.rescale(id, add, |spec| spec.index <= structure.get(&spec.process_type).copied().unwrap_or(0)).await;
        self.put(app).await
    }

    /// Starts the current release's processes again.
    pub async fn restart(&self, id: &str) -> Result<(), RuntimeError> {
        let _guard = self.lock_app(id).await;
        let app = self.app(id).ok_or(RuntimeError::NotFound)?;
        if let Some(release) = app.current() {
            let specs = self.specs(&app, release, &app.structure)?;
            self.run(id, specs).await;
        }
        Ok(())
    }
}

impl Runtime {
    /// Empties the app's build cache (`DELETE /apps/:id/build_cache`): the next build downloads afresh.
    pub async fn clear_build_cache(&self, id: &str) -> Result<(), RuntimeError> {
        let _guard = self.lock_app(id).await;
        self.app(id).ok_or(RuntimeError::NotFound)?;
        let cache = self.settings.root.join("cache").join(id);
        match tokio::fs::remove_dir_all(&cache).await {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err.into()),
            _ => Ok(()),
        }
    }

    /// Empties the app's repository (`DELETE /apps/:id/repository`); what runs keeps running.
    pub async fn reset_repository(&self, id: &str) -> Result<(), RuntimeError> {
        let _guard = self.lock_app(id).await;
        self.app(id).ok_or(RuntimeError::NotFound)?;
        crate::git::reset_repo(&self.settings, id).await?;
        Ok(())
    }
}

impl Runtime {
    /// Lets `domain` reach the app; 409 when another app has it.
    pub async fn add_domain(&self, id: &str, domain: &str) -> Result<(), RuntimeError> {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        if let Some(why) = names::domain_error(&domain, &self.settings.apps_domain) {
            return Err(RuntimeError::Invalid(why.to_owned()));
        }
        let _guard = self.lock_app(id).await;
        let mut app = self.app(id).ok_or(RuntimeError::NotFound)?;
        if app.domains.contains(&domain) {
            return Ok(());
        }
        {
            let mut domains = self.domains.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            match domains.get(&domain) {
                Some(other) if other != id => return Err(RuntimeError::Conflict(format!("{domain} is another app's"))),
                _ => domains.insert(domain.clone(), id.to_owned()),
            };
        }
        app.domains.push(domain.clone());
        let stored = self.put(app).await;
        if stored.is_err() {
            self.domains.write().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&domain);
        }
        stored
    }

    /// Stops `domain` reaching the app.
    pub async fn remove_domain(&self, id: &str, domain: &str) -> Result<(), RuntimeError> {
        let domain = domain.to_ascii_lowercase();
        let _guard = self.lock_app(id).await;
        let mut app = self.app(id).ok_or(RuntimeError::NotFound)?;
        let Some(at) = app.domains.iter().position(|d| *d == domain) else { return Err(RuntimeError::NotFound) };
        app.domains.remove(at);
        self.put(app).await?;
        self.domains.write().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&domain);
        Ok(())
    }
}
