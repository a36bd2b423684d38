-- The arrays already in indexed properties.
INSERT INTO array_keys (backend, object_type, property, rank, value, id)
SELECT o.backend, o.object_type, p.property,
       CASE e.type WHEN 'integer' THEN 1 WHEN 'real' THEN 1 WHEN 'text' THEN 2 WHEN 'object' THEN 3
            WHEN 'array' THEN 4 WHEN 'true' THEN 5 WHEN 'false' THEN 5 ELSE 0 END,
       CASE e.type WHEN 'object' THEN (CASE WHEN json_type(e.value, '$.id') IS 'text' THEN e.value ->> '$.id' END)
                   WHEN 'array' THEN NULL ELSE e.atom END,
       o.id
FROM property_indexes AS p JOIN objects AS o ON o.backend = p.backend AND o.object_type = p.object_type,
     jsonb_each(o.doc, '$.' || p.property) AS e
WHERE json_type(o.doc, '$.' || p.property) IS 'array'
