#!/usr/bin/env bash
# The server's access log and probes (issue 17, item 5): it used to log no request at
# all and had no health or readiness endpoint. Now every request gets one line (request
# id, method, route template, status, latency, credential kind and id — never the
# credential), as text or JSON per --log-format, and /healthz and /readyz answer on the
# API listener without a credential; /readyz is 503 once the database file is gone.
. "$(dirname "$0")/lib/common.sh"
start_server
hdr() { curl -s -o "$T_TMP/body" -D - "$@" | tr -d '\r'; }

BODY=$(cat "$SERVER_LOG") STATUS=x check "with AIRLOCK_API_KEY set: no missing-key warning" \
	eval '! grep -q "no server API key exists" "$SERVER_LOG"'
out=$(hdr "$BASE/healthz")
BODY=$out STATUS=x check "/healthz is 200 without a credential" grep -q '^HTTP/1.1 200' <<<"$out"
out=$(hdr "$BASE/readyz")
BODY=$out STATUS=x check "/readyz is 200 without a credential" grep -q '^HTTP/1.1 200' <<<"$out"
BODY=$(cat "$T_TMP/body") STATUS=x check "/readyz says ready" grep -q '"status":"ready"' "$T_TMP/body"
out=$(hdr -X POST "$BASE/readyz")
BODY=$out STATUS=x check "POST /readyz is 405" grep -q '^HTTP/1.1 405' <<<"$out"

out=$(hdr -H 'x-api-key: testkey' "$BASE/v1/environments/env_nope")
RID=$(sed -n 's/^request-id: //p' <<<"$out")
sleep 0.2
line=$(grep "request_id=$RID" "$SERVER_LOG" | grep '"*request"* ' | tail -1)
BODY=$line STATUS=x check "a request gets an access log line" test -n "$line"
BODY=$line STATUS=x check "it has the method, the route template and the status" \
	grep -q 'method=GET route=/v1/environments/{} status=404 ms=[0-9.]* ' <<<"$line"
BODY=$line STATUS=x check "it names the credential kind and id" \
	grep -q 'credential=AIRLOCK_API_KEY key_id=env:AIRLOCK_API_KEY' <<<"$line"
BODY=x STATUS=x check "the credential itself is never logged" eval '! grep -q "testkey" "$SERVER_LOG"'
curl -s -o /dev/null "$BASE/v1/agents"
sleep 0.2
BODY=$(tail -2 "$SERVER_LOG") STATUS=x check "a refused request is logged with its status" \
	grep -q 'route=/v1/agents status=401 .*credential=none' "$SERVER_LOG"

# readiness follows the database file
mv "$DATA_DIR/airlock.db" "$DATA_DIR/moved.db"
out=$(hdr "$BASE/readyz")
BODY=$out STATUS=x check "/readyz is 503 once the database file is gone" grep -q '^HTTP/1.1 503' <<<"$out"
out=$(hdr "$BASE/healthz")
BODY=$out STATUS=x check "/healthz stays 200 (the process is alive)" grep -q '^HTTP/1.1 200' <<<"$out"
mv "$DATA_DIR/moved.db" "$DATA_DIR/airlock.db"
out=$(hdr "$BASE/readyz")
BODY=$out STATUS=x check "/readyz is 200 again when it is back" grep -q '^HTTP/1.1 200' <<<"$out"

# JSON access log
kill "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
DATA_DIR=$T_TMP/data2
env AIRLOCK_DATA_DIR="$DATA_DIR" AIRLOCK_API_KEY=testkey "$AIRLOCK_BIN" server --listen 127.0.0.1:0 \
	--log-format json 2>"$T_TMP/json.log" &
T_PIDS+=($!)
wait_listening "$T_TMP/json.log"
curl -s -o /dev/null -H 'x-api-key: testkey' "$BASE/v1/agents"
sleep 0.2
j=$(python3 - "$T_TMP/json.log" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    o = json.loads(l)
    if o.get("msg") == "request" and o.get("route") == "/v1/agents":
        print(o["method"], o["status"], type(o["status"]).__name__, type(o["ms"]).__name__,
              o["credential"], o["key_id"], o["request_id"][:4])
PY
)
BODY=$j STATUS=x check "--log-format json: the access line is JSON with its fields, status and ms as numbers" \
	eq "$j" "GET 200 int float AIRLOCK_API_KEY env:AIRLOCK_API_KEY req_"

# configuration errors name the YAML key too, and side listeners of an edge that is off
# are an error, not silently dropped (item 13)
out=$(env -u AIRLOCK_TUNNEL_LISTEN AIRLOCK_DATA_DIR=$T_TMP/d3 timeout 10 "$AIRLOCK_BIN" server --listen 127.0.0.1:0 \
	--tunnel-metrics-listen 127.0.0.1:0 2>&1)
rc=$?
STATUS=$rc BODY=$out check "tunnel.metrics_listen without tunnel.listen: exit 2" eq "$rc" 2
STATUS=$rc BODY=$out check "... naming the key, the flag and what is missing" \
	grep -q "tunnel.metrics_listen (--tunnel-metrics-listen) needs tunnel.listen" <<<"$out"
printf 'listen: 127.0.0.1:0\ndata_dir: %s/d4\ntls:\n  cert_file: /nonexistent.pem\n' "$T_TMP" >"$T_TMP/t.yaml"
out=$(timeout 10 "$AIRLOCK_BIN" server --config "$T_TMP/t.yaml" 2>&1)
rc=$?
STATUS=$rc BODY=$out check "tls.cert_file without tls.key_file names the YAML keys" \
	grep -q "tls.cert_file and tls.key_file (--tls-cert, --tls-key) go together" <<<"$out"
STATUS=$rc BODY=$out check "... and exits 2" eq "$rc" 2
finish
