#!/bin/sh
# An --on-work script: one `airlock worker run` per work item, which runs the item's
# tools in their own sandbox. `airlock worker poll --on-work /path/to/on-work.sh`
# starts it with (docs/worker/protocol.md, step 4):
#   ANTHROPIC_WORK_ID, ANTHROPIC_SESSION_ID, ANTHROPIC_ENVIRONMENT_ID, ANTHROPIC_BASE_URL
#   ANTHROPIC_WORK_SECRET_FILE  the item's secret, 0600; the poller removes it when this
#                               script ends
#   ANTHROPIC_ENVIRONMENT_KEY   the environment key (the run below does not need it)
#   AIRLOCK_WORKDIR, AIRLOCK_MAX_IDLE, AIRLOCK_LOG_FORMAT, AIRLOCK_LOG_LEVEL and, with
#   --ca-file, AIRLOCK_CA_FILE: the poller's settings, which `worker run` reads
# and the work JSON on stdin (not needed here: the secret is in the file).
# Put per-item setup (a container, a VM, a cgroup) around the exec below.
set -eu
# The run authenticates with the sessions token from the secret alone: a sandbox that
# is broken out of then holds a credential for this one session, not the environment.
unset ANTHROPIC_ENVIRONMENT_KEY
exec "${AIRLOCK_BIN:-airlock}" worker run
