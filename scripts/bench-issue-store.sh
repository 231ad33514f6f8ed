#!/usr/bin/env bash
# Issuance throughput of one server on SQLite or PostgreSQL, for
# docs/benchmarks.md (issue 5). Usage:
#   scripts/bench-issue-store.sh ./sigil sqlite|pg [COUNT] [CONCURRENCY]
# Each run gets a fresh data directory (and, for pg, a fresh database on
# postgres://postgres@127.0.0.1:5432), a warm-up of 500 certificates, then the
# measured run; it prints `sigil bench issue -o json`. Interleave sqlite and pg
# runs: on a shared machine only back-to-back pairs compare fairly.
set -euo pipefail
BIN=$1 KIND=$2 N=${3:-3000} C=${4:-64}
PG=postgres://postgres@127.0.0.1:5432
D=$(mktemp -d) DB=sigil_bench_$$
DBFLAG=()
if [ "$KIND" = pg ]; then
  psql -q "$PG/postgres" -c "CREATE DATABASE $DB"
  DBFLAG=(--db "$PG/$DB?sslmode=disable")
fi
"$BIN" server --dev --data "$D" "${DBFLAG[@]}" --listen 127.0.0.1:19443 --http-listen 127.0.0.1:19080 >"$D/log" 2>&1 &
P=$!
cleanup() {
  kill $P 2>/dev/null; wait $P 2>/dev/null || true
  [ "$KIND" = pg ] && psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB" || true
  rm -rf "$D"
}
trap cleanup EXIT
for _ in $(seq 100); do [ -f "$D/admin.token" ] && curl -sk https://127.0.0.1:19443/readyz >/dev/null && break; sleep 0.2; done
export SIGIL_SERVER=https://127.0.0.1:19443 SIGIL_TOKEN=$(cat "$D/admin.token") SIGIL_ROOT=$D/root.pem
"$BIN" profile apply -f "$(dirname "$0")/../examples/profiles.yaml" >/dev/null
"$BIN" bench issue --count 500 --concurrency "$C" >/dev/null
"$BIN" bench issue --count "$N" --concurrency "$C" -o json
