CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    object_id TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    finished_ms INTEGER,
    last_status INTEGER,
    last_error TEXT
)
