-- A complete file whose property no longer refers to it (replaced by another file, or by any other value) goes.
-- Property names of files are plain (letters, digits, `_`), so the path is exact.
CREATE TRIGGER objects_files_on_update AFTER UPDATE OF doc ON objects
WHEN EXISTS (SELECT 1 FROM files WHERE backend = NEW.backend AND owner_type = NEW.object_type AND owner_id = NEW.id)
BEGIN
    INSERT OR IGNORE INTO file_trash (backend, id)
        SELECT backend, id FROM files
        WHERE backend = NEW.backend AND owner_type = NEW.object_type AND owner_id = NEW.id AND status = 'complete'
          AND ((NEW.doc ->> ('$.' || property || '.id')) IS NOT id
               OR (NEW.doc ->> ('$.' || property || '.objectType')) IS NOT 'files');
    DELETE FROM files
        WHERE backend = NEW.backend AND owner_type = NEW.object_type AND owner_id = NEW.id AND status = 'complete'
          AND ((NEW.doc ->> ('$.' || property || '.id')) IS NOT id
               OR (NEW.doc ->> ('$.' || property || '.objectType')) IS NOT 'files');
END
