//! Arbitrary `q` and `sort` JSON through the query parser: it may refuse but never panic, and whatever it accepts
//! compiles to SQL (plain and over the store's layout), to ORDER BY terms, and to index branches without panicking.
//!
//! Input: the text of `q`, a newline, the text of `sort` (absent: no sort).

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use updraft_query::sqlite::{self, Indexed, Layout};
use updraft_query::{Filter, Sort};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (q, sort) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(q) = serde_json::from_str::<Value>(q) else { return };
    let filter = Filter::parse(&q);
    let sort = match serde_json::from_str::<Value>(sort) {
        Ok(sort) => Sort::parse(&sort),
        Err(_) => Ok(Sort { keys: Vec::new() }),
    };
    let (Ok(filter), Ok(sort)) = (filter, sort) else { return };

    let _ = sqlite::compile(&filter, "doc");
    let _ = sqlite::order_by(&sort, "doc", &["id"]);
    // The store's layout: reserved columns, and key indexes on a few properties, with and without arrays.
    let indexed = ["a", "b", "title", "n"]
        .iter()
        .enumerate()
        .map(|(i, property)| Indexed { property: property.to_string(), arrays: i % 2 == 0 })
        .collect::<Vec<_>>();
    let layout = Layout { doc: "doc", reserved: Some(format_ms), indexed: &indexed };
    let _ = sqlite::compile_in(&filter, &layout);
    let _ = sqlite::order_by_in(&sort, &filter, &layout, &["created_ms", "id"]);
    let _ = sqlite::branches(&filter, &layout);
    let _ = sqlite::index_order(&filter, &layout);
    let _ = sqlite::creation_ordered(&filter, &layout);
});

/// A fixed-width time, as the store spells `createdAt` (the value does not matter here, its width does).
fn format_ms(ms: i64) -> String {
    format!("{:020}", ms.max(0))
}
