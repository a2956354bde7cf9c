#!/usr/bin/env bash
# The soak on several replicas (issue 13): a real PostgreSQL 15 in a temporary directory
# (bench/lib.sh), then bench/soak.mjs with --replicas 3 behind a round-robin proxy and one
# replica SIGKILLed a minute in. Arguments go on to soak.mjs (e.g. --sessions 200
# --duration 60 --kill-one-at 20). Prints "skipped: <reason>" without PostgreSQL.
set -u
cd "$(dirname "$0")/.."
top=$(pwd)
BIN=${AIRLOCK_BIN:-$top/build-bench/src/airlock}
tmp=$(mktemp -d)
. bench/lib.sh
trap pg_cleanup EXIT
pg_usable || exit 0
pg_start || exit 1
AIRLOCK_DATABASE_URL=$dburl AIRLOCK_BIN=$BIN tests/interop/run-node.sh bench/soak.mjs \
	--replicas 3 --kill-one-at 60 "$@"
