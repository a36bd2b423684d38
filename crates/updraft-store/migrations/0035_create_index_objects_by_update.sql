-- The reserved properties every app filters and sorts on, indexed in every collection (`createdAt` by
-- `objects_by_creation`, `id` by the primary key). Filters on them compile to these columns (see
-- `updraft_query::sqlite::Layout`); the creator's id is absent from anonymous writes, which stay out.
CREATE INDEX objects_by_update ON objects (backend, object_type, updated_ms, created_ms)
