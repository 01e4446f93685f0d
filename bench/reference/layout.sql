-- After batch.sql (run.sh puts it in front): the rest of one batch of
-- :batch one-shot charges written as scrip writes them, by hand
-- in set-based SQL, with no Go: the accounts locked in id order, their live
-- grants read, each grant debited, each account's chain head moved, a charge
-- row and a journal row (hashes, entries, idempotency key) per charge.
UPDATE grants SET remaining = remaining - 1000000, closed = false WHERE account_id = ANY(:ids::text[]) AND NOT closed;
WITH a AS (
    UPDATE accounts SET seq = seq + 1,
        hash = '7c37ddf0ad1400153497fce657de55ca935e8d32966bbdc16b5c4cad1ceccb10'
    WHERE id = ANY(:ids::text[]) RETURNING id, seq
), c AS (
    INSERT INTO charges (id, account_id, amount, refunded, allocations, hold_id, created_at, ref)
    SELECT 'ch_' || a.id || '_' || a.seq, a.id, 1000000, 0,
        ('[{"amount": 1000000, "grant_id": "gr-' || a.id || '"}]')::jsonb, '', now(), '{"metadata": null}'::jsonb
    FROM a
)
INSERT INTO transactions (id, account_id, seq, type, amount, charge_id, idempotency_key,
    request_hash, ref, entries, created_at, prev_hash, hash, available_after)
SELECT 'tx_' || a.id || '_' || a.seq, a.id, a.seq, 'charge', 1000000, 'ch_' || a.id || '_' || a.seq,
    'key-' || a.seq, '794d6e5dae9c25e6d10f3d0bd4e304d1', '{"metadata": null}'::jsonb,
    ('[{"grant": "gr-' || a.id || '", "amount": -1000000, "account": "' || a.id
        || '"}, {"amount": 1000000, "account": "@spent"}]')::jsonb,
    now(), '9de908e87d8501fef49e524d45d130332868a652d925d9d2b67929c8ea513dae',
    '7c37ddf0ad1400153497fce657de55ca935e8d32966bbdc16b5c4cad1ceccb10', 99000000
FROM a;
COMMIT;
