#!/usr/bin/env bash
# Tunnel faults on loopback: a wrong token is refused at the handshake; token rotation
# keeps established connections and refuses the old token for new ones; the server is
# killed and restarted on the same ports and the gateway reconnects with traffic
# resuming; SIGHUP adds a route; SIGTERM drains an in-flight stream before exit.
. "$(dirname "$0")/tunnel_lib.sh"

mk_certs
start_upstream
start_tunnel_server
API_PORT=$PORT
create_tunnel
OLD_TOKEN=$(cat "$T_TMP/token")

# Wrong token: refused with 401 at the handshake, never registered.
echo "alk_tnl_not-a-real-token-at-all-xxxxxxxxxxxxxxxxxxx" >"$T_TMP/badtoken"
gw_config "$T_TMP/gw-bad.yaml" "$T_TMP/badtoken" "connections: 1"
start_gateway "$T_TMP/gw-bad.yaml"
wait_for 20 grep -q "status=401" "$GW_LOG"
check "wrong token refused with 401" grep -q "status=401" "$GW_LOG"
check "server logged the rejection" grep -q "invalid tunnel token" "$SERVER_LOG"
check "server counts the refused handshake" \
	bash -c "[ '$(server_metric 'airlock_tunnel_handshake_failures_total{reason="auth"}')' -ge 1 ]"
kill "$GW_PID"

gw_config "$T_TMP/gw.yaml" "$T_TMP/token" "connections: 2" "metrics_listen: 127.0.0.1:0"
start_gateway "$T_TMP/gw.yaml"
MAIN_GW=$GW_PID
MAIN_LOG=$GW_LOG
wait_for 20 grep -q "metrics listening" "$MAIN_LOG"
MPORT=$(sed -n 's/.*metrics listening.* port=\([0-9]*\).*/\1/p' "$MAIN_LOG" | head -1)
wait_for 20 has_ready "$MPORT" 2
check "gateway up with 2 connections" eq "$(ready_conns "$MPORT")" 2

# --- rotation
req testkey POST "/v1/tunnels/$TID/rotate_token" '{"reason":"integration test"}'
NEW_TOKEN=$(jget 'j["tunnel_token"]')
check "rotate returns a new token" bash -c "[ -n '$NEW_TOKEN' ] && [ '$NEW_TOKEN' != '$OLD_TOKEN' ]"
req testkey POST "/v1/tunnels/$TID/reveal_token"
check "reveal returns the rotated token" eq "$(jget 'j["tunnel_token"]')" "$NEW_TOKEN"
ing POST /echo/mcp -d '{"after":"rotation"}'
check "established connections survive rotation" eq "$STATUS" 201
check "connections were not re-registered" eq "$(conns_of "$MAIN_LOG")" 2
start_gateway "$T_TMP/gw.yaml" # still holds the old token file
OLDTOK_LOG=$GW_LOG
wait_for 20 grep -q "status=401" "$OLDTOK_LOG"
check "old token opens no new connection" grep -q "status=401" "$OLDTOK_LOG"
kill "$GW_PID"
echo "$NEW_TOKEN" >"$T_TMP/token2"
gw_config "$T_TMP/gw-new.yaml" "$T_TMP/token2" "connections: 1"
start_gateway "$T_TMP/gw-new.yaml"
NEWTOK_PID=$GW_PID
wait_for 20 grep -q "Registered tunnel connection" "$GW_LOG"
check "new token registers" grep -q "Registered tunnel connection" "$GW_LOG"
kill "$NEWTOK_PID"
# The running gateway must reconnect with the new token after the restart below.
cp "$T_TMP/token2" "$T_TMP/token"

# --- kill -9 the server, restart on the same ports: gateway reconnects
kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
wait_for 30 bash -c "[ \$(curl -s http://127.0.0.1:$MPORT/ready | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"readyConnections\"])') = 0 ]"
check "gateway notices the edge is gone" eq "$(ready_conns "$MPORT")" 0
start_tunnel_server "$API_PORT" "$EDGE_PORT" "$INGRESS_PORT"
check "server restarted on the same port" eq "$PORT" "$API_PORT"
wait_for 40 has_ready "$MPORT" 2
check "gateway reconnected both connections" eq "$(ready_conns "$MPORT")" 2
ing POST /echo/mcp -d '{"after":"restart"}'
check "traffic resumes after restart" eq "$BODY" '{"after":"restart"}'
check "reconnects counted" bash -c "[ \$(curl -s http://127.0.0.1:$MPORT/metrics | sed -n 's/^airlock_gateway_reconnects_total //p') -ge 2 ]"

# --- SIGHUP: a new route appears without dropping connections
hing extra /mcp
check "route absent before reload" eq "$STATUS" 404
echo "  extra: http://127.0.0.1:$UP_PORT" >"$T_TMP/route.line"
sed -i "/^routes:/r $T_TMP/route.line" "$T_TMP/gw.yaml"
kill -HUP "$MAIN_GW"
wait_for 20 grep -q "configuration reloaded" "$MAIN_LOG"
hing extra /mcp
check "route served after SIGHUP" eq "$STATUS" 200
echo "routes: [broken" >>"$T_TMP/gw.yaml"
kill -HUP "$MAIN_GW"
wait_for 20 grep -q "reload failed" "$MAIN_LOG"
check "bad reload keeps the running config" grep -q "reload failed" "$MAIN_LOG"
hing extra /mcp
check "routes still served after a bad reload" eq "$STATUS" 200

# --- SIGTERM drains: an open SSE stream completes, then the gateway exits 0
rm -f "$T_TMP/release"
(curl -s -N "http://127.0.0.1:$INGRESS_PORT/sse" -H "Host: echo.$DOMAIN" \
	-H 'x-api-key: testkey' >"$T_TMP/drain.out") &
SSE_PID=$!
wait_for 20 grep -q "tick 0" "$T_TMP/drain.out"
kill -TERM "$MAIN_GW"
wait_for 20 grep -q "draining" "$MAIN_LOG"
check "gateway is draining" grep -q "draining" "$MAIN_LOG"
check "gateway still running while a stream is open" kill -0 "$MAIN_GW"
hing echo /mcp
check "no new streams while draining (503)" eq "$STATUS" 503
touch "$T_TMP/release"
wait "$SSE_PID"
check "in-flight stream completed during drain" grep -q "tick 1" "$T_TMP/drain.out"
wait "$MAIN_GW"
check "gateway exited 0 after draining" eq "$?" 0
check "drain logged" grep -q "drained, exiting" "$MAIN_LOG"
finish
