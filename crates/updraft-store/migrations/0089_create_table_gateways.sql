-- MWS gateways made through the API (`src/sqlite/gateways.rs`); before, `gateways.json` in the data directory,
-- which a node imports once at start. `configuration` is JSON text.
CREATE TABLE gateways (
    id TEXT PRIMARY KEY,
    security_token TEXT,
    configuration TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
)
