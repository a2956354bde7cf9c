# What the shell benchmarks share (run.sh, drain_bench.sh, queue_backends.sh,
# replicas_bench.sh): a server on a free loopback port, its API, a session to hold streams
# on, and a PostgreSQL to put servers on. Sourced after BIN (the airlock binary) and tmp
# (a directory removed at exit) are set.

# start_server LOG [VAR=VALUE...]: airlock server with a fresh data directory under $tmp,
# API key benchkey and the given variables; sets port and spid once it logs "listening"
# (10 s at most). On failure the log goes to stderr and it returns 1.
start_server() {
	local log=$1
	shift
	env AIRLOCK_DATA_DIR="$tmp/data-$RANDOM" AIRLOCK_API_KEY=benchkey "$@" \
		"$BIN" server --listen 127.0.0.1:0 2>"$log" >/dev/null &
	spid=$!
	port=
	for _ in $(seq 200); do
		port=$(sed -n 's/.*listening .*port=\([0-9]*\).*/\1/p' "$log" | head -1)
		[ -n "$port" ] && return 0
		sleep 0.05
	done
	echo "server did not start:" >&2
	cat "$log" >&2
	return 1
}

api() { # METHOD PATH [BODY]
	curl -s -X "$1" "http://127.0.0.1:$port$2" -H "x-api-key: benchkey" \
		-H 'content-type: application/json' ${3:+-d "$3"}
}

# new_session: a self-hosted environment, an agent and a session on the server at $port;
# sets sid.
new_session() {
	local env_id agent_id
	env_id=$(api POST /v1/environments '{"name":"b","config":{"type":"self_hosted"}}' | sed -n 's/.*"id":"\(env_[^"]*\)".*/\1/p')
	agent_id=$(api POST /v1/agents '{"name":"b","model":"claude-bench"}' | sed -n 's/.*"id":"\(agent_[^"]*\)".*/\1/p')
	sid=$(api POST /v1/sessions "{\"agent\":\"$agent_id\",\"environment_id\":\"$env_id\"}" | sed -n 's/.*"id":"\(sesn_[^"]*\)".*/\1/p')
}

# A real PostgreSQL 15 for the benchmarks on it (queue_backends.sh, replicas_bench.sh):
# initdb in $tmp/pg, loopback only, fsync on as in production.
pgbin=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
pgdata=$tmp/pg
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# pg_usable: 0 when $BIN has the PostgreSQL store and a server can be started here;
# otherwise prints the "skipped: ..." reason and returns 1.
pg_usable() {
	if ! "$BIN" server --help 2>&1 | grep -q AIRLOCK_DATABASE_URL; then
		echo "skipped: this airlock has no PostgreSQL store (AIRLOCK_DATABASE_URL)"
		return 1
	fi
	if ! [ -x "$pgbin/initdb" ] || { [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; }; then
		echo "skipped: no PostgreSQL server to start (apt-get install postgresql-15)"
		return 1
	fi
}

# pg_start: starts it with an empty database "airlock"; sets dburl. The caller's exit
# trap is pg_cleanup.
pg_start() {
	chmod 755 "$tmp"
	[ "$(id -u)" = 0 ] && chown postgres "$tmp"
	as_pg "$pgbin/initdb" -D "$pgdata" -U postgres --auth-host=trust --auth-local=trust \
		-E UTF8 --no-instructions >/dev/null || return 1
	local pgport=$((20000 + RANDOM % 20000))
	printf "listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n" \
		"$pgport" "$tmp" >>"$pgdata/postgresql.conf"
	as_pg "$pgbin/pg_ctl" -D "$pgdata" -l "$tmp/pg.log" -w -t 60 start >/dev/null || {
		cat "$tmp/pg.log" >&2
		return 1
	}
	psql -h 127.0.0.1 -p "$pgport" -U postgres -qAt -c 'CREATE DATABASE airlock' >/dev/null ||
		return 1
	dburl="postgresql://postgres@127.0.0.1:$pgport/airlock"
}

pg_stop() {
	[ -f "$pgdata/postmaster.pid" ] &&
		as_pg "$pgbin/pg_ctl" -D "$pgdata" -m immediate -w stop >/dev/null 2>&1
}

# pg_cleanup: exit trap of a script that started PostgreSQL: its background jobs (servers),
# the database, $tmp.
pg_cleanup() {
	kill $(jobs -p) 2>/dev/null
	wait 2>/dev/null
	pg_stop
	rm -rf "$tmp"
}
