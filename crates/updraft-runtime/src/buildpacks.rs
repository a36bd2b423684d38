//! Heroku-style external buildpacks (docs/runtime.md): the one `BUILDPACK_URL` names (a git URL over http, https
//! or git, `#<branch or tag>` optional), cloned afresh for each build into the app's cache by the build sandbox
//! itself; else the first of the operator's packs under `--buildpacks-dir` whose `bin/detect` accepts the tree.
//! Either runs before the built-in packs, as the app's user in its build sandbox, like they do:
//! `bin/detect /app` (exit 0, its output the name), `bin/compile /app /cache/pack /cache/env` (the app's
//! variables as files in `env`), `bin/release /app` (YAML whose `default_process_types` apply without a Procfile).

use std::collections::BTreeMap;

use crate::build::{
    BuildJob, Built, Output, Transcript, announce_types, parse_procfile, run_host, run_sandboxed, sandboxed,
};

/// Where `BUILDPACK_URL` is cloned, inside the sandbox.
const CLONE: &str = "/cache/buildpack";

/// The external pack that builds this tree, if one applies; `Err` when it was asked for and failed.
pub(crate) async fn external(job: &BuildJob<'_>, transcript: &Transcript) -> Result<Option<Built>, String> {
    let (pack, name) = if let Some(url) = job.env.get("BUILDPACK_URL").filter(|url| !url.is_empty()) {
        let (url, branch) = parse_url(url)?;
        transcript.step(&format!("Fetching custom buildpack {url}"));
        run_sandboxed(job, &["/usr/bin/rm", "-rf", CLONE], transcript).await?;
        let mut clone = vec!["/usr/bin/git", "clone", "--quiet", "--single-branch"];
        if let Some(branch) = branch {
            clone.extend(["--branch", branch]);
        }
        clone.extend(["--", url, CLONE]);
        run_sandboxed(job, &clone, transcript).await?;
        let name = detect(job, CLONE, transcript)
            .await?
            .ok_or_else(|| format!("the buildpack at {url} does not recognize this app (its bin/detect failed)"))?;
        (CLONE.to_owned(), name)
    } else if let Some(dir) = job.buildpacks_dir {
        let mut packs: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| format!("the buildpacks directory cannot be read: {e}"))?
            .flatten()
            .filter(|entry| entry.path().join("bin/detect").is_file())
            .filter_map(|entry| entry.file_name().to_str().map(str::to_owned))
            .collect();
        packs.sort();
        let mut found = None;
        for pack in packs {
            let inside = format!("/buildpacks/{pack}");
            if let Some(name) = detect(job, &inside, transcript).await? {
                found = Some((inside, name));
                break;
            }
        }
        match found {
            Some(found) => found,
            None => return Ok(None),
        }
    } else {
        return Ok(None);
    };
    transcript.step(&format!("{name} app detected"));
    compile(job, &pack, transcript).await?;
    let (status, release) =
        sandboxed(job, &[&format!("{pack}/bin/release"), "/app"], transcript, Output::Captured).await?;
    if !status.success() {
        return Err(format!("the buildpack's bin/release failed ({status})"));
    }
    let process_types = match std::fs::read_to_string(job.app_dir.join("Procfile")) {
        Ok(procfile) => parse_procfile(&procfile)?,
        Err(_) => default_process_types(&release),
    };
    if process_types.is_empty() {
        return Err("neither a Procfile nor the buildpack's bin/release names a process type".to_owned());
    }
    announce_types(job.app_dir, &name, &process_types, transcript);
    Ok(Some(Built { buildpack: name, process_types }))
}

