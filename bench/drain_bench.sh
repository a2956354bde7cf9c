#!/usr/bin/env bash
# Drain cost (docs/server/drain.md): time from SIGTERM to exit for a server holding N
# idle event streams (sse_idle) against the same server holding none, measured in one
# run; the drain ends every stream itself, so this is the price of a rolling update on a
# busy replica. A target, not a test. usage: bench/drain_bench.sh AIRLOCK_BIN SSE_IDLE [N]
set -u
BIN=$1
SSE=$2
N=${3:-10000}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT

. "$(dirname "$0")/lib.sh"
# term_ms: SIGTERM to exit of the server spid, in ms, into ms (not in a $(...) subshell:
# only this shell can wait for its child)
term_ms() {
	local t0 t1
	t0=$(date +%s%N)
	kill -TERM "$spid"
	wait "$spid"
	t1=$(date +%s%N)
	ms=$(((t1 - t0) / 1000000))
}

start_server "$tmp/a.log" || { echo "server did not start"; exit 1; }
term_ms
base=$ms
start_server "$tmp/b.log" || { echo "server did not start"; exit 1; }
new_session
"$SSE" 127.0.0.1 "$port" "$sid" benchkey "$N" 600 >"$tmp/sse.out" 2>"$tmp/sse.err" &
for _ in $(seq 600); do grep -q open_streams "$tmp/sse.out" && break; sleep 0.1; done
streams=$(sed -n 's/open_streams=//p' "$tmp/sse.out")
[ -n "$streams" ] || { echo "streams did not open:"; cat "$tmp/sse.err"; exit 1; }
term_ms
busy=$ms
grep -q 'drained: exiting' "$tmp/b.log" || { echo "the server did not drain:"; tail -3 "$tmp/b.log"; exit 1; }
awk -v b="$base" -v s="$busy" -v n="$streams" 'BEGIN {
	printf "TERM to exit: idle server %d ms, with %d open streams %d ms (%.1fx; %.1f us per stream)\n",
		b, n, s, (b > 0 ? s / b : 0), (n > 0 ? (s - b) * 1000 / n : 0) }'
