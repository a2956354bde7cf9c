#!/usr/bin/env bash
# One signal convention in every role (issue 17, item 4): SIGHUP used to kill the server,
# the worker and the mock-model at once, with no log line. Now HUP reloads what each role
# can reload and logs a line — the server's TLS certificate is rotated in place (a pair
# that does not load keeps the running one) — and the process keeps running; TERM then
# ends each one with exit 0.
. "$(dirname "$0")/lib/common.sh"
command -v openssl >/dev/null || { echo "SKIP: openssl is not installed (certificates for the rotation check)"; exit 77; }
D=$T_TMP/sig
mkdir -p "$D/work" && chmod 711 "$T_TMP" "$D" "$D/work" # the worker runs as its own user
cert() { # NAME CN
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
		-subj "/CN=$2" -addext "subjectAltName=IP:127.0.0.1" \
		-keyout "$D/$1.key" -out "$D/$1.pem" 2>/dev/null
}
cert a first.example
cert b second.example
cp "$D/a.pem" "$D/tls.pem" && cp "$D/a.key" "$D/tls.key" && chmod 600 "$D/tls.key"

LOG=$T_TMP/server.log
AIRLOCK_DATA_DIR=$T_TMP/data AIRLOCK_API_KEY=testkey "$AIRLOCK_BIN" server --listen 127.0.0.1:0 \
	--tls-cert "$D/tls.pem" --tls-key "$D/tls.key" 2>"$LOG" &
SRV=$!
T_PIDS+=($SRV)
wait_listening "$LOG"
BASE=https://127.0.0.1:$PORT
served_cn() {
	openssl s_client -connect "127.0.0.1:$PORT" </dev/null 2>/dev/null |
		openssl x509 -noout -subject 2>/dev/null | sed 's/.*CN *= *//'
}
alive() { kill -0 "$1" 2>/dev/null; }
logged() { # FILE PATTERN: waits up to 5 s
	for _ in $(seq 50); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	return 1
}
hup_check() { # ROLE PID LOG PATTERN: HUP keeps ROLE running and logs PATTERN
	kill -HUP "$2"
	BODY=$(tail -3 "$3") STATUS=x check "$1: HUP logs a line" logged "$3" "$4"
	STATUS=x BODY= check "$1: still running after HUP" alive "$2"
}
BODY=$(served_cn) STATUS=x check "the server serves the first certificate" eq "$(served_cn)" first.example

# server: rotation on HUP
cp "$D/b.pem" "$D/tls.pem" && cp "$D/b.key" "$D/tls.key"
hup_check server $SRV "$LOG" 'SIGHUP: reloaded" what="API certificate" failed=no'
BODY=$(served_cn) STATUS=x check "server: new connections get the new certificate" eq "$(served_cn)" second.example
printf 'not a certificate\n' >"$D/tls.pem"
kill -HUP $SRV
BODY=$(tail -3 "$LOG") STATUS=x check "server: a bad certificate on HUP is logged" logged "$LOG" 'API certificate not reloaded; keeping the running one'
STATUS=x BODY= check "server: still running after a bad reload" alive $SRV
BODY=$(served_cn) STATUS=x check "server: the running certificate stays" eq "$(served_cn)" second.example
cp "$D/b.pem" "$D/tls.pem"

# worker
ENV=$(curl -sk "$BASE/v1/environments" -H 'x-api-key: testkey' -H 'content-type: application/json' \
	--data '{"name":"s","config":{"type":"self_hosted"}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
EK=$(curl -sk "$BASE/v1/environments/$ENV/keys" -H 'x-api-key: testkey' -H 'content-type: application/json' \
	--data '{}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
WLOG=$T_TMP/worker.log
ANTHROPIC_ENVIRONMENT_KEY=$EK "$AIRLOCK_BIN" worker poll --environment-id "$ENV" --base-url "$BASE" \
	--ca-file "$D/b.pem" --workdir "$D/work" --unsandboxed 2>"$WLOG" &
WRK=$!
T_PIDS+=($WRK)
logged "$WLOG" "worker polling" || { echo "worker did not start:"; cat "$WLOG"; exit 1; }
hup_check worker $WRK "$WLOG" 'SIGHUP: nothing to reload'

# mock-model
MLOG=$T_TMP/mock.log
"$AIRLOCK_BIN" mock-model --listen 127.0.0.1:0 --script "$AIRLOCK_SRCDIR/tests/scripts/mock-basic.yaml" 2>"$MLOG" &
MM=$!
T_PIDS+=($MM)
logged "$MLOG" "listening" || { echo "mock-model did not start:"; cat "$MLOG"; exit 1; }
hup_check mock-model $MM "$MLOG" 'SIGHUP: nothing to reload'

# gateway (it reloads its routes; it keeps redialling a server that is not there)
GLOG=$T_TMP/gateway.log
printf 'server: 127.0.0.1:1\nroutes:\n  e: http://127.0.0.1:1\n' >"$D/gw.yaml"
AIRLOCK_TUNNEL_TOKEN=tok "$AIRLOCK_BIN" gateway --config "$D/gw.yaml" 2>"$GLOG" &
GW=$!
T_PIDS+=($GW)
logged "$GLOG" "gateway starting" || { echo "gateway did not start:"; cat "$GLOG"; exit 1; }
hup_check gateway $GW "$GLOG" 'configuration reloaded'

# TERM ends each role with exit 0 and a line
for p in $WRK $MM $GW $SRV; do kill -TERM "$p"; done
for role in worker:$WRK mock-model:$MM gateway:$GW server:$SRV; do
	wait "${role#*:}"
	rc=$?
	STATUS=$rc BODY= check "${role%%:*} exits 0 on TERM" eq "$rc" 0
done
BODY=$(tail -2 "$MLOG") STATUS=x check "mock-model: TERM logs a line" grep -q 'shutting down" signal=TERM' "$MLOG"
finish
