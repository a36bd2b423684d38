-- An object's files go with it, whatever deletes it (a delete, a cascade, its type's schema, its app).
CREATE TRIGGER objects_files_on_delete AFTER DELETE ON objects
WHEN EXISTS (SELECT 1 FROM files WHERE backend = OLD.backend AND owner_type = OLD.object_type AND owner_id = OLD.id)
BEGIN
    INSERT OR IGNORE INTO file_trash (backend, id)
        SELECT backend, id FROM files WHERE backend = OLD.backend AND owner_type = OLD.object_type AND owner_id = OLD.id;
    DELETE FROM files WHERE backend = OLD.backend AND owner_type = OLD.object_type AND owner_id = OLD.id;
END
