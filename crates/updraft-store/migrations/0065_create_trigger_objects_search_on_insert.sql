-- Keeps the search tables in the transaction of every change to a collection with searched properties: the
-- text of a string property, or of the strings of an array, in the column of its slot.
-- Inserts of the group commit are indexed together at the end of their batch (see search_batch).
CREATE TRIGGER objects_search_on_insert AFTER INSERT ON objects
WHEN EXISTS (SELECT 1 FROM property_indexes WHERE backend = NEW.backend AND object_type = NEW.object_type AND search_slot IS NOT NULL)
     AND NOT EXISTS (SELECT 1 FROM search_batch)
BEGIN
    INSERT INTO search_words (rowid, p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14, p15)
    SELECT NEW.rowid,
           max(CASE WHEN s.slot = 0 THEN s.text END),
           max(CASE WHEN s.slot = 1 THEN s.text END),
           max(CASE WHEN s.slot = 2 THEN s.text END),
           max(CASE WHEN s.slot = 3 THEN s.text END),
           max(CASE WHEN s.slot = 4 THEN s.text END),
           max(CASE WHEN s.slot = 5 THEN s.text END),
           max(CASE WHEN s.slot = 6 THEN s.text END),
           max(CASE WHEN s.slot = 7 THEN s.text END),
           max(CASE WHEN s.slot = 8 THEN s.text END),
           max(CASE WHEN s.slot = 9 THEN s.text END),
           max(CASE WHEN s.slot = 10 THEN s.text END),
           max(CASE WHEN s.slot = 11 THEN s.text END),
           max(CASE WHEN s.slot = 12 THEN s.text END),
           max(CASE WHEN s.slot = 13 THEN s.text END),
           max(CASE WHEN s.slot = 14 THEN s.text END),
           max(CASE WHEN s.slot = 15 THEN s.text END)
    FROM (SELECT p.search_slot AS slot, CASE json_type(NEW.doc, '$.' || p.property) WHEN 'text' THEN NEW.doc ->> ('$.' || p.property) WHEN 'array' THEN (SELECT group_concat(e.value, ' ') FROM json_each(NEW.doc, '$.' || p.property) AS e WHERE e.type = 'text') END AS text
          FROM property_indexes AS p
          WHERE p.backend = NEW.backend AND p.object_type = NEW.object_type AND p.search_slot IS NOT NULL) AS s;
    INSERT INTO search_grams (rowid, p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14, p15)
    SELECT NEW.rowid,
           max(CASE WHEN s.slot = 0 THEN s.text END),
           max(CASE WHEN s.slot = 1 THEN s.text END),
           max(CASE WHEN s.slot = 2 THEN s.text END),
           max(CASE WHEN s.slot = 3 THEN s.text END),
           max(CASE WHEN s.slot = 4 THEN s.text END),
           max(CASE WHEN s.slot = 5 THEN s.text END),
           max(CASE WHEN s.slot = 6 THEN s.text END),
           max(CASE WHEN s.slot = 7 THEN s.text END),
           max(CASE WHEN s.slot = 8 THEN s.text END),
           max(CASE WHEN s.slot = 9 THEN s.text END),
           max(CASE WHEN s.slot = 10 THEN s.text END),
           max(CASE WHEN s.slot = 11 THEN s.text END),
           max(CASE WHEN s.slot = 12 THEN s.text END),
           max(CASE WHEN s.slot = 13 THEN s.text END),
           max(CASE WHEN s.slot = 14 THEN s.text END),
           max(CASE WHEN s.slot = 15 THEN s.text END)
    FROM (SELECT p.search_slot AS slot, CASE json_type(NEW.doc, '$.' || p.property) WHEN 'text' THEN NEW.doc ->> ('$.' || p.property) WHEN 'array' THEN (SELECT group_concat(e.value, ' ') FROM json_each(NEW.doc, '$.' || p.property) AS e WHERE e.type = 'text') END AS text
          FROM property_indexes AS p
          WHERE p.backend = NEW.backend AND p.object_type = NEW.object_type AND p.search_slot IS NOT NULL) AS s;
END
