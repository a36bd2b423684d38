-- The PostgreSQL store's tables, as the SQLite store's 82 steps left them (see `src/postgres.rs`), in one step:
-- there was no earlier PostgreSQL release to upgrade from. Times are Unix milliseconds, documents and ACLs JSONB.

CREATE TABLE apps (id TEXT PRIMARY KEY, name TEXT NOT NULL, created_ms BIGINT NOT NULL);

CREATE TABLE backends (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    environment TEXT NOT NULL,
    master_key TEXT NOT NULL,
    api_key TEXT NOT NULL,
    secret TEXT NOT NULL,
    access_defaults TEXT NOT NULL DEFAULT 'locked'
);

-- Subjects are `user:<backend>:<id>`, `refresh:<backend>:<id>` or `account`; ranges of them go with a backend.
CREATE TABLE tokens (hash TEXT PRIMARY KEY, subject TEXT NOT NULL, expires_ms BIGINT NOT NULL);
CREATE INDEX tokens_by_subject ON tokens (subject COLLATE "C");
CREATE INDEX tokens_by_expiry ON tokens (expires_ms);

-- Every EDS object. `acl` is `{"read":[…],"update":[…],"delete":[…],"admin":[…]}`; `public_read` says whether
-- `*` may read, so that most reads need not look into it. An object that extends its parent's ACL names the parent.
CREATE TABLE objects (
    backend TEXT NOT NULL,
    object_type TEXT NOT NULL,
    id TEXT NOT NULL,
    doc JSONB NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    acl JSONB NOT NULL,
    public_read BOOLEAN NOT NULL DEFAULT false,
    parent_type TEXT,
    parent_id TEXT,
    PRIMARY KEY (backend, object_type, id)
);
CREATE INDEX objects_by_creation ON objects (backend, object_type, created_ms, id);
CREATE INDEX objects_by_update ON objects (backend, object_type, updated_ms, id);
CREATE INDEX objects_by_creator ON objects (backend, object_type, (doc -> 'creator' ->> 'id'), created_ms, id);
CREATE INDEX objects_by_parent ON objects (backend, parent_type, parent_id) WHERE parent_id IS NOT NULL;
CREATE UNIQUE INDEX users_by_username ON objects (backend, (doc ->> 'username')) WHERE object_type = 'users';

CREATE TABLE passwords (backend TEXT NOT NULL, user_id TEXT NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (backend, user_id));

CREATE TABLE members (
    backend TEXT NOT NULL,
    group_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    added_ms BIGINT NOT NULL,
    PRIMARY KEY (backend, group_id, user_id)
);
CREATE INDEX members_by_user ON members (backend, user_id);

CREATE TABLE member_acls (backend TEXT NOT NULL, group_id TEXT NOT NULL, acl JSONB NOT NULL, PRIMARY KEY (backend, group_id));

CREATE TABLE object_types (backend TEXT NOT NULL, name TEXT NOT NULL, schema JSONB NOT NULL, PRIMARY KEY (backend, name));

-- The expression indexes made for `indexed` schema properties, so that they can be dropped again. Index names
-- are made up (identifiers have at most 63 bytes, too few to spell the collection and property out).
CREATE TABLE property_indexes (
    backend TEXT NOT NULL,
    object_type TEXT NOT NULL,
    property TEXT NOT NULL,
    index_name TEXT NOT NULL UNIQUE,
    PRIMARY KEY (backend, object_type, property)
);

-- Ref properties whose target's deletion deletes the referring object.
CREATE TABLE ref_cascades (
    backend TEXT NOT NULL,
    object_type TEXT NOT NULL,
    property TEXT NOT NULL,
    target_type TEXT NOT NULL,
    index_name TEXT NOT NULL UNIQUE,
    PRIMARY KEY (backend, object_type, property)
);
CREATE INDEX ref_cascades_by_target ON ref_cascades (backend, target_type);

-- Every committed change of an object, followed by every node (`postgres/changes.rs`). `seq` orders them: the
-- writing transactions take `CHANGE_LOCK` before they record one, so seq order is commit order and a follower
-- that read up to N never sees a change below N commit later.
CREATE TABLE changes (
    seq BIGSERIAL PRIMARY KEY,
    backend TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id TEXT NOT NULL,
    event TEXT NOT NULL,
    doc TEXT NOT NULL,
    acl JSONB NOT NULL,
    parent_acl JSONB,
    user_id TEXT,
    created_ms BIGINT NOT NULL,
    request_id TEXT
);
CREATE INDEX changes_by_time ON changes (created_ms);

CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    url TEXT NOT NULL,
    object_types JSONB NOT NULL,
    events JSONB NOT NULL,
    headers JSONB NOT NULL,
    secret TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX webhooks_by_backend ON webhooks (backend);

-- The shared webhook outbox: workers of every node claim due rows (`postgres/webhooks.rs`).
CREATE TABLE webhook_deliveries (
    id BIGSERIAL PRIMARY KEY,
    webhook_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    object_id TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_ms BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    finished_ms BIGINT,
    last_status INTEGER,
    last_error TEXT
);
CREATE INDEX deliveries_due ON webhook_deliveries (next_ms) WHERE status = 'pending';
CREATE INDEX deliveries_pending_by_object ON webhook_deliveries (webhook_id, object_id, id) WHERE status = 'pending';
CREATE INDEX deliveries_by_webhook ON webhook_deliveries (webhook_id, id);
CREATE INDEX deliveries_by_seq ON webhook_deliveries (seq);
CREATE INDEX deliveries_finished ON webhook_deliveries (finished_ms) WHERE finished_ms IS NOT NULL;

-- The outbox is filled in the transaction of each change: nothing a client was told happened is missed.
CREATE FUNCTION changes_to_webhook_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (webhook_id, seq, object_id, status, attempts, next_ms, created_ms)
    SELECT w.id, NEW.seq, NEW.object_id, 'pending', 0, NEW.created_ms, NEW.created_ms
    FROM webhooks AS w
    WHERE w.backend = NEW.backend
      AND (w.object_types = '[]'::jsonb OR w.object_types ? NEW.object_type)
      AND (w.events = '[]'::jsonb OR w.events ? NEW.event);
    RETURN NULL;
END $$;
CREATE TRIGGER changes_to_webhook_deliveries AFTER INSERT ON changes
    FOR EACH ROW EXECUTE FUNCTION changes_to_webhook_deliveries();

-- EDS files, as in the SQLite store: the bytes are in the blob store under the file's id.
CREATE TABLE files (
    backend TEXT NOT NULL,
    id TEXT NOT NULL,
    owner_type TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    property TEXT NOT NULL,
    file_name TEXT NOT NULL,
    content_type TEXT,
    size BIGINT,
    received BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    sha256 TEXT,
    variants JSONB,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (backend, id)
);
CREATE INDEX files_by_owner ON files (backend, owner_type, owner_id);
CREATE INDEX files_unfinished ON files (updated_ms) WHERE status <> 'complete';

-- Files whose rows went and whose bytes the blob store may still hold.
CREATE TABLE file_trash (backend TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (backend, id));

-- An object's files go with it, whatever deletes it.
CREATE FUNCTION objects_files_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO file_trash (backend, id)
        SELECT backend, id FROM files WHERE backend = OLD.backend AND owner_type = OLD.object_type AND owner_id = OLD.id
        ON CONFLICT DO NOTHING;
    DELETE FROM files WHERE backend = OLD.backend AND owner_type = OLD.object_type AND owner_id = OLD.id;
    RETURN NULL;
END $$;
CREATE TRIGGER objects_files_on_delete AFTER DELETE ON objects
    FOR EACH ROW EXECUTE FUNCTION objects_files_on_delete();

-- A complete file whose property no longer refers to it goes.
CREATE FUNCTION objects_files_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO file_trash (backend, id)
        SELECT backend, id FROM files
        WHERE backend = NEW.backend AND owner_type = NEW.object_type AND owner_id = NEW.id AND status = 'complete'
          AND ((NEW.doc -> property ->> 'id') IS DISTINCT FROM id
               OR (NEW.doc -> property ->> 'objectType') IS DISTINCT FROM 'files')
        ON CONFLICT DO NOTHING;
    DELETE FROM files
        WHERE backend = NEW.backend AND owner_type = NEW.object_type AND owner_id = NEW.id AND status = 'complete'
          AND ((NEW.doc -> property ->> 'id') IS DISTINCT FROM id
               OR (NEW.doc -> property ->> 'objectType') IS DISTINCT FROM 'files');
    RETURN NULL;
END $$;
CREATE TRIGGER objects_files_on_update AFTER UPDATE OF doc ON objects
    FOR EACH ROW WHEN (OLD.doc IS DISTINCT FROM NEW.doc) EXECUTE FUNCTION objects_files_on_update();
