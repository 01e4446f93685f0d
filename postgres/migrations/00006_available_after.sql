-- Each journal row records the account's available credits once it
-- applied, so that readers of the journal (the event watcher's balance
-- alerts, an account's history) need not read the account's grants. Rows
-- written before keep NULL. A column without a default is added without
-- rewriting the table.

-- +goose Up
ALTER TABLE transactions ADD COLUMN available_after bigint;

-- +goose Down
ALTER TABLE transactions DROP COLUMN available_after;
