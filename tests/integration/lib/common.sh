# Shared helpers for integration scripts: a server on a free loopback port with its own
# data directory, curl wrappers and assertions that count and report.
set -u
: "${AIRLOCK_BIN:?AIRLOCK_BIN must point at the airlock binary}"
T_TMP=$(mktemp -d)
T_FAILS=0
T_CHECKS=0
T_PIDS=()
cleanup() {
	for p in "${T_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$T_TMP"
}
trap cleanup EXIT

# start_server [extra env assignments...]: sets PORT and BASE
start_server() {
	local log="$T_TMP/server.$RANDOM.log"
	: "${DATA_DIR:=$T_TMP/data}"
	env AIRLOCK_DATA_DIR="$DATA_DIR" AIRLOCK_API_KEY=testkey "$@" \
		"$AIRLOCK_BIN" server --listen 127.0.0.1:0 2>"$log" &
	SERVER_PID=$!
	T_PIDS+=("$SERVER_PID")
	wait_listening "$log"
}

# wait_listening LOG: waits for the server's "listening" line (text or JSON) in LOG; sets PORT, BASE
# and SERVER_LOG, or exits showing the log
wait_listening() {
	local log=$1
	PORT=
	for _ in $(seq 200); do
		# text (port=N) or JSON ("port":N) log lines
		PORT=$(sed -nE 's/.*listening.*port(=|":"?)([0-9]+).*/\2/p' "$log" | head -1)
		[ -n "$PORT" ] && break
		sleep 0.05
	done
	[ -n "$PORT" ] || { echo "server did not start:"; cat "$log"; exit 1; }
	BASE=http://127.0.0.1:$PORT
	SERVER_LOG=$log
}

# idle_session: a self-hosted environment, its key, an agent and a session created
# without a message (its work item is queued); sets ENV, EK, AG and SID (server key
# testkey, as start_server gives)
idle_session() {
	req testkey POST /v1/environments '{"name":"o","config":{"type":"self_hosted"}}'
	ENV=$(jget 'j["id"]')
	req testkey POST "/v1/environments/$ENV/keys" '{"name":"w"}'
	EK=$(jget 'j["key"]')
	req testkey POST /v1/agents '{"name":"a","model":"m"}'
	AG=$(jget 'j["id"]')
	req testkey POST /v1/sessions "{\"agent\":\"$AG\",\"environment_id\":\"$ENV\"}"
	SID=$(jget 'j["id"]')
}

# req KEY METHOD PATH [BODY] → sets STATUS and BODY
req() {
	local key=$1 method=$2 path=$3 data=${4-}
	local out="$T_TMP/resp"
	STATUS=$(curl -s -o "$out" -w '%{http_code}' -X "$method" "$BASE$path" \
		-H "Authorization: Bearer $key" -H 'content-type: application/json' \
		${data:+--data-binary "$data"})
	BODY=$(cat "$out")
}

jget() { # JSON-PATH (python expression on j) from $BODY
	python3 -c "import json,sys; j=json.loads(sys.argv[1]); print($1)" "$BODY" 2>/dev/null
}

check() { # DESCRIPTION CONDITION...
	local what=$1
	shift
	T_CHECKS=$((T_CHECKS + 1))
	if "$@"; then
		echo "ok   - $what"
	else
		echo "FAIL - $what (status=$STATUS body=${BODY:0:300})"
		T_FAILS=$((T_FAILS + 1))
	fi
}

eq() { [ "$1" = "$2" ]; }

finish() {
	echo "$T_CHECKS checks, $T_FAILS failed"
	[ "$T_FAILS" = 0 ]
}
