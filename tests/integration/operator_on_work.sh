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
printf '#!/bin/sh\nenv | grep "^AIRLOCK_" | sort >"%s/env.txt"\nexit 3\n' "$D" >"$D/on-work.sh"
chmod 755 "$D/on-work.sh"
WLOG=$T_TMP/poller.log
ANTHROPIC_ENVIRONMENT_KEY=$EK "$AIRLOCK_BIN" worker poll --environment-id "$ENV" --base-url "$BASE" \
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
finish
