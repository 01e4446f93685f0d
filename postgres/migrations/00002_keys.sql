-- +goose Up
-- Secret API keys: only the SHA-256 of each secret is stored.
CREATE TABLE api_keys (
    id         text PRIMARY KEY,
    name       text NOT NULL DEFAULT '',
    scopes     text NOT NULL,
    hash       text NOT NULL,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);

-- Named server secrets, such as the key that signs account tokens.
CREATE TABLE server_secrets (
    name  text PRIMARY KEY,
    value bytea NOT NULL
);

-- +goose Down
DROP TABLE server_secrets;
DROP TABLE api_keys;
