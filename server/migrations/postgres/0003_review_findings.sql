-- Each connection keeps the OAuth client it was made with. An integration's
-- current client is generation `client_generation`; a change of client id or
-- of a URL that receives a credential retires it into `oauth_clients` (its
-- settings and its sealed secret) and starts the next generation.
ALTER TABLE integrations ADD COLUMN client_generation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE connections ADD COLUMN client_generation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE connect_attempts ADD COLUMN client_generation BIGINT NOT NULL DEFAULT 0;

CREATE TABLE oauth_clients (
    id              TEXT PRIMARY KEY,
    integration_id  TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    generation      BIGINT NOT NULL,
    client_id       TEXT NOT NULL,
    config          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    UNIQUE (integration_id, generation)
);

CREATE TABLE oauth_client_secrets (
    oauth_client_id TEXT NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
    field           TEXT NOT NULL,
    ciphertext      BYTEA NOT NULL,
    PRIMARY KEY (oauth_client_id, field)
);

-- The hash of the secret the SDK got when it started an attempt; the popup
-- must present it (obtained from its opener) before the attempt is bound.
ALTER TABLE connect_attempts ADD COLUMN proof_hash BYTEA;

-- One sealed check value per vault key id: a key that does not open its
-- check is not the key this database was sealed with.
CREATE TABLE vault_checks (
    key_id      TEXT PRIMARY KEY,
    ciphertext  BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);
