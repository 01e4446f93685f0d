-- +goose Up
-- Secret API keys: only the SHA-256 of each secret is stored.
CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL DEFAULT '',
    scopes     TEXT NOT NULL,
    hash       TEXT NOT NULL,
    created_at INTEGER NOT NULL, -- unix microseconds
    revoked_at INTEGER           -- unix microseconds; NULL while usable
) STRICT;

-- Named server secrets, such as the key that signs account tokens.
CREATE TABLE server_secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

-- +goose Down
DROP TABLE server_secrets;
DROP TABLE api_keys;
