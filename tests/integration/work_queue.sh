#!/usr/bin/env bash
# The self-hosted work queue over real HTTP: poll/ack/heartbeat/stop, fencing, the
# credential matrix (users of each role from a loopback OpenID provider included), bad
# parameters, and lease expiry with requeue.
. "$(dirname "$0")/lib/common.sh"
IDP="python3 $(dirname "$0")/lib/mini_idp.py"
mkdir -p "$T_TMP/idp"
$IDP serve "$T_TMP/idp" &
T_PIDS+=($!)
for _ in $(seq 100); do [ -s "$T_TMP/idp/port" ] && break; sleep 0.05; done
[ -s "$T_TMP/idp/port" ] || { echo "the test OpenID provider did not start"; exit 1; }
printf 'default: allow\nroles:\n  admin: [ops]\n  developer: [eng]\n' >"$T_TMP/policy.yaml"
start_server AIRLOCK_LEASE_TTL=2 AIRLOCK_OIDC_ISSUER="http://127.0.0.1:$(cat "$T_TMP/idp/port")" \
	AIRLOCK_OIDC_AUDIENCE=airlock AIRLOCK_POLICY_FILE="$T_TMP/policy.yaml"
ADMIN=$($IDP token "$T_TMP/idp" alice ops)
DEV=$($IDP token "$T_TMP/idp" dave eng)
USER=$($IDP token "$T_TMP/idp" uma staff)
# user tokens get 503 until the server has loaded the provider's keys
for _ in $(seq 100); do
	req "$USER" GET /v1/agents
	[ "$STATUS" != 503 ] && break
	sleep 0.05
done
check "a user token is accepted once the keys load" eq "$STATUS" 200
K=testkey

req $K POST /v1/environments '{"name":"q","config":{"type":"self_hosted"}}'
ENV=$(jget 'j["id"]')
req $K POST /v1/agents '{"name":"a","model":"claude-test"}'
AGENT=$(jget 'j["id"]')
req $K POST "/v1/environments/$ENV/keys" '{"name":"w"}'
check "environment key issued" eq "$(jget 'j["type"]')" environment_key
EK=$(jget 'j["key"]')
req $K POST /v1/sessions "{\"agent\":\"$AGENT\",\"environment_id\":\"$ENV\"}"
SID=$(jget 'j["id"]')

req $K GET "/v1/environments/$ENV/work/stats"
check "stats: one queued item" eq "$(jget 'j["depth"]')" 1
req $K GET "/v1/environments/$ENV/work/poll?block_ms=10"
check "API key cannot poll" eq "$STATUS" 403
req $EK GET "/v1/environments/$ENV/work/poll?block_ms=0"
check "block_ms=0 rejected" eq "$STATUS" 400
req $EK GET "/v1/environments/$ENV/work/poll?block_ms=1000"
check "block_ms=1000 rejected" eq "$STATUS" 400
req $EK GET "/v1/environments/env_nope/work/poll"
check "other environment is 404" eq "$STATUS" 404

req $EK GET "/v1/environments/$ENV/work/poll?block_ms=999"
check "poll delivers the session's item" eq "$(jget 'j["data"]["id"]')" "$SID"
WID=$(jget 'j["id"]')
SECRET=$(jget 'j["secret"]')
TOK=$(python3 -c "import base64,json,sys; s=sys.argv[1]; print(json.loads(base64.urlsafe_b64decode(s+'='*(-len(s)%4)))['sessions_token'])" "$SECRET")
check "secret carries a sessions token" eq "${TOK:0:8}" alk_req_

req $EK GET "/v1/environments/$ENV/work/poll?block_ms=50"
check "empty poll answers null after block_ms" eq "$BODY" null

req $TOK POST "/v1/environments/$ENV/work/$WID/heartbeat?expected_last_heartbeat=NO_HEARTBEAT"
check "heartbeat before ack is 409" eq "$STATUS" 409
req $TOK POST "/v1/environments/$ENV/work/$WID/ack"
check "ack → starting" eq "$(jget 'j["state"]')" starting
req $TOK POST "/v1/environments/$ENV/work/$WID/ack"
check "second ack is idempotent" eq "$STATUS" 200
req $TOK GET "/v1/sessions/$SID"
check "sessions token reads its session" eq "$STATUS" 200
req $TOK GET "/v1/environments/$ENV/work/$WID"
check "sessions token cannot GET work (API key only)" eq "$STATUS" 403

# A long lease here: only the expiry part below relies on the short default TTL.
req $TOK POST "/v1/environments/$ENV/work/$WID/heartbeat?expected_last_heartbeat=NO_HEARTBEAT&desired_ttl_seconds=600"
check "first heartbeat wins" eq "$(jget 'j["lease_extended"]')" True
HB=$(jget 'j["last_heartbeat"]')
req $TOK POST "/v1/environments/$ENV/work/$WID/heartbeat?expected_last_heartbeat=NO_HEARTBEAT"
check "second NO_HEARTBEAT is fenced with 412" eq "$STATUS" 412
check "412 carries heartbeat_precondition_failed" eq "$(jget 'j["error"]["details"]["error_code"]')" heartbeat_precondition_failed
check "412 carries current_state" eq "$(jget 'j["error"]["details"]["current_state"]["state"]')" active
req $TOK POST "/v1/environments/$ENV/work/$WID/heartbeat?expected_last_heartbeat=$HB&desired_ttl_seconds=5"
check "echoed heartbeat extends, ttl clamped to 10" eq "$(jget 'j["ttl_seconds"]')" 10
req $TOK POST "/v1/environments/$ENV/work/$WID/heartbeat?expected_last_heartbeat=$(jget 'j["last_heartbeat"]')&desired_ttl_seconds=600"

