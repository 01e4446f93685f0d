#!/usr/bin/env bash
# The runs of docs/performance.md's "Latest figures", in rounds: each round
# runs every workload once, with a CHECKPOINT before each PostgreSQL run so
# that one run's log does not slow the next, and the end prints the table
# of medians with every round beside them (bench/rounds/main.go). The JSON
# and text reports stay in OUT.
#
# usage: bench/rounds/run.sh [POSTGRES_URL]
#   POSTGRES_URL  default $SCRIP_DATABASE_URL, else the local test database;
#                 the engine runs make a schema of their own in it, the HTTP
#                 run a database of its own on the same server
# environment:
#   ROUNDS (3)           rounds                 ACCOUNTS (10000)   accounts, uniform
#   DURATION (10)        seconds per engine run HOT (10)           accounts of the hot run
#   SHORT (5)            seconds per one-client run
#   HTTP_DURATION (8)    seconds per HTTP run
#   CLIENTS (1024)       clients at engine level, and the batch bound
#   HTTP_CLIENTS (64)    clients over HTTP
#   OUT                  directory for the reports (default a new one under $TMPDIR)
#   SCRIP                scrip binary (default: built from this checkout)
#
# psql and curl are needed. The role creates and drops a database for the
# HTTP run (CREATEDB); one that may not take a CHECKPOINT (superuser or
# pg_checkpoint) runs without. The SQLite files go under $TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/reference/libpq.sh

url=${1:-${SCRIP_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}}
case "$url" in
  postgres://*|postgresql://*) ;;
  *) echo "rounds: want a postgres:// URL, got $url" >&2; exit 2 ;;
esac
rounds=${ROUNDS:-3} duration=${DURATION:-10} short=${SHORT:-5} http_duration=${HTTP_DURATION:-8}
accounts=${ACCOUNTS:-10000} hot=${HOT:-10} clients=${CLIENTS:-1024} http_clients=${HTTP_CLIENTS:-64}
for n in "$rounds" "$duration" "$short" "$http_duration" "$accounts" "$hot" "$clients" "$http_clients"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "rounds: ROUNDS, DURATION, SHORT, HTTP_DURATION, ACCOUNTS, HOT, CLIENTS and HTTP_CLIENTS must be positive integers" >&2; exit 2; }
done
(( rounds <= 100 )) || { echo "rounds: ROUNDS ($rounds) must be at most 100" >&2; exit 2; }
(( hot <= accounts )) || { echo "rounds: HOT ($hot) must be at most ACCOUNTS ($accounts)" >&2; exit 2; }
command -v psql >/dev/null || { echo "rounds: psql not found (PostgreSQL's client programs)" >&2; exit 2; }
command -v curl >/dev/null || { echo "rounds: curl not found" >&2; exit 2; }
out=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/scrip-rounds-XXXXXX")}
mkdir -p "$out"
# The table reads every round it finds: an earlier run's must not be there.
if compgen -G "$out/*.json" >/dev/null; then
  echo "rounds: $out holds reports already; give OUT an empty directory" >&2; exit 2
fi

work=$(mktemp -d)
# A SQLite file in memory would flush for free.
if [ "$(stat -f -c %T "$work" 2>/dev/null)" = tmpfs ]; then
  echo "rounds: warning: $work is in memory (tmpfs), so the SQLite runs do not measure the disk; set TMPDIR to a directory on it" >&2
