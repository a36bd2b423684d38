//! The rowids of the full-text tables (docs/search.md), which carry what a search would otherwise read from
//! `objects` and FTS5's own row sizes, one random page visit per match (about 1.5 µs each at a million objects):
//!
//! `collection << 42 | object rowid << 6 | length bucket << 1 | public`
//!
//! - `collection`: the id of the collection in `search_collections`, so that a collection's rows are one rowid
//!   range of every doclist, which FTS5 seeks to;
//! - the object's rowid in `objects` (up to 2^36);
//! - the bucket of the row's length in words ([`LENGTHS`]), which [`super::rank`] ranks with;
//! - `objects.public_read`: whether everyone may read the object, so that a count checks no ACL of a public row.
//!
//! Writes keep them exact: a change of `doc` or `public_read` moves the row (migrations 0069–0080).

/// The bits below the object rowid, and the most collections the layout holds.
pub(crate) const OBJECT_SHIFT: u32 = 6;
pub(crate) const COLLECTION_SHIFT: u32 = 42;
pub(crate) const MAX_COLLECTION: i64 = (1 << (63 - COLLECTION_SHIFT)) - 1;

/// The SQL expression of a full-text row's object rowid.
pub(crate) const OBJECT_ROWID: &str = "((rowid >> 6) & 68719476735)";

/// The shortest length in words of each bucket: exact up to 15, then about 25 % apart.
pub(crate) const LENGTHS: [u32; 32] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 20, 25, 31, 39, 49, 61, 76, 95, 119, 149, 186, 233, 291,
    364, 455,
];

/// The rows of collection `id`, as a condition on `rowid`.
pub(crate) fn collection_range(id: i64) -> String {
    format!("rowid BETWEEN {} AND {}", id << COLLECTION_SHIFT, ((id + 1) << COLLECTION_SHIFT) - 1)
}

/// The length of a row in words from its rowid: the shortest of its bucket.
pub(crate) fn length_of(rowid: i64) -> u32 {
    LENGTHS[((rowid >> 1) & 31) as usize]
}

/// The words of the SQL text `text`, as spaces separate them (0 for NULL or empty text): a length for ranking,
/// not a count of the tokens FTS5 makes.
pub(crate) fn words(text: &str) -> String {
    format!("CASE WHEN {text} <> '' THEN length({text}) - length(replace({text}, ' ', '')) + 1 ELSE 0 END")
}

/// The bucket of the SQL length `n` (in words).
pub(crate) fn bucket(n: &str) -> String {
    let steps: Vec<String> = (17..LENGTHS.len()).map(|k| format!("WHEN {n} < {} THEN {}", LENGTHS[k], k - 1)).collect();
    format!("(CASE WHEN {n} < 16 THEN {n} {} ELSE 31 END)", steps.join(" "))
}

/// The text a searched property gives the tables, of the document `doc`: a string, or the strings of an array.
pub(crate) fn text(doc: &str, property: &str) -> String {
    format!(
        "CASE json_type({doc}, '$.' || {property}) WHEN 'text' THEN {doc} ->> ('$.' || {property}) \
         WHEN 'array' THEN (SELECT group_concat(e.value, ' ') FROM json_each({doc}, '$.' || {property}) AS e \
         WHERE e.type = 'text') END"
    )
}

/// The full-text rowid of the object `row` (a name for a row of `objects`, such as `OLD`), from its columns; NULL
/// when its collection has no searched property.
pub(crate) fn of_row(row: &str) -> String {
    let words = words("t.text");
    let text = text(&format!("{row}.doc"), "p.property");
    let bucket = bucket("w.n");
    format!(
        "(SELECT (c.id << {COLLECTION_SHIFT}) | ({row}.rowid << {OBJECT_SHIFT}) | ({bucket} << 1) | {row}.public_read \
         FROM search_collections AS c, (SELECT coalesce(sum({words}), 0) AS n FROM (SELECT {text} AS text \
         FROM property_indexes AS p WHERE p.backend = {row}.backend AND p.object_type = {row}.object_type \
         AND p.search_slot IS NOT NULL) AS t) AS w \
         WHERE c.backend = {row}.backend AND c.object_type = {row}.object_type)"
    )
}

