-- `objects` becomes a rowid table. An index entry then points at a row by its integer rowid, and SQLite seeks
-- the row only once the query reads a column the index lacks (a deferred seek); in a WITHOUT ROWID table it
-- seeks every entry's row at once, through three text keys. With `id` and `public_read` in the indexes, a
-- count, an offset or a filter checked on the index reads no row it does not answer: a deep page went from
-- about 1 µs a skipped row to a few tens of nanoseconds. Rows are copied in creation order, as they are
-- then added, so that a walk in creation order reads neighbouring pages.
CREATE TABLE objects_by_rowid (
    backend TEXT NOT NULL,
    object_type TEXT NOT NULL,
    id TEXT NOT NULL,
    doc BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    acl TEXT NOT NULL DEFAULT '{"read":[],"update":[],"delete":[],"admin":[]}',
    public_read INTEGER NOT NULL DEFAULT 0,
    parent_type TEXT,
    parent_id TEXT
)
