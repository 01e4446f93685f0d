-- The start of every batch of scrip's rows by hand (layout.sql, hold.sql,
-- capture.sql; run.sh puts it in front of each): the batch's accounts,
-- locked in id order as scrip's committer locks them, and their live
-- grants read.
-- The accounts, distinct: :batch of them, ACCOUNTS / :batch apart
-- from a random start, as one text[] value (scrip sends its ids as arrays).
\set s random(0, :accounts - 1)
\set stride :accounts / :batch
SELECT array_agg('ref-' || lpad(((:s + g * :stride) % :accounts)::text, 6, '0') ORDER BY g)::text AS ids
FROM generate_series(1, :batch) g \gset
BEGIN;
SELECT count(*) FROM (SELECT id, seq, hash FROM accounts WHERE id = ANY(:ids::text[]) ORDER BY id FOR UPDATE) locked;
SELECT count(*) FROM (SELECT * FROM grants WHERE account_id = ANY(:ids::text[]) AND NOT closed AND remaining > 0) live;
