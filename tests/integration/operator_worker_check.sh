#!/usr/bin/env bash
# `airlock worker check` makes the workdir checks `poll` makes (issue 17, item 7): a
# workdir whose parent the worker's unprivileged user cannot search used to pass check,
# and poll then refused to start. Both now refuse it with the same message.
. "$(dirname "$0")/lib/common.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (the worker drops to its own user only as root)"; exit 77; }
start_server
req testkey POST /v1/environments '{"name":"c","config":{"type":"self_hosted"}}'
ENV=$(jget 'j["id"]')
req testkey POST "/v1/environments/$ENV/keys" '{"name":"w"}'
export ANTHROPIC_ENVIRONMENT_KEY=$(jget 'j["key"]')
chmod 711 "$T_TMP"
mkdir -m 700 "$T_TMP/closed" && mkdir -m 777 "$T_TMP/closed/work"
mkdir -m 711 "$T_TMP/open" && mkdir -m 777 "$T_TMP/open/work"
W=("$AIRLOCK_BIN" worker)
A=(--environment-id "$ENV" --base-url "$BASE")

out=$("${W[@]}" check "${A[@]}" --workdir "$T_TMP/closed/work" 2>&1)
rc=$?
STATUS=$rc BODY=$out check "check: an unreachable workdir fails the check" test "$rc" -ne 0
STATUS=$rc BODY=$out check "check: it says which directory and why" \
	grep -q "workdir $T_TMP/closed/work: $T_TMP/closed is not searchable by user" <<<"$out"
out=$(timeout 20 "${W[@]}" poll "${A[@]}" --workdir "$T_TMP/closed/work" 2>&1)
rc=$?
STATUS=$rc BODY=$out check "poll: refuses the same workdir" test "$rc" -ne 0 -a "$rc" -ne 124
STATUS=$rc BODY=$out check "poll: with the same message" \
	grep -q "workdir $T_TMP/closed/work: $T_TMP/closed is not searchable by user" <<<"$out"

out=$("${W[@]}" check "${A[@]}" --workdir "$T_TMP/open/work" 2>&1)
STATUS=x BODY=$out check "check: a reachable workdir is reported as such" \
	grep -q "check: workdir $T_TMP/open/work reachable by user" <<<"$out"
STATUS=x BODY=$out check "check: and not refused" eval '! grep -q "is not searchable" <<<"$out"'

# the monitor's change to a sessions dir the operator made is logged (item 7)
mkdir -m 777 "$T_TMP/open/work2" && mkdir -m 755 "$T_TMP/open/work2/sessions"
chown 65534:65534 "$T_TMP/open/work2/sessions"
"${W[@]}" poll "${A[@]}" --workdir "$T_TMP/open/work2" 2>"$T_TMP/poll.log" &
P=$!
for _ in $(seq 100); do grep -q "worker polling\|cannot start" "$T_TMP/poll.log" && break; sleep 0.1; done
kill -TERM $P 2>/dev/null
wait $P 2>/dev/null
if grep -q "worker polling" "$T_TMP/poll.log"; then
	BODY=$(cat "$T_TMP/poll.log") STATUS=x check "poll: the sessions dir it changed is logged" \
		grep -q "changed the workspace root's sessions dir\" root=$T_TMP/open/work2 now=\"uid 0 gid 0 mode 0711\" was=\"uid 65534 gid 65534 mode 0755\"" "$T_TMP/poll.log"
	STATUS=x BODY=$(stat -c '%u %g %a' "$T_TMP/open/work2/sessions") check "poll: the sessions dir is root's and 0711" \
		eq "$(stat -c '%u %g %a' "$T_TMP/open/work2/sessions")" "0 0 711"
else
	echo "skip - the sessions dir change: the sandbox monitor does not start here ($(tail -1 "$T_TMP/poll.log"))"
fi
finish
