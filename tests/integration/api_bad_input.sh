#!/usr/bin/env bash
# Bad input against the resource routes of a real `airlock server` on loopback:
# malformed JSON, wrong types, unknown fields, an oversized body, bad ids, bad
# cursors and wrong credentials. Every request must get its documented error, and
# after each one the stored agents, environments and sessions must be unchanged.
set -u

BIN=${AIRLOCK_BIN:?AIRLOCK_BIN not set}
TMP=$(mktemp -d)
KEY="test_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PASS=0
FAIL=0
SRV_PID=

cleanup() {
	[ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null && wait "$SRV_PID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

AIRLOCK_DATA_DIR="$TMP/data" AIRLOCK_API_KEY="$KEY" "$BIN" server --listen 127.0.0.1:0 \
	2>"$TMP/server.log" &
SRV_PID=$!
PORT=
for _ in $(seq 1 100); do
	PORT=$(sed -n 's/.*listening.* port=\([0-9]*\).*/\1/p' "$TMP/server.log" | head -n1)
	[ -n "$PORT" ] && break
	sleep 0.1
done
if [ -z "$PORT" ]; then
	echo "server did not start:"
	cat "$TMP/server.log"
	exit 1
fi
URL="http://127.0.0.1:$PORT"

# req METHOD PATH [BODY] [extra curl args...] → sets CODE and BODY_OUT.
req() {
	local method=$1 path=$2 body=${3-}
	shift 3 2>/dev/null || shift $#
	local args=(-s -o "$TMP/out" -w '%{http_code}' -X "$method" -H "content-type: application/json")
	if [ -n "$body" ]; then
		args+=(--data-binary "$body")
	fi
	CODE=$(curl "${args[@]}" "$@" "$URL$path")
	BODY_OUT=$(cat "$TMP/out" 2>/dev/null)
}
api() { req "$1" "$2" "${3-}" -H "x-api-key: $KEY"; }

ok() {
	PASS=$((PASS + 1))
	echo "ok   $1"
}
bad() {
	FAIL=$((FAIL + 1))
	echo "FAIL $1"
	echo "     status=$CODE body=${BODY_OUT:0:300}"
}

# expect NAME STATUS [ERROR_TYPE [MESSAGE_SUBSTRING]]
expect() {
	local name=$1 status=$2 type=${3-} msg=${4-}
	if [ "$CODE" != "$status" ]; then
		bad "$name (want $status)"
		return
	fi
	if [ -n "$type" ] && ! grep -q "\"type\":\"$type\"" <<<"$BODY_OUT"; then
		bad "$name (want error type $type)"
		return
	fi
	if [ -n "$msg" ] && ! grep -qF -- "$msg" <<<"$BODY_OUT"; then
		bad "$name (want message containing '$msg')"
		return
	fi
	ok "$name"
}

snapshot() {
	local out=$1
	: >"$out"
	for p in "/v1/agents?include_archived=true&limit=1000" \
		"/v1/environments?include_archived=true&limit=1000" \
		"/v1/sessions?include_archived=true&limit=1000" \
		"/v1/agents/$AGENT/versions?limit=1000" "/v1/sessions/$SESSION/events?limit=1000"; do
		curl -s -H "x-api-key: $KEY" "$URL$p" >>"$out"
		echo >>"$out"
	done
}

unchanged() {
	snapshot "$TMP/after"
	if cmp -s "$TMP/before" "$TMP/after"; then
		ok "  ...and nothing changed"
	else
		FAIL=$((FAIL + 1))
		echo "FAIL   ...state changed after: $1"
		diff "$TMP/before" "$TMP/after" | head -5
	fi
}

# expect + unchanged
check() {
	expect "$@"
	unchanged "$1"
}

field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" <<<"$BODY_OUT" | head -n1; }

# --- fixtures ---
api POST /v1/agents '{"name":"fixture","model":"claude-opus-4-8","tools":[{"type":"agent_toolset_20260401"}]}'
AGENT=$(sed -n 's/^{"type":"agent","id":"\([^"]*\)".*/\1/p' <<<"$BODY_OUT")
api POST /v1/environments '{"name":"fixture"}'
ENV=$(sed -n 's/.*"id":"\(env_[^"]*\)".*/\1/p' <<<"$BODY_OUT")
api POST /v1/environments '{"name":"other"}'
ENV2=$(sed -n 's/.*"id":"\(env_[^"]*\)".*/\1/p' <<<"$BODY_OUT")
api POST /v1/sessions "{\"agent\":\"$AGENT\",\"environment_id\":\"$ENV\"}"
SESSION=$(sed -n 's/.*"id":"\(sesn_[^"]*\)".*/\1/p' <<<"$BODY_OUT")
api POST "/v1/environments/$ENV/keys" '{}'
ENVKEY=$(field key)
api POST "/v1/environments/$ENV2/keys" '{}'
ENVKEY2=$(field key)
if [ -z "$AGENT" ] || [ -z "$ENV" ] || [ -z "$SESSION" ] || [ -z "$ENVKEY" ] || [ -z "$ENVKEY2" ]; then
	echo "fixtures failed: agent=$AGENT env=$ENV session=$SESSION"
	cat "$TMP/server.log"
	exit 1
fi
snapshot "$TMP/before"

# --- malformed JSON ---
api POST /v1/agents '{"name":"x","model":'
check "agents: truncated JSON" 400 invalid_request_error "invalid JSON"
api POST /v1/sessions "{\"agent\":\"$AGENT\" \"environment_id\":\"$ENV\"}"
check "sessions: missing comma" 400 invalid_request_error
api POST /v1/environments '[{"name":"x"}]'
check "environments: array body" 400 invalid_request_error "JSON object"
api POST /v1/agents '{"name":"x","name":"y","model":"m"}'
check "agents: duplicate keys" 400 invalid_request_error
api POST /v1/agents $'{"name":"x\xff\xfe","model":"m"}'
check "agents: invalid UTF-8" 400 invalid_request_error
api POST /v1/agents ''
check "agents: empty body" 400 invalid_request_error

# --- wrong types ---
api POST /v1/agents '{"name":5,"model":"claude-opus-4-8"}'
check "agents: name is a number" 400 invalid_request_error "name"
api POST /v1/agents '{"name":"x","model":["claude"]}'
check "agents: model is an array" 400 invalid_request_error "model"
api POST /v1/agents '{"name":"x","model":{"id":"m","effort":"extreme"}}'
check "agents: unknown effort" 400 invalid_request_error "model.effort"
api POST /v1/agents '{"name":"x","model":"m","tools":"bash"}'
check "agents: tools is a string" 400 invalid_request_error "tools"
api POST /v1/agents '{"name":"x","model":"m","tools":[{"type":"agent_toolset_20260401","default_config":{"permission_policy":{"type":"sometimes"}}}]}'
check "agents: unknown permission policy" 400 invalid_request_error "tools[0].default_config.permission_policy.type"
api POST /v1/agents '{"name":"x","model":"m","tools":[{"type":"agent_toolset_20260401","configs":[{"name":"bash","enabled":"yes"}]}]}'
check "agents: enabled is a string" 400 invalid_request_error "enabled"
api POST /v1/agents '{"name":"x","model":"m","metadata":{"k":1}}'
check "agents: metadata value is a number" 400 invalid_request_error "invalid_metadata"
api POST /v1/agents '{"name":"x","model":"m","skills":[{"type":"anthropic","skill_id":"pdf"}]}'
check "agents: prebuilt pdf skill" 400 invalid_request_error "skills[0].skill_id"
api POST "/v1/agents/$AGENT" '{"version":"1","name":"y"}'
check "agents: version is a string" 400 invalid_request_error "version"
api POST "/v1/agents/$AGENT" '{"version":7,"name":"y"}'
check "agents: stale version" 409 invalid_request_error
api POST /v1/environments '{"name":"x","config":{"type":5}}'
check "environments: config.type is a number" 400 invalid_request_error "config.type"
api POST /v1/environments '{"name":"x","config":{"type":"cloud"}}'
check "environments: cloud config" 400 invalid_request_error "self-hosted"
api POST "/v1/environments/$ENV" '{"config":{"type":"cloud"}}'
check "environments: config type change" 400 invalid_request_error "invalid_config_type_change"
api POST /v1/sessions "{\"agent\":5,\"environment_id\":\"$ENV\"}"
check "sessions: agent is a number" 400 invalid_request_error "agent"
api POST /v1/sessions "{\"agent\":\"$AGENT\",\"environment_id\":\"$ENV\",\"title\":[]}"
check "sessions: title is an array" 400 invalid_request_error "title"
api POST /v1/sessions "{\"agent\":\"$AGENT\",\"environment_id\":\"$ENV\",\"budget\":{\"type\":\"limit\",\"max_list_cost\":{\"amount\":2500,\"currency\":\"USD\"}}}"
check "sessions: budget amount is a number" 400 invalid_request_error "amount"
api POST /v1/sessions "{\"agent\":\"$AGENT\",\"environment_id\":\"$ENV\",\"initial_events\":[{\"type\":\"user.message\",\"content\":[{\"type\":\"text\",\"text\":\"ok\"}]},{\"type\":\"user.message\",\"content\":\"not blocks\"}]}"
check "sessions: second initial event invalid (all-or-nothing)" 400 invalid_request_error "initial_events[1].content"
api POST /v1/sessions "{\"agent\":\"$AGENT\",\"environment_id\":\"$ENV\",\"resources\":[{\"type\":\"github_repository\",\"url\":\"https://github.com/a/b\"}]}"
check "sessions: github resource on self-hosted" 400 invalid_request_error "is a self-hosted environment"
api POST "/v1/sessions/$SESSION" '{"title":7}'
check "sessions: update title is a number" 400 invalid_request_error "title"
api POST "/v1/sessions/$SESSION" '{"vault_ids":["vlt_abc"]}'
check "sessions: update vault_ids" 400 invalid_request_error "vault_ids"

# --- unknown fields ---
api POST /v1/agents '{"name":"x","model":"m","temperature":1}'
check "agents: unknown top-level field" 400 invalid_request_error "temperature"
api POST /v1/agents '{"name":"x","model":"m","tools":[{"type":"custom","name":"t","description":"d","input_schema":{"type":"object"},"strict":true}]}'
check "agents: unknown field in a custom tool" 400 invalid_request_error "tools[0].strict"
api POST /v1/environments '{"name":"x","region":"eu"}'
check "environments: unknown field" 400 invalid_request_error "region"
api POST /v1/sessions "{\"agent\":\"$AGENT\",\"environment_id\":\"$ENV\",\"priority\":1}"
check "sessions: unknown field" 400 invalid_request_error "priority"

# --- oversized body (cap is 32 MiB) ---
{
	printf '{"name":"big","model":"m","system":"'
	head -c $((33 * 1024 * 1024)) /dev/zero | tr '\0' 'a'
	printf '"}'
} >"$TMP/big.json"
CODE=$(curl -s -o "$TMP/out" -w '%{http_code}' -H "x-api-key: $KEY" -H "content-type: application/json" \
	--data-binary @"$TMP/big.json" "$URL/v1/agents")
BODY_OUT=$(cat "$TMP/out")
rm -f "$TMP/big.json"
check "agents: 33 MiB body" 413 invalid_request_error

# --- bad ids ---
api GET /v1/agents/agent_doesnotexist
check "agents: unknown id" 404 not_found_error
api GET "/v1/agents/$AGENT?version=0"
check "agents: version=0" 400 invalid_request_error "version"
api GET "/v1/agents/$AGENT?version=99"
check "agents: missing version" 404 not_found_error
api POST /v1/agents/agent_doesnotexist/archive
check "agents: archive unknown id" 404 not_found_error
api GET /v1/environments/env_doesnotexist
check "environments: unknown id" 404 not_found_error "environment_not_found"
api DELETE /v1/environments/env_doesnotexist
check "environments: delete unknown id" 404 not_found_error
api GET "/v1/sessions/..%2F..%2Fetc"
check "sessions: junk id" 404 not_found_error
api GET /v1/sessions/sesn_doesnotexist
check "sessions: unknown id" 404 not_found_error
api DELETE /v1/sessions/sesn_doesnotexist
check "sessions: delete unknown id" 404 not_found_error
api POST /v1/sessions "{\"agent\":\"$AGENT\",\"environment_id\":\"env_doesnotexist\"}"
check "sessions: unknown environment" 404 not_found_error "environment_not_found"
api POST /v1/sessions "{\"agent\":\"agent_doesnotexist\",\"environment_id\":\"$ENV\"}"
check "sessions: unknown agent" 404 not_found_error
api POST /v1/sessions "{\"agent\":{\"type\":\"agent\",\"id\":\"$AGENT\",\"version\":42},\"environment_id\":\"$ENV\"}"
check "sessions: unknown agent version" 404 not_found_error
api DELETE "/v1/environments/$ENV"
check "environments: delete with sessions" 409 invalid_request_error

# --- bad cursors and query values ---
api GET "/v1/agents?page=%25%25%25"
check "agents: garbage cursor" 400 invalid_request_error "page"
api GET "/v1/agents?page=$(printf 'x999' | base64)"
check "agents: forged cursor" 400 invalid_request_error "page"
api GET "/v1/sessions?page=$(printf 'sqz12' | base64)"
check "sessions: forged cursor" 400 invalid_request_error "page"
api GET "/v1/agents?limit=0"
check "agents: limit=0" 400 invalid_request_error "limit"
api GET "/v1/sessions?limit=5000"
check "sessions: limit too large" 400 invalid_request_error "limit"
api GET "/v1/sessions?statuses%5B%5D=sleeping"
check "sessions: unknown status filter" 400 invalid_request_error "statuses"
api GET "/v1/sessions?created_at%5Bgte%5D=yesterday"
check "sessions: bad created_at" 400 invalid_request_error "created_at[gte]"
api GET "/v1/environments?include_archived=maybe"
check "environments: bad include_archived" 400 invalid_request_error "include_archived"
api GET "/v1/sessions?order=sideways"
check "sessions: bad order" 400 invalid_request_error "order"

# --- wrong credentials ---
req GET /v1/agents ''
check "no credentials" 401 authentication_error
req POST /v1/agents '{"name":"x","model":"m"}' -H "x-api-key: wrong"
check "wrong API key" 401 authentication_error
req POST /v1/agents '{"name":"x","model":"m"}' -H "Authorization: Bearer wrong"
check "wrong bearer" 401 authentication_error
req POST /v1/agents '{"name":"x","model":"m"}' -H "Authorization: Bearer $ENVKEY"
check "environment key cannot create agents" 403 permission_error
req POST /v1/sessions "{\"agent\":\"$AGENT\",\"environment_id\":\"$ENV\"}" -H "Authorization: Bearer $ENVKEY"
check "environment key cannot create sessions" 403 permission_error
req GET "/v1/sessions/$SESSION" '' -H "Authorization: Bearer $ENVKEY2"
check "other environment's key: session hidden" 404 not_found_error
req DELETE "/v1/sessions/$SESSION" '' -H "Authorization: Bearer $ENVKEY"
check "environment key cannot delete sessions" 403 permission_error
req GET "/v1/sessions/$SESSION" '' -H "Authorization: Bearer $ENVKEY"
check "own environment's key reads the session" 200

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
