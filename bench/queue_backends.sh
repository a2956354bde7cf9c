#!/usr/bin/env bash
# Work queue on the two storage engines in one run (issue 13, "Benchmarks"): the same
# queue_bench (poll / ack / three heartbeats / forced stop per item, on one keep-alive
# connection) against a server on SQLite and a server on a real PostgreSQL 15 started
# here (initdb in a temporary directory, loopback only, fsync on as in production), then
# each operation's p50 on PostgreSQL over its p50 on SQLite. Both servers' baselines (an
# authenticated 404) are printed too, so HTTP's share is visible. A target, not a test.
# usage: bench/queue_backends.sh AIRLOCK_BIN QUEUE_BENCH [ITERATIONS]
set -u
BIN=$1
QB=$2
N=${3:-300}
tmp=$(mktemp -d)
. "$(dirname "$0")/lib.sh"
trap pg_cleanup EXIT
pg_usable || exit 0
pg_start || exit 1

start_server "$tmp/sqlite.log" || exit 1
"$QB" "http://127.0.0.1:$port" benchkey "$N" >"$tmp/sqlite.out" || exit 1
start_server "$tmp/pg-server.log" AIRLOCK_DATABASE_URL="$dburl" || exit 1
grep -q 'engine="postgresql"' <(curl -s "http://127.0.0.1:$port/metrics" -H 'x-api-key: benchkey') || {
	echo "the second server is not on PostgreSQL (airlock_database_info)" >&2
	exit 1
}
"$QB" "http://127.0.0.1:$port" benchkey "$N" >"$tmp/pg.out" || exit 1

echo "SQLite:"
cat "$tmp/sqlite.out"
echo "PostgreSQL 15 (loopback, same machine):"
cat "$tmp/pg.out"
# each operation's p50 on PostgreSQL over the same on SQLite
awk '
	function p50(   i, v) {
		for (i = 1; i <= NF; i++) if ($i ~ /^p50=/) { v = $i; sub(/p50=/, "", v); return v == "" ? $(i + 1) : v }
	}
	FNR == NR { s[$1] = p50(); next }
	s[$1] > 0 { printf "%-10s p50 PostgreSQL/SQLite = %.2fx\n", $1, p50() / s[$1] }
' "$tmp/sqlite.out" "$tmp/pg.out"
