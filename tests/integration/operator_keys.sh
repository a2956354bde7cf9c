#!/usr/bin/env bash
# `airlock keys` reads the server's configuration (issue 17, blocker 2): with data_dir in
# the YAML file and run from another directory, `keys create --server` used to create
# ./.airlock-data/airlock.db silently and print a key the server answered with 401, and
# nothing was logged. Now: --config finds the server's database, a missing database is
# an error unless --create, the server logs failed authentications (never the secret),
# `keys list` has a header and creation times, `keys revoke` confirms, and an unknown
# option says so.
. "$(dirname "$0")/lib/common.sh"
unset AIRLOCK_API_KEY # the warning below is about a server with no key at all
D=$T_TMP/op
mkdir -p "$D/etc" "$D/elsewhere"
cat >"$D/etc/server.yaml" <<YAML
listen: 127.0.0.1:0
data_dir: $D/var
YAML
LOG=$T_TMP/server.log
"$AIRLOCK_BIN" server --config "$D/etc/server.yaml" 2>"$LOG" &
T_PIDS+=($!)
wait_listening "$LOG"
cd "$D/elsewhere" || exit 1
unset AIRLOCK_DATA_DIR

# the start line names what the server runs from, and a server nobody can call says so
BODY=$(grep listening "$LOG") STATUS=x check "the start line names the config file, data dir and model URL" \
	grep -q "listening .*data_dir=$D/var config=$D/etc/server.yaml model_base_url=https://api.anthropic.com" "$LOG"
BODY=$(cat "$LOG") STATUS=x check "no API key at all: warned at start" \
	grep -q "no server API key exists: every API call will get 401" "$LOG"

# without the configuration: an error, and no database appears here
out=$("$AIRLOCK_BIN" keys create --server 2>&1)
rc=$?
STATUS=$rc BODY=$out check "no configuration: keys create refuses (exit 2)" eq "$rc" 2
STATUS=$rc BODY=$out check "no configuration: the message names the path and --config" \
	grep -q "no database at .airlock-data/airlock.db.*--config" <<<"$out"
STATUS=$rc BODY=$(ls -A) check "no configuration: nothing created in the working directory" \
	eq "$(ls -A)" ""

# with the server's configuration: a key the server accepts
KEY=$("$AIRLOCK_BIN" keys create --server --name ops --config "$D/etc/server.yaml" 2>"$T_TMP/err")
rc=$?
STATUS=$rc BODY=$(cat "$T_TMP/err") check "keys create --config: exit 0" eq "$rc" 0
STATUS=$rc BODY=$(cat "$T_TMP/err") check "keys create names the database it wrote" \
	grep -q "in $D/var/airlock.db" "$T_TMP/err"
req "$KEY" GET /v1/agents
check "the issued key is accepted by the server" eq "$STATUS" 200
STATUS=x BODY=$(ls -A) check "still nothing created in the working directory" eq "$(ls -A)" ""

# the environment is the server's too
KEY2=$(AIRLOCK_DATA_DIR=$D/var "$AIRLOCK_BIN" keys create --server 2>/dev/null)
req "$KEY2" GET /v1/agents
check "AIRLOCK_DATA_DIR is honoured like the server's" eq "$STATUS" 200

# list: header, creation times
out=$("$AIRLOCK_BIN" keys list --config "$D/etc/server.yaml" 2>&1)
BODY=$out STATUS=x check "keys list has a header" grep -qE '^ID +KIND +ENVIRONMENT +NAME +CREATED +REVOKED' <<<"$out"
BODY=$out STATUS=x check "keys list shows the creation time" \
	grep -qE '^apikey_[A-Za-z0-9]+ +server +- +ops +[0-9]{4}-[0-9]{2}-[0-9]{2}T' <<<"$out"
ID=$(awk '$4 == "ops" {print $1}' <<<"$out")

# failed authentications are logged, without the secret
WRONG=alk_srv_definitelynotakey0123456789
req "$WRONG" GET /v1/agents
check "a wrong key gets 401" eq "$STATUS" 401
sleep 0.2
line=$(grep 'authentication failed' "$LOG" | tail -1)
BODY=$line STATUS=x check "the server logs the failed authentication" \
	grep -q 'credential="server key" reason="no such key in this server.s database"' <<<"$line"
BODY=$line STATUS=x check "the log line names the route template" grep -q 'route=/v1/agents' <<<"$line"
BODY=$line STATUS=x check "the secret is not logged" eval '! grep -qF "$WRONG" "$LOG"'
curl -s -o /dev/null "$BASE/v1/agents"
sleep 0.2
BODY=$(tail -3 "$LOG") STATUS=x check "a request without a credential is logged too" \
	grep -q 'credential=none reason="no credential"' "$LOG"

# revoke confirms; the key then fails, and the log names the revoked key's id
out=$("$AIRLOCK_BIN" keys revoke "$ID" --config "$D/etc/server.yaml" 2>&1)
BODY=$out STATUS=$? check "keys revoke confirms" eq "$out" "revoked $ID"
req "$KEY" GET /v1/agents
check "the revoked key gets 401" eq "$STATUS" 401
sleep 0.2
BODY=$(tail -2 "$LOG") STATUS=x check "the log says it was revoked, and which" \
	grep -q "reason=\"revoked key\" key_id=$ID" "$LOG"
BODY=x STATUS=x check "the revoked key is not logged" eval '[ -n "$KEY" ] && ! grep -qF "$KEY" "$LOG"'

# argument errors
out=$("$AIRLOCK_BIN" keys create --server --bogus 2>&1)
rc=$?
STATUS=$rc BODY=$out check "an unknown option exits 2" eq "$rc" 2
STATUS=$rc BODY=$out check "an unknown option says so" grep -q "unknown option '--bogus'" <<<"$out"
out=$("$AIRLOCK_BIN" keys create --name 2>&1)
STATUS=$? BODY=$out check "a missing value says so" grep -q "option --name needs a value" <<<"$out"

# --create makes a new database where asked
NEWKEY=$("$AIRLOCK_BIN" keys create --server --create --data-dir "$D/new" 2>/dev/null)
STATUS=x BODY=$NEWKEY check "--create makes a new database" test -s "$D/new/airlock.db"
finish
