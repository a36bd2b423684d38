-- A deleted object leaves the search tables with it.
CREATE TRIGGER objects_search_on_delete AFTER DELETE ON objects
WHEN EXISTS (SELECT 1 FROM property_indexes WHERE backend = OLD.backend AND object_type = OLD.object_type AND search_slot IS NOT NULL)
BEGIN
    DELETE FROM search_words WHERE rowid = OLD.rowid;
    DELETE FROM search_grams WHERE rowid = OLD.rowid;
END
