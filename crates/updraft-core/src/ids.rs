//! Object ids: 24 lower-case hex characters, as EDS (MongoDB-backed) spelled them.

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// 12 bytes: seconds since the epoch (so ids sort roughly by creation), 5 random bytes fixed per
/// process, and a counter, like a MongoDB ObjectId.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId([u8; 12]);

impl ObjectId {
    pub fn generate() -> ObjectId {
        static PROCESS: OnceLock<[u8; 5]> = OnceLock::new();
        static COUNTER: OnceLock<AtomicU32> = OnceLock::new();
        let process = PROCESS.get_or_init(rand::random);
        let counter = COUNTER.get_or_init(|| AtomicU32::new(rand::random())).fetch_add(1, Ordering::Relaxed);
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as u32;
        let mut raw = [0u8; 12];
        raw[..4].copy_from_slice(&secs.to_be_bytes());
        raw[4..9].copy_from_slice(process);
        raw[9..].copy_from_slice(&counter.to_be_bytes()[1..]);
        ObjectId(raw)
    }

    /// Only the canonical spelling (24 lower-case hex characters) is an id.
    pub fn parse(text: &str) -> Option<ObjectId> {
        if text.len() != 24 || text.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let mut raw = [0u8; 12];
        hex::decode_to_slice(text, &mut raw).ok()?;
        Some(ObjectId(raw))
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_24_hex_unique_and_round_trip() {
        let a = ObjectId::generate();
        let b = ObjectId::generate();
        assert_ne!(a, b);
        let text = a.to_string();
        assert_eq!(text.len(), 24);
        assert_eq!(ObjectId::parse(&text), Some(a));
        assert_eq!(ObjectId::parse(&text.to_uppercase()), None);
        assert_eq!(ObjectId::parse("5376019e698b3c6ad500095"), None);
        assert_eq!(ObjectId::parse("zz76019e698b3c6ad500095a"), None);
    }
}
