-- Billing: subscriptions, their cycles and plan quota usage. Times are unix
-- microseconds (UTC). A subscription's state is kept as JSON in data; the
-- columns beside it are what queries select on.

-- +goose Up
CREATE TABLE billing_subscriptions (
    account_id TEXT NOT NULL PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    status     TEXT NOT NULL,
    due_at     INTEGER, -- NULL: nothing scheduled
    data       TEXT NOT NULL
) STRICT;

-- The durable schedule: due subscriptions, earliest first.
CREATE INDEX billing_subscriptions_due ON billing_subscriptions (due_at, account_id)
    WHERE due_at IS NOT NULL;

CREATE TABLE billing_cycles (
    subscription_id TEXT    NOT NULL,
    cycle           INTEGER NOT NULL,
    account_id      TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    data            TEXT    NOT NULL,
    PRIMARY KEY (subscription_id, cycle)
) STRICT;

CREATE INDEX billing_cycles_account ON billing_cycles (account_id, created_at);

CREATE TABLE billing_quota_usage (
    account_id TEXT    NOT NULL,
    quota      TEXT    NOT NULL,
    period     TEXT    NOT NULL,
    used       INTEGER NOT NULL CHECK (used >= 0),
    PRIMARY KEY (account_id, period, quota)
) STRICT;

CREATE TABLE billing_quota_reservations (
    id         TEXT    NOT NULL PRIMARY KEY,
    account_id TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    quota      TEXT    NOT NULL,
    period     TEXT    NOT NULL,
    count      INTEGER NOT NULL,
    status     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    settled_at INTEGER,
    UNIQUE (account_id, key)
) STRICT;

-- +goose Down
DROP TABLE billing_quota_reservations;
DROP TABLE billing_quota_usage;
DROP TABLE billing_cycles;
DROP TABLE billing_subscriptions;
