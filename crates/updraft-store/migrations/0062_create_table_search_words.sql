-- Full-text search over words (docs/search.md). One row per object of a collection with searched properties,
-- its rowid the object's rowid in `objects` (which Updraft never renumbers: no VACUUM of a rowid table); each
-- column holds the text of the property in that slot (`property_indexes.search_slot`). A query joins `objects`
-- for the collection: a column naming it would be a term in every row, which bm25 reads whole to weigh it.
-- Contentless, since the text is in `objects`; `contentless_delete` lets the triggers delete a row by rowid.
-- Case and accents are folded.
CREATE VIRTUAL TABLE search_words USING fts5(
    p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14, p15,
    tokenize = 'unicode61 remove_diacritics 2', content = '', contentless_delete = 1
)
