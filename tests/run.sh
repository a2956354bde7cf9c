#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs dependencies, builds a
# release configuration and an ASan+UBSan configuration, runs every suite in both, and
# ends with the line "N passed, N failed" (CI reads it), with ", N skipped" appended when
# a test or check did not apply on this host; the skips and their reasons are listed
# above it (tests/README.md lists the host probes).
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
logs=()

# Remembers one meson test run's testlog.json; tests/summary.py totals them all at the end
# (results, and every skip with its reason).
count() {
	logs+=("$2=$1/meson-logs/testlog.json")
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
	count build-test release
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
		count build-asan asan
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

# The skips with their reasons and, when the sandbox suites mostly skipped, a warning;
# then the last line: "N passed, N failed" and ", N skipped" when something was skipped.
skipped=0
if [ "${#logs[@]}" -gt 0 ]; then
	summary=$(python3 tests/summary.py "${logs[@]}") || summary="totals 0 1 0"
	echo
	echo "$summary" | grep -v '^totals '
	read -r _ p f s <<<"$(echo "$summary" | tail -1)"
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$s
fi
if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" = 0 ]
