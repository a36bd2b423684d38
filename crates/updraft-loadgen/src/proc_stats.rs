//! Process figures read from procfs: resident memory and CPU time.

use anyhow::{Context, Result};

/// `sysconf(_SC_CLK_TCK)`; 100 on every Linux platform we run on, and asking
/// for it would need `unsafe` FFI.
const CLK_TCK: f64 = 100.0;

/// Resident set size in KiB (`VmRSS` in `/proc/<pid>/status`).
pub(crate) fn rss_kib(pid: Pid) -> Result<u64> {
    let path = format!("/proc/{}/status", pid.path());
    let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS in {path}"))
}

/// User + system CPU seconds consumed so far (`/proc/<pid>/stat` fields 14, 15).
pub(crate) fn cpu_seconds(pid: Pid) -> Result<f64> {
    let path = format!("/proc/{}/stat", pid.path());
    let stat = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    // The command name (field 2) may contain spaces; fields resume after ')'.
    let after = stat.rsplit_once(')').map(|(_, r)| r).context("malformed stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state), so utime (14) is index 11.
    let ticks = |i: usize| -> Result<u64> {
        fields.get(i).and_then(|f| f.parse().ok()).with_context(|| format!("no field {} in {path}", i + 3))
    };
    Ok((ticks(11)? + ticks(12)?) as f64 / CLK_TCK)
}

/// Open-file soft limit of this process (`/proc/self/limits`).
pub(crate) fn max_open_files() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Pid {
    SelfProcess,
    Other(u32),
}

impl Pid {
    fn path(self) -> String {
        match self {
            Pid::SelfProcess => "self".to_string(),
            Pid::Other(pid) => pid.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        assert!(rss_kib(Pid::SelfProcess).unwrap() > 0);
        assert!(cpu_seconds(Pid::SelfProcess).unwrap() >= 0.0);
        assert!(max_open_files().unwrap() > 0);
    }
}
