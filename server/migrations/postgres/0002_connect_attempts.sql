-- Connect attempts: one popup's journey to a provider and back.
CREATE TABLE connect_attempts (
    id              TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    session_id      TEXT NOT NULL REFERENCES connect_sessions(id) ON DELETE CASCADE,
    integration_id  TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    end_user_id     TEXT NOT NULL,
    origin          TEXT NOT NULL,
    message_nonce   TEXT NOT NULL,
    state_hash      BYTEA NOT NULL UNIQUE,
    binding_hash    BYTEA,
    redirect_uri    TEXT NOT NULL,
    reconnect_id    TEXT,
    params          TEXT NOT NULL,
    status          TEXT NOT NULL,
    error_code      TEXT,
    error_message   TEXT,
    provider_code   TEXT,
    connection_id   TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    opened_at       BIGINT,
    spent_at        BIGINT,
    completed_at    BIGINT
);
CREATE INDEX connect_attempts_session ON connect_attempts(session_id);

CREATE TABLE connect_attempt_secrets (
    attempt_id  TEXT NOT NULL REFERENCES connect_attempts(id) ON DELETE CASCADE,
    field       TEXT NOT NULL,
    ciphertext  BYTEA NOT NULL,
    PRIMARY KEY (attempt_id, field)
);

ALTER TABLE connections ADD COLUMN token_type TEXT;
ALTER TABLE connections ADD COLUMN token_expires_at BIGINT;

-- One connection per provider account, end user and integration.
CREATE UNIQUE INDEX connections_account ON connections(integration_id, end_user_id, subject)
    WHERE subject IS NOT NULL AND end_user_id IS NOT NULL;
