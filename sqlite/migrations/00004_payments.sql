-- Payments (Stripe) and outgoing events. Times are unix microseconds (UTC).

-- +goose Up
-- Every Stripe event applied, with what it did: replays answer from here.
CREATE TABLE stripe_events (
    id          TEXT    NOT NULL PRIMARY KEY,
    type        TEXT    NOT NULL,
    account_id  TEXT    NOT NULL DEFAULT '',
    object_id   TEXT    NOT NULL DEFAULT '',
    created     INTEGER NOT NULL, -- the event's creation time at Stripe
    received_at INTEGER NOT NULL,
    result      TEXT    NOT NULL
) STRICT;
CREATE INDEX stripe_events_received ON stripe_events (received_at, id);

-- Paid checkouts and invoices, so a refunded charge finds its credits.
CREATE TABLE stripe_purchases (
    id             TEXT    NOT NULL PRIMARY KEY, -- checkout session or invoice id
    account_id     TEXT    NOT NULL,
    kind           TEXT    NOT NULL, -- pack | subscription
    code           TEXT    NOT NULL,
    payment_intent TEXT    NOT NULL DEFAULT '',
    grant_id       TEXT    NOT NULL DEFAULT '',
    credits        INTEGER NOT NULL DEFAULT 0,
    paid_amount    INTEGER NOT NULL DEFAULT 0,
    currency       TEXT    NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX stripe_purchases_payment_intent ON stripe_purchases (payment_intent)
    WHERE payment_intent <> '';

-- Stripe subscriptions known to scrip and the last update applied to each.
CREATE TABLE stripe_subscriptions (
    id                   TEXT    NOT NULL PRIMARY KEY,
    account_id           TEXT    NOT NULL,
    plan_code            TEXT    NOT NULL DEFAULT '',
    status               TEXT    NOT NULL DEFAULT '',
    cancel_at_period_end INTEGER NOT NULL DEFAULT 0,
    event_created        INTEGER NOT NULL DEFAULT 0, -- unix seconds of the last applied event
    updated_at           INTEGER NOT NULL
) STRICT;

-- Outgoing events: the outbox.
CREATE TABLE events (
    id         TEXT    NOT NULL PRIMARY KEY,
    type       TEXT    NOT NULL,
    account_id TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    data       TEXT    NOT NULL -- JSON, kept byte for byte
) STRICT;
CREATE INDEX events_created ON events (created_at, id);
CREATE INDEX events_account ON events (account_id, created_at);

CREATE TABLE event_endpoints (
    id         TEXT    NOT NULL PRIMARY KEY,
    url        TEXT    NOT NULL,
    secret     TEXT    NOT NULL,
    types      TEXT    NOT NULL, -- comma-separated; '*' for every type
    created_at INTEGER NOT NULL,
    disabled   INTEGER NOT NULL DEFAULT 0
) STRICT;

-- One delivery per event and endpoint; next_at is also the lease of a
-- claimed delivery.
CREATE TABLE event_deliveries (
    event_id     TEXT    NOT NULL REFERENCES events (id),
    endpoint_id  TEXT    NOT NULL REFERENCES event_endpoints (id),
    status       TEXT    NOT NULL, -- pending | delivered | failed
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER NOT NULL,
    last_status  INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT    NOT NULL DEFAULT '',
    delivered_at INTEGER,
    PRIMARY KEY (event_id, endpoint_id)
) STRICT;
CREATE INDEX event_deliveries_due ON event_deliveries (next_at) WHERE status = 'pending';

CREATE TABLE event_attempts (
    id          INTEGER NOT NULL PRIMARY KEY,
    event_id    TEXT    NOT NULL,
    endpoint_id TEXT    NOT NULL,
    number      INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    status_code INTEGER NOT NULL DEFAULT 0,
    error       TEXT    NOT NULL DEFAULT '',
    duration_us INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX event_attempts_event ON event_attempts (event_id, id);

-- Cursors and alert states of the event watcher.
CREATE TABLE event_state (
    name  TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- The watcher follows the journal in time order.
CREATE INDEX transactions_created ON transactions (created_at, id);

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
