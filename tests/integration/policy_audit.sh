#!/usr/bin/env bash
# `airlock policy check/explain` on policy files this script writes (summaries, refusals
# with FILE:LINE, decisions with their rule), and `airlock audit verify` on an audit chain
# written by an independent implementation (Python's json + hashlib, following
# docs/server/audit.md), then edited, cut, padded and shuffled.
. "$(dirname "$0")/lib/common.sh"
A=$AIRLOCK_BIN
D=$T_TMP/policy
mkdir -p "$D"
cd "$D" || exit 1

# run CMD...: sets STATUS (exit code) and BODY (stdout and stderr)
run() {
	BODY=$("$@" 2>&1)
	STATUS=$?
}

cat >policy.yaml <<'EOF'
default: deny
roles:
  admin: [platform-admins]
  developer: [engineers]
rules:
  - id: auditors-tools
    effect: allow
    groups: [auditors]
    tools: [bash, read, grep, "mcp__ledger__*"]
  - id: no-intern-shell
    effect: deny
    groups: [interns]
    tools: [bash]
  - id: ledger-writes-ask
    effect: ask
    agents: [ledger-auditor]
    tools: ["mcp__ledger__post*"]
EOF

run "$A" policy check policy.yaml
check "check: a good file exits 0" eq "$STATUS" 0
check "check: the summary counts rules by effect" grep -qF "policy.yaml: ok: 3 rules (1 allow, 1 ask, 1 deny), default deny; roles: 1 admin, 1 developer, 0 user groups" <<<"$BODY"

# expect_refused DESCRIPTION FILE MESSAGE: check exits 2 with exactly that first line
expect_refused() {
	run "$A" policy check "$2"
	check "check refuses $1: exit 2" eq "$STATUS" 2
	check "check refuses $1: $3" eq "$(head -1 <<<"$BODY")" "$3"
}
printf 'default: deny\nrules:\n  - id: a\n    effect: allow\n    tools: [bash]\n    group: [x]\n' >unknown.yaml
expect_refused "an unknown key" unknown.yaml "unknown.yaml:6: rule 'a': unknown key 'group'"
printf 'rules:\n  - id: a\n    effect: allow\n    tools: [bash]\n  - id: a\n    effect: deny\n    tools: [read]\n' >dup.yaml
expect_refused "a duplicate id" dup.yaml "dup.yaml:5: rules: duplicate id 'a' (first used on line 2)"
printf 'rules:\n  - id: a\n    effect: allow\n    tools:\n      - read\n      - "mcp__db__[a-"\n' >glob.yaml
expect_refused "a bad glob" glob.yaml "glob.yaml:6: rule 'a': tools: 'mcp__db__[a-': unterminated '[' in tool pattern"
printf 'rules:\n  - id: a\n    effect: allow\n    tools: []\n' >empty.yaml
expect_refused "an empty tool list" empty.yaml "empty.yaml:4: rule 'a': tools: must be a non-empty list (omit the key to match any)"
printf 'rules:\n  - id: a\n    effect: permit\n    tools: [bash]\n' >effect.yaml
expect_refused "an unknown effect" effect.yaml "effect.yaml:3: rule 'a': effect: must be allow, ask or deny"
run "$A" policy check missing.yaml
check "check: a missing file exits 2 and says why" eval '[ "$STATUS" = 2 ] && grep -q "missing.yaml: No such file" <<<"$BODY"'
run "$A" policy check --help
check "policy check --help exits 0 with usage" eval '[ "$STATUS" = 0 ] && grep -q "^usage: airlock policy check FILE" <<<"$BODY"'
run "$A" policy explain -h
check "policy explain -h exits 0 with usage" eval '[ "$STATUS" = 0 ] && grep -q "airlock policy explain --file FILE" <<<"$BODY"'

run "$A" policy explain --file policy.yaml --user u1 --groups staff,interns,auditors --tool bash --tool read
check "explain: exit 0" eq "$STATUS" 0
check "explain: deny overrides allow, rule and line named" grep -qxF "bash: deny by no-intern-shell (policy.yaml:10)" <<<"$BODY"
check "explain: every matching rule listed" eval 'grep -qF "matched allow auditors-tools (policy.yaml:6)" <<<"$BODY" && grep -qF "matched deny  no-intern-shell (policy.yaml:10)" <<<"$BODY"'
check "explain: read allowed" grep -qxF "read: allow by auditors-tools (policy.yaml:6)" <<<"$BODY"
run "$A" policy explain --file policy.yaml --user u2 --groups auditors --agent ledger-auditor --tool mcp__ledger__post_entry --tool mcp__ledger__list
check "explain: ask overrides allow for one agent" grep -qxF "mcp__ledger__post_entry: ask by ledger-writes-ask (policy.yaml:14)" <<<"$BODY"
check "explain: the glob allows the other ledger tool" grep -qxF "mcp__ledger__list: allow by auditors-tools (policy.yaml:6)" <<<"$BODY"
run "$A" policy explain --file policy.yaml --user u3 --groups engineers --tool grep
check "explain: no rule, the default; role from the group" eval 'grep -qxF "grep: deny by default" <<<"$BODY" && grep -qF "role developer" <<<"$BODY"'
run "$A" policy explain --file policy.yaml --apikey apikey_7 --tool read
check "explain: an API key is user apikey:<id>, admin, no groups" eval 'grep -qF "principal: apikey:apikey_7 (0 groups), role admin" <<<"$BODY" && grep -qxF "read: deny by default" <<<"$BODY"'
run "$A" policy explain --file policy.yaml --tool read
check "explain without a principal is a usage error" eq "$STATUS" 2
run "$A" policy explain --file dup.yaml --user u --tool read
check "explain on a bad file: exit 2 with FILE:LINE" eval '[ "$STATUS" = 2 ] && grep -q "^dup.yaml:5: " <<<"$BODY"'

