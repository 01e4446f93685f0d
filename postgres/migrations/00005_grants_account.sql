-- Every grant of an account, in creation order: the API's list of grants
-- with closed ones, and verification, which reads each account's grants.
-- grants_live holds open grants only, so without this index each of those
-- reads scanned the whole table. It names neither remaining nor closed, so
-- debits stay HOT updates.

-- +goose Up
CREATE INDEX grants_account ON grants (account_id, created_at, id);

-- +goose Down
DROP INDEX grants_account;