/// Fills `table` for the objects `o` of `rows` (an SQL condition on `objects AS o`) of collections with searched
/// properties: the insert trigger's statement for one object, the group commit's for a batch.
pub(crate) fn fill(table: &str, rows: &str, slots: usize) -> String {
    let columns: Vec<String> = (0..slots).map(|i| format!("p{i}")).collect();
    let grouped: Vec<String> =
        (0..slots).map(|i| format!("max(CASE WHEN s.slot = {i} THEN s.text END) AS p{i}")).collect();
    let picked: Vec<String> = columns.iter().map(|c| format!("g.{c}")).collect();
    format!(
        "INSERT INTO {table} (rowid, {columns}) \
         SELECT (g.collection << {COLLECTION_SHIFT}) | (g.object << {OBJECT_SHIFT}) | ({bucket} << 1) | g.public, {picked} \
         FROM (SELECT s.collection, s.object, s.public, sum({words}) AS n, {grouped} \
         FROM (SELECT c.id AS collection, o.rowid AS object, o.public_read AS public, p.search_slot AS slot, \
         {text} AS text FROM objects AS o \
         JOIN property_indexes AS p ON p.backend = o.backend AND p.object_type = o.object_type \
         AND p.search_slot IS NOT NULL \
         JOIN search_collections AS c ON c.backend = o.backend AND c.object_type = o.object_type \
         WHERE {rows}) AS s GROUP BY s.object) AS g",
        columns = columns.join(", "),
        bucket = bucket("g.n"),
        picked = picked.join(", "),
        words = words("s.text"),
        grouped = grouped.join(", "),
        text = text("o.doc", "p.property"),
    )
}

/// The statements of the migrations that lay the tables out so (0072, 0074, 0076, 0079, 0080), which tests check
/// the migration files against, comments aside: the triggers and the group commit must agree on every rowid.
#[cfg(test)]
pub(crate) fn migrations() -> Vec<(&'static str, String)> {
    const SLOTS: usize = crate::MAX_SEARCHED_PER_TYPE;
    let searched = |row: &str| {
        format!(
            "EXISTS (SELECT 1 FROM property_indexes WHERE backend = {row}.backend AND object_type = {row}.object_type \
             AND search_slot IS NOT NULL)"
        )
    };
    let new_row = "o.rowid = NEW.rowid";
    let index =
        format!("    {};\n    {};\n", fill("search_words", new_row, SLOTS), fill("search_grams", new_row, SLOTS));
    let unindex = format!(
        "    DELETE FROM search_words WHERE rowid = {old};\n    DELETE FROM search_grams WHERE rowid = {old};\n",
        old = of_row("OLD")
    );
    vec![
        (
            "0072_create_trigger_objects_search_on_insert.sql",
            format!(
                "CREATE TRIGGER objects_search_on_insert AFTER INSERT ON objects\nWHEN {} AND NOT EXISTS (SELECT 1 FROM search_batch)\nBEGIN\n{index}END\n",
                searched("NEW")
            ),
        ),
        (
            "0074_create_trigger_objects_search_on_update.sql",
            format!(
                "CREATE TRIGGER objects_search_on_update AFTER UPDATE OF doc, public_read ON objects\nWHEN {}\nBEGIN\n{unindex}{index}END\n",
                searched("NEW")
            ),
        ),
        (
            "0076_create_trigger_objects_search_on_delete.sql",
            format!(
                "CREATE TRIGGER objects_search_on_delete AFTER DELETE ON objects\nWHEN {}\nBEGIN\n{unindex}END\n",
                searched("OLD")
            ),
        ),
        ("0079_fill_search_words.sql", format!("{}\n", fill("search_words", "1", SLOTS))),
        ("0080_fill_search_grams.sql", format!("{}\n", fill("search_grams", "1", SLOTS))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_rise_with_length_and_decode_to_their_shortest() {
        assert_eq!(
            OBJECT_ROWID,
            format!("((rowid >> {OBJECT_SHIFT}) & {})", (1i64 << (COLLECTION_SHIFT - OBJECT_SHIFT)) - 1)
        );
        assert!(LENGTHS.windows(2).all(|w| w[0] < w[1]));
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for n in [0u32, 1, 4, 15, 16, 19, 20, 24, 25, 100, 454, 455, 10_000] {
            let bucket: i64 = conn.query_row(&format!("SELECT {}", bucket(&n.to_string())), [], |r| r.get(0)).unwrap();
            let shortest = length_of(bucket << 1);
            assert!(shortest <= n, "{n} → {bucket}");
            assert!(bucket == 31 || LENGTHS[bucket as usize + 1] > n, "{n} → {bucket}");
        }
        let words: i64 = conn.query_row(&format!("SELECT {}", words("'a b  c'")), [], |r| r.get(0)).unwrap();
        assert_eq!(words, 4, "spaces separate words, empty ones included");
    }
}
