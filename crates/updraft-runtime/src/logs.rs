//! An app's log: its processes' stdout and stderr lines and the runtime's own notes, each with its time, kept
//! in memory for `logs` and appended to a file that survives deploys and restarts, bounded on disk (one file
//! of [`MAX_FILE`] bytes and one older).

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Lines kept in memory per app.
const KEPT: usize = 5_000;
/// When the file is rotated.
const MAX_FILE: u64 = 10 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogLine {
    /// RFC 3339.
    pub time: String,
    /// `web.1`, `worker.2`, or `mar` for the runtime's own lines.
    pub source: String,
    pub log: String,
}

pub struct AppLogs {
    file: PathBuf,
    lines: Mutex<VecDeque<LogLine>>,
    /// Lines as they come, for `logs?follow=true`; a follower that falls behind loses lines, not the app.
    live: tokio::sync::broadcast::Sender<LogLine>,
}

impl AppLogs {
    /// The log kept at `file`, with its last lines read back.
    pub fn open(file: PathBuf) -> AppLogs {
        let mut lines = VecDeque::new();
        if let Ok(text) = std::fs::read_to_string(&file) {
            for line in text.lines() {
                if let Ok(line) = serde_json::from_str::<LogLine>(line) {
                    if lines.len() == KEPT {
                        lines.pop_front();
                    }
                    lines.push_back(line);
                }
            }
        }
        AppLogs { file, lines: Mutex::new(lines), live: tokio::sync::broadcast::channel(1024).0 }
    }

    pub fn push(&self, source: &str, text: &str) {
        let time = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339);
        let line = LogLine { time: time.unwrap_or_default(), source: source.to_owned(), log: text.to_owned() };
        let mut lines = self.lines.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Written under the lock, so that lines reach the file in their order.
        if let Err(err) = self.append(&line) {
            tracing::warn!(file = %self.file.display(), %err, "app log not written");
        }
        if lines.len() == KEPT {
            lines.pop_front();
        }
        let _ = self.live.send(line.clone());
        lines.push_back(line);
    }

    /// The last `limit` lines, and every line after them as it comes.
    pub fn follow(&self, limit: usize) -> (Vec<LogLine>, tokio::sync::broadcast::Receiver<LogLine>) {
        let lines = self.lines.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let receiver = self.live.subscribe();
        (lines.iter().skip(lines.len().saturating_sub(limit)).cloned().collect(), receiver)
    }

    fn append(&self, line: &LogLine) -> std::io::Result<()> {
        if std::fs::metadata(&self.file).is_ok_and(|m| m.len() >= MAX_FILE) {
            std::fs::rename(&self.file, self.file.with_extension("log.1"))?;
        }
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&self.file)?;
        let mut bytes = serde_json::to_vec(line).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        file.write_all(&bytes)
    }

    /// Lines `offset..offset + limit` counted from the oldest kept.
    pub fn page(&self, offset: usize, limit: usize) -> Vec<LogLine> {
        let lines = self.lines.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        lines.iter().skip(offset).take(limit).cloned().collect()
    }
}
