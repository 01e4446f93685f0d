-- One debit per transaction, as most credit systems do it: a conditional
-- UPDATE of the balance, a journal row with its idempotency key, COMMIT.
\set aid random(1, :accounts)
BEGIN;
UPDATE ref_balances SET balance = balance - 1 WHERE id = :aid AND balance >= 1;
INSERT INTO ref_journal (account_id, amount, idempotency_key) VALUES (:aid, 1, gen_random_uuid()::text);
COMMIT;
