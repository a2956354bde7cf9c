#!/usr/bin/env bash
# The worker's outbound transport: its own HTTP/1.1 client by default, libcurl when a
# proxy variable applies to --base-url (and not when NO_PROXY covers the host), observed
# through `airlock worker check` against a real server: the start log and whether a dead
# proxy was really used.
. "$(dirname "$0")/lib/common.sh"
start_server
K=testkey
req $K POST /v1/environments '{"name":"t","config":{"type":"self_hosted"}}'
ENV=$(jget 'j["id"]')
req $K POST "/v1/environments/$ENV/keys" '{"name":"w"}'
export ANTHROPIC_ENVIRONMENT_KEY=$(jget 'j["key"]')
DEAD=http://127.0.0.1:9 # discard port: nothing listens on loopback there
clean="env -u http_proxy -u HTTP_PROXY -u https_proxy -u HTTPS_PROXY -u all_proxy -u ALL_PROXY -u no_proxy -u NO_PROXY"
W() { $clean "$@" "$AIRLOCK_BIN" worker check --environment-id "$ENV" --base-url "$BASE" 2>&1; }

out=$(W)
rc=$?
STATUS=$rc BODY=$out check "no proxy: native transport logged" grep -q '"outbound http" transport=native proxy_variable=none' <<<"$out"
STATUS=$rc BODY=$out check "no proxy: the server is reached" eq "$rc" 0

out=$(W http_proxy=$DEAD)
rc=$?
STATUS=$rc BODY=$out check "http_proxy: curl transport logged" grep -q '"outbound http" transport=curl proxy_variable=http_proxy' <<<"$out"
STATUS=$rc BODY=$out check "http_proxy: the dead proxy is used, so check fails" eq "$rc" 1

out=$(W ALL_PROXY=$DEAD NO_PROXY=localhost,127.0.0.1)
rc=$?
STATUS=$rc BODY=$out check "NO_PROXY covers the host: native again" grep -q 'transport=native' <<<"$out"
STATUS=$rc BODY=$out check "NO_PROXY covers the host: the server is reached" eq "$rc" 0

out=$(W HTTPS_PROXY=$DEAD)
rc=$?
STATUS=$rc BODY=$out check "an https proxy does not apply to an http base" grep -q 'transport=native' <<<"$out"
STATUS=$rc BODY=$out check "…and the server is reached" eq "$rc" 0

finish
