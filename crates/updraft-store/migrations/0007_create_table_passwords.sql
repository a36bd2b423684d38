CREATE TABLE passwords (
    backend TEXT NOT NULL,
    user_id TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (backend, user_id)
) WITHOUT ROWID
