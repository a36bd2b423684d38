-- Bulk-loads Parse Server's "Bench" table (created beforehand through Parse's schema API) with objects
-- 0..:objects-1, the rows exactly as Parse writes them for objects created without an ACL: a 10-character
-- alphanumeric objectId, createdAt = updatedAt at millisecond precision, NULL _rperm/_wperm (public), the owner
-- Pointer as the target's objectId. createdAt grows 1 ms per object, as if inserted in order.
-- Variables: objects, owners (the ids of owners 0..999 in order, comma-separated).
\set ON_ERROR_STOP on
CREATE TEMP TABLE owners AS SELECT j::int, id FROM unnest(string_to_array(:'owners', ',')) WITH ORDINALITY AS o (id, j);
CREATE FUNCTION pg_temp.parse_object_id(seed bigint) RETURNS text LANGUAGE sql VOLATILE AS $$
  SELECT string_agg(substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', 1 + floor(random() * 62)::int, 1), '')
  FROM generate_series(1, 10 + 0 * seed)
$$;
INSERT INTO "Bench" ("objectId", "createdAt", "updatedAt", title, done, n, k, owner, note)
SELECT pg_temp.parse_object_id(i), at, at, 'item ' || i, i % 2 = 0, i, i % 1000, owners.id, 'note ' || i
FROM generate_series(0, :objects - 1) AS i
JOIN owners ON owners.j = i % 1000 + 1
CROSS JOIN LATERAL (SELECT date_trunc('milliseconds', now()) - (:objects - i) * interval '1 millisecond' AS at) AS created;
-- The indexes Updraft's schema declares (n, k, title, owner), and createdAt. title's serves the anchored $regex,
-- which Parse runs as `~ '^…'`: under this database's C.UTF-8 collation only a text_pattern_ops index can.
-- owner's carries createdAt as the Todo list's sort.
CREATE INDEX "Bench_n" ON "Bench" (n);
CREATE INDEX "Bench_k" ON "Bench" (k);
CREATE INDEX "Bench_title" ON "Bench" (title text_pattern_ops);
CREATE INDEX "Bench_owner_createdAt" ON "Bench" (owner, "createdAt");
CREATE INDEX "Bench_createdAt" ON "Bench" ("createdAt");
-- What an operator runs after a bulk load; VACUUM also keeps autovacuum from starting mid-measurement.
VACUUM ANALYZE "Bench";
