#!/usr/bin/env bash
# MCP tunnel end to end on loopback: a real TLS edge (throwaway CA), `airlock gateway`
# with 4 connections, and an upstream HTTP server. Covers the /v1/tunnels resources,
# both ingress forms, header handling, SSE relayed without buffering, and bad input:
# unknown host, upstream on a public address, oversized upstream headers, a client
# reset that must cancel the upstream request, a wrong CA, and archive.
. "$(dirname "$0")/tunnel_lib.sh"

mk_certs
start_upstream
start_tunnel_server

# --- resources
create_tunnel
check "tunnel id has tnl_ prefix" eq "${TID:0:4}" "tnl_"
check "domain is a label under the tunnel domain" eq "${DOMAIN#*.}" "tunnel.test"
req testkey GET "/v1/tunnels/$TID"
check "get tunnel: type" eq "$(jget 'j["type"]')" "tunnel"
check "get tunnel: archived_at null" eq "$(jget 'j["archived_at"]')" "None"
req testkey GET "/v1/tunnels?limit=10"
check "list has the tunnel" eq "$(jget 'j["data"][0]["id"]')" "$TID"
check "list next_page null" eq "$(jget 'j["next_page"]')" "None"
req testkey POST "/v1/tunnels/$TID/reveal_token"
check "reveal is stable" eq "$(jget 'j["tunnel_token"]')" "$(cat "$T_TMP/token")"
check "token has airlock prefix" eq "$(jget 'j["tunnel_token"][:8]')" "alk_tnl_"
req testkey GET "/v1/tunnels/$TID/reveal_token"
check "reveal by GET is refused (405)" eq "$STATUS" 405
req testkey POST /v1/tunnels '{"display_name":""}'
check "empty display_name → 400" eq "$STATUS" 400
req testkey POST /v1/tunnels '{"bogus":1}'
check "unknown field → 400" eq "$STATUS" 400
req testkey GET /v1/tunnels/tnl_doesnotexist
check "unknown tunnel → 404" eq "$STATUS" 404
req wrongkey GET /v1/tunnels
check "wrong API key → 401" eq "$STATUS" 401

# --- no gateway yet
ing POST /echo/mcp -d '{}'
check "no gateway connected → 503" eq "$STATUS" 503

# --- gateway
gw_config "$T_TMP/gw.yaml" "$T_TMP/token" "metrics_listen: 127.0.0.1:0"
sed -i 's/^metrics_listen: .*/metrics_listen: 127.0.0.1:0/' "$T_TMP/gw.yaml"
start_gateway "$T_TMP/gw.yaml"
MAIN_GW_LOG=$GW_LOG
wait_for 20 grep -q "metrics listening" "$GW_LOG"
MPORT=$(sed -n 's/.*metrics listening.* port=\([0-9]*\).*/\1/p' "$GW_LOG" | head -1)
wait_for 20 has_ready "$MPORT" 4
check "gateway registered 4 connections" eq "$(ready_conns "$MPORT")" 4
check "server logged 4 registrations" eq "$(grep -c 'registered tunnel connection' "$SERVER_LOG")" 4
check "server metrics: 4 connections registered" eq "$(server_metric airlock_tunnel_connections)" 4
check "server metrics refuse non-GET paths" eq \
	"$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SMETRICS_PORT/other")" 404

ing POST /echo/mcp -H 'content-type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"ping"}'
check "POST through path-form ingress: upstream status" eq "$STATUS" 201
check "POST body echoed" eq "$BODY" '{"jsonrpc":"2.0","id":1,"method":"ping"}'
ing GET '/echo/mcp?x=1&y=2' -H 'authorization: Bearer upstream-oauth' -H 'x-custom: kept'
check "GET: path and query forwarded" eq "$(jget 'j["path"]')" "/mcp?x=1&y=2"
check "GET: upstream Authorization forwarded" eq "$(jget 'j["authorization"]')" "Bearer upstream-oauth"
check "GET: airlock x-api-key stripped" eq "$(jget 'j["x_api_key"]')" "None"
check "GET: end-to-end header forwarded" eq "$(jget 'j["custom"]')" "kept"
STATUS=$(curl -s -o "$T_TMP/iresp" -w '%{http_code}' "$BASE/v1/tunnels/$TID/routes/echo/mcp" \
	-H 'authorization: Bearer testkey')
