-- The webhook outbox is filled by the database in the transaction of each change: no extra commit (and fsync)
-- per change, and a backend without webhooks pays one index probe.
CREATE TRIGGER changes_to_webhook_deliveries AFTER INSERT ON changes
BEGIN
    INSERT INTO webhook_deliveries (webhook_id, seq, object_id, status, attempts, next_ms, created_ms)
    SELECT w.id, NEW.seq, NEW.object_id, 'pending', 0, NEW.created_ms, NEW.created_ms
    FROM webhooks AS w
    WHERE w.backend = NEW.backend
      AND (w.object_types = '[]' OR NEW.object_type IN (SELECT value FROM json_each(w.object_types)))
      AND (w.events = '[]' OR NEW.event IN (SELECT value FROM json_each(w.events)));
END
