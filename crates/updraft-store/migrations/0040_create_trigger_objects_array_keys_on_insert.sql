CREATE TRIGGER objects_array_keys_on_insert AFTER INSERT ON objects
WHEN EXISTS (SELECT 1 FROM property_indexes WHERE backend = NEW.backend AND object_type = NEW.object_type)
BEGIN
    INSERT INTO array_keys (backend, object_type, property, rank, value, id)
    SELECT NEW.backend, NEW.object_type, p.property,
           CASE e.type WHEN 'integer' THEN 1 WHEN 'real' THEN 1 WHEN 'text' THEN 2 WHEN 'object' THEN 3
                WHEN 'array' THEN 4 WHEN 'true' THEN 5 WHEN 'false' THEN 5 ELSE 0 END,
           CASE e.type WHEN 'object' THEN (CASE WHEN json_type(e.value, '$.id') IS 'text' THEN e.value ->> '$.id' END)
                       WHEN 'array' THEN NULL ELSE e.atom END,
           NEW.id
    FROM property_indexes AS p, jsonb_each(NEW.doc, '$.' || p.property) AS e
    WHERE p.backend = NEW.backend AND p.object_type = NEW.object_type
      AND json_type(NEW.doc, '$.' || p.property) IS 'array';
END
