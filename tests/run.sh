#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs dependencies, builds a
# release configuration and an ASan+UBSan configuration, runs every suite in both, and
# ends with the line "N passed, N failed" (CI reads it).
#
#   tests/run.sh            everything
#   tests/run.sh --quick    release build only, no sanitizer pass
set -u
cd "$(dirname "$0")/.."
top=$(pwd)
quick=0
[ "${1:-}" = "--quick" ] && quick=1

tools/deps.sh || { echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0

# Adds the results of one meson test run (its testlog.json) to the totals.
count() {
	local log="$1/meson-logs/testlog.json"
	[ -f "$log" ] || { failed=$((failed + 1)); return; }
	read -r p f < <(python3 - "$log" <<'PY'
import json, sys
p = f = 0
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    r = json.loads(line).get("result")
    if r in ("OK", "EXPECTEDFAIL"):
        p += 1
    elif r != "SKIP":
        f += 1
print(p, f)
PY
)
	passed=$((passed + p))
	failed=$((failed + f))
}

# build DIR [meson options...]
build() {
	local dir="$1"
	shift
	if [ ! -d "$dir" ]; then
		meson setup "$dir" "$@" >"$top/$dir.setup.log" 2>&1 || { cat "$top/$dir.setup.log"; return 1; }
	fi
	ninja -C "$dir" >"$top/$dir.build.log" 2>&1 || { tail -50 "$top/$dir.build.log"; return 1; }
}

# The release pass runs every suite.
if build build-test --buildtype=debugoptimized; then
	meson test -C build-test --no-rebuild --print-errorlogs --num-processes 2 \
		--timeout-multiplier 2
	count build-test
else
	echo "release build failed" >&2
	failed=$((failed + 1))
fi

# The sanitizer pass runs the suites that exercise our C code directly; interop tests
# drive the same binaries through node and double the runtime for little extra signal.
if [ "$quick" = 0 ]; then
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	if build build-asan --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false; then
		meson test -C build-asan --no-rebuild --print-errorlogs --num-processes 2 \
			--timeout-multiplier 4 --suite unit --suite integration --suite fuzz \
			--suite sandbox
		count build-asan
	else
		echo "sanitizer build failed" >&2
		failed=$((failed + 1))
	fi
fi

# Brief fuzzing with libFuzzer (clang), every target from its committed corpus.
if [ "$quick" = 0 ]; then
	if CC=clang build build-fuzz --buildtype=debug -Dfuzz=true -Db_sanitize=address,undefined \
		-Db_lundef=false; then
		while read -r line; do
			echo "$line"
			case "$line" in
			"fuzz ok"*) passed=$((passed + 1)) ;;
			"fuzz FAIL"*) failed=$((failed + 1)) ;;
			esac
		done < <(tests/fuzz/run-fuzz.sh build-fuzz "${AIRLOCK_FUZZ_SECONDS:-10}" 2>&1)
	else
		echo "fuzz build failed" >&2
		failed=$((failed + 1))
	fi
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
