#!/usr/bin/env bash
# What the gateway and the edge log (issue 17, item 16): a drain is info from "draining"
# to one "drained, exiting" line; a refused token says why (not this server's, replaced
# by a rotation, its tunnel archived) in one line per attempt with the delay before the
# next; the edge never logs an empty tunnel_id="" or connection_id="".
. "$(dirname "$0")/tunnel_lib.sh"
tunnel_stand

# a drain with live connections
gw_config "$T_TMP/gw.yaml" "$T_TMP/token" "connections: 3"
start_gateway "$T_TMP/gw.yaml"
wait_for 20 eval '[ "$(conns_of "$GW_LOG")" -ge 3 ]'
check "three tunnel connections" test "$(conns_of "$GW_LOG")" -ge 3
kill -TERM "$GW_PID"
wait "$GW_PID"
rc=$?
drain=$(sed -n '/draining/,$p' "$GW_LOG")
STATUS=$rc BODY=$drain check "the drained gateway exits 0" eq "$rc" 0
STATUS=$rc BODY=$drain check "one 'drained, exiting' line" eq "$(grep -c 'drained, exiting' "$GW_LOG")" 1
STATUS=$rc BODY=$drain check "a normal drain logs nothing above info" \
	eval '! grep -Eq " (warn|error) " <<<"$drain"'

# refused tokens: run a gateway on TOKEN_FILE for a few attempts, then stop it
refused_run() {
	gw_config "$T_TMP/gwr.yaml" "$1" "connections: 1"
	local before
	before=$(grep -c "tunnel handshake rejected" "$SERVER_LOG")
	start_gateway "$T_TMP/gwr.yaml"
	wait_for 20 eval '[ "$(grep -c "tunnel handshake rejected" "$SERVER_LOG")" -ge $((before + 2)) ]'
	kill -TERM "$GW_PID"
	wait "$GW_PID"
	EDGE_REJECTS=$(($(grep -c "tunnel handshake rejected" "$SERVER_LOG") - before))
	REFUSALS=$(grep -c "edge refused the tunnel token" "$GW_LOG")
}
tok_check() { # WHAT REASON
	local body
	body=$(cat "$GW_LOG")
	STATUS=x BODY=$body check "$1: the gateway says why" \
		grep -q "edge refused the tunnel token\" index=0 status=401 reason=\"$2\"" "$GW_LOG"
	STATUS=x BODY=$body check "$1: once per attempt ($REFUSALS lines, $EDGE_REJECTS attempts)" \
		eval '[ "$REFUSALS" -ge 2 ] && [ "$REFUSALS" = "$EDGE_REJECTS" ]'
	STATUS=x BODY=$body check "$1: with the delay before the next attempt" \
		eval '[ "$REFUSALS" -ge 1 ] && [ "$(grep "edge refused the tunnel token" "$GW_LOG" | grep -cE "retry_ms=[0-9]+$")" = "$REFUSALS" ]'
	STATUS=x BODY=$body check "$1: and no second line for the same failure" \
		eval '! grep -q "tunnel connection failed" "$GW_LOG"'
}
printf 'atk_%s\n' "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$T_TMP/wrong"
chmod 600 "$T_TMP/wrong"
refused_run "$T_TMP/wrong"
tok_check "a token this server never issued" "unknown tunnel token (not issued by this server)"

cp "$T_TMP/token" "$T_TMP/old" && chmod 600 "$T_TMP/old"
req testkey POST "/v1/tunnels/$TID/rotate_token"
check "the tunnel's token rotated" eq "$STATUS" 200
refused_run "$T_TMP/old"
tok_check "a rotated token" "tunnel token replaced by a rotation: reveal the new one"
BODY=$(grep "handshake rejected" "$SERVER_LOG" | tail -1) STATUS=x check "the edge names the rotated token's tunnel" \
	grep -q "tunnel handshake rejected.*error=\"rotated tunnel token\" tunnel_id=$TID" <<<"$(grep "handshake rejected" "$SERVER_LOG" | tail -1)"

req testkey POST "/v1/tunnels/$TID/reveal_token"
jget 'j["tunnel_token"]' >"$T_TMP/new" && chmod 600 "$T_TMP/new"
req testkey POST "/v1/tunnels/$TID/archive"
check "the tunnel archived" eq "$STATUS" 200
refused_run "$T_TMP/new"
tok_check "an archived tunnel's token" "tunnel archived"
refused_run "$T_TMP/old"
tok_check "an archived tunnel's rotated token" "tunnel archived"

BODY=$(grep -E 'tunnel_id=""|connection_id=""' "$SERVER_LOG" | head -3) STATUS=x \
	check "the edge logs no empty tunnel_id or connection_id" \
	eval '! grep -qE "tunnel_id=\"\"|connection_id=\"\"" "$SERVER_LOG"'

# the server drains: its edge tells the gateways (GOAWAY), which log the end of their
# connections at info, not as losses (they then retry the server, which is gone: warn)
create_tunnel
chmod 600 "$T_TMP/token"
gw_config "$T_TMP/gw3.yaml" "$T_TMP/token" "connections: 2"
start_gateway "$T_TMP/gw3.yaml"
wait_for 20 eval '[ "$(conns_of "$GW_LOG")" -ge 2 ]'
check "two connections before the server's drain" test "$(conns_of "$GW_LOG")" -ge 2
kill -TERM "$SERVER_PID"
wait "$SERVER_PID"
wait_for 20 eval '[ "$(grep -c "closed by the draining edge" "$GW_LOG")" -ge 2 ]'
BODY=$(grep "draining" "$SERVER_LOG") STATUS=x check "the server's edge tells both gateways' connections" \
	grep -q 'tunnel edge draining: gateways told (GOAWAY)" connections=2' "$SERVER_LOG"
BODY=$(tail -6 "$GW_LOG") STATUS=x check "the gateway logs the edge's drain at info" \
	eval '[ "$(grep -c "info  gateway: \"edge draining" "$GW_LOG")" = 2 ] && [ "$(grep -c "info  gateway: \"tunnel connection closed by the draining edge" "$GW_LOG")" = 2 ]'
BODY=$(tail -6 "$GW_LOG") STATUS=x check "... and no connection as lost" eval '! grep -q "tunnel connection lost" "$GW_LOG"'
kill "$GW_PID" 2>/dev/null
finish
