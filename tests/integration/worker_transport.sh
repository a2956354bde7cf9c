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
# expect WHAT TRANSPORT-PATTERN STATUS [VAR=VALUE...]: `worker check` in a clean environment
# plus those variables logs the transport and exits with STATUS
expect() {
	local what=$1 pat=$2 want=$3 out rc
	shift 3
	out=$($clean "$@" "$AIRLOCK_BIN" worker check --environment-id "$ENV" --base-url "$BASE" 2>&1)
	rc=$?
	STATUS=$rc BODY=$out check "$what: transport logged" grep -q "\"outbound http\" $pat" <<<"$out"
	STATUS=$rc BODY=$out check "$what: check exit status" eq "$rc" "$want"
}

expect "no proxy" "transport=native proxy_variable=none" 0
# the dead proxy is really used: check fails
expect "http_proxy" "transport=curl proxy_variable=http_proxy" 1 http_proxy=$DEAD
expect "NO_PROXY covers the host" "transport=native" 0 ALL_PROXY=$DEAD NO_PROXY=localhost,127.0.0.1
expect "an https proxy, http base" "transport=native" 0 HTTPS_PROXY=$DEAD

# Without libcurl on the system (hidden by a bind mount in a private mount namespace) the
# native worker still works, and a curl client says what is missing.
libpath() { ldconfig -p | sed -n "s/.*$1 (libc6,x86-64) => //p" | head -1; }
# hide LIBRARY_PATH COMMAND...: runs COMMAND with that library file replaced by /dev/null
hide() { unshare -m sh -c 'mount --bind /dev/null "$0" && exec "$@"' "$@"; }
LIBCURL=$(libpath 'libcurl\.so\.4')
LIBSSL=$(libpath 'libssl\.so\.3')
if [ -n "$LIBCURL" ] && unshare -m true 2>/dev/null; then
	nocurl() { hide "$LIBCURL" "$@"; }
	out=$(nocurl $clean "$AIRLOCK_BIN" worker check --environment-id "$ENV" --base-url "$BASE" 2>&1)
	rc=$?
	STATUS=$rc BODY=$out check "no libcurl: the native worker reaches the server" eq "$rc" 0
	out=$(nocurl $clean http_proxy=$DEAD "$AIRLOCK_BIN" worker check --environment-id "$ENV" --base-url "$BASE" 2>&1)
	STATUS=x BODY=$out check "no libcurl: a curl client says what is missing" grep -q 'libcurl.so.4 not found: apt-get install libcurl4' <<<"$out"
else
	echo "skip: no-libcurl cases: ${LIBCURL:+no mount namespace here (unshare -m fails)}${LIBCURL:-no libcurl.so.4 to hide}"
fi

# https: the native transport verifies the server against --ca-file, by IP and by name
# (localhost may resolve to ::1 first, where nothing listens: the next address is tried)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
	-addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$T_TMP/tls.key" \
	-out "$T_TMP/tls.pem" 2>/dev/null
mkdir -p "$T_TMP/tls-data"
env AIRLOCK_DATA_DIR="$T_TMP/tls-data" AIRLOCK_API_KEY=testkey "$AIRLOCK_BIN" server \
	--listen 127.0.0.1:0 --tls-cert "$T_TMP/tls.pem" --tls-key "$T_TMP/tls.key" 2>"$T_TMP/tls.log" &
T_PIDS+=($!)
for _ in $(seq 200); do
	TP=$(sed -n 's/.*listening .*port=\([0-9]*\).*/\1/p' "$T_TMP/tls.log" | head -1)
	[ -n "$TP" ] && break
	sleep 0.05
done
tls_check() { $clean "$AIRLOCK_BIN" worker check --environment-id "$ENV" --base-url "$@" 2>&1; }
# that server does not know the key: a 401 means TLS and HTTP both worked
out=$(tls_check "https://127.0.0.1:$TP" --ca-file "$T_TMP/tls.pem")
STATUS=x BODY=$out check "https by IP, trusted: an HTTP answer" grep -q "status 401" <<<"$out"
out=$(tls_check "https://localhost:$TP" --ca-file "$T_TMP/tls.pem")
STATUS=x BODY=$out check "https by name, trusted: an HTTP answer" grep -q "status 401" <<<"$out"
out=$(tls_check "https://127.0.0.1:$TP")
STATUS=x BODY=$out check "https, not in the system store: no HTTP answer" grep -q "status 0:" <<<"$out"
STATUS=x BODY=$out check "https, not in the system store: the reason is named" \
	grep -q "TLS certificate verification failed" <<<"$out"

# Without libssl (OpenSSL is loaded on first use): plain http still works, https says
# what is missing.
if [ -n "$LIBSSL" ] && unshare -m true 2>/dev/null; then
	out=$(hide "$LIBSSL" $clean "$AIRLOCK_BIN" worker check --environment-id "$ENV" --base-url "$BASE" 2>&1)
	rc=$?
	STATUS=$rc BODY=$out check "no libssl: an http worker reaches the server" eq "$rc" 0
	out=$(hide "$LIBSSL" $clean "$AIRLOCK_BIN" worker check --environment-id "$ENV" \
		--base-url "https://127.0.0.1:$TP" --ca-file "$T_TMP/tls.pem" 2>&1)
	STATUS=x BODY=$out check "no libssl: https names the missing library" \
		grep -q 'libssl.so.3 not found: apt-get install libssl3' <<<"$out"
else
	echo "skip: no-libssl cases: ${LIBSSL:+no mount namespace here (unshare -m fails)}${LIBSSL:-no libssl.so.3 to hide}"
fi

finish
