#!/usr/bin/env bash
# MCP tunnel benchmark, one command: throughput and p50/p99 of small POSTs direct vs
# through server ingress + edge + gateway (ratios measured in the same run), then RSS per
# idle SSE stream on gateway and server. usage: bench/tunnel_bench.sh [AIRLOCK_BIN]
set -u
cd "$(dirname "$0")/.."
top=$(pwd)
BIN=${1:-$top/build-bench/src/airlock}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
ulimit -n 65536 2>/dev/null || true
cd "$tmp"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -keyout ca.key \
	-out ca.pem -subj "/CN=bench CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout edge.key -out edge.csr \
	-subj "/CN=localhost" 2>/dev/null
echo "subjectAltName=DNS:localhost" >ext.cnf
openssl x509 -req -in edge.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out edge.pem -days 1 \
	-extfile ext.cnf 2>/dev/null
AIRLOCK_DATA_DIR=$tmp/data AIRLOCK_API_KEY=benchkey "$BIN" server --listen 127.0.0.1:0 \
	--tunnel-listen 127.0.0.1:0 --tunnel-tls-cert edge.pem --tunnel-tls-key edge.key \
	2>server.log &
spid=$!
port=
edge=
for _ in $(seq 200); do
	port=$(sed -n 's/.*server: listening .*port=\([0-9]*\).*/\1/p' server.log | head -1)
	edge=$(sed -n 's/.*tunnel edge ready.* port=\([0-9]*\).*/\1/p' server.log | head -1)
	[ -n "$port" ] && [ -n "$edge" ] && break
	sleep 0.05
done
[ -n "$port" ] && [ -n "$edge" ] || { echo "server did not start"; cat server.log; exit 1; }
tjson=$(curl -s -X POST "http://127.0.0.1:$port/v1/tunnels" -H 'x-api-key: benchkey' -d '{}')
tid=$(echo "$tjson" | sed -n 's/.*"id":"\(tnl_[^"]*\)".*/\1/p')
dom=$(echo "$tjson" | sed -n 's/.*"domain":"\([^"]*\)".*/\1/p')
curl -s -X POST "http://127.0.0.1:$port/v1/tunnels/$tid/reveal_token" -H 'x-api-key: benchkey' |
	sed -n 's/.*"tunnel_token":"\([^"]*\)".*/\1/p' >token
: >go
UP_PORT_FILE=$tmp/up.port GO_FILE=$tmp/go BASE=http://127.0.0.1:$port TID=$tid KEY=benchkey \
	SRV_PID=$spid GW_PID_FILE=$tmp/gw.pid "$top/tests/interop/run-node.sh" \
	"$top/bench/tunnel_bench.mjs" &
npid=$!
for _ in $(seq 100); do [ -s up.port ] && break; sleep 0.05; done
cat >gw.yaml <<YAML
server: 127.0.0.1:$edge
server_name: localhost
server_ca_file: $tmp/ca.pem
token_file: $tmp/token
tunnel_domain: $dom
log_level: warn
routes:
  bench: http://127.0.0.1:$(cat up.port)
upstream:
  allowed_ips: [127.0.0.0/8]
YAML
"$BIN" gateway --config gw.yaml 2>gw.log &
gpid=$!
sleep 2
echo "$gpid" >gw.pid
echo go >go
wait "$npid"
