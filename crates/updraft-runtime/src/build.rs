//! Buildpacks (docs/runtime.md): detect what the pushed tree is, build it in the app's sandbox with the app's
//! cache at `/cache`, and say which process types it runs, writing the original MAR's transcript
//! (`-----> Python app detected`, the tools' output indented, `Procfile declares types -> web`).
//!
//! The packs use what the host has (Debian's `python3` with `venv`, `node` and `npm`): no toolchain is
//! downloaded, so a build needs only the package registries the app's own dependencies come from.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc::UnboundedSender;

use crate::sandbox::Sandbox;

/// The longest a build may run.
const BUILD_TIME: Duration = Duration::from_secs(15 * 60);

/// A deploy's transcript, line by line, as the pusher's `remote:` lines.
#[derive(Clone)]
pub struct Transcript(pub UnboundedSender<String>);

impl Transcript {
    /// A headline: `-----> text`.
    pub fn step(&self, text: &str) {
        let _ = self.0.send(format!("-----> {text}"));
    }

    /// A detail under the headline, indented as buildpack output is.
    pub fn detail(&self, text: &str) {
        let _ = self.0.send(format!("       {text}"));
    }

    /// A line as an external buildpack wrote it (they write their own `-----> ` headlines and indents).
    pub fn raw(&self, text: &str) {
        let _ = self.0.send(text.to_owned());
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pack {
    Python,
    Node,
    Static,
    /// A Procfile and nothing to build.
    Generic,
}

/// How a sandboxed command's standard output is used (its errors always go to the transcript).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// Into the transcript, indented.
    Indented,
    /// Into the transcript as written.
    Raw,
    /// Kept (its first 64 KiB) and returned.
    Captured,
}

impl Pack {
    pub fn name(self) -> &'static str {
        match self {
            Pack::Python => "Python",
            Pack::Node => "Node.js",
            Pack::Static => "Static HTML",
            Pack::Generic => "Procfile",
        }
    }

    /// The first pack that recognizes the tree at `dir`.
    pub fn detect(dir: &Path) -> Option<Pack> {
        let has = |name: &str| dir.join(name).is_file();
        if ["requirements.txt", "pyproject.toml", "setup.py"].into_iter().any(has) {
            Some(Pack::Python)
        } else if has("package.json") {
            Some(Pack::Node)
        } else if has("Procfile") {
            Some(Pack::Generic)
        } else if has("index.html") {
            Some(Pack::Static)
        } else {
            None
        }
    }
}

/// What a build made of the tree.
#[derive(Debug, Clone)]
pub struct Built {
    /// The buildpack's name, as the transcript and the app's release show it.
    pub buildpack: String,
    pub process_types: BTreeMap<String, String>,
}

/// Where and as whom a build runs.
pub struct BuildJob<'a> {
    /// The pushed tree, built in place: it becomes the release.
    pub app_dir: &'a Path,
    pub cache_dir: &'a Path,
    pub uid: u32,
    /// The app's variables, which builds see too.
    pub env: &'a BTreeMap<String, String>,
    /// The control groups the build's commands join.
    pub cgroups: &'a [std::path::PathBuf],
    /// The operator's buildpacks (`--buildpacks-dir`), tried before the built-in ones.
    pub buildpacks_dir: Option<&'a Path>,
    /// `STACK`.
    pub stack: &'a str,
}

/// Builds `job.app_dir`; the error is the line the pusher reads.
pub async fn build(job: &BuildJob<'_>, transcript: &Transcript) -> Result<Built, String> {
    let owner = format!("{0}:{0}", job.uid);
    for dir in [job.app_dir, job.cache_dir] {
        run_host(&["chown", "-R", &owner, &dir.display().to_string()]).await?;
    }
    if let Some(built) = crate::buildpacks::external(job, transcript).await? {
        return Ok(built);
    }
    let pack = Pack::detect(job.app_dir).ok_or_else(|| {
        "no buildpack recognizes this app: push a Procfile, requirements.txt, package.json or index.html".to_owned()
    })?;
    transcript.step(&format!("{} app detected", pack.name()));
    let venv = (pack == Pack::Python).then(|| crate::venv::CachedVenv::of(job)).flatten();
    if let Some(cached) = venv.as_ref().filter(|v| v.fits()) {
        cached.restore(job, transcript).await?;
    } else {
        for argv in commands(pack, job.app_dir) {
            transcript.step(&format!("Running {}", argv.join(" ")));
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            run_sandboxed(job, &argv, transcript).await?;
        }
        if let Some(venv) = &venv {
            venv.keep(job, transcript).await;
        }
    }
    let process_types = process_types(pack, job.app_dir)?;
    announce_types(job.app_dir, pack.name(), &process_types, transcript);
    Ok(Built { buildpack: pack.name().to_owned(), process_types })
}

