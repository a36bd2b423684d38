CREATE INDEX deliveries_finished ON webhook_deliveries (finished_ms) WHERE status != 'pending'
