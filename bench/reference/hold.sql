-- Half of a batch of hold+capture pairs written as scrip writes them, by
-- hand in set-based SQL, with no Go: a hold on each of the batch's accounts
-- (a hold row, its grant debited, a journal row, the chain head moved).
-- capture.sql is the other half; run.sh runs the two alternately at random
-- and counts the holds captured, as scrip's engine holds and captures in
-- separate batches.
UPDATE grants SET remaining = remaining - 1000000, closed = false WHERE account_id = ANY(:ids::text[]) AND NOT closed;
WITH a AS (
    UPDATE accounts SET seq = seq + 1,
        hash = '7c37ddf0ad1400153497fce657de55ca935e8d32966bbdc16b5c4cad1ceccb10'
    WHERE id = ANY(:ids::text[]) RETURNING id, seq
), held AS (
    INSERT INTO holds (id, account_id, amount, allocations, status, expires_at, created_at, ref)
    SELECT 'hd_' || a.id || '_' || a.seq, a.id, 1000000,
        ('[{"amount": 1000000, "grant_id": "gr-' || a.id || '"}]')::jsonb, 'open',
        now() + interval '1 hour', now(), '{"metadata": null}'::jsonb
    FROM a
)
INSERT INTO transactions (id, account_id, seq, type, amount, hold_id, idempotency_key,
    request_hash, ref, entries, created_at, prev_hash, hash, available_after)
SELECT 'tx_' || a.id || '_' || a.seq, a.id, a.seq, 'hold', 1000000, 'hd_' || a.id || '_' || a.seq,
    'key-' || a.seq, '794d6e5dae9c25e6d10f3d0bd4e304d1', '{"metadata": null}'::jsonb,
    ('[{"grant": "gr-' || a.id || '", "amount": -1000000, "account": "' || a.id
        || '"}, {"hold": "hd_' || a.id || '_' || a.seq || '", "amount": 1000000, "account": "' || a.id || '"}]')::jsonb,
    now(), '9de908e87d8501fef49e524d45d130332868a652d925d9d2b67929c8ea513dae',
    '7c37ddf0ad1400153497fce657de55ca935e8d32966bbdc16b5c4cad1ceccb10', 99000000
FROM a;
COMMIT;