/// `bin/compile /app /cache/pack /cache/env`, its output as the pack writes it.
async fn compile(job: &BuildJob<'_>, pack: &str, transcript: &Transcript) -> Result<(), String> {
    let env_dir = job.cache_dir.join("env");
    let made = (|| {
        let _ = std::fs::remove_dir_all(&env_dir);
        std::fs::create_dir_all(&env_dir)?;
        std::fs::create_dir_all(job.cache_dir.join("pack"))?;
        for (name, value) in job.env {
            std::fs::write(env_dir.join(name), value)?;
        }
        Ok::<(), std::io::Error>(())
    })();
    made.map_err(|e| format!("could not prepare the buildpack's directories: {e}"))?;
    let owner = format!("{0}:{0}", job.uid);
    for dir in ["env", "pack"] {
        run_host(&["chown", "-R", &owner, &job.cache_dir.join(dir).display().to_string()]).await?;
    }
    let argv = [&format!("{pack}/bin/compile") as &str, "/app", "/cache/pack", "/cache/env"];
    match sandboxed(job, &argv, transcript, Output::Raw).await? {
        (status, _) if status.success() => Ok(()),
        (status, _) => Err(format!("the buildpack's bin/compile failed ({status})")),
    }
}

/// `bin/detect /app`: the pack's name when it accepts the tree.
async fn detect(job: &BuildJob<'_>, pack: &str, transcript: &Transcript) -> Result<Option<String>, String> {
    let (status, said) = sandboxed(job, &[&format!("{pack}/bin/detect"), "/app"], transcript, Output::Captured).await?;
    let name = said.lines().next().map(str::trim).filter(|n| !n.is_empty()).unwrap_or("Custom");
    Ok(status.success().then(|| name.chars().take(60).collect()))
}

/// The URL and branch of `BUILDPACK_URL`: only git's network transports, so that it names no file of the host
/// and no helper program (`ext::`).
fn parse_url(value: &str) -> Result<(&str, Option<&str>), String> {
    let (url, branch) = match value.split_once('#') {
        Some((url, branch)) => (url, Some(branch)),
        None => (value, None),
    };
    let scheme_ok = ["https://", "http://", "git://"].iter().any(|s| url.starts_with(s)) && url.len() > 8;
    let clean = |s: &str| !s.starts_with('-') && s.bytes().all(|b| b.is_ascii_graphic());
    if !scheme_ok || !clean(url) || !branch.is_none_or(|b| !b.is_empty() && clean(b)) {
        return Err(format!("BUILDPACK_URL {value:?} is not an http, https or git URL (with an optional #branch)"));
    }
    Ok((url, branch))
}

/// `default_process_types` of a `bin/release` YAML: the indented `type: command` lines under that key.
fn default_process_types(yaml: &str) -> BTreeMap<String, String> {
    let mut types = BTreeMap::new();
    let mut inside = false;
    for line in yaml.lines() {
        if !line.starts_with([' ', '\t']) {
            inside = line.trim_end() == "default_process_types:";
            continue;
        }
        if let (true, Some((name, command))) = (inside, line.trim().split_once(':')) {
            let command = command.trim().trim_matches(|c| c == '"' || c == '\'');
            if !name.is_empty() && !command.is_empty() {
                types.insert(name.trim().to_owned(), command.to_owned());
            }
        }
    }
    types
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildpack_urls_and_release_yaml() {
        assert_eq!(parse_url("https://example.com/pack.git#v2").unwrap(), ("https://example.com/pack.git", Some("v2")));
        assert_eq!(parse_url("http://127.0.0.1:9/p.git").unwrap(), ("http://127.0.0.1:9/p.git", None));
        for bad in ["file:///etc", "ext::sh -c id", "/srv/pack", "https://x/p.git#", "https://x/p.git#-b", "git://"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        let yaml = "---\naddons: []\ndefault_process_types:\n  web: bin/serve --port $PORT\n  worker: 'bin/work'\nconfig_vars:\n  A: b\n";
        let types = default_process_types(yaml);
        assert_eq!(types.len(), 2, "{types:?}");
        assert_eq!(types["web"], "bin/serve --port $PORT");
        assert_eq!(types["worker"], "bin/work");
        assert!(default_process_types("--- {}\n").is_empty());
    }
}