/// `Discovering process types` and where they come from.
pub(crate) fn announce_types(
    app_dir: &Path,
    pack: &str,
    process_types: &BTreeMap<String, String>,
    transcript: &Transcript,
) {
    transcript.step("Discovering process types");
    let types = process_types.keys().map(String::as_str).collect::<Vec<_>>().join(", ");
    if app_dir.join("Procfile").is_file() {
        transcript.detail(&format!("Procfile declares types -> {types}"));
    } else {
        transcript.detail(&format!("Default types for {pack} -> {types}"));
    }
}

/// The build commands of a pack, run in order in `/app`.
fn commands(pack: Pack, dir: &Path) -> Vec<Vec<String>> {
    let own = |args: &[&str]| args.iter().map(|a| (*a).to_owned()).collect::<Vec<String>>();
    match pack {
        Pack::Python => {
            let mut install = own(&["/app/.venv/bin/pip", "install", "--disable-pip-version-check", "--no-input"]);
            install.extend(own(&["--cache-dir", "/cache/pip"]));
            if dir.join("requirements.txt").is_file() {
                install.extend(own(&["-r", "requirements.txt"]));
            } else {
                install.push(".".to_owned());
            }
            vec![own(&["/usr/bin/python3", "-m", "venv", "/app/.venv"]), install]
        }
        Pack::Node => {
            let verb = if dir.join("package-lock.json").is_file() { "ci" } else { "install" };
            vec![own(&["npm", verb, "--omit=dev", "--no-audit", "--no-fund", "--cache", "/cache/npm"])]
        }
        Pack::Static | Pack::Generic => Vec::new(),
    }
}

/// The Procfile's types, or the pack's default.
fn process_types(pack: Pack, dir: &Path) -> Result<BTreeMap<String, String>, String> {
    if let Ok(text) = std::fs::read_to_string(dir.join("Procfile")) {
        let types = parse_procfile(&text)?;
        if types.is_empty() {
            return Err("the Procfile declares no process type".to_owned());
        }
        return Ok(types);
    }
    let web = match pack {
        Pack::Node if has_start_script(dir) => "npm start",
        Pack::Static => "exec /usr/bin/python3 -m http.server \"$PORT\" --bind 127.0.0.1 --directory /app",
        _ => return Err(format!("a {} app needs a Procfile naming its processes (web: <command>)", pack.name())),
    };
    Ok(BTreeMap::from([("web".to_owned(), web.to_owned())]))
}

fn has_start_script(dir: &Path) -> bool {
    let package = std::fs::read(dir.join("package.json")).ok();
    let package: Option<serde_json::Value> = package.and_then(|p| serde_json::from_slice(&p).ok());
    package.is_some_and(|p| p["scripts"]["start"].is_string())
}

/// Whether `name` may be a process type: 1–30 letters, digits, `_` and `-`.
pub fn process_type_ok(name: &str) -> bool {
    !name.is_empty() && name.len() <= 30 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `type: command` lines; blank lines and `#` comments skipped.
pub fn parse_procfile(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut types = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let Some((name, command)) = line.split_once(':') else {
            return Err(format!("Procfile line {line:?} is not `type: command`"));
        };
        let (name, command) = (name.trim(), command.trim());
        if !process_type_ok(name) || command.is_empty() {
            return Err(format!("Procfile line {line:?} is not `type: command`"));
        }
        types.insert(name.to_owned(), command.to_owned());
    }
    Ok(types)
}

pub(crate) async fn run_host(argv: &[&str]) -> Result<(), String> {
    let status = tokio::process::Command::new(argv[0]).args(&argv[1..]).status().await;
    match status {
        Ok(status) if status.success() => Ok(()),
        other => Err(format!("{} failed: {other:?}", argv.join(" "))),
    }
}

