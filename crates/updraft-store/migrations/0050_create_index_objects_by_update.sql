CREATE INDEX objects_by_update ON objects (backend, object_type, updated_ms, created_ms, id, public_read)
