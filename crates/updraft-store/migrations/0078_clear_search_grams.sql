-- See 0077.
INSERT INTO search_grams (search_grams) VALUES ('delete-all')
