#!/usr/bin/env bash
# The CLI convention, walked over every command and subcommand (issue 17, items 11-12):
# `--help` and `-h` exit 0 with the subcommand's own text, an unknown option exits 2 with
# "unknown option" (and never as "needs a value"), a known option without its value says
# so with 2, and `airlock version`/`--version` print the version. The command list comes
# from `airlock --help`, so a new command this test does not know fails it.
. "$(dirname "$0")/lib/common.sh"
declare -A SUBS=(
	[server]="" [worker]="poll run check" [gateway]="" [keys]="create revoke list"
	[mock-model]="" [policy]="check explain" [audit]="verify export"
)
# a known option that takes a value, per command line (for the "needs a value" check)
declare -A VALUED=(
	[server]=--listen [worker poll]=--workdir [worker run]=--work-id [worker check]=--base-url
	[gateway]=--config [keys create]=--name [keys revoke]=--data-dir [keys list]=--config
	[mock-model]=--script [policy explain]=--file [audit verify]=--anchor [audit export]=--since
)
cd "$T_TMP" || exit 1 # nothing here may touch the source tree

listed=$("$AIRLOCK_BIN" --help | sed -n 's/^  \([a-z-]*\)  .*/\1/p')
for c in $listed; do
	[ "$c" = version ] && continue
	STATUS=x BODY=$c check "command '$c' is known to this test" test -n "${SUBS[$c]+x}"
done

for c in "${!SUBS[@]}"; do
	lines=("$c")
	for s in ${SUBS[$c]}; do lines+=("$c $s"); done
	for l in "${lines[@]}"; do
		for h in --help -h; do
			out=$("$AIRLOCK_BIN" $l $h 2>&1)
			rc=$?
			STATUS=$rc BODY=${out:0:200} check "airlock $l $h exits 0" eq "$rc" 0
			# its own text: the usage line names this command line (the command alone
			# may list its subcommands)
			STATUS=$rc BODY=${out:0:200} check "airlock $l $h shows its own usage" \
				grep -q "^usage: airlock $l\b" <<<"$out"
		done
		[ -n "${SUBS[$c]}" ] && [ "$l" = "$c" ] && continue # a bare command with subcommands
		out=$("$AIRLOCK_BIN" $l --no-such-flag 2>&1)
		rc=$?
		STATUS=$rc BODY=${out:0:200} check "airlock $l --no-such-flag exits 2" eq "$rc" 2
		STATUS=$rc BODY=${out:0:200} check "airlock $l --no-such-flag says unknown option" \
			grep -q "airlock $l: unknown option '--no-such-flag'" <<<"$out"
		out=$("$AIRLOCK_BIN" $l --no-such-flag value 2>&1)
		STATUS=x BODY=${out:0:200} check "airlock $l --no-such-flag value: still unknown option" \
			grep -q "unknown option '--no-such-flag'" <<<"$out"
		if [ -n "${VALUED[$l]+x}" ]; then
			out=$("$AIRLOCK_BIN" $l "${VALUED[$l]}" 2>&1)
			rc=$?
			STATUS=$rc BODY=${out:0:200} check "airlock $l ${VALUED[$l]} (no value) exits 2" eq "$rc" 2
			STATUS=$rc BODY=${out:0:200} check "airlock $l ${VALUED[$l]} (no value) says so" \
				grep -q "option ${VALUED[$l]} needs a value" <<<"$out"
		fi
	done
done

# every environment variable a role's sources read is named in its --help (item 14)
declare -A SRC=([server]="src/server" [worker]="src/worker" [gateway]="src/gateway")
for c in "${!SRC[@]}"; do
	help=$("$AIRLOCK_BIN" $c --help 2>&1)
	for s in ${SUBS[$c]}; do help+=$("$AIRLOCK_BIN" $c $s --help 2>&1); done
	vars=$(grep -rhoE '(getenv|env_str|env_uint|env_or_null)\("(AIRLOCK|ANTHROPIC)_[A-Z_]+"' \
		"$AIRLOCK_SRCDIR/${SRC[$c]}" | sed -E 's/.*"(.*)"/\1/' | sort -u)
	STATUS=x BODY=${SRC[$c]} check "the $c sources read some variable (the scan works)" test -n "$vars"
	for v in $vars; do
		STATUS=x BODY=$v check "airlock $c --help names $v" grep -q "$v" <<<"$help"
	done
done

V=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$AIRLOCK_SRCDIR/meson.build" | head -1)
for v in version --version -V; do
	out=$("$AIRLOCK_BIN" $v 2>&1)
	rc=$?
	STATUS=$rc BODY=$out check "airlock $v prints the version" eq "$out" "airlock $V"
done
out=$("$AIRLOCK_BIN" --no-such-flag 2>&1)
STATUS=$? BODY=${out:0:200} check "airlock --no-such-flag: unknown option, exit 2" \
	grep -q "airlock: unknown option '--no-such-flag'" <<<"$out"
finish
