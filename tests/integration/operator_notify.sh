#!/usr/bin/env bash
# The server speaks systemd's readiness protocol (lib/notify.c, docs/server/drain.md):
# READY=1 once it listens, STOPPING=1 when TERM starts the drain, read here from the
# datagram socket NOTIFY_SOCKET names, as systemd's Type=notify would. A NOTIFY_SOCKET
# nobody listens on is logged and the server runs on.
. "$(dirname "$0")/lib/common.sh"
SOCK=$T_TMP/notify.sock
MSGS=$T_TMP/notify.txt
# one line per datagram, newlines inside shown as '|'
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as f:
    print("bound", file=f)
    while True:
        f.write(s.recv(4096).decode().replace("\n", "|") + "\n")
' "$SOCK" "$MSGS" &
T_PIDS+=($!)
for _ in $(seq 100); do grep -q bound "$MSGS" 2>/dev/null && break; sleep 0.05; done
logged() { # FILE PATTERN: waits up to 5 s
	for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
	return 1
}

start_server NOTIFY_SOCKET="$SOCK"
BODY=$(cat "$MSGS") STATUS=x check "READY=1 once listening" logged "$MSGS" '^READY=1|STATUS=listening$'
BODY=$(cat "$MSGS") STATUS=x check "no STOPPING before TERM" eq "$(grep -c STOPPING "$MSGS")" 0
kill -TERM "$SERVER_PID"
wait "$SERVER_PID"
rc=$?
STATUS=$rc BODY= check "exit 0 after the drain" eq "$rc" 0
BODY=$(cat "$MSGS") STATUS=x check "STOPPING=1 when TERM drains" logged "$MSGS" '^STOPPING=1|STATUS=draining$'

# a socket that is not there: a warning, and the server serves
rm -f "$SOCK"
DATA_DIR=$T_TMP/data2 start_server NOTIFY_SOCKET="$SOCK"
BODY=$(tail -3 "$SERVER_LOG") STATUS=x check "an unreachable NOTIFY_SOCKET is logged" \
	grep -q 'cannot tell the service manager we are ready' "$SERVER_LOG"
req testkey GET /readyz
check "and the server is ready all the same" eq "$STATUS" 200
finish
