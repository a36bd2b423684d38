CREATE INDEX deliveries_due ON webhook_deliveries (next_ms) WHERE status = 'pending'
