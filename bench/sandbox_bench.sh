#!/usr/bin/env bash
# Sandbox speed: new sandbox + /bin/true vs bwrap --unshare-all, and echo in a live sandbox.
# Prints p50/p99 and ratios measured in the same run (no pass/fail). Needs root (cgroups).
#   bench/sandbox_bench.sh [BUILD_DIR] [RUNS]
set -eu
cd "$(dirname "$0")/.."
build="${1:-build-bench}"
[ -d "$build" ] || meson setup "$build" --buildtype=release >/dev/null
ninja -C "$build" tests/sandbox/sandbox_bench >/dev/null
exec "$build/tests/sandbox/sandbox_bench" "${2:-100}"
