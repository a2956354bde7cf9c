#!/bin/bash
# Runs one interop test file with every server it starts on a real PostgreSQL (the
# interop-pg suite): starts PostgreSQL 15 in a temporary directory
# (tests/integration/lib/postgres.sh), tells tests/interop/lib/server.mjs where it is,
# runs the command, stops it. Exit 77 (skip, with the reason) where PostgreSQL cannot run.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../integration/lib/postgres.sh"
why=$(pg_skip_reason)
if [ -n "$why" ]; then
	echo "skip: $why"
	exit 77
fi
trap pg_cleanup EXIT
pg_start
export AIRLOCK_TEST_PG_PORT=$PG_PORT AIRLOCK_TEST_PG_SOCKET=$PG_DIR PGPASSWORD=$PG_PASSWORD
"$@"
