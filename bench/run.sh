#!/usr/bin/env bash
# All benchmarks, one command: builds a release configuration, runs each benchmark on
# loopback and prints measurements with ratios against a baseline measured in the same
# run (or against the target where the issue gives an absolute one). Targets, not tests:
# nothing here fails the build.
set -u
cd "$(dirname "$0")/.."
top=$(pwd)
tools/deps.sh >&2 || exit 1
[ -d build-bench ] || meson setup build-bench --buildtype=release >/dev/null
ninja -C build-bench >/dev/null || { echo "build failed" >&2; exit 1; }
BIN=$top/build-bench/src/airlock
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT

. bench/lib.sh

echo "== tool policy: one decision with 1,000 rules vs 1 rule; filtering a 500-tool MCP list (targets: p50 <= 20 us, <= 2 ms)"
"$top/build-bench/bench/policy_bench"

echo
echo "== audit log: event append with and without its audit record (target: <= 1.10x)"
mkdir -p "$top/build-bench/audit-bench-data"
"$top/build-bench/bench/audit_bench" "$top/build-bench/audit-bench-data" 400
rm -rf "$top/build-bench/audit-bench-data"
echo
echo "== identity: a user token seen before (cache) vs an uncached ES256 verify (target <= 0.1x)"
"$top/build-bench/bench/identity_bench" 5000
echo "== identity: GET /v1/agents with a user's JWT vs with an API key (target <= 1.2x)"
AIRLOCK_BIN=$BIN tests/interop/run-node.sh bench/identity_bench.mjs 4000 2>&1 | grep -v '^oidc-provider'

echo
echo "== work queue: poll / ack / heartbeat / stop on loopback (baseline: authenticated 404)"
start_server "$tmp/server1.log" || { echo "server did not start"; exit 1; }
"$top/build-bench/bench/queue_bench" "http://127.0.0.1:$port" benchkey 300


echo
echo "== work queue on PostgreSQL vs SQLite: poll / ack / heartbeat / stop, p50 ratios in one run"
bench/queue_backends.sh "$BIN" "$top/build-bench/bench/queue_bench" 300

echo
echo "== several replicas on one PostgreSQL: appends/s on 3 replicas vs 1; SSE send on A -> stream on B"
echo "   vs the same replica, p50/p99 (target: cross-replica p99 <= 50 ms)"
bench/replicas_bench.sh "$BIN" 24 5 500

echo
echo "== idle SSE streams: 10,000 held on one server (target: <= 64 MiB RSS)"
kill "$spid"
start_server "$tmp/server2.log" || { echo "server did not start"; exit 1; }
new_session
rss_before=$(awk '/VmRSS/{print $2}' /proc/$spid/status)
"$top/build-bench/bench/sse_idle" 127.0.0.1 "$port" "$sid" benchkey 10000 8 >"$tmp/sse.out" &
sse_pid=$!
for _ in $(seq 300); do grep -q open_streams "$tmp/sse.out" && break; sleep 0.1; done
sleep 1
rss=$(awk '/VmRSS/{print $2}' /proc/$spid/status)
cat "$tmp/sse.out"
awk -v b="$rss_before" -v r="$rss" 'BEGIN {
	printf "server RSS idle=%.1f MiB with streams=%.1f MiB  ratio to 64 MiB target=%.2fx  per stream=%.2f KiB\n",
		b/1024, r/1024, (r/1024)/64, (r-b)/10000 }'
wait "$sse_pid"
kill "$spid"
wait "$spid" 2>/dev/null

echo
echo "== drain: SIGTERM to exit with 10,000 open event streams vs none (docs/server/drain.md)"
bench/drain_bench.sh "$BIN" "$top/build-bench/bench/sse_idle" 10000

echo
echo "== MCP tunnel: direct vs through ingress + edge + gateway; RSS per idle stream"
bench/tunnel_bench.sh "$BIN"

if [ -x bench/sandbox_bench.sh ]; then
	echo
	echo "== sandbox"
	bench/sandbox_bench.sh "$top/build-bench"
fi

echo
echo "== egress proxy (issue 14): decision p99, sandbox create with the network exit, CONNECT"
echo "   throughput, RSS over 10,000 requests (targets: 1 ms, 1.2x, 0.8x, 8 MiB); HTTPS"
echo "   through a terminated tunnel vs an untouched one (no target: the cost of termination)"
"$top/build-bench/bench/egress_bench" 40
echo "   buffers that held a secret (buf_init_secret: wiped on growth, consume and free)"
echo "   vs plain ones (no target: the cost of wiping)"
"$top/build-bench/bench/buf_wipe_bench" 41
echo

echo "== web console: first load, a 10,000-event session page, live event to pixels (targets: 300 ms, 1 s, p95 100 ms)"
AIRLOCK_BIN=$BIN tests/interop/run-node.sh bench/console_bench.mjs 10000

echo
echo "== files and skills: 100 MiB upload/download vs cp, server RSS; 5 MiB skill download + unpack vs tar -x (target 1.5x)"
AIRLOCK_BIN=$BIN tests/interop/run-node.sh bench/files_bench.mjs 100
skdir=$(mktemp -d)
mkdir -p "$skdir/bench/data"
printf -- '---\nname: bench\ndescription: d\n---\n' >"$skdir/bench/SKILL.md"
for i in $(seq 0 49); do head -c 102400 /dev/urandom >"$skdir/bench/data/f$i.bin"; done
tar --format=ustar -C "$skdir" -cf "$skdir/bundle.tar" bench
"$top/build-bench/bench/skill_unpack_bench" "$skdir/bundle.tar" 21
rm -rf "$skdir"

echo
echo "== memory stores: 1,000 memories copied to disk by airlock worker vs the SDK's SessionMemoryStores (target 2x)"
AIRLOCK_BIN=$BIN tests/interop/run-node.sh bench/memsync_bench.mjs 1000

echo
echo "== environment worker vs the SDK's EnvironmentWorker (idle RSS, tool_use -> tool_result)"
AIRLOCK_BIN=$BIN tests/interop/run-node.sh bench/worker_bench.mjs 40

if [ "${BENCH_SOAK:-1}" != 0 ]; then
	echo
	echo "== soak: 1,000 concurrent sessions for 5 minutes, several workers (BENCH_SOAK=0 skips it)"
	AIRLOCK_BIN=$BIN tests/interop/run-node.sh bench/soak.mjs
fi

if [ "${BENCH_SOAK:-1}" != 0 ]; then
	echo
	echo "== soak on three replicas (PostgreSQL, a round-robin in front, one SIGKILLed at 60 s)"
	AIRLOCK_BIN=$BIN bench/soak_replicas.sh
fi