req $K POST "/v1/environments/$ENV/work/$WID" '{"metadata":{"host":"w1"}}'
check "metadata update" eq "$(jget 'j["metadata"]["host"]')" w1
req $TOK POST "/v1/environments/$ENV/work/$WID/stop" '{}'
check "graceful stop → stopping" eq "$(jget 'j["state"]')" stopping
HB2=$(jget 'j["latest_heartbeat_at"]')
req $TOK POST "/v1/environments/$ENV/work/$WID/heartbeat?expected_last_heartbeat=stale"
check "heartbeat while stopping reports stopping" eq "$(jget 'j["state"]')" stopping
req $TOK POST "/v1/environments/$ENV/work/$WID/stop" '{"force":true}'
check "forced stop → stopped" eq "$(jget 'j["state"]')" stopped
req $TOK POST "/v1/environments/$ENV/work/$WID/stop" '{"force":true}'
check "stopping a stopped item: token is dead now (401)" eq "$STATUS" 401
req $EK POST "/v1/environments/$ENV/work/$WID/stop" '{"force":true}'
check "stop on stopped is 409" eq "$STATUS" 409

# Lease expiry: a run-starting event queues a new item; ack it, never beat.
req $K POST "/v1/sessions/$SID/events" '{"events":[{"type":"user.message","content":[{"type":"text","text":"hi"}]}]}'
check "user.message accepted" eq "$STATUS" 200
req $EK GET "/v1/environments/$ENV/work/poll?block_ms=999"
W2=$(jget 'j["id"]')
check "new item queued for the session" eq "$(jget 'j["data"]["id"]')" "$SID"
req $EK POST "/v1/environments/$ENV/work/$W2/ack"
sleep 3.5
req $K GET "/v1/environments/$ENV/work/$W2"
check "lease expired: item stopped" eq "$(jget 'j["state"]')" stopped
req $EK GET "/v1/environments/$ENV/work/poll?block_ms=999"
check "lease expiry requeued the session" eq "$(jget 'j["data"]["id"]')" "$SID"
W3=$(jget 'j["id"]')
S3=$(jget 'j["secret"]')
TOK3=$(python3 -c "import base64,json,sys; s=sys.argv[1]; print(json.loads(base64.urlsafe_b64decode(s+'='*(-len(s)%4)))['sessions_token'])" "$S3")
req $EK GET "/v1/environments/$ENV/work?limit=1"
check "list pages (env key)" eq "$(jget 'len(j["data"])')" 1
NEXT=$(jget 'j["next_page"]')
req $EK GET "/v1/environments/$ENV/work?limit=1&page=$NEXT"
check "second page differs" eq "$STATUS" 200
req $EK GET "/v1/environments/$ENV/work?page=garbage"
check "bad cursor is 400" eq "$STATUS" 400
# airlock extension (docs/server/work.md "Listing work"): a server API key and an admin
# user list work too, read-only and with no secret; other roles and tokens may not.
req $K GET "/v1/environments/$ENV/work?limit=100"
check "API key lists work" eq "$STATUS" 200
check "API key's list holds both items, newest first" eq "$(jget '[w["id"] for w in j["data"]][:2]')" "['$W3', '$W2']"
check "API key's list carries no secret" eq "$(jget 'sorted(set(repr(w["secret"]) for w in j["data"]))')" "['None']"
check "no token in the API key's list" eval '! grep -q alk_req_ <<<"$BODY"'
check "listed item shows its state and metadata" eq "$(jget '[w["metadata"].get("host") for w in j["data"] if w["id"] == "'"$WID"'"]')" "['w1']"
req $K GET "/v1/environments/$ENV/work?limit=1"
NEXT=$(jget 'j["next_page"]')
check "API key's list pages: first page is the newest" eq "$(jget 'j["data"][0]["id"]')" "$W3"
req $K GET "/v1/environments/$ENV/work?limit=1&page=$NEXT"
check "API key's second page is the next newest" eq "$(jget 'j["data"][0]["id"]')" "$W2"
req "$ADMIN" GET "/v1/environments/$ENV/work"
check "admin user lists work" eq "$STATUS" 200
check "admin user's list carries no secret" eq "$(jget 'sorted(set(repr(w["secret"]) for w in j["data"]))')" "['None']"
check "no token in the admin's list" eval '! grep -q alk_req_ <<<"$BODY"'
req "$DEV" GET "/v1/environments/$ENV/work"
check "developer user cannot list work" eq "$STATUS" 403
req "$USER" GET "/v1/environments/$ENV/work"
check "user-role user cannot list work" eq "$STATUS" 403
req "$TOK3" GET "/v1/environments/$ENV/work"
check "sessions token cannot list work" eq "$STATUS" 403
req "$USER" GET "/v1/environments/$ENV/work/$W3"
check "user-role user cannot GET a work item" eq "$STATUS" 403
req "$ADMIN" GET "/v1/environments/$ENV/work/$W3"
check "admin user GETs a work item, no secret" eq "$(jget 'repr(j["secret"])')" None
req $K POST "/v1/environments/$ENV/work" '{}'
check "the list is read-only (no POST)" eval '[ "$STATUS" = 404 ] || [ "$STATUS" = 405 ]'

finish
