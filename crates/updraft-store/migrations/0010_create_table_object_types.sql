CREATE TABLE object_types (
    backend TEXT NOT NULL,
    name TEXT NOT NULL,
    schema TEXT NOT NULL,
    PRIMARY KEY (backend, name)
) WITHOUT ROWID
