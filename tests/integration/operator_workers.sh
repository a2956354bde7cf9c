#!/usr/bin/env bash
# Several workers on one host (issue 17, item 10), as docs/operator.md sets them up: two
# environments, one worker each from the template unit airlock-worker@.service (its
# Environment= and ExecStart= lines, %i filled in, paths moved under a temporary root).
# Both run their session's tool in a sandbox at the same time; a worker given a state dir
# another worker holds is refused with a message naming the lock file and
# sandbox.state_dir (it said only "conflict").
. "$(dirname "$0")/lib/common.sh"
EX=$AIRLOCK_SRCDIR/docs/operator
R=$T_TMP/root
map() { sed -e "s#/usr/local/bin/airlock#$AIRLOCK_BIN#g" -e "s#/etc/airlock#$R/etc/airlock#g" \
	-e "s#/var/lib/#$R/var/lib/#g" "$@"; }
unit() { map "$EX/airlock-worker@.service" | sed -n "s/^$1=//p" | sed "s/%i/$2/g"; }
mkdir -p "$R/etc/airlock" "$R/var/lib/airlock-worker" "$R/var/lib/airlock-sandbox"
chmod 711 "$T_TMP" "$R" "$R/var" "$R/var/lib" "$R/var/lib/airlock-worker"

printf '[{"match":"go-alpha","content":[{"type":"tool_use","name":"bash","input":{"command":"echo alpha-ran"}}]},{"match":"alpha-ran","content":[{"type":"text","text":"done"}]},{"match":"go-beta","content":[{"type":"tool_use","name":"bash","input":{"command":"echo beta-ran"}}]},{"match":"beta-ran","content":[{"type":"text","text":"done"}]}]' >"$T_TMP/turns.json"
"$AIRLOCK_BIN" mock-model --listen 127.0.0.1:0 --script "$T_TMP/turns.json" 2>"$T_TMP/mock.log" &
T_PIDS+=($!)
for _ in $(seq 100); do MP=$(sed -nE 's/.*listening port=([0-9]+).*/\1/p' "$T_TMP/mock.log"); [ -n "$MP" ] && break; sleep 0.05; done
start_server AIRLOCK_MODEL_BASE_URL="http://127.0.0.1:$MP"
req testkey POST /v1/agents '{"name":"t","model":"m","tools":[{"type":"agent_toolset_20260401"}]}'
AG=$(jget 'j["id"]')
declare -A ENVS SIDS
for w in alpha beta; do
	req testkey POST /v1/environments "{\"name\":\"$w\",\"config\":{\"type\":\"self_hosted\"}}"
	ENVS[$w]=$(jget 'j["id"]')
	req testkey POST "/v1/environments/${ENVS[$w]}/keys" '{"name":"w"}'
	printf 'ANTHROPIC_BASE_URL=%s\nANTHROPIC_ENVIRONMENT_ID=%s\nANTHROPIC_ENVIRONMENT_KEY=%s\n' \
		"$BASE" "${ENVS[$w]}" "$(jget 'j["key"]')" >"$R/etc/airlock/worker-$w.env"
	req testkey POST /v1/sessions "{\"agent\":\"$AG\",\"environment_id\":\"${ENVS[$w]}\"}"
	SIDS[$w]=$(jget 'j["id"]')
	req testkey POST "/v1/sessions/${SIDS[$w]}/events" "{\"events\":[{\"type\":\"user.message\",\"content\":[{\"type\":\"text\",\"text\":\"go-$w\"}]}]}"
	check "a session with a message in environment $w" eq "$STATUS" 200
	# what systemd's StateDirectory= would create
	mkdir -m 711 -p "$R/var/lib/airlock-worker/$w" "$R/var/lib/airlock-sandbox/$w"
done

# start_unit NAME [VAR=VALUE...]: the template unit's worker NAME (Environment=, then the
# EnvironmentFile=, then the extra assignments), logging to $T_TMP/NAME.log; sets WPID
start_unit() {
	local w=$1
	shift
	(export "$(unit Environment "$w")"; set -a; . "$(unit EnvironmentFile "$w")"; set +a
		for a in "$@"; do export "$a"; done
		exec $(unit ExecStart "$w")) 2>"$T_TMP/$w.log" &
	WPID=$!
	T_PIDS+=($WPID)
}
logged() { for _ in $(seq 150); do grep -q "$2" "$T_TMP/$1.log" 2>/dev/null && return 0; sleep 0.1; done; return 1; }

