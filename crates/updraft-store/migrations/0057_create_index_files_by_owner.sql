-- The files of an object, for the triggers that let them go with it.
CREATE INDEX files_by_owner ON files (backend, owner_type, owner_id)
