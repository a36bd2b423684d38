-- Drops the old table's indexes (the key and ref indexes of schemas too, which `schemas::upgrade_indexes`
-- makes again in the new shape) and its triggers.
DROP TABLE objects
