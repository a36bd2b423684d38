-- Full-text search over words (docs/search.md). One row per object of a collection with searched properties,
-- its rowid the object's rowid in `objects` (which Updraft never renumbers: no VACUUM of a rowid table); the
-- `scope` column holds one token naming the collection (`updraft_query::search::fts5::scope_token`), the
-- others the text of the property in that slot (`property_indexes.search_slot`). Contentless, since the text
-- is in `objects`; `contentless_delete` lets the triggers delete a row by rowid. Case and accents are folded.
CREATE VIRTUAL TABLE search_words USING fts5(
    scope, p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14, p15,
    tokenize = 'unicode61 remove_diacritics 2', content = '', contentless_delete = 1
)
