CREATE TRIGGER objects_array_keys_on_delete AFTER DELETE ON objects
WHEN EXISTS (SELECT 1 FROM property_indexes WHERE backend = OLD.backend AND object_type = OLD.object_type)
BEGIN
    DELETE FROM array_keys WHERE backend = OLD.backend AND object_type = OLD.object_type AND id = OLD.id;
END
