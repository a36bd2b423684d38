//! Prebuilt slugs (`qtc-cli mar slug:upload`, `slug:deploy`, `slug:list`, `slug:remove`; docs/runtime.md): a
//! gzipped tar of an app's `/app` built elsewhere, announced with its tag and process types, uploaded with one
//! `PUT` to a URL that carries a one-hour token (as the original's storage URL did), then deployed like a push:
//! unpacked by the app's own user in its build sandbox into a new release, health-checked, switched to.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::build::{BuildJob, Output, Transcript, process_type_ok, sandboxed};
use crate::cgroups::Limits;
use crate::records::{Release, Slug};
use crate::runtime::{Runtime, RuntimeError, now_ms};

/// How long an upload URL works.
const UPLOAD_LIFETIME_MS: i64 = 60 * 60 * 1000;
/// Slugs kept per app.
const MAX_SLUGS: usize = 20;

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn tag_ok(tag: &str) -> bool {
    (1..=64).contains(&tag.len())
        && !tag.starts_with(['.', '-'])
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl Runtime {
    fn slugs_dir(&self, id: &str) -> PathBuf {
        self.settings.root.join("slugs").join(id)
    }

    /// Announces a slug; the token of its upload URL. A tag not uploaded yet may be announced again.
    pub async fn create_slug(
        &self,
        id: &str,
        tag: &str,
        process_types: BTreeMap<String, String>,
    ) -> Result<String, RuntimeError> {
        if !tag_ok(tag) {
            return Err(RuntimeError::Invalid("a tag is 1 to 64 letters, digits, '.', '_' and '-'".into()));
        }
        if let Some((name, _)) =
            process_types.iter().find(|(name, command)| !process_type_ok(name) || command.trim().is_empty())
        {
            return Err(RuntimeError::Invalid(format!("process type {name:?} needs a name and a command")));
        }
        let lock = self.app_lock(id);
        let _guard = lock.lock().await;
        let mut app = self.app(id).ok_or(RuntimeError::NotFound)?;
        if app.slugs.iter().any(|s| s.tag == tag && s.uploaded_ms.is_some()) {
            return Err(RuntimeError::Conflict(format!("a slug tagged {tag} exists: remove it first")));
        }
        app.slugs.retain(|s| s.tag != tag);
        if app.slugs.len() >= MAX_SLUGS {
            return Err(RuntimeError::Conflict(format!("an app keeps {MAX_SLUGS} slugs: remove one first")));
        }
        let token = hex::encode(rand::random::<[u8; 32]>());
        let now = now_ms();
        app.slugs.push(Slug {
            tag: tag.to_owned(),
            process_types,
            created_ms: now,
            uploaded_ms: None,
            deployed_ms: None,
            upload: Some(token_hash(&token)),
            upload_expires_ms: now + UPLOAD_LIFETIME_MS,
        });
        self.put(app).await?;
        Ok(token)
    }

    /// The app and tag an unexpired upload token is for.
    pub fn slug_upload(&self, token: &str) -> Option<(String, String)> {
        let hash = token_hash(token);
        let now = now_ms();
        self.apps().into_iter().find_map(|app| {
            let slug = app.slugs.iter().find(|s| s.upload.as_deref() == Some(&hash) && s.upload_expires_ms > now)?;
            Some((app.id.clone(), slug.tag.clone()))
        })
    }

    /// Where an upload is written before [`Runtime::accept_slug`] checks it.
    pub fn slug_staging(&self) -> PathBuf {
        self.settings.root.join("incoming").join(format!("slug-{}.tgz", hex::encode(rand::random::<[u8; 8]>())))
    }

    /// Keeps the slug staged at `staged` for the token's app and tag once it proves to be a gzipped tar of
    /// relative paths; the token is then spent. The staged file is gone either way.
    pub async fn accept_slug(&self, token: &str, staged: &Path) -> Result<Slug, RuntimeError> {
        let accepted = self.accept_staged(token, staged).await;
        let _ = tokio::fs::remove_file(staged).await;
        accepted
    }

    async fn accept_staged(&self, token: &str, staged: &Path) -> Result<Slug, RuntimeError> {
        let (id, tag) = self.slug_upload(token).ok_or(RuntimeError::NotFound)?;
        listing(staged).await?;
        let lock = self.app_lock(&id);
        let _guard = lock.lock().await;
        let mut app = self.app(&id).ok_or(RuntimeError::NotFound)?;
        let hash = token_hash(token);
        let slug = app.slugs.iter_mut().find(|s| s.upload.as_deref() == Some(&hash)).ok_or(RuntimeError::NotFound)?;
        let dir = self.slugs_dir(&id);
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::rename(staged, dir.join(format!("{tag}.tgz"))).await?;
        slug.uploaded_ms = Some(now_ms());
        slug.upload = None;
        let slug = slug.clone();
        self.put(app).await?;
        Ok(slug)
    }

    /// Deploys an uploaded slug as a new release (docs/runtime.md): the error is what the caller reads.
    pub async fn deploy_slug(&self, id: &str, tag: &str, transcript: &Transcript) -> Result<u32, RuntimeError> {
        let lock = self.app_lock(id);
        let _guard = lock.lock().await;
        let mut app = self.app(id).ok_or(RuntimeError::NotFound)?;
        let slug = app.slugs.iter().find(|s| s.tag == tag && s.uploaded_ms.is_some()).cloned();
        let slug = slug.ok_or_else(|| RuntimeError::Invalid(format!("no uploaded slug tagged {tag}")))?;
        let version = app.releases.last().map_or(1, |r| r.version + 1);
        let release_dir = self.releases_dir(id).join(format!("v{version}"));
        let unpacked = self.unpack(&app, &slug, &release_dir, transcript).await;
        let process_types = match unpacked {
            Ok(()) if !slug.process_types.is_empty() => Ok(slug.process_types.clone()),
            Ok(()) => match std::fs::read_to_string(release_dir.join("Procfile")) {
                Ok(procfile) => crate::build::parse_procfile(&procfile),
                Err(_) => Err("the slug has no Procfile and none was given with it".to_owned()),
            },
            Err(err) => Err(err),
        };
        let process_types = match process_types {
            Ok(types) if !types.is_empty() => types,
            Ok(_) | Err(_) => {
                let _ = tokio::fs::remove_dir_all(&release_dir).await;
                let why = process_types.err().unwrap_or_else(|| "the slug declares no process type".to_owned());
                return Err(RuntimeError::Invalid(why));
            }
        };
        if let Some(kept) = app.slugs.iter_mut().find(|s| s.tag == tag) {
            kept.deployed_ms = Some(now_ms());
        }
        let release = Release {
            version,
            build: version,
            commit: tag.to_owned(),
            buildpack: "slug".to_owned(),
            process_types,
            env: app.env.clone(),
            created_ms: now_ms(),
            stack: app.stack.clone(),
        };
        self.go_live(app, release, transcript).await.map_err(RuntimeError::Conflict)
    }

    /// Unpacks the slug into `release_dir` as the app's user, a top `app/` directory (Heroku's layout) dropped.
    async fn unpack(
        &self,
        app: &crate::records::AppRecord,
        slug: &Slug,
        release_dir: &Path,
        transcript: &Transcript,
    ) -> Result<(), String> {
        let slugs_dir = self.slugs_dir(&app.id);
        let file = slugs_dir.join(format!("{}.tgz", slug.tag));
        let entries = listing(&file).await.map_err(|e| e.to_string())?;
        let _ = tokio::fs::remove_dir_all(release_dir).await;
        tokio::fs::create_dir_all(release_dir).await.map_err(|e| e.to_string())?;
        let owner = format!("{0}:{0}", app.uid);
        for dir in [release_dir, &slugs_dir] {
            crate::build::run_host(&["chown", "-R", &owner, &dir.display().to_string()]).await?;
        }
        let group = format!("{}.{}.unpack", self.instance, app.id);
        let cgroups = self.cgroups.make(&group, Limits::build()).unwrap_or_default();
        let job = BuildJob {
            app_dir: release_dir,
            cache_dir: &slugs_dir,
            uid: app.uid,
            env: &BTreeMap::new(),
            cgroups: &cgroups,
            buildpacks_dir: None,
            stack: &app.stack,
        };
        let inside = format!("/cache/{}.tgz", slug.tag);
        let strip = format!("--strip-components={}", heroku_depth(&entries));
        let argv = ["/usr/bin/tar", "-xzf", &inside, "-C", "/app", "--no-same-owner", &strip];
        transcript.step(&format!("Unpacking slug {}", slug.tag));
        let unpacked = sandboxed(&job, &argv, transcript, Output::Indented).await;
        let _ = tokio::task::spawn_blocking(move || crate::cgroups::remove(&cgroups)).await;
        match unpacked? {
            (status, _) if status.success() => Ok(()),
            (status, _) => {
                let _ = tokio::fs::remove_dir_all(release_dir).await;
                Err(format!("the slug could not be unpacked ({status})"))
            }
        }
    }

    /// Forgets a slug and its file.
    pub async fn remove_slug(&self, id: &str, tag: &str) -> Result<(), RuntimeError> {
        let lock = self.app_lock(id);
        let _guard = lock.lock().await;
        let mut app = self.app(id).ok_or(RuntimeError::NotFound)?;
        let before = app.slugs.len();
        app.slugs.retain(|s| s.tag != tag);
        if app.slugs.len() == before {
            return Err(RuntimeError::NotFound);
        }
        self.put(app).await?;
        let _ = tokio::fs::remove_file(self.slugs_dir(id).join(format!("{tag}.tgz"))).await;
        Ok(())
    }
}

/// The entries of a gzipped tar, refused when it is none or names a path outside the directory it unpacks into.
async fn listing(file: &Path) -> Result<Vec<String>, RuntimeError> {
    let listed = tokio::process::Command::new("tar").arg("-tzf").arg(file).output().await?;
    if !listed.status.success() {
        return Err(RuntimeError::Invalid("the slug is not a gzipped tar".into()));
    }
    let entries: Vec<String> = String::from_utf8_lossy(&listed.stdout).lines().map(str::to_owned).collect();
    let outside = |entry: &String| entry.starts_with('/') || entry.split('/').any(|part| part == "..");
    if entries.is_empty() || entries.iter().any(outside) {
        return Err(RuntimeError::Invalid("a slug holds relative paths only, inside the app".into()));
    }
    Ok(entries)
}

/// How many leading components to drop: Heroku's slugs hold `./app/…`; others hold the app's files themselves.
fn heroku_depth(entries: &[String]) -> usize {
    let trimmed = |e: &String| e.trim_start_matches("./").to_owned();
    let under_app = entries.iter().map(trimmed).filter(|e| !e.is_empty()).all(|e| e == "app/" || e.starts_with("app/"));
    match (under_app, entries.iter().any(|e| e.starts_with("./"))) {
        (false, _) => 0,
        (true, false) => 1,
        (true, true) => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_layouts() {
        for good in ["v1", "abc123def", "release-2.1_b"] {
            assert!(tag_ok(good), "{good}");
        }
        for bad in ["", "../x", ".hidden", "-x", "a/b", "a b", &"x".repeat(65)] {
            assert!(!tag_ok(bad), "{bad}");
        }
        let own = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(heroku_depth(&own(&["./", "./app/", "./app/Procfile"])), 2);
        assert_eq!(heroku_depth(&own(&["app/", "app/Procfile"])), 1);
        assert_eq!(heroku_depth(&own(&["Procfile", "app/x"])), 0);
        assert_eq!(heroku_depth(&own(&["./Procfile", "./web.py"])), 0);
    }
}
