-- Ref properties whose target's deletion deletes the referring object.
CREATE TABLE ref_cascades (
    backend TEXT NOT NULL,
    object_type TEXT NOT NULL,
    property TEXT NOT NULL,
    target_type TEXT NOT NULL,
    PRIMARY KEY (backend, object_type, property)
) WITHOUT ROWID
