//! Memory, process and CPU limits for an app's sandboxes, by the app's size (docs/runtime.md), through the
//! kernel's control groups: cgroup v2 where the host has it whole, else the v1 controllers of a hybrid host
//! (Debian machines without systemd as PID 1 have those).
//!
//! A process joins its groups before it starts: it is spawned as `sh -c '<write own pid>; exec bwrap …'`, so
//! the app and everything it forks are counted from their first instruction, with no window and no unsafe
//! `pre_exec`. Where control groups cannot be written (not root, no cgroupfs), processes run without limits and
//! the runtime says so once at start.

use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";
/// The directory of Updraft's groups under each hierarchy.
const OURS: &str = "updraft";

/// The limits of one sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: u64,
    pub pids: u32,
    /// CPU time per 100 ms period, in microseconds.
    pub cpu_quota_us: u32,
}

impl Limits {
    /// A process of an app of `size` (1, 2, 4 or 8): 256 MiB, 128 processes and a quarter of a core per unit,
    /// the original MAR's sizes (`small` = 2 = 512 MB).
    pub fn of_size(size: u8) -> Limits {
        let size = u32::from(size.max(1));
        Limits { memory_bytes: u64::from(size) * (256 << 20), pids: 128 * size, cpu_quota_us: 25_000 * size }
    }

    /// A build: what pip and npm need whatever the app's size.
    pub fn build() -> Limits {
        Limits { memory_bytes: 2 << 30, pids: 1024, cpu_quota_us: 200_000 }
    }
}

/// Which cgroup layout the host has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cgroups {
    /// One unified hierarchy.
    V2,
    /// The v1 `memory`, `pids` and `cpu` hierarchies.
    V1,
    /// None that can be written.
    Unavailable,
}

impl Cgroups {
    /// Finds the layout and makes Updraft's own group where it must be, checking that it can write there.
    pub fn detect() -> Cgroups {
        let root = Path::new(ROOT);
        if root.join("cgroup.controllers").is_file() {
            let ours = root.join(OURS);
            let enabled = std::fs::create_dir_all(&ours).is_ok()
                && std::fs::write(root.join("cgroup.subtree_control"), "+memory +pids +cpu").is_ok()
                && std::fs::write(ours.join("cgroup.subtree_control"), "+memory +pids +cpu").is_ok();
            return if enabled { Cgroups::V2 } else { Cgroups::Unavailable };
        }
        let v1 = ["memory", "pids", "cpu"].iter().all(|c| std::fs::create_dir_all(root.join(c).join(OURS)).is_ok());
        if v1 { Cgroups::V1 } else { Cgroups::Unavailable }
    }

    /// Makes the groups of one sandbox (`name`: unique among the running ones) with `limits`; the directories
    /// whose `cgroup.procs` the sandbox joins, none where limits are unavailable.
    pub fn make(&self, name: &str, limits: Limits) -> std::io::Result<Vec<PathBuf>> {
        let root = Path::new(ROOT);
        match self {
            Cgroups::Unavailable => Ok(Vec::new()),
            Cgroups::V2 => {
                let dir = root.join(OURS).join(name);
                std::fs::create_dir_all(&dir)?;
                std::fs::write(dir.join("memory.max"), limits.memory_bytes.to_string())?;
                // No swap, where the host has it: the limit is the memory the app may use.
                let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                std::fs::write(dir.join("pids.max"), limits.pids.to_string())?;
                std::fs::write(dir.join("cpu.max"), format!("{} 100000", limits.cpu_quota_us))?;
                Ok(vec![dir])
            }
            Cgroups::V1 => {
                let memory = root.join("memory").join(OURS).join(name);
                let pids = root.join("pids").join(OURS).join(name);
                let cpu = root.join("cpu").join(OURS).join(name);
                for dir in [&memory, &pids, &cpu] {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(memory.join("memory.limit_in_bytes"), limits.memory_bytes.to_string())?;
                let _ = std::fs::write(memory.join("memory.memsw.limit_in_bytes"), limits.memory_bytes.to_string());
                std::fs::write(pids.join("pids.max"), limits.pids.to_string())?;
                std::fs::write(cpu.join("cpu.cfs_period_us"), "100000")?;
                std::fs::write(cpu.join("cpu.cfs_quota_us"), limits.cpu_quota_us.to_string())?;
                Ok(vec![memory, pids, cpu])
            }
        }
    }
}

/// Kills whatever is left in the groups, then removes them.
pub fn remove(dirs: &[PathBuf]) {
    for dir in dirs {
        if std::fs::write(dir.join("cgroup.kill"), "1").is_err() {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
        }
    }
    for dir in dirs {
        // A group empties a moment after its last process is killed.
        for _ in 0..50 {
            if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// The shell line that writes its own pid into each group's `cgroup.procs`, then runs its arguments.
pub const JOIN: &str = r#"n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1/cgroup.procs" || exit 125; shift; n=$((n-1)); done; exec "$@""#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_scale_the_limits() {
        assert_eq!(Limits::of_size(1), Limits { memory_bytes: 256 << 20, pids: 128, cpu_quota_us: 25_000 });
        assert_eq!(Limits::of_size(2).memory_bytes, 512 << 20);
        assert_eq!(Limits::of_size(8).cpu_quota_us, 200_000);
        assert_eq!(Cgroups::Unavailable.make("x", Limits::build()).unwrap(), Vec::<PathBuf>::new());
    }
}
