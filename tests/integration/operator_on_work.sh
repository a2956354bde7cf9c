#!/usr/bin/env bash
# `poll --on-work` (issue 17, item 8): the script's exit line names the work item and
# the session, and the poller's --ca-file, --workdir, --max-idle and --log-format/-level
# reach the `airlock worker run` a script starts (as AIRLOCK_* variables, which the
# worker reads below its flags), so a script need not forward them.
. "$(dirname "$0")/lib/common.sh"
start_server
idle_session
check "a session (idle, no message) to claim" test -n "$SID"
D=$T_TMP/ow
mkdir -p "$D/wd"
mkdir -m 700 "$D/tmp"
# the script records its environment and its secret file's mode and content while it runs
printf '#!/bin/sh\nenv | grep "^AIRLOCK_\\|^ANTHROPIC_WORK_SECRET_FILE" | sort >"%s/env.txt"\nstat -c %%a "$ANTHROPIC_WORK_SECRET_FILE" >"%s/mode.txt"\ncat "$ANTHROPIC_WORK_SECRET_FILE" >"%s/secret.txt"\nexit 3\n' "$D" "$D" "$D" >"$D/on-work.sh"
chmod 755 "$D/on-work.sh"
WLOG=$T_TMP/poller.log
TMPDIR=$D/tmp ANTHROPIC_ENVIRONMENT_KEY=$EK "$AIRLOCK_BIN" worker poll --environment-id "$ENV" --base-url "$BASE" \
	--on-work "$D/on-work.sh" --workdir "$D/wd" --max-idle 7s --log-level debug 2>"$WLOG" &
W=$!
T_PIDS+=($W)
for _ in $(seq 100); do grep -q "on-work script exited" "$WLOG" && break; sleep 0.1; done
kill -TERM $W
wait $W 2>/dev/null
line=$(grep "on-work script exited" "$WLOG" | head -1)
BODY=$line STATUS=x check "the script's exit line has its status, work and session ids" \
	grep -qE "on-work script exited\"? status=3 work_id=work_[A-Za-z0-9]+ session_id=$SID signal=none" <<<"$line"
env=$(cat "$D/env.txt" 2>/dev/null)
BODY=$env STATUS=x check "the script gets the poller's workdir" grep -qx "AIRLOCK_WORKDIR=$D/wd" <<<"$env"
BODY=$env STATUS=x check "... its --max-idle" grep -qx "AIRLOCK_MAX_IDLE=7000ms" <<<"$env"
BODY=$env STATUS=x check "... its log format and level" eval 'grep -qx "AIRLOCK_LOG_FORMAT=text" <<<"$env" && grep -qx "AIRLOCK_LOG_LEVEL=debug" <<<"$env"'
BODY=$env STATUS=x check "the script gets its item's secret as a file" \
	grep -q "^ANTHROPIC_WORK_SECRET_FILE=$D/tmp/airlock-work-[A-Za-z0-9]*/secret$" <<<"$env"
BODY=$(cat "$D/mode.txt" 2>/dev/null) STATUS=x check "... readable by its owner only" eq "$(cat "$D/mode.txt" 2>/dev/null)" 600
tok=$(python3 -c 'import base64,json,sys; s=open(sys.argv[1]).read().strip(); print(json.loads(base64.urlsafe_b64decode(s+"="*(-len(s)%4)))["sessions_token"][:8])' "$D/secret.txt" 2>/dev/null)
BODY=$tok STATUS=x check "... holding the work secret (a sessions token)" eq "$tok" "alk_req_"
BODY=$(ls -A "$D/tmp") STATUS=x check "the secret file is gone once the script ended" eq "$(ls -A "$D/tmp")" ""
# and the worker reads them (check, like run, below its flags)
out=$(AIRLOCK_WORKDIR=$T_TMP/nowhere ANTHROPIC_ENVIRONMENT_KEY=$EK "$AIRLOCK_BIN" worker check \
	--environment-id "$ENV" --base-url "$BASE" --unsandboxed 2>&1)
