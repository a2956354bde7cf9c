#!/usr/bin/env bash
# Several replicas on one PostgreSQL (issue 13, "Benchmarks"), in one run: a real
# PostgreSQL 15 started here (initdb in a temporary directory, loopback only, fsync on as
# in production; pg_start in bench/lib.sh), three airlock servers on its
# database, then bench/replicas_bench.mjs: events appended per second by concurrent
# clients on 1 replica vs spread over 3 (ratio), and SSE delivery latency from a send on
# replica A to a stream on replica B, p50/p99 against the same replica's stream on the
# same events (ratio, and the 50 ms p99 target). A target, not a test.
# usage: bench/replicas_bench.sh AIRLOCK_BIN [CLIENTS] [SECONDS] [EVENTS]
set -u
BIN=$(realpath "$1")
CLIENTS=${2:-24}
SECONDS_PER_ROUND=${3:-5}
EVENTS=${4:-500}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
. "$here/lib.sh"
trap pg_cleanup EXIT
pg_usable || exit 0
pg_start || exit 1

# The replicas' model: accepts and never answers, so a session's loop waits on its first
# model call (idle limit 300 s) and the appends measured are the API's alone.
node=$here/../tests/interop/run-node.sh
"$node" -e '
	const s = require("net").createServer((c) => c.on("data", () => {}));
	s.listen(0, "127.0.0.1", () => console.log(s.address().port));
' >"$tmp/model.port" &
for _ in $(seq 100); do [ -s "$tmp/model.port" ] && break; sleep 0.05; done
[ -s "$tmp/model.port" ] || { echo "the silent model did not start" >&2; exit 1; }
model="http://127.0.0.1:$(cat "$tmp/model.port")"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/master.key"
chmod 600 "$tmp/master.key"

urls=
for r in a b c; do
	start_server "$tmp/server-$r.log" AIRLOCK_DATABASE_URL="$dburl" AIRLOCK_MODEL_BASE_URL="$model" \
		AIRLOCK_MASTER_KEY_FILE="$tmp/master.key" || exit 1
	grep -q 'engine="postgresql"' <(curl -s "http://127.0.0.1:$port/metrics" -H 'x-api-key: benchkey') || {
		echo "replica $r is not on PostgreSQL (airlock_database_info)" >&2
		exit 1
	}
	urls=$urls${urls:+,}http://127.0.0.1:$port
done
echo "PostgreSQL 15 and 3 replicas on loopback, same machine ($(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
"$node" "$here/replicas_bench.mjs" "$urls" benchkey "$CLIENTS" "$SECONDS_PER_ROUND" "$EVENTS"
