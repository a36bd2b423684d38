-- Bulk-loads Parse Server's "Docs" table (created beforehand through Parse's schema API) with objects
-- 0..:objects-1 of the search data set, as Parse writes objects created without an ACL (NULL _rperm: public).
-- The words are words.lua's. The GIN index is the one Parse's `$text` needs to be fast: `to_tsvector` of the
-- `simple` configuration (no stemming, so that both systems match the same words), which the queries name.
\set ON_ERROR_STOP on
CREATE FUNCTION pg_temp.word(j bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT 'q' || chr(97 + (j / 676 % 26)::int) || chr(97 + (j / 26 % 26)::int) || chr(97 + (j % 26)::int)
$$;
INSERT INTO "Docs" ("objectId", "createdAt", "updatedAt", body, n)
SELECT lpad(to_hex(i), 10, '0'), at, at,
       pg_temp.word(i::bigint * 7919 % 10007) || ' ' || pg_temp.word(i::bigint * 7927 % 10007) || ' ' ||
       pg_temp.word(i::bigint * 7933 % 10007) || ' ' || pg_temp.word(i::bigint * 7937 % 10007), i
FROM generate_series(0, :objects - 1) AS i
CROSS JOIN LATERAL (SELECT date_trunc('milliseconds', now()) - (:objects - i) * interval '1 millisecond' AS at) AS created;
CREATE INDEX "Docs_body_text" ON "Docs" USING GIN (to_tsvector('simple', body));
VACUUM ANALYZE "Docs";
