-- Nodes cache backends, schemas and which properties have a key index (`src/postgres/catalog.rs`). Any change to
-- those tables, by any node or by hand, tells every node to forget its copies: the notification is sent at
-- commit, once per transaction however many statements fired it.
CREATE FUNCTION updraft_catalog_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('updraft_catalog', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER backends_catalog AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON backends
    FOR EACH STATEMENT EXECUTE FUNCTION updraft_catalog_changed();
CREATE TRIGGER object_types_catalog AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON object_types
    FOR EACH STATEMENT EXECUTE FUNCTION updraft_catalog_changed();
CREATE TRIGGER property_indexes_catalog AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON property_indexes
    FOR EACH STATEMENT EXECUTE FUNCTION updraft_catalog_changed();
