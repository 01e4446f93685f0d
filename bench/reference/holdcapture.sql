-- One batch of :batch hold-then-capture pairs written as scrip writes them,
-- by hand in set-based SQL, with no Go: on each of the batch's accounts the
-- open hold of an earlier batch is captured in full (the hold settled, a
-- charge, a journal row) and a new hold is placed (a hold row, its grant
-- debited, a journal row); each account's chain head moves by two.
\set s random(0, :accounts - 1)
\set stride :accounts / :batch
BEGIN;
SELECT count(*) FROM (
    SELECT id, seq, hash FROM accounts
    WHERE id = ANY(ARRAY(SELECT 'ref-' || lpad(((:s + g * :stride) % :accounts)::text, 6, '0')
                         FROM generate_series(1, :batch) g))
    ORDER BY id FOR UPDATE) locked;
SELECT count(*) FROM (
    SELECT * FROM grants
    WHERE account_id = ANY(ARRAY(SELECT 'ref-' || lpad(((:s + g * :stride) % :accounts)::text, 6, '0')
                                 FROM generate_series(1, :batch) g))
      AND NOT closed AND remaining > 0) live;
SELECT count(*) FROM (
    SELECT * FROM holds
    WHERE account_id = ANY(ARRAY(SELECT 'ref-' || lpad(((:s + g * :stride) % :accounts)::text, 6, '0')
                                 FROM generate_series(1, :batch) g))
      AND status = 'open') open;
UPDATE grants SET remaining = remaining - 1000000, closed = false
WHERE account_id = ANY(ARRAY(SELECT 'ref-' || lpad(((:s + g * :stride) % :accounts)::text, 6, '0')
                             FROM generate_series(1, :batch) g))
  AND NOT closed;
WITH captured AS (
    UPDATE holds SET status = 'captured', settled_at = now(), captured = amount,
        charge_id = 'ch_' || id
    WHERE account_id = ANY(ARRAY(SELECT 'ref-' || lpad(((:s + g * :stride) % :accounts)::text, 6, '0')
                                 FROM generate_series(1, :batch) g))
      AND status = 'open'
    RETURNING id, account_id, amount, allocations, ref
), charged AS (
    INSERT INTO charges (id, account_id, amount, refunded, allocations, hold_id, created_at, ref)
    SELECT 'ch_' || id, account_id, amount, 0, allocations, id, now(), ref FROM captured
), a AS (
    UPDATE accounts SET seq = seq + 2,
        hash = '7c37ddf0ad1400153497fce657de55ca935e8d32966bbdc16b5c4cad1ceccb10'
    WHERE id = ANY(ARRAY(SELECT 'ref-' || lpad(((:s + g * :stride) % :accounts)::text, 6, '0')
                         FROM generate_series(1, :batch) g))
    RETURNING id, seq
), held AS (
    INSERT INTO holds (id, account_id, amount, allocations, status, expires_at, created_at, ref)
    SELECT 'hd_' || a.id || '_' || a.seq, a.id, 1000000,
        ('[{"amount": 1000000, "grant_id": "gr-' || a.id || '"}]')::jsonb, 'open',
        now() + interval '1 hour', now(), '{"metadata": null}'::jsonb
    FROM a
)
INSERT INTO transactions (id, account_id, seq, type, amount, hold_id, charge_id, idempotency_key,
    request_hash, ref, entries, created_at, prev_hash, hash)
SELECT 'tx_' || a.id || '_' || a.seq - 1, a.id, a.seq - 1, 'capture', 1000000, c.id, 'ch_' || c.id,
    'key-' || a.seq - 1, '794d6e5dae9c25e6d10f3d0bd4e304d1', '{"metadata": null}'::jsonb,
    ('[{"hold": "' || c.id || '", "amount": -1000000, "account": "' || a.id
        || '"}, {"amount": 1000000, "account": "@spent"}]')::jsonb,
    now(), '9de908e87d8501fef49e524d45d130332868a652d925d9d2b67929c8ea513dae',
    '7c37ddf0ad1400153497fce657de55ca935e8d32966bbdc16b5c4cad1ceccb10'
FROM a JOIN captured c ON c.account_id = a.id
UNION ALL
SELECT 'tx_' || a.id || '_' || a.seq, a.id, a.seq, 'hold', 1000000, 'hd_' || a.id || '_' || a.seq, '',
    'key-' || a.seq, '794d6e5dae9c25e6d10f3d0bd4e304d1', '{"metadata": null}'::jsonb,
    ('[{"grant": "gr-' || a.id || '", "amount": -1000000, "account": "' || a.id
        || '"}, {"hold": "hd_' || a.id || '_' || a.seq || '", "amount": 1000000, "account": "' || a.id || '"}]')::jsonb,
    now(), '9de908e87d8501fef49e524d45d130332868a652d925d9d2b67929c8ea513dae',
    '7c37ddf0ad1400153497fce657de55ca935e8d32966bbdc16b5c4cad1ceccb10'
FROM a;
COMMIT;
