CREATE INDEX deliveries_by_seq ON webhook_deliveries (seq)
