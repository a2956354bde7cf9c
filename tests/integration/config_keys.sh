#!/usr/bin/env bash
# Every configuration reader names the YAML key as the file spells it, from the top, with
# file:line (issue 17, item 13): nested keys said only their last part ("cert_file: must
# be a string" for tunnel.tls.cert_file, "unknown key 'isuer'" under identity.oidc), and
# some values were only refused later without a line (listen addresses, URLs, sandbox
# paths, the gateway's server and metrics_listen) or not at all (ftp:// base URLs).
. "$(dirname "$0")/lib/common.sh"
cd "$T_TMP" || exit 1
printf 'tok_0123456789\n' >tok && chmod 600 tok

# expect ROLE FILE PATTERN WHAT: the role (server | worker | gateway | policy) refuses FILE
# with a message matching PATTERN and exit status 2
expect() {
	local role=$1 file=$2 pat=$3 what=$4 out rc
	case $role in
	server) out=$(env -u AIRLOCK_API_KEY timeout 10 "$AIRLOCK_BIN" server --config "$file" 2>&1) ;;
	worker) out=$(ANTHROPIC_ENVIRONMENT_KEY=k timeout 10 "$AIRLOCK_BIN" worker poll --config "$file" 2>&1) ;;
	gateway) out=$(timeout 10 "$AIRLOCK_BIN" gateway --config "$file" --check 2>&1) ;;
	policy) out=$(timeout 10 "$AIRLOCK_BIN" policy check "$file" 2>&1) ;;
	esac
	rc=$?
	STATUS=$rc BODY=$out check "$role: $what" grep -qE "$pat" <<<"$out"
	STATUS=$rc BODY=$out check "$role: $what: exit 2" eq "$rc" 2
}
D="data_dir: $T_TMP/d"

printf '%s\ntunnel:\n  tls:\n    cert_file: [a]\n' "$D" >s1.yaml
expect server s1.yaml "s1\.yaml:4: tunnel\.tls\.cert_file: must be a string" "a nested key's type"
printf '%s\nidentity:\n  oidc:\n    isuer: https://x\n' "$D" >s2.yaml
expect server s2.yaml "s2\.yaml:4: unknown key 'identity\.oidc\.isuer'" "a nested unknown key"
printf '%s\nlisten: 127.0.0.1:99999\n' "$D" >s3.yaml
expect server s3.yaml "s3\.yaml:2: listen: must be host:port" "a listen address, at load"
printf '%s\ntunnel:\n  metrics_listen: bogus\n' "$D" >s4.yaml
expect server s4.yaml "s4\.yaml:3: tunnel\.metrics_listen: must be host:port" "a nested listen address"
printf '%s\nmodel:\n  base_url: ftp://models.example\n' "$D" >s5.yaml
expect server s5.yaml "s5\.yaml:3: model\.base_url: must be an http:// or https:// URL" "the model URL's scheme"
printf '%s\nfiles:\n  max_bytes: lots\n' "$D" >s6.yaml
expect server s6.yaml "s6\.yaml:3: files\.max_bytes: must be an integer" "a nested integer"

W="environment_id: env_x"
printf '%s\nsandbox:\n  memory_mb: lots\n' "$W" >w1.yaml
expect worker w1.yaml "w1\.yaml:3: sandbox\.memory_mb: must be an integer" "a sandbox integer"
printf '%s\nsandbox:\n  memroy_mb: 1\n' "$W" >w2.yaml
expect worker w2.yaml "w2\.yaml:3: unknown key 'sandbox\.memroy_mb'" "a sandbox unknown key"
printf '%s\nsandbox:\n  state_dir: relative/dir\n' "$W" >w3.yaml
expect worker w3.yaml "w3\.yaml:3: sandbox\.state_dir: relative/dir: not an absolute normalized path" "a sandbox path, with its line"
printf '%s\nsandbox:\n  ro_binds:\n    - /usr\n    - ../etc\n' "$W" >w4.yaml
expect worker w4.yaml "w4\.yaml:5: sandbox\.ro_binds: \.\./etc" "a bind list entry, with its own line"
printf '%s\nbase_url: ftp://airlock.example\n' "$W" >w5.yaml
expect worker w5.yaml "w5\.yaml:2: base_url: must be an http:// or https:// URL" "the server URL's scheme"

G="token_file: $T_TMP/tok
routes:
  a: http://10.0.0.1:80"
printf '%s\nserver: nonsense\n' "$G" >g1.yaml
expect gateway g1.yaml "g1\.yaml:4: server: must be host:port" "the edge address, with its line"
printf '%s\nserver: 127.0.0.1:1\nmetrics_listen: bogus\n' "$G" >g2.yaml
expect gateway g2.yaml "g2\.yaml:5: metrics_listen: must be host:port" "the metrics address (--check passed it)"

printf 'token_file: %s/tok\nserver: 127.0.0.1:1\nroutes:\n  ok: http://10.0.0.1:80\n  "bad host": http://10.0.0.2:80\n' "$T_TMP" >g3.yaml
expect gateway g3.yaml "g3\.yaml:5: routes: \"bad host\" is not a host name" "a route name no Host header can carry"

printf 'roles:\n  admin: [ops]\n  owner: [x]\n' >p1.yaml
expect policy p1.yaml "p1\.yaml:3: unknown key 'roles\.owner'" "a role that does not exist"
finish
