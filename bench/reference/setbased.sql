-- :batch debits in one statement: the balances of the accounts drawn, then
-- one journal row per debit. Each batch draws its own accounts, so two
-- batches may wait on each other's rows; a deadlock is retried.
WITH d AS (
    SELECT 1 + floor(random() * :accounts)::int AS id FROM generate_series(1, :batch)
), c AS (
    SELECT id, count(*) AS n FROM d GROUP BY id ORDER BY id
), u AS (
    UPDATE ref_balances b SET balance = b.balance - c.n FROM c
    WHERE b.id = c.id AND b.balance >= c.n RETURNING b.id
)
INSERT INTO ref_journal (account_id, amount, idempotency_key)
SELECT id, 1, gen_random_uuid()::text FROM d;
