INSERT INTO objects_by_rowid (backend, object_type, id, doc, created_ms, updated_ms, acl, public_read, parent_type,
                              parent_id)
SELECT backend, object_type, id, doc, created_ms, updated_ms, acl, public_read, parent_type, parent_id
FROM objects ORDER BY created_ms, id
