//! A deploy: build the pushed tree into a new release, start its processes beside the old ones, wait until its
//! web processes answer on `PORT`, then switch the router to them and stop the old (docs/runtime.md). A failed
//! build or health check leaves the old release serving, and the pusher reads why.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::build::{BuildJob, Transcript, build};
use crate::cgroups::Limits;
use crate::records::{AppRecord, Release};
use crate::runtime::{Runtime, dir_size, now_ms};
use crate::scheduler::Placed;

/// Releases kept for rollback.
const KEPT_RELEASES: usize = 5;

impl Runtime {
    /// Builds the tree at `source` (moved into the release) for the app's new release and makes it current.
    pub async fn deploy(&self, id: &str, source: &Path, commit: &str, transcript: &Transcript) -> Result<u32, String> {
        let lock = self.app_lock(id);
        let Ok(_one_at_a_time) = lock.try_lock() else {
            return Err("a deploy of this app is in progress: push again once it ends".to_owned());
        };
        let app = self.app(id).ok_or("no such app")?;
        let version = app.releases.last().map_or(1, |r| r.version + 1);
        let release_dir = self.releases_dir(id).join(format!("v{version}"));
        let cache_dir = self.settings.root.join("cache").join(id);
        let moved = async {
            let _ = tokio::fs::remove_dir_all(&release_dir).await;
            tokio::fs::create_dir_all(&self.releases_dir(id)).await?;
            tokio::fs::create_dir_all(&cache_dir).await?;
            tokio::fs::rename(source, &release_dir).await
        };
        moved.await.map_err(|e| format!("could not stage the release: {e}"))?;
        let group = format!("{}.{id}.build", self.instance);
        let cgroups = self.cgroups.make(&group, Limits::build()).unwrap_or_default();
        let job = BuildJob {
            app_dir: &release_dir,
            cache_dir: &cache_dir,
            uid: app.uid,
            env: &app.env,
            cgroups: &cgroups,
            buildpacks_dir: self.settings.buildpacks_dir.as_deref(),
            stack: &app.stack,
        };
        let built = build(&job, transcript).await;
        let _ = tokio::task::spawn_blocking(move || crate::cgroups::remove(&cgroups)).await;
        let built = match built {
            Ok(built) => built,
            Err(err) => {
                let _ = tokio::fs::remove_dir_all(&release_dir).await;
                return Err(err);
            }
        };
        transcript.step(&format!("Compiled slug size is {}", human_size(dir_size(&release_dir))));
        let release = Release {
            version,
            build: version,
            commit: commit.to_owned(),
            buildpack: built.buildpack,
            process_types: built.process_types,
            env: app.env.clone(),
            created_ms: now_ms(),
            stack: app.stack.clone(),
        };
        self.go_live(app, release, transcript).await
    }

    /// Starts a built release (its build in `releases/<id>/v<build>`), health-checked, and records it as the
    /// current one; a release that does not come up is removed and the old one keeps serving. Under the app's lock.
    pub(crate) async fn go_live(
        &self,
        mut app: AppRecord,
        release: Release,
        transcript: &Transcript,
    ) -> Result<u32, String> {
        let id = app.id.clone();
        let version = release.version;
        let structure = structure_for(&app.structure, &release);
        transcript.step("Deploying app");
        if let Err(err) = self.start_checked(&app, &release, &structure, transcript).await {
            if release.build == version {
                let _ = tokio::fs::remove_dir_all(self.releases_dir(&id).join(format!("v{version}"))).await;
            }
            return Err(err);
        }
        app.structure = structure;
        app.releases.push(release);
        let dropped: Vec<Release> = app.releases.drain(..app.releases.len().saturating_sub(KEPT_RELEASES)).collect();
        let kept = app.releases.clone();
        self.put(app).await.map_err(|e| format!("the release could not be recorded: {e}"))?;
        self.remove_builds(&id, &dropped, &kept).await;
        transcript.step(&format!("{id} deployed to http://{id}.{}", self.settings.apps_domain));
        Ok(version)
    }

    /// Removes the builds of `dropped` releases that no `kept` release runs.
    pub(crate) async fn remove_builds(&self, id: &str, dropped: &[Release], kept: &[Release]) {
        for old in dropped.iter().filter(|old| kept.iter().all(|k| k.build != old.build)) {
            let _ = tokio::fs::remove_dir_all(self.releases_dir(id).join(format!("v{}", old.build))).await;
        }
    }

    /// Starts the release's processes, waits for its web ones to answer, then routes to them.
    pub(crate) async fn start_checked(
        &self,
        app: &crate::records::AppRecord,
        release: &Release,
        structure: &BTreeMap<String, u32>,
        transcript: &Transcript,
    ) -> Result<(), String> {
        let specs = self.specs(app, release, structure).map_err(|e| e.to_string())?;
        let logs = self.logs(&app.id);
        let processes: Vec<Box<dyn Placed>> =
            specs.into_iter().map(|spec| self.scheduler.start(spec, logs.clone())).collect();
        let deadline = Instant::now() + self.settings.health_timeout;
        for process in processes.iter().filter(|p| p.spec().process_type == "web") {
            if !answers(process.as_ref(), deadline).await {
                let name = process.spec().name();
                self.stop_processes(processes).await;
                return Err(format!(
                    "{name} did not answer HTTP on $PORT within {} s: the old release keeps serving (see the app's logs)",
                    self.settings.health_timeout.as_secs()
                ));
            }
        }
        transcript.detail(&format!("{} process(es) up", processes.len()));
        self.switch(&app.id, processes).await;
        Ok(())
    }
}

/// The structure a release runs with: the counts set so far for the types it declares; `web` 1 and the others 0
/// where unset.
fn structure_for(current: &BTreeMap<String, u32>, release: &Release) -> BTreeMap<String, u32> {
    release
        .process_types
        .keys()
        .map(|t| (t.clone(), current.get(t).copied().unwrap_or(u32::from(t == "web"))))
        .collect()
}

/// Whether the process answers an HTTP request on its port before `deadline`, without exiting first.
async fn answers(process: &dyn Placed, deadline: Instant) -> bool {
    let address = process.address();
    let mut pause = Duration::from_millis(20);
    while Instant::now() < deadline {
        if process.restarts() > 0 {
            return false;
        }
        let probe = async {
            let mut stream = tokio::net::TcpStream::connect(address).await?;
            stream.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\nUser-Agent: updraft-health\r\n\r\n").await?;
            let mut head = [0u8; 5];
            stream.read_exact(&mut head).await?;
            Ok::<bool, std::io::Error>(&head == b"HTTP/")
        };
        if let Ok(Ok(true)) = tokio::time::timeout(Duration::from_secs(5), probe).await {
            return true;
        }
        // Most apps listen within a few tenths of a second: probe often at first, then less.
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
    false
}

pub(crate) fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1}M", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{:.1}K", b as f64 / 1024.0),
        b => format!("{b}B"),
    }
}