fi
libpq=$(libpq_url "$url")
serve_pid=""
http_db=""
cleanup() {
  if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
  if [ -n "$http_db" ]; then psql -X -q "$libpq" -c "DROP DATABASE IF EXISTS $http_db" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

scrip=${SCRIP:-}
if [ -z "$scrip" ]; then
  scrip="$work/scrip"
  go build -o "$scrip" ./cmd/scrip
fi
go build -o "$work/rounds" ./bench/rounds

checkpoint=1
checkpoint() {
  (( checkpoint )) || return 0
  if ! psql -X -q "$libpq" -c CHECKPOINT >/dev/null 2>&1; then
    echo "rounds: CHECKPOINT refused (the role needs superuser or pg_checkpoint); running without" >&2
    checkpoint=0
  fi
}

# bench NAME ROUND ARGS...: one run of scrip bench, its reports in OUT and
# its rate on the terminal.
bench() {
  local name=$1 round=$2; shift 2
  printf '  %-15s ' "$name"
  if ! "$scrip" bench --quiet --json "$out/$name-$round.json" "$@" >"$out/$name-$round.txt" 2>&1; then
    echo "failed:"; cat "$out/$name-$round.txt" >&2; exit 1
  fi
  grep -m1 '^  operations' "$out/$name-$round.txt" | sed 's/^  operations *//'
}

# serve DATABASE_URL: starts scrip serve on a free port of the loopback and
# sets base to its URL and key to an admin key of its database.
serve() {
  : >"$work/serve.log"
  "$scrip" serve --addr 127.0.0.1:0 --database-url "$1" --rate-limit 0 --billing-tick 0 >"$work/serve.log" 2>&1 &
  serve_pid=$!
  base=""
  for _ in $(seq 1 100); do
    base=$(sed -n 's/^scrip is listening on \(http:[^ ]*\).*/\1/p' "$work/serve.log")
    [ -n "$base" ] && curl -sf "$base/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  if [ -z "$base" ] || ! curl -sf "$base/readyz" >/dev/null 2>&1; then
    echo "rounds: scrip serve did not become ready:" >&2; cat "$work/serve.log" >&2; exit 1
  fi
  if ! key=$("$scrip" keys create --scope admin --name rounds --database-url "$1" 2>"$work/keys.log"); then
    echo "rounds: could not create an API key:" >&2; cat "$work/keys.log" >&2; exit 1
  fi
}

stop_serve() {
  kill -TERM "$serve_pid" 2>/dev/null || echo "rounds: scrip serve had stopped before the end of the run:" >&2
  wait "$serve_pid" || true
  serve_pid=""
}

engine=(--accounts "$accounts" --concurrency "$clients" --batch-max "$clients" --duration "${duration}s")
one=(--accounts "$accounts" --concurrency 1 --duration "${short}s")
http=(--accounts "$accounts" --concurrency "$http_clients" --duration "${http_duration}s")
# The HTTP run's database is on the same server: the URL with its name.
base_url=${libpq%%\?*} query=${libpq#"${libpq%%\?*}"}
server_url=$base_url
[[ "${base_url#*://}" == */* ]] && server_url=${base_url%/*}
echo "reports in $out"
for round in $(seq 1 "$rounds"); do
  echo "round $round of $rounds"
  checkpoint; bench pg-uniform "$round" --database-url "$url" "${engine[@]}" --baseline
  checkpoint; bench pg-pairs "$round" --database-url "$url" "${engine[@]}" --workload hold-capture
  checkpoint; bench pg-hot "$round" --database-url "$url" "${engine[@]}" --hot "$hot" --baseline
  bench sqlite-uniform "$round" --database-url "$work/engine.db" "${engine[@]}" --baseline
  rm -f "$work"/engine.db*
  bench sqlite-one "$round" --database-url "$work/engine.db" "${one[@]}"
  rm -f "$work"/engine.db*
  checkpoint; bench pg-one "$round" --database-url "$url" "${one[@]}"

  serve "$work/http.db"
  bench http-sqlite "$round" --http "$base" --api-key "$key" "${http[@]}"
  stop_serve
  rm -f "$work"/http.db*

  http_db="scrip_rounds_$$_$round"
  psql -X -q -v ON_ERROR_STOP=1 "$libpq" -c "CREATE DATABASE $http_db" >/dev/null
  db_url="$server_url/$http_db$query"
  serve "$db_url"
  checkpoint; bench http-pg "$round" --http "$base" --api-key "$key" --database-url "$db_url" "${http[@]}"
  stop_serve
  psql -X -q "$libpq" -c "DROP DATABASE $http_db" >/dev/null
  http_db=""
done

echo
"$work/rounds" "$out" \
  "pg-uniform=engine, PostgreSQL, charges, uniform" \
  "pg-pairs=engine, PostgreSQL, hold+capture pairs, uniform" \
  "pg-hot=engine, PostgreSQL, charges, $hot hot accounts" \
  "sqlite-uniform=engine, SQLite file (synchronous), charges, uniform" \
  "sqlite-one=engine, SQLite, charges, 1 client" \
  "pg-one=engine, PostgreSQL, charges, 1 client" \
  "http-sqlite=HTTP end to end, SQLite, charges, $http_clients clients" \
  "http-pg=HTTP end to end, PostgreSQL, charges, $http_clients clients"
