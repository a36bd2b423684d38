-- The column of `search_words` and `search_grams` that holds an indexed string property's text, 0 to 15; NULL
-- for a property that is not searched (not a string). Set by `sqlite/search.rs` when a schema changes.
ALTER TABLE property_indexes ADD COLUMN search_slot INTEGER
