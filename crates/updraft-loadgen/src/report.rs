//! Ordered key/value results, printed for humans and as one JSON line.
//!
//! Scenarios write into a shared report as they go, so whatever has been
//! measured can still be printed when the global deadline cuts a run short.

use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

#[derive(Debug, Default)]
pub(crate) struct Report {
    entries: Vec<(String, Value)>,
}

impl Report {
    pub(crate) fn set(&mut self, key: &str, value: impl Into<Value>) {
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key.to_string(), value)),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// One JSON object, keys in insertion order.
    pub(crate) fn to_json_line(&self) -> String {
        let fields: Vec<String> =
            self.entries.iter().map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), v)).collect();
        format!("{{{}}}", fields.join(","))
    }

    pub(crate) fn to_human(&self) -> String {
        let width = self.entries.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (k, v) in &self.entries {
            let shown = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => match n.as_f64() {
                    Some(f) if n.is_f64() => format_float(f),
                    _ => n.to_string(),
                },
                other => other.to_string(),
            };
            out.push_str(&format!("  {k:<width$}  {shown}\n"));
        }
        out
    }
}

/// Rounds for display only; JSON keeps full precision.
fn format_float(f: f64) -> String {
    if f.abs() >= 100.0 {
        format!("{f:.0}")
    } else if f.abs() >= 1.0 {
        format!("{f:.2}")
    } else {
        format!("{f:.4}")
    }
}

/// Handle shared between the scenario and `main`.
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedReport(Arc<Mutex<Report>>);

impl SharedReport {
    pub(crate) fn set(&self, key: &str, value: impl Into<Value>) {
        self.lock().set(key, value);
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Report> {
        // A panic elsewhere must not hide the figures gathered so far.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Rounds to a sensible number of decimals for the JSON line too.
pub(crate) fn round(f: f64, decimals: i32) -> f64 {
    let p = 10f64.powi(decimals);
    (f * p).round() / p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_replaces() {
        let mut r = Report::default();
        r.set("b", 1);
        r.set("a", "x");
        r.set("b", 2.5);
        assert_eq!(r.to_json_line(), r#"{"b":2.5,"a":"x"}"#);
        assert!(r.to_human().contains("b  2.50"));
    }
}
