#!/usr/bin/env bash
# A server whose audit log cannot be written (AIRLOCK_AUDIT_FILE=/dev/full: every write
# fails with ENOSPC) refuses to act unaudited: the failed write is logged, API requests
# that change state get 503 before they run, reads still work, and /readyz takes it out
# of rotation. (Recovery once the file takes writes again: unit-server-test_audit.)
. "$(dirname "$0")/lib/common.sh"
if ! [ -c /dev/full ] || printf x 2>/dev/null >/dev/full; then
	echo "SKIP: no /dev/full that fails writes with ENOSPC here"
	exit 77
fi
start_server AIRLOCK_AUDIT_FILE=/dev/full

STATUS=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/readyz")
check "ready before anything was refused" eq "$STATUS" 200
req wrong-key GET /v1/agents
check "a bad key is still answered 401" eq "$STATUS" 401
check "its audit record's failed write is logged" grep -q "AUDIT LOG WRITE FAILED" "$SERVER_LOG"
req testkey POST /v1/agents '{"name":"a","model":"m"}'
check "a state change is refused with 503" eq "$STATUS" 503
check "saying why" eq "$(jget 'j["error"]["message"]')" \
	"the audit log cannot be written; refusing to act unaudited"
req testkey GET /v1/agents
check "nothing was created, and reads still work" eq "$(jget 'len(j["data"])')" 0
STATUS=$(curl -s -o "$T_TMP/ready" -w '%{http_code}' "$BASE/readyz")
BODY=$(cat "$T_TMP/ready")
check "/readyz says not ready" eq "$STATUS" 503
check "because of the audit log" grep -q "audit log" "$T_TMP/ready"
finish