# ---- audit verify, on a chain written by Python from docs/server/audit.md
python3 - <<'EOF'
import hashlib, json
def canon(o):
    return json.dumps(o, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
prev = "0" * 64
with open("audit.jsonl", "w", encoding="utf-8") as f:
    for seq in range(1, 8):
        rec = {"time": "2026-12-08T01:00:0%d.000000Z" % seq, "request_id": "req_%d" % seq,
               "principal": {"sub": "alice", "iss": "https://idp.example",
                             "groups": ["auditors", "Prüfer/Zürich"]},
               "action": "tool.call", "resources": {"session_id": "sesn_011ABC"},
               "decision": "allow", "rule": "auditors-tools", "outcome": "ok",
               "latency_ms": seq * 3, "args_sha256": hashlib.sha256(b"{}").hexdigest(),
               "note": "tab\there \"quoted\" back\\slash", "seq": seq, "prev": prev}
        h = hashlib.sha256(canon(rec).encode()).hexdigest()
        rec["hash"] = h
        f.write(canon(rec) + "\n")
        prev = h
EOF
run "$A" audit verify audit.jsonl
check "verify: an untouched chain exits 0 with the count" eval '[ "$STATUS" = 0 ] && grep -qF "audit.jsonl: ok: 7 records (seq 1..7)" <<<"$BODY"'
run "$A" audit verify - <audit.jsonl
check "verify: reads stdin" eval '[ "$STATUS" = 0 ] && grep -qF "ok: 7 records" <<<"$BODY"'

# expect_bad DESCRIPTION FILE FIRST-LINE: verify exits 1 naming the first bad record
expect_bad() {
	run "$A" audit verify "$2"
	check "verify catches $1: exit 1" eq "$STATUS" 1
	check "verify catches $1: $3" eq "$(head -1 <<<"$BODY")" "$3"
}
sed '3s/"outcome":"ok"/"outcome":"no"/' audit.jsonl >edited.jsonl
expect_bad "an edited record" edited.jsonl "edited.jsonl:3: seq 3: hash does not match the record's content (the record was edited)"
sed '4d' audit.jsonl >deleted.jsonl
expect_bad "a deleted record" deleted.jsonl "deleted.jsonl:4: seq 5: expected seq 4, found 5: records are missing (deleted) or out of order"
sed '5r /dev/stdin' audit.jsonl <<<"$(sed -n 2p audit.jsonl)" >inserted.jsonl
expect_bad "an inserted record" inserted.jsonl "inserted.jsonl:6: seq 2: expected seq 6, found 2: the record is out of order or repeated"
{ sed -n 1,2p audit.jsonl; sed -n 4p audit.jsonl; sed -n 3p audit.jsonl; sed -n '5,$p' audit.jsonl; } >reordered.jsonl
expect_bad "reordered records" reordered.jsonl "reordered.jsonl:3: seq 4: expected seq 3, found 4: records are missing (deleted) or out of order"
sed '1d' audit.jsonl >headless.jsonl
expect_bad "a deleted first record" headless.jsonl "headless.jsonl:1: seq 2: expected seq 1, found 2: records are missing (deleted) or out of order"
{ head -3 audit.jsonl; echo 'not json'; tail -n +4 audit.jsonl; } >garbage.jsonl
expect_bad "a line that is not JSON" garbage.jsonl "garbage.jsonl:4: not a JSON object: '[' or '{' expected near 'not'"

H2=$(sed -n 2p audit.jsonl | python3 -c 'import json,sys; print(json.load(sys.stdin)["hash"])')
tail -n +3 audit.jsonl >tail.jsonl
run "$A" audit verify --anchor "2:$H2" tail.jsonl
check "verify --anchor: a partial export after a known record" eval '[ "$STATUS" = 0 ] && grep -qF "ok: 5 records (seq 3..7)" <<<"$BODY"'
run "$A" audit verify --anchor "1:$H2" tail.jsonl
check "verify --anchor: the wrong anchor is caught" eq "$STATUS" 1
run "$A" audit verify nothing-here.jsonl
check "verify: a missing file exits 2" eq "$STATUS" 2
run "$A" audit verify --help
check "audit verify --help exits 0 with usage" eval '[ "$STATUS" = 0 ] && grep -q "^usage: airlock audit verify" <<<"$BODY"'
: >empty.jsonl
run "$A" audit verify empty.jsonl
check "verify: an empty export is 0 records" eval '[ "$STATUS" = 0 ] && grep -qF "ok: 0 records" <<<"$BODY"'
finish
