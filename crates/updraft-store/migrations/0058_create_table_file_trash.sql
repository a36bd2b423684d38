-- Files whose rows went (with their object, or replaced by another file) and whose bytes the blob store still
-- holds: written in the transaction that removed the row, emptied by the API once the bytes are gone, so that a
-- crash between the two leaves work to finish rather than bytes nobody owns.
CREATE TABLE file_trash (
    backend TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (backend, id)
) WITHOUT ROWID
