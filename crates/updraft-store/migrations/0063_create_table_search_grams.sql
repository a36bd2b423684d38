-- Text inside words (`*cat*`): the same rows and columns as `search_words`, as trigrams, which find any
-- substring of three characters or more.
CREATE VIRTUAL TABLE search_grams USING fts5(
    p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14, p15,
    tokenize = 'trigram remove_diacritics 1', content = '', contentless_delete = 1
)
