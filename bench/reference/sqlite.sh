#!/usr/bin/env bash
# The SQLite reference point of docs/performance.md: scrip's rows for
# one-shot charges written by hand in set-based SQL (sqlite-charges.sql) by
# the sqlite3 shell, SQLite in C with no Go in the way, on the schema scrip
# makes and with its writer's settings: WAL, synchronous=FULL (the log
# flushed at every commit), a 64 MiB cache, the log checkpointed by another
# connection every 200 ms and by the writer past 65,536 pages. One writer,
# as SQLite has: what one core does with these rows.
#
# usage: bench/reference/sqlite.sh
# environment:
#   BATCHES (300)   transactions          BATCH (512)   charges per transaction
#   ACCOUNTS (10000) accounts, uniform    SCRIP         command that runs scrip
#   KEEP=1          keep the database     (default: go run ./cmd/scrip)
#   SQLITE=go       run the same script through the SQLite scrip links
#                   (modernc.org/sqlite, SQLite translated to Go;
#                   bench/reference/sqlitego) instead of the shell
#
# It prints the charges per second, and the CPU time per charge of the
# process that ran the script (scrip bench prints its own, which also counts
# its load generator).
set -euo pipefail
cd "$(dirname "$0")/../.."

batches=${BATCHES:-300} batch=${BATCH:-512} accounts=${ACCOUNTS:-10000}
scrip=${SCRIP:-go run ./cmd/scrip}
for n in "$batches" "$batch" "$accounts"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "sqlite.sh: BATCHES, BATCH and ACCOUNTS must be positive integers" >&2; exit 2; }
done
if (( accounts > 1000000 )); then
  echo "sqlite.sh: ACCOUNTS ($accounts) must be at most 1000000 (account ids have six digits)" >&2
  exit 2
fi
if (( accounts < batch )); then
  echo "sqlite.sh: ACCOUNTS ($accounts) must be at least BATCH ($batch): a batch holds distinct accounts" >&2
  exit 2
fi
case "${SQLITE:-shell}" in
  shell|go) ;;
  *) echo "sqlite.sh: SQLITE must be shell or go, got $SQLITE" >&2; exit 2 ;;
esac
command -v sqlite3 >/dev/null || { echo "sqlite.sh: sqlite3 not found (Debian: apt-get install sqlite3)" >&2; exit 2; }

dir=$(mktemp -d)
db=$dir/reference.db
checkpointer=
cleanup() {
  if [ -n "$checkpointer" ]; then
    kill "$checkpointer" 2>/dev/null || true
    wait "$checkpointer" 2>/dev/null || true
  fi
  if [ "${KEEP:-}" = 1 ]; then echo "kept $db"; else rm -rf "$dir"; fi
}
trap cleanup EXIT

runner=(sqlite3 -bail "$db")
label="SQLite $(sqlite3 --version | cut -d' ' -f1) in C, the sqlite3 shell"
if [ "${SQLITE:-shell}" = go ]; then
  go build -o "$dir/sqlitego" ./bench/reference/sqlitego
  runner=("$dir/sqlitego" "$db")
  label="SQLite in Go, modernc.org/sqlite as scrip links it"
fi

$scrip migrate --database-url "$db" >/dev/null
# Every account with one grant and the grant's journal row, as the
# accounts of scrip bench start.
sqlite3 "$db" >/dev/null <<SQL
PRAGMA journal_mode = WAL;
BEGIN;
WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g WHERE i + 1 < $accounts)
INSERT INTO accounts (id, created_at, seq, hash)
SELECT printf('ref-%06d', i), 0, 1, 'h' FROM g;
INSERT INTO grants (id, account_id, kind, amount, remaining, priority, effective_at, created_at)
SELECT 'gr-' || id, id, 'top_up', 1000000000000000, 1000000000000000, 200, 0, 0 FROM accounts;
INSERT INTO transactions (id, account_id, seq, type, amount, grant_id, created_at, hash)
SELECT 'tx_' || id || '_1', id, 1, 'grant', 1000000000000000, 'gr-' || id, 0, 'h' FROM accounts;
COMMIT;
SQL

# The log checkpointed as scrip's checkpointer does it, from another
# connection.
( echo 'PRAGMA busy_timeout = 5000;'; while :; do echo 'PRAGMA wal_checkpoint(PASSIVE);'; sleep 0.2; done ) |
  sqlite3 "$db" >/dev/null 2>&1 &
checkpointer=$!

script=$dir/run.sql
{
  cat <<SQL
PRAGMA busy_timeout = 5000;
PRAGMA synchronous = FULL;
PRAGMA cache_size = -65536;
PRAGMA mmap_size = 268435456;
PRAGMA temp_store = MEMORY;
PRAGMA wal_autocheckpoint = 65536;
CREATE TEMP TABLE n (g INTEGER PRIMARY KEY);
WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < $batch)
INSERT INTO temp.n SELECT i FROM g;
CREATE TEMP TABLE p (s INTEGER, stride INTEGER, accounts INTEGER);
INSERT INTO temp.p VALUES (0, $accounts / $batch, $accounts);
CREATE TEMP TABLE b (id TEXT PRIMARY KEY) WITHOUT ROWID;
.output /dev/null
SQL
  for (( i = 0; i < batches; i++ )); do echo ".read bench/reference/sqlite-charges.sql"; done
} >"$script"

TIMEFORMAT='%R %U %S'
times=$( { time "${runner[@]}" <"$script" >/dev/null; } 2>&1 ) || {
  echo "$times" >&2; echo "sqlite.sh: ${runner[0]} failed" >&2; exit 1; }
read -r real user sys <<<"$(tail -1 <<<"$times")"
kill "$checkpointer" 2>/dev/null || true
wait "$checkpointer" 2>/dev/null || true
checkpointer=
charges=$(sqlite3 "$db" 'SELECT count(*) FROM charges')
bad=$(sqlite3 "$db" "SELECT count(*) FROM accounts a WHERE seq <> (SELECT count(*) FROM transactions t WHERE t.account_id = a.id)")
if (( charges != batches * batch || bad != 0 )); then
  echo "sqlite.sh: $charges charges written, want $(( batches * batch )); $bad accounts whose seq is not their number of journal rows" >&2
  exit 1
fi
printf '\n%-58s %10s %10s %14s\n' "$label" charges charges/s "CPU µs/charge"
awk -v l="scrip's rows by hand, $batch charges per batch, uniform" -v n="$charges" -v r="$real" -v u="$user" -v s="$sys" \
  'BEGIN { printf "%-58s %10d %10.0f %14.1f\n", l, n, n / r, (u + s) * 1e6 / n }'