STATUS=x BODY=$(unit ExecStart alpha) check "the template unit has an ExecStart with the instance's workdir" \
	grep -q "worker poll --workdir $R/var/lib/airlock-worker/alpha" <<<"$(unit ExecStart alpha)"
start_unit alpha
WA=$WPID
logged alpha "worker polling\|cannot start\|refus\|not searchable"
if grep -q "cannot start the sandbox monitor" "$T_TMP/alpha.log"; then
	echo "skip - two sandboxed workers: sandboxes cannot be created here ($(grep -m1 'cannot start' "$T_TMP/alpha.log"))"
	finish
	exit
fi
SA=$R/var/lib/airlock-sandbox/alpha
BODY=$(tail -3 "$T_TMP/alpha.log") STATUS=x check "worker alpha runs sandboxed in its own state dir" \
	grep -q "tools run in per-session sandboxes.*state_dir=$SA" "$T_TMP/alpha.log"

# the usual mistake: a second worker (another environment, another workdir) left on the
# first one's state dir
mkdir -m 711 -p "$R/var/lib/airlock-worker/wrong"
cp "$R/etc/airlock/worker-beta.env" "$R/etc/airlock/worker-wrong.env"
start_unit wrong AIRLOCK_SANDBOX_STATE_DIR="$SA"
for _ in $(seq 150); do kill -0 "$WPID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$WPID" 2>/dev/null && kill -9 "$WPID"
wait "$WPID"
rc=$?
msg=$(cat "$T_TMP/wrong.log")
STATUS=$rc BODY=$msg check "a worker on a state dir another worker holds exits with a failure" test "$rc" = 1
STATUS=$rc BODY=$msg check "... naming the lock file" grep -q "another worker holds $SA/worker.lock" <<<"$msg"
STATUS=$rc BODY=$msg check "... and the setting (sandbox.state_dir, its variable and default)" \
	grep -q "its own sandbox.state_dir (or AIRLOCK_SANDBOX_STATE_DIR; default /var/lib/airlock)" <<<"$msg"
STATUS=x BODY=$(tail -3 "$T_TMP/alpha.log") check "... and worker alpha keeps running" kill -0 "$WA"

# `worker check` makes the same test (item 7: the checks poll makes)
out=$(set -a; . "$R/etc/airlock/worker-beta.env"; AIRLOCK_SANDBOX_STATE_DIR=$SA "$AIRLOCK_BIN" worker check \
	--workdir "$R/var/lib/airlock-worker/wrong" 2>&1)
rc=$?
STATUS=$rc BODY=$out check "worker check on the held state dir fails, naming the lock" \
	eval '[ "$rc" != 0 ] && grep -q "check: another worker holds $SA/worker.lock" <<<"$out"'
out=$(set -a; . "$R/etc/airlock/worker-beta.env"; export "$(unit Environment beta)"; "$AIRLOCK_BIN" worker check \
	--workdir "$R/var/lib/airlock-worker/beta" 2>&1)
STATUS=x BODY=$out check "... and on beta's own state dir says it is free" \
	grep -q "check: sandbox.state_dir $R/var/lib/airlock-sandbox/beta is this worker's" <<<"$out"

start_unit beta
WB=$WPID
for w in alpha beta; do
	out=
	for _ in $(seq 300); do
		req testkey GET "/v1/sessions/${SIDS[$w]}/events?limit=100"
		out=$(jget '[e for e in j["data"] if e["type"]=="user.tool_result"][0]["content"][0]["text"].strip()')
		[ -n "$out" ] && break
		sleep 0.1
	done
	check "session $w's tool ran in environment $w's worker" eq "$out" "$w-ran"
done
BODY=$(grep -h "session" "$T_TMP/alpha.log" "$T_TMP/beta.log" | tail -4) STATUS=x check "each worker ran its own environment's session" \
	eval 'grep -q "${SIDS[alpha]}" "$T_TMP/alpha.log" && grep -q "${SIDS[beta]}" "$T_TMP/beta.log" && ! grep -q "${SIDS[beta]}" "$T_TMP/alpha.log"'
kill -TERM "$WA" "$WB"
wait "$WA"
ra=$?
wait "$WB"
rb=$?
STATUS="$ra $rb" BODY= check "both workers exit 0 on TERM" eq "$ra$rb" 00
finish
