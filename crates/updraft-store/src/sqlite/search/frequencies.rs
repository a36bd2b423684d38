//! How many full-text rows hold a phrase, remembered for a while, so that a ranked search of several phrases
//! does not walk each phrase's whole doclist on every request to weigh it.
//!
//! Why: bm25 weighs each phrase by its inverse document frequency, and FTS5 learns a phrase's frequency only by
//! running it as a query of its own over every segment of the index (`xQueryPhrase`). At a million objects that
//! walk was most of a two-word search. A frequency remembered is exact when the index is small (it is not kept
//! under [`MIN_ROWS`] rows), and otherwise at most [`FRESH_FOR`] old and taken while the index has grown or shrunk
//! by at most 1 %: an approximation of the same kind as a search engine's per-segment statistics, which moves a
//! weight by a fraction of a percent for a phrase held by many rows.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// Below this many rows a walk is cheap, so every search counts afresh and ranks by the exact figure.
const MIN_ROWS: i64 = 10_000;
/// How long a counted frequency serves.
const FRESH_FOR: Duration = Duration::from_secs(60);
/// The most phrases remembered; beyond it the stale ones go, or all of them.
const CAPACITY: usize = 65_536;

/// A store's remembered frequencies, shared by its reader connections.
pub(crate) struct DocFrequencies {
    known: Mutex<HashMap<String, Known>>,
    /// `MIN_ROWS`, lowered by tests.
    min_rows: AtomicI64,
}

impl Default for DocFrequencies {
    fn default() -> Self {
        DocFrequencies { known: Mutex::default(), min_rows: AtomicI64::new(MIN_ROWS) }
    }
}

struct Known {
    /// The index's rows when counted.
    rows: i64,
    hits: i64,
    at: Instant,
}

impl Known {
    fn serves(&self, rows: i64, now: Instant) -> bool {
        now.duration_since(self.at) < FRESH_FOR && (rows - self.rows).abs() * 100 <= self.rows
    }
}

impl DocFrequencies {
    /// The rows holding `phrase` (FTS5 query text), if counted lately with the index at about `rows` rows.
    pub(crate) fn get(&self, phrase: &str, rows: i64) -> Option<i64> {
        if rows < self.min_rows.load(Ordering::Relaxed) {
            return None;
        }
        let known = self.known.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        known.get(phrase).filter(|k| k.serves(rows, Instant::now())).map(|k| k.hits)
    }

    /// Remembers that `hits` of the index's `rows` rows hold `phrase`.
    pub(crate) fn put(&self, phrase: &str, rows: i64, hits: i64) {
        if rows < self.min_rows.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        let mut known = self.known.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if known.len() >= CAPACITY && !known.contains_key(phrase) {
            known.retain(|_, k| k.serves(rows, now));
            if known.len() >= CAPACITY {
                known.clear();
            }
        }
        known.insert(phrase.to_owned(), Known { rows, hits, at: now });
    }

    /// Remembers frequencies whatever the size of the index.
    #[cfg(test)]
    pub(crate) fn at_any_size(&self) {
        self.min_rows.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frequency_serves_while_fresh_and_the_index_about_the_same_size() {
        let frequencies = DocFrequencies::default();
        frequencies.put("{p0} : \"cat\"", 100_000, 400);
        assert_eq!(frequencies.get("{p0} : \"cat\"", 100_000), Some(400));
        assert_eq!(frequencies.get("{p0} : \"cat\"", 100_999), Some(400));
        assert_eq!(frequencies.get("{p0} : \"cat\"", 99_000), Some(400));
        assert_eq!(frequencies.get("{p0} : \"cat\"", 101_001), None, "grown by more than 1 %");
        assert_eq!(frequencies.get("{p0} : \"cat\"", 98_999), None, "shrunk by more than 1 %");
        assert_eq!(frequencies.get("{p0} : \"cat\" *", 100_000), None, "a prefix is another phrase");
        assert_eq!(frequencies.get("{p1} : \"cat\"", 100_000), None, "so are other columns");
        // A small index is counted every time.
        frequencies.put("{p0} : \"dog\"", MIN_ROWS - 1, 3);
        assert_eq!(frequencies.get("{p0} : \"dog\"", MIN_ROWS - 1), None);
        // Stale entries go first when full.
        let stale = Instant::now().checked_sub(FRESH_FOR).expect("the clock is past a minute");
        let mut known = frequencies.known.lock().unwrap();
        for i in 0..CAPACITY {
            known.insert(format!("stale {i}"), Known { rows: 100_000, hits: 1, at: stale });
        }
        drop(known);
        frequencies.put("{p0} : \"bird\"", 100_000, 7);
        assert_eq!(frequencies.get("{p0} : \"bird\"", 100_000), Some(7));
        assert_eq!(frequencies.get("{p0} : \"cat\"", 100_000), Some(400));
        assert_eq!(frequencies.known.lock().unwrap().len(), 2);
    }
}
