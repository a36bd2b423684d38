CREATE INDEX deliveries_pending_by_object ON webhook_deliveries (webhook_id, object_id, id) WHERE status = 'pending'
