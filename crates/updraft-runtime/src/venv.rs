//! The Python pack's virtualenv, kept in the app's build cache: a push whose `requirements.txt` (and the host's
//! Python) did not change copies it into the release instead of making a venv and asking the index again. Making
//! a venv is mostly ensurepip installing pip (about 3 s here), and pip checks the index for every requirement
//! even with a warm cache; a copy takes a few tenths of a second. Only apps installed from `requirements.txt`
//! qualify: `pip install .` puts the app's own code into the venv, which a copy would serve stale.

use sha2::{Digest, Sha256};

use crate::build::{BuildJob, Transcript, run_sandboxed};

/// Where the venv and its key live, in the sandbox and under the cache directory.
const KEPT: &str = "/cache/python/venv";
const KEY_FILE: &str = "python/key";

pub(crate) struct CachedVenv {
    /// What the kept venv must have been built from to be used.
    key: String,
    /// Where that is written once the venv is kept (on the host).
    key_file: std::path::PathBuf,
}

impl CachedVenv {
    /// The venv cache of a `requirements.txt` app; `None` for apps installed otherwise.
    pub(crate) fn of(job: &BuildJob<'_>) -> Option<CachedVenv> {
        let requirements = std::fs::read(job.app_dir.join("requirements.txt")).ok()?;
        let python = std::fs::canonicalize("/usr/bin/python3").ok()?;
        let mut hash = Sha256::new();
        hash.update(&requirements);
        hash.update(python.as_os_str().as_encoded_bytes());
        hash.update(job.stack.as_bytes());
        Some(CachedVenv { key: hex::encode(hash.finalize()), key_file: job.cache_dir.join(KEY_FILE) })
    }

    /// Whether the kept venv was built from the same requirements and Python.
    pub(crate) fn fits(&self) -> bool {
        let kept = std::fs::read_to_string(&self.key_file).unwrap_or_default();
        kept.trim() == self.key
    }

    pub(crate) async fn restore(&self, job: &BuildJob<'_>, transcript: &Transcript) -> Result<(), String> {
        transcript.step("Using the cached virtualenv: requirements.txt is unchanged");
        run_sandboxed(job, &["/usr/bin/rm", "-rf", "/app/.venv"], transcript).await?;
        run_sandboxed(job, &["/usr/bin/cp", "-a", KEPT, "/app/.venv"], transcript).await
    }

    /// Keeps the venv just built for the next push; a failure only costs that push the shortcut.
    pub(crate) async fn keep(&self, job: &BuildJob<'_>, transcript: &Transcript) {
        let key_file = &self.key_file;
        let _ = std::fs::remove_file(key_file);
        let copied = async {
            run_sandboxed(job, &["/usr/bin/rm", "-rf", KEPT], transcript).await?;
            run_sandboxed(job, &["/usr/bin/mkdir", "-p", "/cache/python"], transcript).await?;
            run_sandboxed(job, &["/usr/bin/cp", "-a", "/app/.venv", KEPT], transcript).await
        };
        match copied.await {
            Ok(()) => {
                if let Err(err) = std::fs::write(key_file, &self.key) {
                    tracing::warn!(%err, "the virtualenv's key was not kept");
                }
            }
            Err(why) => tracing::warn!(%why, "the virtualenv was not kept for the next push"),
        }
    }
}
