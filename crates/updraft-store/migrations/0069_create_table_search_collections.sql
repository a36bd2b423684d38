-- The collections with searched properties, numbered: the number is the top bits of the rowids of the
-- collection's full-text rows (sqlite/search/rowids.rs), so that a search reads one range of each doclist and
-- no row of `objects` to learn a match's collection. A number is never reused: rows are only ever added.
CREATE TABLE search_collections (
    id INTEGER PRIMARY KEY,
    backend TEXT NOT NULL,
    object_type TEXT NOT NULL,
    UNIQUE (backend, object_type)
)
