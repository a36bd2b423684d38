-- The elements of arrays in indexed properties, one row each, with the rank and value a key index would give
-- them (`updraft_query::sqlite::key_index_terms`): "an element matches" is then an index range too. Kept by
-- the triggers below in the transaction of each change, and by `schemas.rs` when `indexed` changes.
CREATE TABLE array_keys (
    backend TEXT NOT NULL,
    object_type TEXT NOT NULL,
    property TEXT NOT NULL,
    rank INTEGER NOT NULL,
    value,
    id TEXT NOT NULL
)
