CREATE INDEX objects_by_creator ON objects (backend, object_type, doc ->> '$.creator.id', created_ms, id, public_read)
WHERE doc ->> '$.creator.id' IS NOT NULL
