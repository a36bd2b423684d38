ALTER TABLE objects ADD COLUMN parent_id TEXT