/// Runs `argv` in the build sandbox; an exit other than 0 is an error the pusher reads.
pub(crate) async fn run_sandboxed(job: &BuildJob<'_>, argv: &[&str], transcript: &Transcript) -> Result<(), String> {
    match sandboxed(job, argv, transcript, Output::Indented).await? {
        (status, _) if status.success() => Ok(()),
        (status, _) => Err(format!("{} failed ({status})", argv.join(" "))),
    }
}

/// Runs `argv` in the build sandbox: how it exited, and its output if `output` keeps it.
pub(crate) async fn sandboxed(
    job: &BuildJob<'_>,
    argv: &[&str],
    transcript: &Transcript,
    output: Output,
) -> Result<(std::process::ExitStatus, String), String> {
    // The host's package-manager settings (proxies, certificates, mirrors) reach builds, not running apps; the
    // app's own variables win over them.
    let mut env: BTreeMap<String, String> = std::env::vars().filter(|(name, _)| host_setting(name)).collect();
    env.extend(job.env.clone());
    env.extend(
        [("PATH", crate::sandbox::PATH), ("HOME", "/app"), ("APP_DIR", "/app"), ("STACK", job.stack)]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let sandbox = Sandbox {
        app_dir: job.app_dir,
        writable: true,
        cache_dir: Some(job.cache_dir),
        buildpacks_dir: job.buildpacks_dir,
        uid: job.uid,
        env: &env,
        cgroups: job.cgroups,
    };
    let mut child = sandbox
        .command(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start the build sandbox: {e}"))?;
    let out = relay(child.stdout.take(), transcript.clone(), output);
    let err = relay(child.stderr.take(), transcript.clone(), Output::Indented);
    let waited = tokio::time::timeout(BUILD_TIME, async {
        let (status, kept, _) = tokio::join!(child.wait(), out, err);
        (status, kept)
    })
    .await;
    match waited {
        Ok((Ok(status), kept)) => Ok((status, kept)),
        Ok((Err(e), _)) => Err(format!("{} failed: {e}", argv.join(" "))),
        Err(_) => Err(format!("the build ran over {} minutes", BUILD_TIME.as_secs() / 60)),
    }
}

/// Whether a variable of Updraft's own environment configures package managers for builds.
fn host_setting(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.starts_with("PIP_")
        || upper.starts_with("NPM_CONFIG_")
        || matches!(
            upper.as_str(),
            "HTTP_PROXY"
                | "HTTPS_PROXY"
                | "NO_PROXY"
                | "SSL_CERT_FILE"
                | "SSL_CERT_DIR"
                | "REQUESTS_CA_BUNDLE"
                | "NODE_EXTRA_CA_CERTS"
        )
}

/// Copies `stream`'s lines into the transcript, or keeps them: the kept text.
async fn relay(stream: Option<impl AsyncRead + Unpin>, transcript: Transcript, output: Output) -> String {
    const KEPT: usize = 64 << 10;
    let mut kept = String::new();
    let Some(stream) = stream else { return kept };
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match output {
            Output::Indented => transcript.detail(&line),
            Output::Raw => transcript.raw(&line),
            Output::Captured if kept.len() + line.len() < KEPT => {
                kept.push_str(&line);
                kept.push('\n');
            }
            Output::Captured => {}
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn procfiles_and_detection() {
        let types = parse_procfile("# app\nweb: python app.py --port $PORT\n\nworker:  python work.py\n").unwrap();
        assert_eq!(types["web"], "python app.py --port $PORT");
        assert_eq!(types["worker"], "python work.py");
        for bad in ["web python", ": x", "web:", "we b: x"] {
            assert!(parse_procfile(bad).is_err(), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Pack::detect(dir.path()), None);
        std::fs::write(dir.path().join("index.html"), "hi").unwrap();
        assert_eq!(Pack::detect(dir.path()), Some(Pack::Static));
        std::fs::write(dir.path().join("Procfile"), "web: x").unwrap();
        assert_eq!(Pack::detect(dir.path()), Some(Pack::Generic));
        std::fs::write(dir.path().join("package.json"), "{}").unwrap();
        assert_eq!(Pack::detect(dir.path()), Some(Pack::Node));
        std::fs::write(dir.path().join("requirements.txt"), "").unwrap();
        assert_eq!(Pack::detect(dir.path()), Some(Pack::Python));
    }
}
