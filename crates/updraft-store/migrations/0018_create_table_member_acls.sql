-- Who may manage a usergroup's members, for groups that have their own rules.
CREATE TABLE member_acls (
    backend TEXT NOT NULL,
    group_id TEXT NOT NULL,
    acl TEXT NOT NULL,
    PRIMARY KEY (backend, group_id)
) WITHOUT ROWID
