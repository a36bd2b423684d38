CREATE INDEX objects_by_creation ON objects (backend, object_type, created_ms, id)
