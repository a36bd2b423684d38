CREATE INDEX deliveries_by_webhook ON webhook_deliveries (webhook_id, id)
