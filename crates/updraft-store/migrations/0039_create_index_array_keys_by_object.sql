CREATE INDEX array_keys_by_object ON array_keys (backend, object_type, id)
