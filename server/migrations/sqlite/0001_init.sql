-- Plugboard's first schema (SQLite). Times are seconds since the Unix epoch.
CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE secret_keys (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    prefix      TEXT NOT NULL UNIQUE,
    hash        BLOB NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX secret_keys_project ON secret_keys(project_id);

CREATE TABLE integrations (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    auth_type   TEXT NOT NULL,
    config      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (project_id, key)
);

CREATE TABLE integration_secrets (
    integration_id TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    field          TEXT NOT NULL,
    ciphertext     BLOB NOT NULL,
    PRIMARY KEY (integration_id, field)
);

CREATE TABLE connect_sessions (
    id              TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    prefix          TEXT NOT NULL UNIQUE,
    hash            BLOB NOT NULL,
    end_user_id     TEXT NOT NULL,
    integrations    TEXT,
    allowed_origins TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);

CREATE TABLE connections (
    id              TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    integration_id  TEXT NOT NULL REFERENCES integrations(id),
    end_user_id     TEXT,
    subject         TEXT,
    label           TEXT,
    status          TEXT NOT NULL,
    scopes          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX connections_list ON connections(project_id, created_at, id);
CREATE INDEX connections_integration ON connections(integration_id);

CREATE TABLE connection_secrets (
    connection_id TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    field         TEXT NOT NULL,
    ciphertext    BLOB NOT NULL,
    PRIMARY KEY (connection_id, field)
);

CREATE TABLE events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    project_id     TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    type           TEXT NOT NULL,
    connection_id  TEXT,
    integration    TEXT,
    end_user_id    TEXT,
    data           TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX events_project ON events(project_id, seq);
