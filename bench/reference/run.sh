#!/usr/bin/env bash
# The reference points of docs/performance.md ("Reference points"), measured
# with pgbench on the PostgreSQL server scrip's own figures come from: debits
# as one transaction each, as set-based statements over a two-row layout, and
# scrip's own rows written by hand in set-based SQL with no Go in the way.
#
# usage: bench/reference/run.sh [POSTGRES_URL]
#   POSTGRES_URL  default $SCRIP_DATABASE_URL, else the local test database;
#                 scrip's own URL parameters (pool_*, search_path, ...) are
#                 dropped for psql and pgbench, which do not take them
# environment:
#   DURATION (10)  seconds per run      ACCOUNTS (10000)   accounts, uniform
#   BATCH (200)    debits per batch     HOT (10)           accounts of the hot runs
#   CLIENTS (64)   per-operation clients
#   SET_CLIENTS (2) batches in flight (scrip's committers on PostgreSQL)
#   SCRIP          command that runs scrip (default: go run ./cmd/scrip)
#   KEEP=1         keep the schema for a look at its rows
#
# Everything lives in a new schema of the URL's database, dropped at the end.
# A CHECKPOINT goes before each run when the role may take one (superuser
# or pg_checkpoint); without it one run's log may slow the next.
# Operations per second count debits, or for the hold+capture run the holds
# captured (pairs).
set -euo pipefail
cd "$(dirname "$0")/../.."

url=${1:-${SCRIP_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}}
case "$url" in
  postgres://*|postgresql://*) ;;
  *) echo "run.sh: want a postgres:// URL, got $url" >&2; exit 2 ;;
esac
duration=${DURATION:-10} accounts=${ACCOUNTS:-10000} batch=${BATCH:-200} hot=${HOT:-10}
clients=${CLIENTS:-64} set_clients=${SET_CLIENTS:-2}
scrip=${SCRIP:-go run ./cmd/scrip}
for n in "$duration" "$accounts" "$batch" "$hot" "$clients" "$set_clients"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: DURATION, ACCOUNTS, BATCH, HOT, CLIENTS and SET_CLIENTS must be positive integers" >&2; exit 2; }
done
if (( accounts > 1000000 )); then
  echo "run.sh: ACCOUNTS ($accounts) must be at most 1000000 (account ids have six digits)" >&2
  exit 2
fi
if (( hot > accounts )); then
  echo "run.sh: HOT ($hot) must be at most ACCOUNTS ($accounts)" >&2
  exit 2
fi
if (( accounts < batch )); then
  echo "run.sh: ACCOUNTS ($accounts) must be at least BATCH ($batch): scrip's batches hold distinct accounts" >&2
  exit 2
