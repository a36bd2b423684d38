-- Objects everyone may read, so that the common case skips the ACL's JSON in queries.
ALTER TABLE objects ADD COLUMN public_read INTEGER NOT NULL DEFAULT 0