BODY=$out STATUS=x check "the worker takes its workdir from AIRLOCK_WORKDIR" \
	grep -q "workdir $T_TMP/nowhere is not a writable directory" <<<"$out"
out=$(AIRLOCK_WORKDIR=$T_TMP/nowhere ANTHROPIC_ENVIRONMENT_KEY=$EK "$AIRLOCK_BIN" worker check \
	--environment-id "$ENV" --base-url "$BASE" --unsandboxed --workdir "$D/wd" 2>&1)
BODY=$out STATUS=x check "--workdir still wins over it" eval '! grep -q "nowhere" <<<"$out"'
out=$(AIRLOCK_MAX_IDLE=soon "$AIRLOCK_BIN" worker check --environment-id "$ENV" 2>&1)
rc=$?
STATUS=$rc BODY=$out check "a bad AIRLOCK_MAX_IDLE is a configuration error (2)" eq "$rc" 2

# end to end with the shipped example script: a sandboxed `worker run` per item runs the
# tool, and nothing of the secret is left
chmod 711 "$T_TMP" "$D" && mkdir -m 777 "$D/wd2" && mkdir -m 700 "$D/tmp2"
probe=$(ANTHROPIC_ENVIRONMENT_KEY=$EK "$AIRLOCK_BIN" worker check --environment-id "$ENV" \
	--base-url "$BASE" --workdir "$D/wd2" 2>&1)
if grep -q "^fail " <<<"$probe"; then
	echo "skip - the example script end to end: sandboxes cannot be created here ($(grep -m1 '^fail ' <<<"$probe"))"
	finish
	exit
fi
printf '[{"content":[{"type":"tool_use","name":"bash","input":{"command":"echo example-script-ran"}}]},{"content":[{"type":"text","text":"done"}]}]' >"$D/turns.json"
"$AIRLOCK_BIN" mock-model --listen 127.0.0.1:0 --script "$D/turns.json" 2>"$T_TMP/mock.log" &
T_PIDS+=($!)
for _ in $(seq 100); do MP=$(sed -nE 's/.*listening port=([0-9]+).*/\1/p' "$T_TMP/mock.log"); [ -n "$MP" ] && break; sleep 0.05; done
kill "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
start_server AIRLOCK_MODEL_BASE_URL="http://127.0.0.1:$MP"
req testkey POST /v1/agents '{"name":"b","model":"m","tools":[{"type":"agent_toolset_20260401"}]}'
AG2=$(jget 'j["id"]')
req testkey POST /v1/sessions "{\"agent\":\"$AG2\",\"environment_id\":\"$ENV\"}"
SID2=$(jget 'j["id"]')
req testkey POST "/v1/sessions/$SID2/events" '{"events":[{"type":"user.message","content":[{"type":"text","text":"go"}]}]}'
check "a message for the example script's session" eq "$STATUS" 200
WLOG2=$T_TMP/poller2.log
TMPDIR=$D/tmp2 ANTHROPIC_ENVIRONMENT_KEY=$EK "$AIRLOCK_BIN" worker poll --environment-id "$ENV" --base-url "$BASE" \
	--on-work "$AIRLOCK_SRCDIR/docs/worker/on-work.sh" --workdir "$D/wd2" --max-idle 2s 2>"$WLOG2" &
W2=$!
T_PIDS+=($W2)
for _ in $(seq 300); do grep -q "on-work script exited.*session_id=$SID2" "$WLOG2" && break; sleep 0.1; done
kill -TERM $W2
wait $W2 2>/dev/null
req testkey GET "/v1/sessions/$SID2/events?limit=100"
res=$(jget '[e for e in j["data"] if e["type"]=="user.tool_result"][0]["content"][0]["text"].strip()')
check "the example script's run ran the tool in its sandbox" eq "$res" example-script-ran
BODY=$(grep "on-work script exited" "$WLOG2") STATUS=x check "the script ended with status 0 (released after --max-idle)" \
	grep -q "on-work script exited\"* status=0 .*session_id=$SID2" "$WLOG2"
BODY=$(ls -A "$D/tmp2") STATUS=x check "no secret file is left" eq "$(ls -A "$D/tmp2")" ""
finish
