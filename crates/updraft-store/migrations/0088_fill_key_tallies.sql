-- The first cut of every key index there is, holding all its entries; the splits of sqlite/tallies.rs place the
-- other cuts.
INSERT OR IGNORE INTO key_tallies (backend, object_type, property, rank, value, n_all, n_public) SELECT p.backend, p.object_type, p.property, -1, -9e999, count(o.rowid), coalesce(sum(o.public_read), 0) FROM property_indexes AS p LEFT JOIN objects AS o ON o.backend = p.backend AND o.object_type = p.object_type WHERE 1 GROUP BY p.backend, p.object_type, p.property
