#!/usr/bin/env bash
# kill -9 the server while a worker holds a lease and events are flowing, restart it on
# the same data directory, and show that nothing acknowledged was lost: sessions, event
# history, queued work, the lease (the worker's next heartbeat echo still matches) and the
# sessions token all survive.
. "$(dirname "$0")/lib/common.sh"
start_server
K=testkey

req $K POST /v1/environments '{"name":"c","config":{"type":"self_hosted"}}'
ENV=$(jget 'j["id"]')
req $K POST /v1/agents '{"name":"a","model":"claude-test"}'
AGENT=$(jget 'j["id"]')
req $K POST "/v1/environments/$ENV/keys" '{}'
EK=$(jget 'j["key"]')
req $K POST /v1/sessions "{\"agent\":\"$AGENT\",\"environment_id\":\"$ENV\"}"
S1=$(jget 'j["id"]')
req $K POST /v1/sessions "{\"agent\":\"$AGENT\",\"environment_id\":\"$ENV\"}"
S2=$(jget 'j["id"]')

req $EK GET "/v1/environments/$ENV/work/poll?block_ms=999"
W1=$(jget 'j["id"]')
TOK=$(python3 -c "import base64,json,sys; s=sys.argv[1]; print(json.loads(base64.urlsafe_b64decode(s+'='*(-len(s)%4)))['sessions_token'])" "$(jget 'j["secret"]')")
req $TOK POST "/v1/environments/$ENV/work/$W1/ack"
req $TOK POST "/v1/environments/$ENV/work/$W1/heartbeat?expected_last_heartbeat=NO_HEARTBEAT"
HB=$(jget 'j["last_heartbeat"]')

# A burst of acknowledged events, then kill -9 right after the last acknowledgement.
SENT=()
for i in $(seq 1 20); do
	req $K POST "/v1/sessions/$S1/events" "{\"events\":[{\"type\":\"user.message\",\"content\":[{\"type\":\"text\",\"text\":\"m$i\"}]}]}"
	[ "$STATUS" = 200 ] && SENT+=("$(jget 'j["data"][0]["id"]')")
done
kill -9 "$SERVER_PID" 2>/dev/null
wait "$SERVER_PID" 2>/dev/null
check "20 events acknowledged before the crash" eq "${#SENT[@]}" 20

start_server
req $K GET "/v1/sessions/$S1/events?limit=1000"
GOT=$(jget '" ".join(e["id"] for e in j["data"] if e["type"]=="user.message")')
check "every acknowledged event survived, in order" eq "$GOT" "${SENT[*]}"
req $K GET "/v1/sessions/$S2"
check "second session survived" eq "$STATUS" 200
req $TOK POST "/v1/environments/$ENV/work/$W1/heartbeat?expected_last_heartbeat=$HB"
check "lease survived: the echoed heartbeat still matches" eq "$(jget 'j["lease_extended"]')" True
check "sessions token survived" eq "$STATUS" 200
req $EK GET "/v1/environments/$ENV/work/poll?block_ms=999"
check "queued work for the other session survived" eq "$(jget 'j["data"]["id"]')" "$S2"

# Crash in the middle of a heartbeat storm: whichever beat the server committed last is
# the one that must match after restart (no torn state).
LAST=$(jget 'j["id"]')
HB=$(python3 - "$BASE" "$TOK" "$ENV" "$W1" <<'PY'
import json, sys, urllib.request
base, tok, env, wid = sys.argv[1:]
hb = None
# find the current value first (a precondition miss returns it)
req = urllib.request.Request(f"{base}/v1/environments/{env}/work/{wid}/heartbeat?expected_last_heartbeat=x",
                             method="POST", headers={"Authorization": f"Bearer {tok}"})
try:
    urllib.request.urlopen(req)
except urllib.error.HTTPError as e:
    hb = json.loads(e.read())["error"]["details"]["current_state"]["last_heartbeat"]
for _ in range(200):
    req = urllib.request.Request(f"{base}/v1/environments/{env}/work/{wid}/heartbeat?expected_last_heartbeat={hb}",
                                 method="POST", headers={"Authorization": f"Bearer {tok}"})
    hb = json.loads(urllib.request.urlopen(req).read())["last_heartbeat"]
print(hb)
PY
)
kill -9 "$SERVER_PID" 2>/dev/null
wait "$SERVER_PID" 2>/dev/null
start_server
req $TOK POST "/v1/environments/$ENV/work/$W1/heartbeat?expected_last_heartbeat=$HB"
check "after 200 beats and kill -9, the last acknowledged beat matches" eq "$STATUS" 200
check "integrity check passes" eq "$(sqlite3 "$DATA_DIR/airlock.db" 'PRAGMA integrity_check')" ok
finish
