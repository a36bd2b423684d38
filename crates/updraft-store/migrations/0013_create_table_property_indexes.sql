-- The expression indexes made for `indexed` schema properties, so that they can be dropped again.
CREATE TABLE property_indexes (
    backend TEXT NOT NULL,
    object_type TEXT NOT NULL,
    property TEXT NOT NULL,
    PRIMARY KEY (backend, object_type, property)
) WITHOUT ROWID
