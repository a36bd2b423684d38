ALTER TABLE changes ADD COLUMN request_id TEXT
