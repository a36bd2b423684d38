-- The outbox is filled once per statement rather than once per change: a group-committed batch of inserts records
-- its changes in one statement (`src/postgres/group_commit.rs`), and a row trigger ran a PL/pgSQL call and a
-- lookup of the backend's webhooks for each. Same rows as 0001's trigger, in the same transaction.
DROP TRIGGER changes_to_webhook_deliveries ON changes;
DROP FUNCTION changes_to_webhook_deliveries();

CREATE FUNCTION changes_to_webhook_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (webhook_id, seq, object_id, status, attempts, next_ms, created_ms)
    SELECT w.id, c.seq, c.object_id, 'pending', 0, c.created_ms, c.created_ms
    FROM recorded AS c
    JOIN webhooks AS w ON w.backend = c.backend
    WHERE (w.object_types = '[]'::jsonb OR w.object_types ? c.object_type)
      AND (w.events = '[]'::jsonb OR w.events ? c.event)
    ORDER BY c.seq;
    RETURN NULL;
END $$;
CREATE TRIGGER changes_to_webhook_deliveries AFTER INSERT ON changes
    REFERENCING NEW TABLE AS recorded
    FOR EACH STATEMENT EXECUTE FUNCTION changes_to_webhook_deliveries();
