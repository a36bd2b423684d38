-- EDS files: the metadata of each uploaded file; its bytes are in the blob store, under the file's id. A file
-- belongs to the object whose `property` refers to it (`owner_type`, `owner_id`) and has that object's ACL.
-- `status` is `empty` (a chunked upload began), `incomplete` (chunks arrived up to `received`) or `complete`
-- (the bytes are in the blob store and the owner refers to the file).
CREATE TABLE files (
    backend TEXT NOT NULL,
    id TEXT NOT NULL,
    owner_type TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    property TEXT NOT NULL,
    file_name TEXT NOT NULL,
    content_type TEXT,
    size INTEGER,
    received INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    sha256 TEXT,
    variants TEXT,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (backend, id)
) WITHOUT ROWID
