-- Full-text search (`src/postgres/search.rs`, docs/search.md). A collection with searched properties has a row in
-- `search_collections` naming them in slot order; each of its objects has a row in `search_texts`, written by the
-- store in the transaction of every insert and update, with, per slot, the text folded as the reference evaluator
-- folds it (`raw`, for text inside words) and its words each wrapped in spaces (`words`, so a word or words in a
-- row are a substring). The foreign key takes an object's row with it, whatever deletes the object.
CREATE TABLE search_collections (
    backend TEXT NOT NULL,
    object_type TEXT NOT NULL,
    properties JSONB NOT NULL,
    PRIMARY KEY (backend, object_type)
);

CREATE TABLE search_texts (
    backend TEXT NOT NULL,
    object_type TEXT NOT NULL,
    id TEXT NOT NULL,
    raw TEXT[] NOT NULL,
    words TEXT[] NOT NULL,
    length INTEGER NOT NULL,
    PRIMARY KEY (backend, object_type, id),
    FOREIGN KEY (backend, object_type, id) REFERENCES objects (backend, object_type, id) ON DELETE CASCADE
);
