-- Indexes that every debit paid for.
--
-- Charges are only ever looked up by id: the index by account cost each
-- charge a random B-tree insert and served no query.
--
-- grants_live named remaining in its WHERE clause, so every debit rewrote
-- its index entry. Live now means not closed, as on PostgreSQL; the queries
-- still skip grants with nothing remaining.

-- +goose Up
DROP INDEX charges_account;
DROP INDEX grants_live;
CREATE INDEX grants_live ON grants (account_id, created_at, id) WHERE closed = 0;

-- +goose Down
DROP INDEX grants_live;
CREATE INDEX grants_live ON grants (account_id, created_at, id)
    WHERE closed = 0 AND remaining > 0;
CREATE INDEX charges_account ON charges (account_id, created_at);
