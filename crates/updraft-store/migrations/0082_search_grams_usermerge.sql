-- See 0081.
INSERT INTO search_grams (search_grams, rank) VALUES ('usermerge', 2)
