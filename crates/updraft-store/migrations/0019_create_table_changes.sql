-- Every committed change of an object (`sqlite/changes.rs`); `seq` orders them.
CREATE TABLE changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    backend TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id TEXT NOT NULL,
    event TEXT NOT NULL,
    doc TEXT NOT NULL,
    acl TEXT NOT NULL,
    parent_acl TEXT,
    user_id TEXT,
    created_ms INTEGER NOT NULL
)