BODY=$(cat "$T_TMP/iresp")
check "Bearer-authenticated ingress: credential not forwarded" eq "$(jget 'j["authorization"]')" "None"
ing DELETE /echo/mcp
check "DELETE forwarded (204)" eq "$STATUS" 204
hing echo /any/path?q=1
check "host-form ingress reaches any path" eq "$(jget 'j["path"]')" "/any/path?q=1"
# Many requests spread over the connections.
for i in $(seq 40); do
	curl -s -o /dev/null "$BASE/v1/tunnels/$TID/routes/echo/mcp" -H 'x-api-key: testkey' &
done
wait_for 20 bash -c "[ \$(curl -s http://127.0.0.1:$MPORT/metrics | sed -n 's/^airlock_gateway_requests_total //p') -ge 45 ]"
M=$(curl -s "http://127.0.0.1:$MPORT/metrics")
check "server metrics count streams" bash -c "[ '$(server_metric airlock_tunnel_streams_total)' -ge 40 ]"
check "server metrics count ingress errors (503 with no gateway)" \
	bash -c "[ '$(server_metric airlock_tunnel_ingress_errors_total)' -ge 1 ]"
check "metrics count requests" bash -c "[ $(echo "$M" | sed -n 's/^airlock_gateway_requests_total //p') -ge 45 ]"

# --- SSE is relayed event by event: "tick 1" is only sent after the test has seen
# "tick 0", so a buffering hop would hang here until the deadline.
rm -f "$T_TMP/release"
(curl -s -N "http://127.0.0.1:$INGRESS_PORT/sse" -H "Host: echo.$DOMAIN" \
	-H 'x-api-key: testkey' >"$T_TMP/sse.out") &
SSE_PID=$!
wait_for 20 grep -q "tick 0" "$T_TMP/sse.out"
check "SSE first event arrives before the stream ends" grep -q "tick 0" "$T_TMP/sse.out"
check "SSE second event not yet sent" bash -c "! grep -q 'tick 1' '$T_TMP/sse.out'"
touch "$T_TMP/release"
wait "$SSE_PID"
check "SSE second event after release" grep -q "tick 1" "$T_TMP/sse.out"

# --- bad input
hing nope /mcp
check "unknown route → 404" eq "$STATUS" 404
check "unknown route message" eq "$BODY" "no route \"nope\" in this gateway's routes"
STATUS=$(curl -s -o "$T_TMP/iresp" -w '%{http_code}' "http://127.0.0.1:$INGRESS_PORT/mcp" \
	-H "Host: echo.nosuchlabel.tunnel.test" -H 'x-api-key: testkey')
check "unknown tunnel host → 404" eq "$STATUS" 404
hing public /mcp
check "public upstream refused → 403" eq "$STATUS" 403
check "SSRF message as the reference" eq "$BODY" "IP validation failed: 1.1.1.1 is not a private address"
hing echo /bighdr
check "oversized upstream headers → 502" eq "$STATUS" 502
STATUS=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v1/tunnels/$TID/routes/echo/mcp" \
	-H 'x-api-key: testkey' -H "x-big: $(head -c 70000 /dev/zero | tr '\0' a)")
check "oversized request headers → 431" eq "$STATUS" 431
STATUS=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$INGRESS_PORT/mcp" \
	-H "Host: echo.$DOMAIN")
check "host-form ingress without API key → 401" eq "$STATUS" 401
ing POST /bad_route!/mcp -d '{}'
check "invalid route name → 400" eq "$STATUS" 400

# Client reset mid-stream: the upstream must see its client go away.
rm -f "$T_TMP/cancelled"
(curl -s -N "http://127.0.0.1:$INGRESS_PORT/hold" -H "Host: echo.$DOMAIN" \
	-H 'x-api-key: testkey' >"$T_TMP/hold.out") &
