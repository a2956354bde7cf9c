# A real PostgreSQL 15 (Debian's postgresql-15) for tests, in a temporary directory: initdb
# as the postgres user when we are root (initdb refuses root), a free loopback port,
# password (SCRAM) authentication over TCP for the role airlock, trust for the superuser
# on the directory's socket only. Source it after common.sh.
#
#   pg_skip_reason            prints why PostgreSQL cannot run here (empty: it can)
#   pg_require                SKIP (77) with that reason, or pg_start with cleanup on exit
#   pg_start                  sets PG_PORT, PG_URL (no password in it), PG_PASSWORD
#   pg_psql SQL [DB]          runs SQL as the superuser through the socket
#   pg_stop / pg_start_again  stop (immediate) and start the same cluster
#   pg_enable_tls             a test CA and a server certificate for localhost; TLS on,
#                             restarted; sets PG_CA (the CA's PEM)
PG_BIN=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
[ -x "$PG_BIN/initdb" ] || PG_BIN=/usr/lib/postgresql/15/bin

pg_skip_reason() {
	if [ ! -x "$PG_BIN/initdb" ]; then
		echo "no PostgreSQL server (apt-get install postgresql-15)"
	elif [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
		echo "running as root and no postgres user to run initdb as"
	fi
}

# pg_require: for an integration test (lib/common.sh sourced first): SKIP (exit 77) with
# the reason when no PostgreSQL can be started here; else starts one, with pg_cleanup and
# common.sh's cleanup on exit.
pg_require() {
	local why
	why=$(pg_skip_reason)
	if [ -n "$why" ]; then
		echo "SKIP: $why"
		exit 77
	fi
	trap 'pg_cleanup; cleanup' EXIT
	pg_start
}

pg_as() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_start() {
	PG_DIR=$(mktemp -d)
	[ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR"
	pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth-local=trust \
		--auth-host=scram-sha-256 -E UTF8 --no-instructions >"$PG_DIR/initdb.log" 2>&1 ||
		{ cat "$PG_DIR/initdb.log"; exit 1; }
	PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	pg_as sh -c "cat >>'$PG_DIR/data/postgresql.conf'" <<-CONF
		listen_addresses = '127.0.0.1'
		port = $PG_PORT
		unix_socket_directories = '$PG_DIR'
		fsync = off
	CONF
	pg_start_again
	PG_PASSWORD=pw-$RANDOM$RANDOM-secret
	pg_psql "CREATE ROLE airlock LOGIN PASSWORD '$PG_PASSWORD'" postgres >/dev/null
	pg_psql "CREATE DATABASE airlock OWNER airlock" postgres >/dev/null
	PG_URL="postgresql://airlock@127.0.0.1:$PG_PORT/airlock"
	T_PG_STARTED=1
}

pg_start_again() {
	pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 60 start >/dev/null ||
		{ cat "$PG_DIR/log"; exit 1; }
}

pg_stop() {
	pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1
}

pg_enable_tls() {
	local t="$PG_DIR/tls"
	mkdir -p "$t"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=airlock-test-ca -keyout "$t/ca.key" -out "$t/ca.pem" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
		-keyout "$t/server.key" -out "$t/server.csr" 2>/dev/null
	printf 'subjectAltName=DNS:localhost\n' >"$t/ext"
	openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" \
		-CAcreateserial -days 2 -extfile "$t/ext" -out "$t/server.pem" 2>/dev/null
	chmod 600 "$t/server.key"
	[ "$(id -u)" = 0 ] && chown -R postgres: "$t"
	pg_as sh -c "cat >>'$PG_DIR/data/postgresql.conf'" <<-CONF
		ssl = on
		ssl_cert_file = '$t/server.pem'
		ssl_key_file = '$t/server.key'
	CONF
	pg_stop
	pg_start_again
	PG_CA=$t/ca.pem
}

pg_psql() {
	psql -h "$PG_DIR" -p "$PG_PORT" -U postgres -d "${2:-airlock}" -v ON_ERROR_STOP=1 -qAt \
		-c "$1"
}

pg_cleanup() {
	if [ -n "${T_PG_STARTED:-}" ]; then
		pg_stop
		rm -rf "$PG_DIR"
	fi
}
