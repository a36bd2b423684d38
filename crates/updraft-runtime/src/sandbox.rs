//! The bubblewrap sandbox that builds and app processes run in (docs/runtime.md): a new mount, PID, IPC and UTS
//! namespace whose root holds only `/usr`, a few files of `/etc` (certificates, name resolution, time zone), a
//! fresh `/dev`, `/proc` and `/tmp`, and the app at `/app`; the process itself runs as the app's own
//! unprivileged user with no capabilities and `no_new_privs`. So an app sees neither Updraft's data directory,
//! nor another app's files, nor the host's secrets, and cannot gain rights back.
//!
//! The network is the host's: apps listen on `127.0.0.1:$PORT` for the router.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tokio::process::Command;

pub const BWRAP: &str = "bwrap";

/// What of `/etc` a sandbox sees, read-only, where it exists.
const ETC: &[&str] = &[
    "/etc/ld.so.cache",
    "/etc/debian_version",
    "/etc/os-release",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/localtime",
    "/etc/alternatives",
    "/etc/mime.types",
    "/etc/protocols",
    "/etc/services",
];

/// One sandboxed command's surroundings.
pub struct Sandbox<'a> {
    /// Bound at `/app`.
    pub app_dir: &'a Path,
    /// Builds write the app; running processes do not.
    pub writable: bool,
    /// Bound writable at `/cache` (builds).
    pub cache_dir: Option<&'a Path>,
    /// The operator's buildpacks, bound read-only at `/buildpacks` (builds).
    pub buildpacks_dir: Option<&'a Path>,
    pub uid: u32,
    /// The whole environment: nothing of Updraft's own leaks in.
    pub env: &'a BTreeMap<String, String>,
    /// The control groups it joins before it starts ([`crate::cgroups`]).
    pub cgroups: &'a [PathBuf],
}

impl Sandbox<'_> {
    /// `argv` in the sandbox, as `bwrap … setpriv … argv`.
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut command = if self.cgroups.is_empty() {
            Command::new(BWRAP)
        } else {
            let mut join = Command::new("/bin/sh");
            join.args(["-c", crate::cgroups::JOIN, "sh", &self.cgroups.len().to_string()])
                .args(self.cgroups)
                .arg(BWRAP);
            join
        };
        command.args(self.arguments()).arg("--").args(self.setpriv()).arg("--").args(argv);
        command.env_clear().kill_on_drop(true);
        command
    }

    fn arguments(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "--die-with-parent",
            "--new-session",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/bin",
            "/bin",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
            "--symlink",
            "usr/sbin",
            "/sbin",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            // Sticky and writable by all, as a /tmp is: bubblewrap makes it 0755 and root's otherwise.
            "--perms",
            "1777",
            "--tmpfs",
            "/tmp",
        ]
        .map(str::to_owned)
        .into();
        // Made by bubblewrap with mode 0700 otherwise, which the app's user could not enter.
        args.extend(["--perms", "0755", "--dir", "/etc"].map(str::to_owned));
        for etc in ETC {
            args.extend(["--ro-bind-try".into(), (*etc).into(), (*etc).into()]);
        }
        let bind = if self.writable { "--bind" } else { "--ro-bind" };
        args.extend([bind.into(), self.app_dir.display().to_string(), "/app".into()]);
        if let Some(cache) = self.cache_dir {
            args.extend(["--bind".into(), cache.display().to_string(), "/cache".into()]);
        }
        if let Some(buildpacks) = self.buildpacks_dir {
            args.extend(["--ro-bind".into(), buildpacks.display().to_string(), "/buildpacks".into()]);
        }
        args.extend(["--chdir".into(), "/app".into(), "--clearenv".into()]);
        for (name, value) in self.env {
            args.extend(["--setenv".into(), name.clone(), value.clone()]);
        }
        args
    }

    fn setpriv(&self) -> Vec<String> {
        let uid = self.uid.to_string();
        vec![
            "/usr/bin/setpriv".into(),
            format!("--reuid={uid}"),
            format!("--regid={uid}"),
            "--clear-groups".into(),
            "--no-new-privs".into(),
            "--inh-caps=-all".into(),
            "--bounding-set=-all".into(),
        ]
    }
}

/// The `PATH` of sandboxed commands: the app's own tools first.
pub const PATH: &str = "/app/.venv/bin:/app/node_modules/.bin:/app/bin:/usr/bin:/bin";
