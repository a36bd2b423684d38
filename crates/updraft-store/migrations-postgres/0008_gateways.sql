-- MWS gateways made through the API (`src/postgres/gateways.rs`), shared by every node. Each change sends
-- `NOTIFY updraft_gateways, '<id>'` at its commit; every node's follower relays it, and the node reads the
-- gateway again.
CREATE TABLE gateways (
    id TEXT PRIMARY KEY,
    security_token TEXT,
    configuration JSONB NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE FUNCTION updraft_gateway_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('updraft_gateways', OLD.id);
    ELSE
        PERFORM pg_notify('updraft_gateways', NEW.id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER gateways_changed AFTER INSERT OR UPDATE OR DELETE ON gateways
    FOR EACH ROW EXECUTE FUNCTION updraft_gateway_changed();
