CREATE TABLE members (
    backend TEXT NOT NULL,
    group_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    added_ms INTEGER NOT NULL,
    PRIMARY KEY (backend, group_id, user_id)
) WITHOUT ROWID
