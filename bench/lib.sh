# What the shell benchmarks share (run.sh, drain_bench.sh, queue_backends.sh): a server
# on a free loopback port, its API, and a session to hold streams on. Sourced after BIN
# (the airlock binary) and tmp (a directory removed at exit) are set.

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
