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
    /// Where that is written once the venv is kept, as the host sees it.
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

    /// Whether the kept venv was built from the same requirements and Python. The cache is the app's to write
    /// during builds: a symlink there is read as no key at all, never followed by Updraft's user.
    pub(crate) fn fits(&self) -> bool {
        let real = |path: &std::path::Path, dir: bool| {
            std::fs::symlink_metadata(path).is_ok_and(|m| if dir { m.is_dir() } else { m.is_file() })
        };
        let dir = self.key_file.parent().is_some_and(|dir| real(dir, true));
        let kept = if dir && real(&self.key_file, false) { std::fs::read_to_string(&self.key_file).ok() } else { None };
        kept.is_some_and(|kept| kept.trim() == self.key)
    }

    pub(crate) async fn restore(&self, job: &BuildJob<'_>, transcript: &Transcript) -> Result<(), String> {
        transcript.step("Using the cached virtualenv: requirements.txt is unchanged");
        run_sandboxed(job, &["/usr/bin/rm", "-rf", "/app/.venv"], transcript).await?;
        run_sandboxed(job, &["/usr/bin/cp", "-a", KEPT, "/app/.venv"], transcript).await
    }

    /// Keeps the venv just built for the next push; a failure only costs that push the shortcut. Every write
    /// is the sandbox's, as the app's user: the cache is the app's, and Updraft's user writes nothing there.
    pub(crate) async fn keep(&self, job: &BuildJob<'_>, transcript: &Transcript) {
        // The key is hex: nothing in it the shell could read as more.
        let write_key = format!("printf %s {} > /cache/python/key", self.key);
        let copied = async {
            run_sandboxed(job, &["/usr/bin/rm", "-rf", "/cache/python"], transcript).await?;
            run_sandboxed(job, &["/usr/bin/mkdir", "-p", "/cache/python"], transcript).await?;
            run_sandboxed(job, &["/usr/bin/cp", "-a", "/app/.venv", KEPT], transcript).await?;
            run_sandboxed(job, &["/bin/sh", "-c", &write_key], transcript).await
        };
        if let Err(why) = copied.await {
            tracing::warn!(%why, "the virtualenv was not kept for the next push");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_behind_a_symlink_is_no_key() {
        let cache = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(elsewhere.path().join("key"), "abc").unwrap();
        let venv = CachedVenv { key: "abc".into(), key_file: cache.path().join(KEY_FILE) };
        std::os::unix::fs::symlink(elsewhere.path(), cache.path().join("python")).unwrap();
        assert!(!venv.fits(), "the directory is a symlink");
        std::fs::remove_file(cache.path().join("python")).unwrap();
        std::fs::create_dir(cache.path().join("python")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path().join("key"), &venv.key_file).unwrap();
        assert!(!venv.fits(), "the key is a symlink");
        std::fs::remove_file(&venv.key_file).unwrap();
        std::fs::write(&venv.key_file, "abc\n").unwrap();
        assert!(venv.fits());
        std::fs::write(&venv.key_file, "abd").unwrap();
        assert!(!venv.fits());
    }
}
