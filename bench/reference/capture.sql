-- The other half of hold.sql: the open holds of the batch's accounts
-- captured in full (the hold settled, a charge row, a journal row, the
-- chain head moved), as scrip captures: the holds read first, by id.
SELECT count(*) FROM (
    SELECT * FROM holds
    WHERE id = ANY(ARRAY(SELECT id FROM holds
                         WHERE account_id = ANY(:ids::text[])
                           AND status = 'open'))) open;
WITH captured AS (
    UPDATE holds SET status = 'captured', settled_at = now(), captured = amount,
        charge_id = 'ch_' || id
    WHERE account_id = ANY(:ids::text[])
      AND status = 'open'
    RETURNING id, account_id, amount, allocations, ref
), charged AS (
    INSERT INTO charges (id, account_id, amount, refunded, allocations, hold_id, created_at, ref)
    SELECT 'ch_' || id, account_id, amount, 0, allocations, id, now(), ref FROM captured
), n AS (
    SELECT account_id, count(*) AS n FROM captured GROUP BY account_id
), a AS (
    UPDATE accounts SET seq = seq + n.n,
        hash = '7c37ddf0ad1400153497fce657de55ca935e8d32966bbdc16b5c4cad1ceccb10'
    FROM n WHERE accounts.id = n.account_id
    RETURNING id, seq, n.n
)
INSERT INTO transactions (id, account_id, seq, type, amount, hold_id, charge_id, idempotency_key,
    request_hash, ref, entries, created_at, prev_hash, hash, available_after)
SELECT 'tx_' || c.id, a.id, a.seq - a.n + row_number() OVER (PARTITION BY a.id ORDER BY c.id),
    'capture', 1000000, c.id, 'ch_' || c.id, 'key-' || c.id, '794d6e5dae9c25e6d10f3d0bd4e304d1',
    '{"metadata": null}'::jsonb,
    ('[{"hold": "' || c.id || '", "amount": -1000000, "account": "' || a.id
        || '"}, {"amount": 1000000, "account": "@spent"}]')::jsonb,
    now(), '9de908e87d8501fef49e524d45d130332868a652d925d9d2b67929c8ea513dae',
    '7c37ddf0ad1400153497fce657de55ca935e8d32966bbdc16b5c4cad1ceccb10', 99000000
FROM captured c JOIN a ON a.id = c.account_id;
COMMIT;
