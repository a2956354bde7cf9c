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

start() { # LOG: a fresh server; sets port and spid
	AIRLOCK_DATA_DIR="$tmp/data-$RANDOM" AIRLOCK_API_KEY=benchkey "$BIN" server \
		--listen 127.0.0.1:0 2>"$1" >/dev/null &
	spid=$!
	port=
	for _ in $(seq 200); do
		port=$(sed -n 's/.*listening .*port=\([0-9]*\).*/\1/p' "$1" | head -1)
		[ -n "$port" ] && return 0
		sleep 0.05
	done
	return 1
}
api() { curl -s -X "$1" "http://127.0.0.1:$port$2" -H 'x-api-key: benchkey' -H 'content-type: application/json' ${3:+-d "$3"}; }
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

start "$tmp/a.log" || { echo "server did not start"; exit 1; }
term_ms
base=$ms
start "$tmp/b.log" || { echo "server did not start"; exit 1; }
env_id=$(api POST /v1/environments '{"name":"b","config":{"type":"self_hosted"}}' | sed -n 's/.*"id":"\(env_[^"]*\)".*/\1/p')
agent_id=$(api POST /v1/agents '{"name":"b","model":"claude-bench"}' | sed -n 's/.*"id":"\(agent_[^"]*\)".*/\1/p')
sid=$(api POST /v1/sessions "{\"agent\":\"$agent_id\",\"environment_id\":\"$env_id\"}" | sed -n 's/.*"id":"\(sesn_[^"]*\)".*/\1/p')
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
