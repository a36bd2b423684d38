-- The buckets a split may be due for (sqlite/tallies.rs, SPLIT_ABOVE), so that finding them reads no other.
CREATE INDEX key_tallies_oversized ON key_tallies (backend, object_type, property) WHERE n_all > 128
