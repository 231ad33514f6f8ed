#!/usr/bin/env bash
# Interleaved A/B of issuance CPU, for docs/benchmarks.md (issue 2): two
# servers run side by side on SQLite (fresh --dev data directories), and each
# round runs the same `sigil bench issue` against A, then B. On a shared
# machine only back-to-back pairs compare fairly. Usage:
#   scripts/bench-issue-ab.sh ./sigil-before ./sigil-after [ROUNDS] [COUNT] [CONCURRENCY]
# Prints per round: build, server CPU µs per certificate, certificates per
# server-core-second, certificates/s, p50 ms, errors.
set -euo pipefail
A=$1 B=$2 R=${3:-3} N=${4:-5000} C=${5:-64}
DA=$(mktemp -d) DB=$(mktemp -d)
"$A" server --dev --data "$DA" --listen 127.0.0.1:19643 --http-listen 127.0.0.1:19680 >"$DA/log" 2>&1 &
PA=$!
"$B" server --dev --data "$DB" --listen 127.0.0.1:19743 --http-listen 127.0.0.1:19780 >"$DB/log" 2>&1 &
PB=$!
trap 'kill $PA $PB 2>/dev/null; wait 2>/dev/null; rm -rf "$DA" "$DB"' EXIT
for _ in $(seq 100); do [ -f "$DA/admin.token" ] && [ -f "$DB/admin.token" ] && curl -sk https://127.0.0.1:19643/readyz >/dev/null && curl -sk https://127.0.0.1:19743/readyz >/dev/null && break; sleep 0.2; done
run() { # bin dir port args...
  SIGIL_SERVER=https://127.0.0.1:$3 SIGIL_TOKEN=$(cat "$2/admin.token") SIGIL_ROOT=$2/root.pem "$1" "${@:4}"
}
for s in "$A $DA 19643" "$B $DB 19743"; do
  set -- $s
  run "$1" "$2" "$3" profile apply -f "$(dirname "$0")/../examples/profiles.yaml" >/dev/null
  run "$1" "$2" "$3" bench issue --count 500 --concurrency "$C" >/dev/null
done
for _ in $(seq "$R"); do
  for s in "A $A $DA 19643" "B $B $DB 19743"; do
    set -- $s
    run "$2" "$3" "$4" bench issue --count "$N" --concurrency "$C" -o json |
      python3 -c 'import json,sys; d=json.load(sys.stdin); print(sys.argv[1], d["server_cpu_us_per_cert"], round(d["certificates_per_core_second"]), round(d["certificates_per_second"]), round(d["p50_ms"],2), d["errors"])' "$1"
  done
done
