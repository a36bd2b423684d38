-- The full-text rows move to the rowids of sqlite/search/rowids.rs: the triggers are made again (0072).
DROP TRIGGER objects_search_on_insert
