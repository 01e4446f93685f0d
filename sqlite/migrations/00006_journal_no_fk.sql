-- holds, charges and transactions lose their foreign key to accounts, as
-- on PostgreSQL: every operation writes them, each foreign key costs every
-- insert a lookup of the account, and they are written only by the
-- ledger's batches, which load the account first and never write for one
-- that does not exist. SQLite cannot drop a constraint, so each table is
-- rebuilt; nothing references them.

-- +goose Up
CREATE TABLE holds_new (
    id          TEXT    NOT NULL PRIMARY KEY,
    account_id  TEXT    NOT NULL,
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
INSERT INTO holds_new SELECT * FROM holds;
DROP TABLE holds;
ALTER TABLE holds_new RENAME TO holds;
CREATE INDEX holds_due ON holds (expires_at, id) WHERE status = 'open';
CREATE INDEX holds_open ON holds (account_id, created_at, id) WHERE status = 'open';

CREATE TABLE charges_new (
    id          TEXT    NOT NULL PRIMARY KEY,
    account_id  TEXT    NOT NULL,
    amount      INTEGER NOT NULL,
    refunded    INTEGER NOT NULL DEFAULT 0,
    allocations TEXT,
    hold_id     TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    ref         TEXT
) STRICT;
INSERT INTO charges_new SELECT * FROM charges;
DROP TABLE charges;
ALTER TABLE charges_new RENAME TO charges;

CREATE TABLE transactions_new (
    id              TEXT    NOT NULL,
    account_id      TEXT    NOT NULL,
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
INSERT INTO transactions_new SELECT * FROM transactions ORDER BY rowid;
DROP TABLE transactions;
ALTER TABLE transactions_new RENAME TO transactions;
CREATE UNIQUE INDEX transactions_account_seq ON transactions (account_id, seq DESC);
CREATE UNIQUE INDEX transactions_key ON transactions (account_id, idempotency_key)
    WHERE idempotency_key <> '';
CREATE INDEX transactions_created ON transactions (created_at, id);
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
SELECT 'the foreign keys of holds, charges and transactions are not restored';
