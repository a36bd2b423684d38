CREATE TABLE backends (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    environment TEXT NOT NULL,
    master_key TEXT NOT NULL,
    api_key TEXT NOT NULL,
    secret TEXT NOT NULL
)
