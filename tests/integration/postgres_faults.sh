#!/usr/bin/env bash
# The server on a real PostgreSQL 15 (tests/integration/lib/postgres.sh) when the database
# misbehaves: a wrong password (clear error, fast exit, the password in no log line), three
# replicas migrating one fresh database at once (each migration applied once, all
# serve), the database down at start (retries with backoff, then serves), and the
# database lost mid-run (503 with a clear error, /readyz out of rotation, recovery
# without a restart, nothing acknowledged lost); TLS with sslmode=verify-full against
# the right CA, refused against another.
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/postgres.sh"
pg_require

# --- a wrong password: in the URL, then in PGPASSWORD ---
bad_pw() { # NAME URL [env...]: runs a server that must refuse to start
	local name=$1 url=$2
	shift 2
	local log="$T_TMP/$name.log" rc
	env AIRLOCK_DATA_DIR="$T_TMP/$name" AIRLOCK_API_KEY=testkey AIRLOCK_DATABASE_URL="$url" "$@" \
		timeout 30 "$AIRLOCK_BIN" server --listen 127.0.0.1:0 2>"$log"
	rc=$?
	check "$name: the server exits non-zero (not a timeout)" test "$rc" != 0 -a "$rc" != 124
	check "$name: the log says the password was refused" \
		grep -q 'password authentication failed' "$log"
	check "$name: no log line holds the password" eval "! grep -q 'Wr0ng-Secret-77' '$log'"
	check "$name: no retry loop for a refused password" eval "! grep -q 'retrying' '$log'"
}
bad_pw url-password "postgresql://airlock:Wr0ng-Secret-77@127.0.0.1:$PG_PORT/airlock"
bad_pw pgpassword "$PG_URL" PGPASSWORD=Wr0ng-Secret-77

export PGPASSWORD=$PG_PASSWORD

# --- three replicas start together on a fresh database ---
pg_psql "CREATE DATABASE race OWNER airlock" postgres >/dev/null
logs=()
for i in 1 2 3; do
	log="$T_TMP/race$i.log"
	logs+=("$log")
	env AIRLOCK_DATA_DIR="$T_TMP/race$i" AIRLOCK_API_KEY=testkey \
		AIRLOCK_DATABASE_URL="postgresql://airlock@127.0.0.1:$PG_PORT/race" \
		"$AIRLOCK_BIN" server --listen 127.0.0.1:0 2>"$log" &
	T_PIDS+=($!)
done
for log in "${logs[@]}"; do
	wait_listening "$log"
	req testkey GET /v1/agents
	check "replica on $PORT serves after the concurrent migration" eq "$STATUS" 200
	check "replica on $PORT logged no error" eval "! grep -q ' error ' '$log'"
done
check "the schema version row is written once" eq "$(pg_psql 'SELECT count(*) FROM airlock_schema' race)" 1
check "every table exists once (no duplicate-object failure)" \
	eq "$(pg_psql "SELECT count(*) FROM pg_tables WHERE tablename = 'sessions'" race)" 1
for p in "${T_PIDS[@]}"; do kill "$p" 2>/dev/null; done
wait 2>/dev/null
T_PIDS=()

# --- the database is down when the server starts ---
pg_stop
log="$T_TMP/late.log"
env AIRLOCK_DATA_DIR="$T_TMP/data" AIRLOCK_API_KEY=testkey AIRLOCK_DATABASE_URL="$PG_URL" \
	AIRLOCK_DATABASE_RETRY=60 "$AIRLOCK_BIN" server --listen 127.0.0.1:0 2>"$log" &
SERVER_PID=$!
T_PIDS+=("$SERVER_PID")
for _ in $(seq 100); do
	grep -q 'database not ready; retrying' "$log" && break
	sleep 0.1
done
check "database down at start: the server says it retries" grep -q 'database not ready; retrying' "$log"
check "database down at start: the reason is logged" grep -q 'cannot connect to the database' "$log"
check "database down at start: it does not listen yet" eval "! grep -q 'server: listening' '$log'"
pg_start_again
wait_listening "$log"
check "database back: the server starts and serves" kill -0 "$SERVER_PID"
idle_session
check "database back: a session is created" eq "$STATUS" 200

# --- the database goes away while the server runs ---
pg_stop
req testkey GET "/v1/sessions/$SID"
check "database lost: a read answers 503" eq "$STATUS" 503
check "database lost: the error says the database is unreachable" \
	eval "grep -q 'database is unreachable' <<<\"\$BODY\""
req testkey POST /v1/agents '{"name":"during","model":"m"}'
check "database lost: a write answers 503, not 200" eq "$STATUS" 503
STATUS=$(curl -s -o "$T_TMP/ready" -w '%{http_code}' "$BASE/readyz")
check "database lost: /readyz answers 503" eq "$STATUS" 503
check "database lost: /readyz names the database" grep -q 'database is unreachable' "$T_TMP/ready"
check "database lost: the server is still running" kill -0 "$SERVER_PID"
pg_start_again
for _ in $(seq 50); do
	req testkey GET "/v1/sessions/$SID"
	[ "$STATUS" = 200 ] && break
	sleep 0.2
done
check "database back: the session made before the outage is there (no restart)" eq "$STATUS" 200
req testkey POST /v1/agents '{"name":"after","model":"m"}'
check "database back: writes work again" eq "$STATUS" 200
STATUS=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/readyz")
check "database back: /readyz answers 200" eq "$STATUS" 200
check "no log line holds the password" eval "! grep -qF '$PG_PASSWORD' '$log' $T_TMP/race*.log"
kill "$SERVER_PID" 2>/dev/null
wait "$SERVER_PID" 2>/dev/null

# --- TLS to the database: sslmode=verify-full passes through to libpq ---
pg_enable_tls
TLS_URL="postgresql://airlock@localhost:$PG_PORT/airlock?hostaddr=127.0.0.1&sslmode=verify-full"
log="$T_TMP/tls.log"
env AIRLOCK_DATA_DIR="$T_TMP/data" AIRLOCK_API_KEY=testkey \
	AIRLOCK_DATABASE_URL="$TLS_URL&sslrootcert=$PG_CA" \
	"$AIRLOCK_BIN" server --listen 127.0.0.1:0 2>"$log" &
T_PIDS+=($!)
wait_listening "$log"
check "verify-full with the right CA: connected over TLS" grep -q 'database connected.*ssl=on' "$log"
req testkey GET "/v1/sessions/$SID"
check "verify-full: the data is there" eq "$STATUS" 200
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=other-ca -keyout "$T_TMP/other.key" -out "$T_TMP/other.pem" 2>/dev/null
env AIRLOCK_DATA_DIR="$T_TMP/data2" AIRLOCK_API_KEY=testkey AIRLOCK_DATABASE_RETRY=0 \
	AIRLOCK_DATABASE_URL="$TLS_URL&sslrootcert=$T_TMP/other.pem" \
	timeout 30 "$AIRLOCK_BIN" server --listen 127.0.0.1:0 2>"$T_TMP/tls-bad.log"
rc=$?
check "verify-full with another CA: refused (exit $rc)" test "$rc" != 0 -a "$rc" != 124
check "verify-full with another CA: the log says why" grep -q 'certificate verify failed' "$T_TMP/tls-bad.log"
finish
