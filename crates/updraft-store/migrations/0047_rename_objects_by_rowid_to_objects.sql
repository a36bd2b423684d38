ALTER TABLE objects_by_rowid RENAME TO objects
