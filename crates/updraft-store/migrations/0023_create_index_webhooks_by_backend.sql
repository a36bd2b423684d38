CREATE INDEX webhooks_by_backend ON webhooks (backend)
