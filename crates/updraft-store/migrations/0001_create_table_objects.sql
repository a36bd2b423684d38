CREATE TABLE objects (
    backend TEXT NOT NULL,
    object_type TEXT NOT NULL,
    id TEXT NOT NULL,
    doc BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (backend, object_type, id)
) WITHOUT ROWID
