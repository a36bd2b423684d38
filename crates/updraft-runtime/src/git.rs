//! The apps' bare repositories: made with the app, each with this binary as its `pre-receive` hook
//! ([`crate::hook`]), so that a push is accepted only once its build and health check have passed.

use std::path::Path;

use crate::runtime::Settings;

/// The branches whose push deploys; other refs are stored untouched.
pub const DEPLOY_REFS: &[&str] = &["refs/heads/master", "refs/heads/main"];

/// Makes the app's bare repository and its hook.
pub async fn create_repo(settings: &Settings, id: &str) -> std::io::Result<()> {
    let dir = settings.root.join("repos").join(format!("{id}.git"));
    git(&["init", "--bare", "--quiet", &dir.display().to_string()]).await?;
    write_hook(settings, &dir, id)
}

/// What every repository refuses: rewritten or deleted history, and a pack over 1 GiB (over HTTP the API
/// stops the body at that size too; over SSH this is the limit).
const CONFIG: [(&str, &str); 5] = [
    ("receive.denyNonFastForwards", "true"),
    ("receive.denyDeletes", "true"),
    ("receive.maxInputSize", "1073741824"),
    ("http.receivepack", "true"),
    ("core.hooksPath", "hooks"),
];

/// (Re)writes the repository's settings and its hook to call this binary, which may have moved since the
/// repository was made.
pub fn write_hook(settings: &Settings, dir: &Path, id: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for (key, value) in CONFIG {
        let set = std::process::Command::new("git").arg("--git-dir").arg(dir).args(["config", key, value]).output()?;
        if !set.status.success() {
            return Err(std::io::Error::other(format!("git config {key}: {}", String::from_utf8_lossy(&set.stderr))));
        }
    }
    let hooks = dir.join("hooks");
    std::fs::create_dir_all(&hooks)?;
    let script = format!(
        "#!/bin/sh\nexec {} hook --root {} --app {}\n",
        quoted(&settings.exe.display().to_string()),
        quoted(&settings.root.display().to_string()),
        quoted(id)
    );
    let path = hooks.join("pre-receive");
    std::fs::write(&path, script)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
}

/// Empties the repository (`DELETE /apps/:id/repository`): the next push starts a new history.
pub async fn reset_repo(settings: &Settings, id: &str) -> std::io::Result<()> {
    let dir = settings.root.join("repos").join(format!("{id}.git"));
    let _ = tokio::fs::remove_dir_all(&dir).await;
    create_repo(settings, id).await
}

/// `text` as one shell word.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

async fn git(args: &[&str]) -> std::io::Result<()> {
    let output = tokio::process::Command::new("git").args(args).output().await?;
    if output.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("git {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr))))
    }
}
