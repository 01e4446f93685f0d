-- Ledger tables. Times are unix microseconds (UTC); amounts are micro-credits.
-- JSON columns are NULL for a nil map or slice, so values round-trip exactly.

-- +goose Up
CREATE TABLE accounts (
    id         TEXT    NOT NULL PRIMARY KEY,
    created_at INTEGER NOT NULL,
    metadata   TEXT,
    seq        INTEGER NOT NULL DEFAULT 0,
    hash       TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE TABLE grants (
    id            TEXT    NOT NULL PRIMARY KEY,
    account_id    TEXT    NOT NULL REFERENCES accounts (id),
    kind          TEXT    NOT NULL,
    amount        INTEGER NOT NULL,
    remaining     INTEGER NOT NULL,
    priority      INTEGER NOT NULL,
    effective_at  INTEGER NOT NULL,
    expires_at    INTEGER, -- NULL: never expires
    source_type   TEXT    NOT NULL DEFAULT '',
    source_id     TEXT    NOT NULL DEFAULT '',
    source_reason TEXT    NOT NULL DEFAULT '',
    paid_amount   INTEGER NOT NULL DEFAULT 0,
    paid_currency TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    metadata      TEXT,
    closed        INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Every grant of an account, in creation order (Grants with all).
CREATE INDEX grants_account ON grants (account_id, created_at, id);
-- Live grants of an account: what the committer loads for every batch.
CREATE INDEX grants_live ON grants (account_id, created_at, id)
    WHERE closed = 0 AND remaining > 0;
-- Grants due to expire, soonest first.
CREATE INDEX grants_due ON grants (expires_at, id)
    WHERE closed = 0 AND expires_at IS NOT NULL;

CREATE TABLE holds (
    id          TEXT    NOT NULL PRIMARY KEY,
    account_id  TEXT    NOT NULL REFERENCES accounts (id),
    amount      INTEGER NOT NULL,
    allocations TEXT,
    status      TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    settled_at  INTEGER, -- NULL: not settled
    captured    INTEGER NOT NULL DEFAULT 0,
    charge_id   TEXT    NOT NULL DEFAULT '',
    ref         TEXT
) STRICT;

-- Open holds by expiry (DueHolds) and per account (OpenHolds). Partial, so
-- they stay as small as the number of open holds.
CREATE INDEX holds_due ON holds (expires_at, id) WHERE status = 'open';
CREATE INDEX holds_open ON holds (account_id, created_at, id) WHERE status = 'open';

CREATE TABLE charges (
    id          TEXT    NOT NULL PRIMARY KEY,
    account_id  TEXT    NOT NULL REFERENCES accounts (id),
    amount      INTEGER NOT NULL,
    refunded    INTEGER NOT NULL DEFAULT 0,
    allocations TEXT,
    hold_id     TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    ref         TEXT
) STRICT;

CREATE INDEX charges_account ON charges (account_id, created_at);

-- The journal. Append-only: the triggers below refuse any change.
-- A rowid table: nothing looks a transaction up by its id, so the id has no
-- index of its own (each index costs every insert).
CREATE TABLE transactions (
    id              TEXT    NOT NULL,
    account_id      TEXT    NOT NULL REFERENCES accounts (id),
    seq             INTEGER NOT NULL,
    type            TEXT    NOT NULL,
    amount          INTEGER NOT NULL,
    grant_id        TEXT    NOT NULL DEFAULT '',
    hold_id         TEXT    NOT NULL DEFAULT '',
    charge_id       TEXT    NOT NULL DEFAULT '',
    idempotency_key TEXT    NOT NULL DEFAULT '',
    request_hash    TEXT    NOT NULL DEFAULT '',
    ref             TEXT,
    reason          TEXT    NOT NULL DEFAULT '',
    entries         TEXT,
    created_at      INTEGER NOT NULL,
    prev_hash       TEXT    NOT NULL DEFAULT '',
    hash            TEXT    NOT NULL
) STRICT;

-- One index serves the chain's uniqueness and history, newest first.
CREATE UNIQUE INDEX transactions_account_seq ON transactions (account_id, seq DESC);
-- Idempotency keys are scoped to the account.
CREATE UNIQUE INDEX transactions_key ON transactions (account_id, idempotency_key)
    WHERE idempotency_key <> '';

-- +goose StatementBegin
CREATE TRIGGER transactions_no_update BEFORE UPDATE ON transactions
BEGIN
    SELECT RAISE(ABORT, 'transactions are append-only');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER transactions_no_delete BEFORE DELETE ON transactions
BEGIN
    SELECT RAISE(ABORT, 'transactions are append-only');
END;
-- +goose StatementEnd

-- +goose Down
DROP TABLE transactions;
DROP TABLE charges;
DROP TABLE holds;
DROP TABLE grants;
DROP TABLE accounts;
