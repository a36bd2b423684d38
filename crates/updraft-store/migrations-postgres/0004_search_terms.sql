-- A GIN index narrows searches for words (`src/postgres/search.rs`): `terms` holds each word of each searched slot
-- of a row as the lexeme `<slot>/<word>` (folded as in `words`), so that a phrase's words are looked up in the
-- index before the exact check of `words` and `raw`. A row whose words do not fit a tsvector, and every row
-- written before this step, holds the lexeme `!` instead, which every search looks up too: such rows are
-- checked exactly, as all rows were before. Counting a collection's rows and their mean length, for relevance,
-- reads only `search_lengths`.
ALTER TABLE search_texts ADD COLUMN terms TSVECTOR NOT NULL DEFAULT array_to_tsvector(ARRAY['!']);
CREATE INDEX search_terms ON search_texts USING gin (terms);
CREATE INDEX search_lengths ON search_texts (backend, object_type) INCLUDE (length);
