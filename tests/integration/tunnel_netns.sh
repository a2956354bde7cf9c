#!/usr/bin/env bash
# Outbound-only: the gateway and the upstream MCP server run in a network namespace
# whose firewall drops every inbound connection (only replies to what the namespace
# opened get in). The tunnel still works end to end, the host cannot connect into the
# namespace, and nothing in it listens outside loopback. Needs root, ip, nft, veth and a
# kernel whose nf_tables loads the ruleset (probed first); skipped (77) with the reason
# otherwise (tests/README.md).
. "$(dirname "$0")/tunnel_lib.sh"

if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! command -v nft >/dev/null; then
	echo "skip: needs root, ip and nft"
	exit 77
fi
NS=algw$$
VH=algw$$h
VN=algw$$n
X=$(($$ % 250 + 1))
HOST_IP=10.251.$X.1
NS_IP=10.251.$X.2
ip netns add "$NS" || { echo "skip: cannot create a network namespace"; exit 77; }
netns_cleanup() {
	cleanup
	ip link del "$VH" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
}
trap netns_cleanup EXIT
ip link add "$VH" type veth peer name "$VN" 2>/dev/null ||
	{ echo "skip: cannot create a veth pair (no veth in this kernel?)"; exit 77; }
ip link set "$VN" netns "$NS"
ip addr add "$HOST_IP/30" dev "$VH"
ip link set "$VH" up
ip netns exec "$NS" ip addr add "$NS_IP/30" dev "$VN"
ip netns exec "$NS" ip link set "$VN" up
ip netns exec "$NS" ip link set lo up
# The ruleset loads only where the kernel has nf_tables and conntrack: the probe.
if ! nft_err=$(ip netns exec "$NS" nft -f - 2>&1 <<NFT
table inet airlock_outbound_only {
	chain input {
		type filter hook input priority 0; policy drop;
		iif lo accept
		ct state established,related accept
	}
}
NFT
); then
	echo "skip: nft cannot load the ruleset here (nf_tables or conntrack missing): $nft_err" |
		head -1
	exit 77
fi
UP_WRAP="ip netns exec $NS"
GW_WRAP="ip netns exec $NS"

mk_certs
start_upstream
# Server on the host; its edge listens on the veth address the namespace can reach.
log="$T_TMP/server.log"
env AIRLOCK_DATA_DIR="$T_TMP/data" AIRLOCK_API_KEY=testkey AIRLOCK_TUNNEL_DOMAIN=tunnel.test \
	"$AIRLOCK_BIN" server --listen 127.0.0.1:0 --tunnel-listen "$HOST_IP:0" \
	--tunnel-tls-cert "$T_TMP/edge.pem" --tunnel-tls-key "$T_TMP/edge.key" 2>"$log" &
T_PIDS+=($!)
wait_for 20 grep -q "server: listening" "$log"
PORT=$(sed -n 's/.*server: listening .*port=\([0-9]*\).*/\1/p' "$log" | head -1)
EDGE_PORT=$(sed -n 's/.*tunnel edge ready.* port=\([0-9]*\).*/\1/p' "$log" | head -1)
BASE=http://127.0.0.1:$PORT
SERVER_LOG=$log
create_tunnel
gw_config "$T_TMP/gw.yaml" "$T_TMP/token" "metrics_listen: 127.0.0.1:0"
sed -i "s/^server: .*/server: $HOST_IP:$EDGE_PORT/" "$T_TMP/gw.yaml"
start_gateway "$T_TMP/gw.yaml"
wait_for 30 bash -c "[ \$(grep -c 'Registered tunnel connection' '$GW_LOG') -ge 4 ]"
check "gateway inside the namespace registered 4 connections" eq "$(conns_of "$GW_LOG")" 4

ing POST /echo/mcp -H 'content-type: application/json' -d '{"jsonrpc":"2.0","id":7,"method":"ping"}'
check "request reaches the upstream behind the outbound-only firewall" \
	eq "$BODY" '{"jsonrpc":"2.0","id":7,"method":"ping"}'

# Nothing can be reached from outside, even a socket listening on every address: a
# probe listener inside the namespace is dropped by the firewall.
ip netns exec "$NS" python3 -c 'import socket,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 18999)); s.listen(); time.sleep(60)' &
PROBE=$!
T_PIDS+=("$PROBE")
wait_for 10 bash -c "ip netns exec $NS ss -ltnH | grep -q ':18999 '"
check "probe listener is up inside the namespace" bash -c "ip netns exec $NS ss -ltnH | grep -q ':18999 '"
STATUS=$(curl -s -o /dev/null -w '%{http_code}' --connect-timeout 2 "http://$NS_IP:18999/" || true)
check "host cannot connect into the namespace" eq "$STATUS" 000
kill "$PROBE"
wait "$PROBE" 2>/dev/null
LISTEN=$(ip netns exec "$NS" ss -ltnH | awk '{print $4}')
BODY=$LISTEN
check "nothing in the namespace listens outside loopback" \
	bash -c "! echo '$LISTEN' | grep -vE '^(127\\.0\\.0\\.1|\\[::1\\]):[0-9]+\$' | grep -q ."
check "namespace firewall drops inbound by default" \
	bash -c "ip netns exec $NS nft list ruleset | grep -q 'policy drop'"
finish
