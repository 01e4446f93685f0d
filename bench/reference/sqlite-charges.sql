-- One batch of one-shot charges on SQLite, written as scrip writes them,
-- by hand in set-based SQL, with no Go (sqlite.sh reads it once per
-- batch): the batch's accounts read in id order and their live grants read,
-- as scrip's committer reads them; then each grant debited, each account's
-- chain head moved, a charge row and a journal row (hashes, entries,
-- idempotency key) per charge, in one transaction.
-- The accounts, distinct: as many as temp.n has rows, ACCOUNTS / BATCH apart
-- from a random start (temp.p holds ACCOUNTS and the stride).
BEGIN IMMEDIATE;
DELETE FROM temp.b;
UPDATE temp.p SET s = abs(random() % accounts);
INSERT INTO temp.b (id)
SELECT printf('ref-%06d', (p.s + n.g * p.stride) % p.accounts) FROM temp.n AS n, temp.p AS p;
SELECT count(*) FROM (SELECT id, seq, hash FROM accounts
    WHERE id IN (SELECT id FROM temp.b) ORDER BY id);
SELECT count(*) FROM (SELECT * FROM grants
    WHERE account_id IN (SELECT id FROM temp.b) AND closed = 0 AND remaining > 0
    ORDER BY account_id, created_at, id);
UPDATE grants SET remaining = remaining - 1000000
    WHERE account_id IN (SELECT id FROM temp.b) AND closed = 0;
UPDATE accounts SET seq = seq + 1,
    hash = '7c37ddf0ad1400153497fce657de55ca935e8d32966bbdc16b5c4cad1ceccb10'
    WHERE id IN (SELECT id FROM temp.b);
INSERT INTO charges (id, account_id, amount, refunded, allocations, hold_id, created_at, ref)
SELECT 'ch_' || a.id || '_' || a.seq, a.id, 1000000, 0,
    '[{"amount":1000000,"grant_id":"gr-' || a.id || '"}]', '', CAST(strftime('%s', 'now') AS INTEGER) * 1000000,
    '{"metadata":null}'
FROM accounts AS a WHERE a.id IN (SELECT id FROM temp.b);
INSERT INTO transactions (id, account_id, seq, type, amount, charge_id, idempotency_key,
    request_hash, ref, entries, created_at, prev_hash, hash, available_after)
SELECT 'tx_' || a.id || '_' || a.seq, a.id, a.seq, 'charge', 1000000, 'ch_' || a.id || '_' || a.seq,
    'key-' || a.seq, '794d6e5dae9c25e6d10f3d0bd4e304d1', '{"metadata":null}',
    '[{"grant":"gr-' || a.id || '","amount":-1000000,"account":"' || a.id
        || '"},{"amount":1000000,"account":"@spent"}]',
    CAST(strftime('%s', 'now') AS INTEGER) * 1000000, '9de908e87d8501fef49e524d45d130332868a652d925d9d2b67929c8ea513dae',
    '7c37ddf0ad1400153497fce657de55ca935e8d32966bbdc16b5c4cad1ceccb10', 99000000
FROM accounts AS a WHERE a.id IN (SELECT id FROM temp.b);
COMMIT;
