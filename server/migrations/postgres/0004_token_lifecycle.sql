-- Token refresh, single-flight across processes: the process that holds a
-- connection's lease (until `refresh_lease_until`) is the only one calling
-- the provider for it; a stored refresh advances `token_version`, and is
-- stored only if the version is still the one the lease was taken at.
ALTER TABLE connections ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0;
-- When the current access token was obtained: with its expiry, its lifetime.
ALTER TABLE connections ADD COLUMN token_obtained_at BIGINT;
ALTER TABLE connections ADD COLUMN refresh_lease_holder TEXT;
ALTER TABLE connections ADD COLUMN refresh_lease_until BIGINT;
-- Transient refresh failures in a row, and when the next try may happen.
ALTER TABLE connections ADD COLUMN refresh_failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE connections ADD COLUMN refresh_retry_at BIGINT;
CREATE INDEX connections_token_due ON connections(status, token_expires_at);
