-- Payments (Stripe) and outgoing events.

-- +goose Up
-- Every Stripe event applied, with what it did: replays answer from here.
CREATE TABLE stripe_events (
    id          TEXT    NOT NULL PRIMARY KEY,
    type        TEXT    NOT NULL,
    account_id  TEXT    NOT NULL DEFAULT '',
    object_id   TEXT    NOT NULL DEFAULT '',
    created     BIGINT NOT NULL, -- the event's creation time at Stripe
    received_at TIMESTAMPTZ NOT NULL,
    result      TEXT    NOT NULL
);
CREATE INDEX stripe_events_received ON stripe_events (received_at, id);

-- Paid checkouts and invoices, so a refunded charge finds its credits.
CREATE TABLE stripe_purchases (
    id             TEXT    NOT NULL PRIMARY KEY, -- checkout session or invoice id
    account_id     TEXT    NOT NULL,
    kind           TEXT    NOT NULL, -- pack | subscription
    code           TEXT    NOT NULL,
    payment_intent TEXT    NOT NULL DEFAULT '',
    grant_id       TEXT    NOT NULL DEFAULT '',
    credits        BIGINT NOT NULL DEFAULT 0,
    paid_amount    BIGINT NOT NULL DEFAULT 0,
    currency       TEXT    NOT NULL DEFAULT '',
    created_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX stripe_purchases_payment_intent ON stripe_purchases (payment_intent)
    WHERE payment_intent <> '';

-- Stripe subscriptions known to scrip and the last update applied to each.
CREATE TABLE stripe_subscriptions (
    id                   TEXT    NOT NULL PRIMARY KEY,
    account_id           TEXT    NOT NULL,
    plan_code            TEXT    NOT NULL DEFAULT '',
    status               TEXT    NOT NULL DEFAULT '',
    cancel_at_period_end BOOLEAN NOT NULL DEFAULT FALSE,
    event_created        BIGINT NOT NULL DEFAULT 0, -- unix seconds of the last applied event
    updated_at           TIMESTAMPTZ NOT NULL
);

-- Outgoing events: the outbox.
CREATE TABLE events (
    id         TEXT    NOT NULL PRIMARY KEY,
    type       TEXT    NOT NULL,
    account_id TEXT    NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    data       TEXT    NOT NULL -- JSON, kept byte for byte
);
CREATE INDEX events_created ON events (created_at, id);
CREATE INDEX events_account ON events (account_id, created_at);

CREATE TABLE event_endpoints (
    id         TEXT    NOT NULL PRIMARY KEY,
    url        TEXT    NOT NULL,
    secret     TEXT    NOT NULL,
    types      TEXT    NOT NULL, -- comma-separated; '*' for every type
    created_at TIMESTAMPTZ NOT NULL,
    disabled   BOOLEAN NOT NULL DEFAULT FALSE
);

-- One delivery per event and endpoint; next_at is also the lease of a
-- claimed delivery.
CREATE TABLE event_deliveries (
    event_id     TEXT    NOT NULL REFERENCES events (id),
    endpoint_id  TEXT    NOT NULL REFERENCES event_endpoints (id),
    status       TEXT    NOT NULL, -- pending | delivered | failed
    attempts     BIGINT NOT NULL DEFAULT 0,
    next_at      TIMESTAMPTZ NOT NULL,
    last_status  BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT    NOT NULL DEFAULT '',
    delivered_at TIMESTAMPTZ,
    PRIMARY KEY (event_id, endpoint_id)
);
CREATE INDEX event_deliveries_due ON event_deliveries (next_at) WHERE status = 'pending';

CREATE TABLE event_attempts (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    TEXT    NOT NULL,
    endpoint_id TEXT    NOT NULL,
    number      BIGINT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    status_code BIGINT NOT NULL DEFAULT 0,
    error       TEXT    NOT NULL DEFAULT '',
    duration_us BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX event_attempts_event ON event_attempts (event_id, id);

-- Cursors and alert states of the event watcher.
CREATE TABLE event_state (
    name  TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);

-- The watcher follows the journal in time order. Transactions arrive in
-- roughly that order, so a BRIN index finds a window at almost no cost per
-- insert (a B-tree here would tax every ledger write).
CREATE INDEX transactions_created ON transactions USING brin (created_at);

-- +goose Down
DROP INDEX transactions_created;
DROP TABLE event_state;
DROP TABLE event_attempts;
DROP TABLE event_deliveries;
DROP TABLE event_endpoints;
DROP TABLE events;
DROP TABLE stripe_subscriptions;
DROP TABLE stripe_purchases;
DROP TABLE stripe_events;
