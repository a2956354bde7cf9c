#!/usr/bin/env bash
# The data directory's files are the owner's alone (issue 17, item 3): with umask 022 and
# a data directory made 0755 beforehand, airlock.db, -wal and -shm used to be 0644 —
# readable by every local user, with every transcript and the tunnel tokens in clear.
# Now they are 0600 (a file left 0644 is tightened at start, and that is logged), and a
# data directory open to others is warned about.
. "$(dirname "$0")/lib/common.sh"
umask 022
DATA_DIR=$T_TMP/data
mkdir -m 755 "$DATA_DIR"
start_server
req testkey POST /v1/environments '{"name":"m","config":{"type":"self_hosted"}}'
check "a write succeeds" eq "$STATUS" 200
mode() { stat -c %a "$1" 2>/dev/null || echo missing; }
for f in airlock.db airlock.db-wal airlock.db-shm; do
	STATUS=$(mode "$DATA_DIR/$f") BODY= check "$f is 0600" eq "$(mode "$DATA_DIR/$f")" 600
done
BODY=$(cat "$SERVER_LOG") STATUS=x check "the open data directory is warned about" \
	grep -q "data directory is open to other users; chmod 700 it\" dir=$DATA_DIR mode=0755" "$SERVER_LOG"

# the keys command with --create, elsewhere: the same modes
"$AIRLOCK_BIN" keys create --server --create --data-dir "$T_TMP/new" >/dev/null 2>&1
STATUS=$(mode "$T_TMP/new") BODY= check "a data directory the keys command creates is 0700" eq "$(mode "$T_TMP/new")" 700
STATUS=$(mode "$T_TMP/new/airlock.db") BODY= check "its database is 0600" eq "$(mode "$T_TMP/new/airlock.db")" 600

# a database left 0644 by an older version is tightened at start
kill "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
chmod 644 "$DATA_DIR/airlock.db"
chmod 700 "$DATA_DIR"
start_server
req testkey GET /v1/environments
check "the restarted server answers" eq "$STATUS" 200
STATUS=$(mode "$DATA_DIR/airlock.db") BODY= check "a 0644 database is made 0600 at start" eq "$(mode "$DATA_DIR/airlock.db")" 600
BODY=$(cat "$SERVER_LOG") STATUS=x check "the change is logged" grep -q "database file was open to others; now 0600\" path=$DATA_DIR/airlock.db was=0644" "$SERVER_LOG"
BODY=$(cat "$SERVER_LOG") STATUS=x check "a 0700 data directory is not warned about" eval '! grep -q "data directory is open" "$SERVER_LOG"'
finish
