#!/usr/bin/env bash
# Ingress error answers (issue 17, item 17), in both forms (path: /v1/tunnels/{id}/routes/
# {route}/..., host: <route>.<domain> on the ingress listener): each answer has its own
# request id (the host form answered every error with "req_ingress"); no key, a wrong key
# and an environment key get three different messages; a route the gateway does not have
# is named as such in the path form too; plain HTTP sent to a TLS port gets a 400 answer.
. "$(dirname "$0")/tunnel_lib.sh"
tunnel_stand
gw_config "$T_TMP/gw.yaml" "$T_TMP/token" "connections: 1"
start_gateway "$T_TMP/gw.yaml"
wait_for 20 eval '[ "$(conns_of "$GW_LOG")" -ge 1 ]'
req testkey POST /v1/environments '{"name":"e","config":{"type":"self_hosted"}}'
ENV=$(jget 'j["id"]')
req testkey POST "/v1/environments/$ENV/keys" '{"name":"w"}'
EK=$(jget 'j["key"]')
check "an environment key to try" test -n "$EK"

# call FORM KEY [ROUTE]: one request in FORM (path|host) with KEY ("" = none); sets
# STATUS, BODY, RID (the request-id header), MSG (the error message)
call() {
	local form=$1 key=$2 route=${3:-echo} url hdr=()
	[ -n "$key" ] && hdr=(-H "x-api-key: $key")
	if [ "$form" = path ]; then
		url="$BASE/v1/tunnels/$TID/routes/$route/x"
	else
		url="http://127.0.0.1:$INGRESS_PORT/x"
		hdr+=(-H "Host: $route.$DOMAIN")
	fi
	STATUS=$(curl -s -D "$T_TMP/hdrs" -o "$T_TMP/iresp" -w '%{http_code}' "$url" "${hdr[@]}")
	BODY=$(cat "$T_TMP/iresp")
	RID=$(sed -n 's/^request-id: *\([^\r]*\).*/\1/Ip' "$T_TMP/hdrs" | head -1)
	MSG=$(jget 'j["error"]["message"]')
}
for form in path host; do
	call "$form" ""
	s1=$STATUS m1=$MSG r1=$RID b1=$(jget 'j.get("request_id","")')
	check "$form form, no key: 401" eq "$s1" 401
	call "$form" ""
	check "$form form: two answers, two request ids" eval '[ -n "$r1" ] && [ "$RID" != "$r1" ]'
	check "$form form: the body's request_id is the header's" eq "$b1" "$r1"
	call "$form" "alk_wrong_key_0123456789"
	s2=$STATUS m2=$MSG
	check "$form form, a wrong key: 401" eq "$s2" 401
	call "$form" "$EK"
	s3=$STATUS m3=$MSG
	check "$form form, an environment key: refused" eval '[ "$s3" = 401 ] || [ "$s3" = 403 ]'
	STATUS="$s1/$s2/$s3" BODY="$m1 | $m2 | $m3" check "$form form: three different messages" \
		eval '[ -n "$m1" ] && [ -n "$m2" ] && [ -n "$m3" ] && [ "$m1" != "$m2" ] && [ "$m2" != "$m3" ] && [ "$m1" != "$m3" ]'
	STATUS=x BODY=$m3 check "$form form: the environment key's message says what it is" \
		grep -qi "environment key" <<<"$m3"
	call "$form" testkey nope
	check "$form form, a route the gateway lacks: 404" eq "$STATUS" 404
	check "$form form: ... naming the route" grep -q 'no route "nope"' <<<"$BODY"
done

# plain HTTP to a TLS port (lib/http, under the API's and the ingress's TLS listeners;
# here the API's, which may use TLS on loopback): a 400 that says so, and TLS still works
env AIRLOCK_DATA_DIR="$T_TMP/tlsdata" AIRLOCK_API_KEY=testkey "$AIRLOCK_BIN" server \
	--listen 127.0.0.1:0 --tls-cert "$T_TMP/edge.pem" --tls-key "$T_TMP/edge.key" 2>"$T_TMP/tls.log" &
T_PIDS+=($!)
wait_listening "$T_TMP/tls.log"
STATUS=$(curl -s -o "$T_TMP/plain" -w '%{http_code}' --max-time 10 "http://127.0.0.1:$PORT/v1/agents" -H 'x-api-key: testkey')
BODY=$(cat "$T_TMP/plain")
check "plain HTTP to the TLS port: 400" eq "$STATUS" 400
check "... saying to use https://" grep -q "plain HTTP sent to an HTTPS port: use https://" <<<"$BODY"
STATUS=$(curl -s -o "$T_TMP/tlsresp" -w '%{http_code}' --max-time 10 --cacert "$T_TMP/ca.pem" \
	"https://127.0.0.1:$PORT/v1/agents" -H 'x-api-key: testkey')
BODY=$(cat "$T_TMP/tlsresp")
check "... and HTTPS on the same port still answers" eq "$STATUS" 200
finish
