#!/usr/bin/env bash
# Runs every libFuzzer target of a -Dfuzz=true build for SECONDS each, starting from a
# copy of its corpus (the repo's corpus stays as committed). Prints one line per target
# and exits non-zero if any target crashed.
#   tests/fuzz/run-fuzz.sh BUILD_DIR [SECONDS]
set -u
build=$1
secs=${2:-10}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
ran=0
for bin in "$build"/tests/fuzz/fuzz_*; do
	name=$(basename "$bin")
	case "$name" in *_replay | *.p) continue ;; esac
	[ -x "$bin" ] || continue
	mkdir -p "$work/$name"
	cp -r "$here/corpus/$name/." "$work/$name/" 2>/dev/null
	ran=$((ran + 1))
	if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$work/$name-" "$work/$name" >"$work/$name.log" 2>&1; then
		echo "fuzz ok   $name ($(grep -o 'Done [0-9]* runs' "$work/$name.log" | grep -o '[0-9]*' || echo '?') runs)"
	else
		echo "fuzz FAIL $name"
		tail -30 "$work/$name.log"
		failed=$((failed + 1))
	fi
done
echo "fuzzed $ran targets, $failed crashed"
[ "$ran" -gt 0 ] && [ "$failed" = 0 ]
