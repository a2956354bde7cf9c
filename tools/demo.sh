#!/usr/bin/env bash
# The main job on one machine: builds airlock, starts `airlock server` (SQLite in
# .airlock-data/) and `airlock worker` (sandboxed tools in .airlock-workspace/, never beside
# the server's database and vault key: a session's files stay off the data dir), creates
# an agent, a self-hosted environment and a session, sends one message and prints the
# session's events as they stream. The agent runs on Claude when ANTHROPIC_API_KEY is set,
# otherwise on `airlock mock-model`, a scripted stand-in (clearly labelled below).
# Server and worker keep running until Ctrl-C.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
if [ "${1:-}" = "bank" ]; then
	# The flagship governance scenario (README "Governance demo"): OIDC users, the tool
	# policy, agent identity through a tunnel to PostgreSQL, the audit log. Runs and exits.
	tools/deps.sh
	[ -d build ] || meson setup build --buildtype=release >/dev/null
	ninja -C build >/dev/null
	exec env AIRLOCK_BIN="$top/build/src/airlock" tests/interop/run-node.sh tools/bank-demo.mjs
fi
tools/deps.sh --no-npm
[ -d build ] || meson setup build --buildtype=release >/dev/null
ninja -C build >/dev/null
BIN=$top/build/src/airlock
PORT=${AIRLOCK_PORT:-8400}
export AIRLOCK_DATA_DIR=${AIRLOCK_DATA_DIR:-$top/.airlock-data}
WORKDIR=${AIRLOCK_DEMO_WORKDIR:-$top/.airlock-workspace}
mkdir -p "$AIRLOCK_DATA_DIR" "$WORKDIR"
chmod 0711 "$WORKDIR" # a root worker drops to its own uid, which must reach it
keyfile=$AIRLOCK_DATA_DIR/api-key
[ -s "$keyfile" ] || (umask 077 && openssl rand -hex 24 >"$keyfile")
export AIRLOCK_API_KEY=$(cat "$keyfile")
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT INT TERM

if [ -n "${ANTHROPIC_API_KEY:-}" ]; then
	MODEL=${AIRLOCK_DEMO_MODEL:-claude-opus-4-8}
	echo "demo: model = Claude ($MODEL) via the Anthropic API"
	PROMPT="Create fizzbuzz.py in the workspace that prints FizzBuzz for 1..15, run it with python3, then list the workspace with glob."
else
	MODEL=scripted-demo
	echo "demo: ANTHROPIC_API_KEY is not set."
	echo "demo: model = SCRIPTED STAND-IN (airlock mock-model replaying tests/scripts/six-tools.yaml)."
	echo "demo: it is not a model; every tool call below still runs for real in the sandbox."
	"$BIN" mock-model --listen 127.0.0.1:0 --script tests/scripts/six-tools.yaml \
		--port-file "$AIRLOCK_DATA_DIR/mock.port" 2>"$AIRLOCK_DATA_DIR/mock-model.log" &
	pids+=($!)
	for _ in $(seq 100); do [ -s "$AIRLOCK_DATA_DIR/mock.port" ] && break; sleep 0.05; done
	export AIRLOCK_MODEL_BASE_URL=http://127.0.0.1:$(cat "$AIRLOCK_DATA_DIR/mock.port")
	PROMPT="Exercise the six tools."
fi

"$BIN" server --listen "127.0.0.1:$PORT" 2>"$AIRLOCK_DATA_DIR/server.log" &
pids+=($!)
for _ in $(seq 100); do grep -q listening "$AIRLOCK_DATA_DIR/server.log" && break; sleep 0.05; done
BASE=http://127.0.0.1:$PORT
api() { curl -sf -X "$1" "$BASE$2" -H "x-api-key: $AIRLOCK_API_KEY" \
	-H 'content-type: application/json' ${3:+-d "$3"}; }
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

env_id=$(api POST /v1/environments '{"name":"demo","config":{"type":"self_hosted"}}' | field id)
agent_id=$(api POST /v1/agents "{\"name\":\"demo\",\"model\":\"$MODEL\",\"system\":\"You work in /workspace.\",\"tools\":[{\"type\":\"agent_toolset_20260401\",\"default_config\":{\"permission_policy\":{\"type\":\"always_allow\"}}}]}" | field id)
env_key=$(api POST "/v1/environments/$env_id/keys" '{"name":"demo-worker"}' | field key)
session_id=$(api POST /v1/sessions "{\"agent\":\"$agent_id\",\"environment_id\":\"$env_id\",\"title\":\"demo\"}" | field id)
echo "demo: server $BASE  environment $env_id  session $session_id"

ANTHROPIC_ENVIRONMENT_KEY=$env_key "$BIN" worker poll --environment-id "$env_id" \
	--base-url "$BASE" --workdir "$WORKDIR" 2>"$AIRLOCK_DATA_DIR/worker.log" &
pids+=($!)

# Open the stream first, then send the message (the documented order).
curl -sN "$BASE/v1/sessions/$session_id/events/stream" -H "x-api-key: $AIRLOCK_API_KEY" |
	while IFS= read -r line; do
		case "$line" in
		data:*) echo "${line#data: }" | cut -c1-200 ;;
		esac
		case "$line" in *'"stop_reason":{"type":"end_turn"}'*) break ;; esac
	done &
stream=$!
sleep 0.3
api POST "/v1/sessions/$session_id/events" \
	"{\"events\":[{\"type\":\"user.message\",\"content\":[{\"type\":\"text\",\"text\":\"$PROMPT\"}]}]}" >/dev/null
wait $stream || true
echo
echo "demo: done. Workspace: $AIRLOCK_DATA_DIR/workspace. Logs: $AIRLOCK_DATA_DIR/*.log"
echo "demo: the server stays up on $BASE (API key in $keyfile); the SDK works against it with"
echo "      ANTHROPIC_BASE_URL=$BASE ANTHROPIC_API_KEY=\$(cat $keyfile). Ctrl-C stops everything."
wait
