CREATE UNIQUE INDEX objects_by_id ON objects (backend, object_type, id)
