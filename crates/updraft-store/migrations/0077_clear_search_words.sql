-- The rows of the old layout go (FTS5's delete-all, for a contentless table); 0079 indexes every object again.
INSERT INTO search_words (search_words) VALUES ('delete-all')
