#!/usr/bin/env bash
# What the worker says about an outage (issue 17, item 18): an item whose force-stop
# failed was logged "result=done"; a poll that reaches nothing "status=0 error=I/O error:
# ..."; now the item says "stop failed", the poll says the server cannot be reached and
# what to try, "poll recovered" (with how long it was out) follows once the server is
# back, and the worker ends with an exit line.
. "$(dirname "$0")/lib/common.sh"
start_server
idle_session
check "a session (idle, no message) to claim" test -n "$SID"
P=$PORT
mkdir -p "$T_TMP/work" && chmod 711 "$T_TMP" && chmod 777 "$T_TMP/work"
WLOG=$T_TMP/worker.log
ANTHROPIC_ENVIRONMENT_KEY=$EK "$AIRLOCK_BIN" worker poll --environment-id "$ENV" \
	--base-url "http://127.0.0.1:$P" --workdir "$T_TMP/work" --unsandboxed --max-idle 2s 2>"$WLOG" &
W=$!
T_PIDS+=($W)
logged() { for _ in $(seq 100); do grep -q "$1" "$WLOG" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
BODY=$(tail -3 "$WLOG") STATUS=x check "the idle session is claimed" logged '"lease held"'
kill "$SERVER_PID" # the idle release's force-stop then reaches nothing
wait "$SERVER_PID" 2>/dev/null
BODY=$(tail -3 "$WLOG") STATUS=x check "an item whose force-stop failed is not 'done'" \
	logged '"work item finished" .*result="stop failed"'
BODY=$(tail -3 "$WLOG") STATUS=x check "an unreachable server is said so, with the URL" \
	logged "poll failed: cannot reach the server, backing off\" base_url=http://127.0.0.1:$P"
BODY=$(tail -3 "$WLOG") STATUS=x check "with what to try" \
	grep -q 'hint="nothing listens there: is the server running, and is --base-url right?"' "$WLOG"
BODY=$(tail -3 "$WLOG") STATUS=x check "no 'status=0' in the message" eval '! grep -q "status=0" "$WLOG"'
env AIRLOCK_DATA_DIR="$DATA_DIR" AIRLOCK_API_KEY=testkey "$AIRLOCK_BIN" server \
	--listen "127.0.0.1:$P" 2>"$T_TMP/server2.log" &
T_PIDS+=($!)
BODY=$(tail -3 "$WLOG") STATUS=x check "the end of the outage is logged" \
	logged 'poll recovered" failed_polls=[0-9]* outage_s=[0-9]*'
kill -TERM $W
wait $W
rc=$?
STATUS=$rc BODY=$(tail -2 "$WLOG") check "the worker exits 0 on TERM" eq "$rc" 0
BODY=$(tail -2 "$WLOG") STATUS=x check "with an exit line" grep -q 'worker exiting" exit_status=0 mode=poll' "$WLOG"
finish
