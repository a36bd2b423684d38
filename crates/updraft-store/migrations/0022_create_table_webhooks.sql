-- Webhooks (`sqlite/webhooks.rs`): lists are JSON arrays.
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    url TEXT NOT NULL,
    object_types TEXT NOT NULL,
    events TEXT NOT NULL,
    headers TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
)
