-- The tallies of the key indexes (sqlite/tallies.rs): per bucket of a key index, from its cut (rank, value) up
-- to the next cut, how many entries it holds and how many of them are public. The value column has no type, so
-- that numbers and strings keep their own (the key index's order); -9e999 (-Inf) starts a rank. `settled` is the
-- count at which a bucket last could not split (one value), so that it is tried again only once it has doubled.
CREATE TABLE key_tallies (
    backend TEXT NOT NULL,
    object_type TEXT NOT NULL,
    property TEXT NOT NULL,
    rank INTEGER NOT NULL,
    value NOT NULL,
    n_all INTEGER NOT NULL,
    n_public INTEGER NOT NULL,
    settled INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (backend, object_type, property, rank, value)
) WITHOUT ROWID
