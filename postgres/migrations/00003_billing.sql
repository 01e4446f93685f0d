-- Billing: subscriptions, their cycles and plan quota usage. A
-- subscription's state is kept as JSON in data; the columns beside it are
-- what queries select on.

-- +goose Up
CREATE TABLE billing_subscriptions (
    account_id text NOT NULL PRIMARY KEY,
    id         text NOT NULL UNIQUE,
    status     text NOT NULL,
    due_at     timestamptz, -- NULL: nothing scheduled
    data       jsonb NOT NULL
);

-- The durable schedule: due subscriptions, earliest first. Schedulers claim
-- rows with FOR UPDATE SKIP LOCKED.
CREATE INDEX billing_subscriptions_due ON billing_subscriptions (due_at, account_id)
    WHERE due_at IS NOT NULL;

CREATE TABLE billing_cycles (
    subscription_id text        NOT NULL,
    cycle           bigint      NOT NULL,
    account_id      text        NOT NULL,
    created_at      timestamptz NOT NULL,
    data            jsonb       NOT NULL,
    PRIMARY KEY (subscription_id, cycle)
);

CREATE INDEX billing_cycles_account ON billing_cycles (account_id, created_at);

CREATE TABLE billing_quota_usage (
    account_id text   NOT NULL,
    quota      text   NOT NULL,
    period     text   NOT NULL,
    used       bigint NOT NULL CHECK (used >= 0),
    PRIMARY KEY (account_id, period, quota)
);

CREATE TABLE billing_quota_reservations (
    id         text        NOT NULL PRIMARY KEY,
    account_id text        NOT NULL,
    key        text        NOT NULL,
    quota      text        NOT NULL,
    period     text        NOT NULL,
    count      bigint      NOT NULL,
    status     text        NOT NULL,
    created_at timestamptz NOT NULL,
    settled_at timestamptz,
    UNIQUE (account_id, key)
);

-- +goose Down
DROP TABLE billing_quota_reservations;
DROP TABLE billing_quota_usage;
DROP TABLE billing_cycles;
DROP TABLE billing_subscriptions;
