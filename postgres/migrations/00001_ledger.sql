-- +goose Up

-- Amounts are BIGINT micro-credits (credit.Amount); amounts inside jsonb
-- columns are micro-credits too. Times are timestamptz, exact to the
-- microsecond, because they are part of each transaction's hash.
-- Identifiers and keys use the "C" collation: byte order, as Go sorts
-- them (the committer locks accounts in that order), and cheap to compare.

CREATE TABLE accounts (
    id         TEXT COLLATE "C" PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    metadata   JSONB,
    -- head of the account's chain: number of transactions and last hash
    seq        BIGINT NOT NULL DEFAULT 0,
    hash       TEXT NOT NULL DEFAULT ''
) WITH (fillfactor = 80);

CREATE TABLE grants (
    id            TEXT COLLATE "C" PRIMARY KEY,
    account_id    TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    kind          TEXT NOT NULL,
    amount        BIGINT NOT NULL,
    remaining     BIGINT NOT NULL,
    priority      INTEGER NOT NULL,
    effective_at  TIMESTAMPTZ NOT NULL,
    -- NULL: never expires
    expires_at    TIMESTAMPTZ,
    source_type   TEXT NOT NULL DEFAULT '',
    source_id     TEXT NOT NULL DEFAULT '',
    source_reason TEXT NOT NULL DEFAULT '',
    paid_amount   BIGINT NOT NULL DEFAULT 0,
    paid_currency TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL,
    metadata      JSONB,
    closed        BOOLEAN NOT NULL DEFAULT FALSE
) WITH (fillfactor = 80);
-- remaining is deliberately in no index, so that debits stay HOT updates.
CREATE INDEX grants_due ON grants (expires_at) WHERE NOT closed AND expires_at IS NOT NULL;
CREATE INDEX grants_live ON grants (account_id) WHERE NOT closed;

-- holds, charges and transactions are written by every operation; they
-- carry no foreign key, whose per-row check would cost the hot path, and
-- are written only under the lock of their account row.
CREATE TABLE holds (
    id          TEXT COLLATE "C" PRIMARY KEY,
    account_id  TEXT COLLATE "C" NOT NULL,
    amount      BIGINT NOT NULL,
    allocations JSONB,
    status      TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    -- NULL: not settled
    settled_at  TIMESTAMPTZ,
    captured    BIGINT NOT NULL DEFAULT 0,
    charge_id   TEXT NOT NULL DEFAULT '',
    ref         JSONB
) WITH (fillfactor = 90);
CREATE INDEX holds_due ON holds (expires_at) WHERE status = 'open';
CREATE INDEX holds_open ON holds (account_id) WHERE status = 'open';

CREATE TABLE charges (
    id          TEXT COLLATE "C" PRIMARY KEY,
    account_id  TEXT COLLATE "C" NOT NULL,
    amount      BIGINT NOT NULL,
    refunded    BIGINT NOT NULL DEFAULT 0,
    -- what is still refundable, per grant
    allocations JSONB,
    hold_id     TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL,
    ref         JSONB
) WITH (fillfactor = 90);

-- The journal. Append-only: nothing updates or deletes its rows.
CREATE TABLE transactions (
    -- Unique by construction; nothing looks a transaction up by id, so it
    -- carries no index of its own (each index costs every insert).
    id              TEXT COLLATE "C" NOT NULL,
    account_id      TEXT COLLATE "C" NOT NULL,
    seq             BIGINT NOT NULL,
    type            TEXT NOT NULL,
    amount          BIGINT NOT NULL,
    grant_id        TEXT NOT NULL DEFAULT '',
    hold_id         TEXT NOT NULL DEFAULT '',
    charge_id       TEXT NOT NULL DEFAULT '',
    idempotency_key TEXT COLLATE "C" NOT NULL DEFAULT '',
    request_hash    TEXT NOT NULL DEFAULT '',
    ref             JSONB,
    reason          TEXT NOT NULL DEFAULT '',
    entries         JSONB,
    created_at      TIMESTAMPTZ NOT NULL,
    prev_hash       TEXT NOT NULL DEFAULT '',
    hash            TEXT NOT NULL,
    -- One index serves both uniqueness of (account_id, seq) and history pages.
    PRIMARY KEY (account_id, seq)
);
CREATE UNIQUE INDEX transactions_account_key ON transactions (account_id, idempotency_key)
    WHERE idempotency_key <> '';

-- The journal is append-only: edits and deletions are refused outright.
-- +goose StatementBegin
CREATE FUNCTION scrip_journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the journal is append-only: % on transactions refused', TG_OP;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER transactions_append_only BEFORE UPDATE OR DELETE ON transactions
    FOR EACH ROW EXECUTE FUNCTION scrip_journal_append_only();

-- +goose Down
DROP TABLE transactions;
DROP FUNCTION scrip_journal_append_only();
DROP TABLE charges;
DROP TABLE holds;
DROP TABLE grants;
DROP TABLE accounts;
