-- A number for each collection searched today.
INSERT INTO search_collections (backend, object_type)
SELECT DISTINCT backend, object_type FROM property_indexes WHERE search_slot IS NOT NULL ORDER BY backend, object_type
