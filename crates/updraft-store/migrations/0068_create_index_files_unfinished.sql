-- Uploads begun and not finished, by when they last moved: those untouched for too long are expired
-- (`Files::expire_uploads`), so their staged bytes do not stay forever.
CREATE INDEX files_unfinished ON files (updated_ms) WHERE status != 'complete'
