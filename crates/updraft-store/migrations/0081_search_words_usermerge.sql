-- Two segments of a level are enough for the periodic merge step to merge them (sqlite/search.rs, keep_merged):
-- a search opens every segment for every word. FTS5 keeps the setting in the table's own configuration.
INSERT INTO search_words (search_words, rank) VALUES ('usermerge', 2)
