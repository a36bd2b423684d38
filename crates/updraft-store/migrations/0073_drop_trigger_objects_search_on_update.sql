-- See 0071.
DROP TRIGGER objects_search_on_update
