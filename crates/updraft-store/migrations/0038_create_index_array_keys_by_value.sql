CREATE INDEX array_keys_by_value ON array_keys (backend, object_type, property, rank, value, id)