fi
for tool in psql pgbench; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool not found (PostgreSQL's client programs)" >&2; exit 2; }
done

source bench/reference/libpq.sh
url=$(libpq_url "$url")

schema="scrip_reference_$$"
work=$(mktemp -d)
sep='?'; [[ "$url" == *\?* ]] && sep='&'
schema_url="$url${sep}search_path=$schema"
sql() { psql -X -q -v ON_ERROR_STOP=1 "$url" "$@"; }
cleanup() {
  rm -rf "$work"
  if [ "${KEEP:-}" = 1 ]; then echo "kept schema $schema"; return; fi
  sql -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
}
trap cleanup EXIT
dir=bench/reference
# The batches of scrip's rows by hand start alike: batch.sql goes in front.
cp "$dir/perop.sql" "$dir/setbased.sql" "$work/"
for f in layout hold capture; do cat "$dir/batch.sql" "$dir/$f.sql" >"$work/$f.sql"; done

echo "setting up schema $schema: $accounts accounts, scrip's tables (scrip migrate) and the two-row layout"
sql -c "CREATE SCHEMA $schema"
$scrip migrate --database-url "$schema_url" >/dev/null
PGOPTIONS="-c search_path=$schema" sql <<SQL
CREATE TABLE ref_balances (id int PRIMARY KEY, balance bigint NOT NULL) WITH (fillfactor = 80);
INSERT INTO ref_balances SELECT g, 1000000000000 FROM generate_series(1, $accounts) g;
CREATE TABLE ref_journal (
    id              bigserial PRIMARY KEY,
    account_id      int NOT NULL,
    amount          bigint NOT NULL,
    idempotency_key text NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now()
);
INSERT INTO accounts (id, created_at)
SELECT 'ref-' || lpad(g::text, 6, '0'), now() FROM generate_series(0, $accounts - 1) g;
INSERT INTO grants (id, account_id, kind, amount, remaining, priority, effective_at, created_at)
SELECT 'gr-ref-' || lpad(g::text, 6, '0'), 'ref-' || lpad(g::text, 6, '0'), 'top_up',
    1000000000000000, 1000000000000000, 200, now(), now()
FROM generate_series(0, $accounts - 1) g;
-- One open hold per account, for the first captures to find.
INSERT INTO holds (id, account_id, amount, allocations, status, expires_at, created_at)
SELECT 'hd_ref-' || lpad(g::text, 6, '0'), 'ref-' || lpad(g::text, 6, '0'), 1000000,
    ('[{"amount": 1000000, "grant_id": "gr-ref-' || lpad(g::text, 6, '0') || '"}]')::jsonb, 'open',
    now() + interval '1 hour', now()
FROM generate_series(0, $accounts - 1) g;
ANALYZE;
SQL

# run LABEL CLIENTS PER SCRIPTS VARS...: SCRIPTS is one file or several,
# comma-separated, which pgbench picks among at random; PER is the number
# of operations per transaction, or "captured" to count the holds captured
# during the run.
run() {
  local label=$1 c=$2 per=$3 scripts=$4; shift 4
  local args=() f captured0=0
  for v in "$@"; do args+=(-D "$v"); done
  for f in ${scripts//,/ }; do args+=(-f "$work/$f"); done
  checkpoint
  [ "$per" = captured ] && captured0=$(captured)
  local out
  out=$(PGOPTIONS="-c search_path=$schema" pgbench -n -M prepared -c "$c" -j "$(( c < 2 ? 1 : 2 ))" \
    -T "$duration" --max-tries 10 "${args[@]}" "$url" 2>&1) || {
    echo "$out" >&2; echo "run.sh: pgbench failed: $label" >&2; exit 1; }
  local tps lat failed ops
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out")
  lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' <<<"$out")
  failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
  if [ "$per" = captured ]; then
    ops=$(awk -v n="$(( $(captured) - captured0 ))" -v d="$duration" 'BEGIN { print n / d }')
  else
    ops=$(awk -v t="$tps" -v p="$per" 'BEGIN { print t * p }')
  fi
  awk -v l="$label" -v c="$c" -v o="$ops" -v lat="$lat" -v f="${failed:-0}" \
    'BEGIN { printf "%-58s %7d %10.0f %10.1f %7s\n", l, c, o, lat, f }'
}
checkpoints=yes
checkpoint() {
  [ "$checkpoints" = yes ] || return 0
  if ! sql -c CHECKPOINT 2>/dev/null; then
    checkpoints=no
    echo "run.sh: this role may not CHECKPOINT; the runs go without one" >&2
  fi
}
captured() { PGOPTIONS="-c search_path=$schema" sql -At -c "SELECT count(*) FROM holds WHERE status = 'captured'"; }

printf '\n%-58s %7s %10s %10s %7s\n' "reference ($duration s each)" clients ops/s "tx lat ms" failed
run "per operation, uniform over $accounts"          "$clients" 1 perop.sql accounts="$accounts"
run "per operation, $hot hot accounts"                "$clients" 1 perop.sql accounts="$hot"
run "set-based, $batch per statement, uniform"        "$set_clients" "$batch" setbased.sql accounts="$accounts" batch="$batch"
run "set-based, $batch per statement, $hot hot"       "$set_clients" "$batch" setbased.sql accounts="$hot" batch="$batch"
run "scrip's rows by hand, $batch charges per batch, uniform" "$set_clients" "$batch" layout.sql accounts="$accounts" batch="$batch"
run "scrip's rows by hand, $batch holds or captures per batch" "$set_clients" captured hold.sql,capture.sql accounts="$accounts" batch="$batch"
