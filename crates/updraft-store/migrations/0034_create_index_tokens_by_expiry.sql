-- Every new token clears the expired ones.
CREATE INDEX tokens_by_expiry ON tokens (expires_ms)