HOLD_PID=$!
wait_for 20 grep -q "data: x" "$T_TMP/hold.out"
kill "$HOLD_PID"
wait_for 30 test -f "$T_TMP/cancelled"
check "client reset cancels the upstream request" test -f "$T_TMP/cancelled"
ing GET /echo/mcp
check "tunnel still serves after a reset" eq "$STATUS" 200

# A gateway that trusts another CA refuses the edge.
gw_config "$T_TMP/gw-ca.yaml" "$T_TMP/token"
sed -i "s#^server_ca_file: .*#server_ca_file: $T_TMP/other.pem#" "$T_TMP/gw-ca.yaml"
start_gateway "$T_TMP/gw-ca.yaml"
BADCA_LOG=$GW_LOG
wait_for 20 grep -q "certificate verify failed" "$BADCA_LOG"
check "gateway refuses an edge certificate from an untrusted CA" grep -q "certificate verify failed" "$BADCA_LOG"
kill "$GW_PID"

# A wrong SPKI pin is refused too.
gw_config "$T_TMP/gw-pin.yaml" "$T_TMP/token" "server_pin: sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
start_gateway "$T_TMP/gw-pin.yaml"
wait_for 20 grep -q "does not match server_pin" "$GW_LOG"
check "gateway refuses an edge key that does not match the pin" grep -q "does not match server_pin" "$GW_LOG"
kill "$GW_PID"

# A host name is checked after DNS: "localhost" resolves to loopback, which a second
# tunnel's gateway does not allow (its list has only 10.0.0.0/8).
T1=$TID D1=$DOMAIN
cp "$T_TMP/token" "$T_TMP/token1"
create_tunnel
TID2=$TID DOMAIN2=$DOMAIN
gw_config "$T_TMP/gw-dns.yaml" "$T_TMP/token" "connections: 1"
sed -i "s#^  allowed_ips: .*#  allowed_ips: [10.0.0.0/8]#; s#^  echo: .*#  lh: http://localhost:$UP_PORT#" "$T_TMP/gw-dns.yaml"
start_gateway "$T_TMP/gw-dns.yaml"
wait_for 20 grep -q "Registered tunnel connection" "$GW_LOG"
check "edge connection negotiates TLS 1.3 AES-128-GCM (cheapest per byte)" \
	grep -q "Registered tunnel connection.*TLS_AES_128_GCM_SHA256" "$GW_LOG"
hing lh /mcp
check "host name resolving to a disallowed address → 403" eq "$STATUS" 403
check "SSRF message names the resolved address" bash -c "case '$BODY' in 'IP validation failed: '*' is not a private address') exit 0;; esac; exit 1"
kill "$GW_PID"
TID=$T1 DOMAIN=$D1
cp "$T_TMP/token1" "$T_TMP/token"

# --- archive: connections cut, token dead, ingress 404
req testkey POST "/v1/tunnels/$TID/archive"
check "archive → archived_at set" bash -c "[ '$(jget 'j["archived_at"]')' != None ]"
req testkey POST "/v1/tunnels/$TID/archive"
check "archive is idempotent" eq "$STATUS" 200
ing GET /echo/mcp
check "archived tunnel ingress → 404" eq "$STATUS" 404
req testkey POST "/v1/tunnels/$TID/reveal_token"
check "archived tunnel reveal → 409" eq "$STATUS" 409
# The main gateway's connections were cut; its reconnects (1 s backoff) are refused.
wait_for 20 grep -q "status=401" "$MAIN_GW_LOG"
check "archived tunnel: the gateway's reconnect is refused (401)" grep -q "status=401" "$MAIN_GW_LOG"
req testkey GET "/v1/tunnels"
check "archived tunnel hidden from list" eq "$(jget '[t["id"] for t in j["data"]]')" "['$TID2']"
req testkey GET "/v1/tunnels?include_archived=true"
check "include_archived lists it" eq "$(jget '[t["id"] for t in j["data"]][1]')" "$TID"
finish
