#!/usr/bin/env bash
# Bans the C library calls our style forbids (curl's checksrc idea): unbounded copies and
# formats, strtok's hidden state, and the integer parsers that cannot report errors.
# Use snprintf / struct buf, parse_uint(), and explicit tokenizing instead.
# Prints every offending line and exits 1 if there is one.
set -u
cd "$(dirname "$0")/.."
banned='\b(strcpy|strcat|stpcpy|sprintf|vsprintf|strtok|gets|atoi|atol|atoll|atof|sscanf|vsscanf)[[:space:]]*\('
hits=$(git ls-files -co --exclude-standard -- '*.c' '*.h' | grep -v '^tests/interop/node_modules/' |
	xargs grep -nE "$banned" 2>/dev/null | grep -vE '\b(snprintf|vsnprintf)\b' || true)
if [ -n "$hits" ]; then
	echo "banned functions (see tools/checksrc.sh):"
	echo "$hits"
	exit 1
fi
echo "checksrc: no banned functions"
