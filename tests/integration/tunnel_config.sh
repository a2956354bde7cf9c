#!/usr/bin/env bash
# `airlock gateway --check`: the reference proxy's validation errors, as
# `file:line: message`, and unknown keys rejected. No network.
. "$(dirname "$0")/lib/common.sh"

cfg() { printf '%s\n' "$@" >"$T_TMP/c.yaml"; }
# The syntax checks below carry a token in the environment: --check also runs the start
# checks (token, CA), tested at the end.
run() {
	OUT=$(AIRLOCK_TUNNEL_TOKEN=tok_config_test "$AIRLOCK_BIN" gateway --check --config "$T_TMP/c.yaml" 2>&1)
	RC=$?
	STATUS=$RC
	BODY=$OUT
}
has() { case "$OUT" in *"$1"*) return 0 ;; esac; return 1; }

cfg "server: edge:7844" "routes:" "  echo: http://10.0.0.5:8080"
run
check "minimal config is valid" eq "$RC" 0
cfg "server: edge:7844" "routes:" "  echo: http://10.0.0.5:8080/mcp"
run
check "path in upstream rejected" has "c.yaml:3: route \"echo\": invalid upstream (must be scheme://host:port)"
check "rejection exits 2 (a configuration error)" eq "$RC" 2
cfg "server: edge:7844" "routes:" "  echo: http://10.0.0.5"
run
check "missing port rejected" has "invalid upstream (must be scheme://host:port)"
cfg "server: edge:7844" "routes:" "  echo: ftp://10.0.0.5:21"
run
check "other scheme rejected" has "invalid upstream (must be scheme://host:port)"
cfg "server: edge:7844" "routes:" "  - echo: http://10.0.0.5:8080"
run
check "routes as a list: reference message" has "c.yaml:3: routes: cannot unmarshal !!seq into map[string]string"
cfg "server: edge:7844" "bogus: 1" "routes:" "  echo: http://10.0.0.5:8080"
run
check "unknown top-level key" has "c.yaml:2: unknown key \"bogus\""
cfg "server: edge:7844" "routes:" "  echo: http://10.0.0.5:8080" "upstream:" "  tls:" "    cafile: x"
run
check "unknown nested key" has "c.yaml:6: unknown key \"upstream.tls.cafile\""
cfg "server: edge:7844" "routes:" "  echo: https://10.0.0.5:8443"
run
check "https upstream needs a CA choice" has "https upstreams need upstream.tls.ca_file or upstream.tls.include_system_cas"
cfg "server: edge:7844" "routes:" "  echo: https://10.0.0.5:8443" "upstream:" "  tls:" "    include_system_cas: true"
run
check "https with system CAs is valid" eq "$RC" 0
cfg "server: edge:7844" "routes:" "  echo: http://10.0.0.5:8080" "upstream:" \
	"  allowed_ips: [10.0.0.0/8]" "  disable_ip_validation: true"
run
check "allowed_ips and disable_ip_validation exclusive" has "mutually exclusive"
cfg "server: edge:7844" "routes:" "  echo: http://10.0.0.5:8080" "upstream:" "  allowed_ips: [10.0.0.0/33]"
run
check "bad CIDR" has "c.yaml:5: upstream.allowed_ips: invalid CIDR \"10.0.0.0/33\""
cfg "server: edge:7844" "routes:" "  echo: http://10.0.0.5:8080" "shutdown_timeout: soon"
run
check "bad duration" has "c.yaml:4: shutdown_timeout: invalid duration"
cfg "server: edge:7844" "routes:" "  echo: http://10.0.0.5:8080" "shutdown_timeout: 1m30s" \
	"connections: 8" "log_level: debug" "listen_addr: :8080" "tunnel_domain: x.tunnel.test" \
	"tls:" "  cert_file: $T_TMP/gw.pem" "  key_file: $T_TMP/gw.key" "metrics_listen: 127.0.0.1:20241"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=gw \
	-keyout "$T_TMP/gw.key" -out "$T_TMP/gw.pem" 2>/dev/null
openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:P-256 -out "$T_TMP/other.key" 2>/dev/null
run
check "reference fields accepted" eq "$RC" 0
# inner TLS: the pair must load and match, both or neither
sed -i "s|cert_file: .*|cert_file: $T_TMP/missing.pem|" "$T_TMP/c.yaml"
run
check "inner TLS certificate must load" has "tls.cert_file $T_TMP/missing.pem: cannot load"
sed -i "s|cert_file: .*|cert_file: $T_TMP/gw.pem|; s|key_file: .*|key_file: $T_TMP/other.key|" \
	"$T_TMP/c.yaml"
run
check "inner TLS key must match its certificate" has "does not match tls.cert_file"
sed -i "/key_file:/d" "$T_TMP/c.yaml"
run
check "inner TLS cert without key" has "tls.cert_file and tls.key_file go together"
cfg "server: edge:7844" "routes:" "  echo: http://10.0.0.5:8080" "connections: 99"
run
check "connections bounded" has "c.yaml:4: connections: must be an integer from 1 to 16"
cfg "routes:" "  echo: http://10.0.0.5:8080"
run
check "server required" has "server: required"
cfg "server: edge:7844" "routes: {echo: [1, 2]}"
run
check "route value must be a string" has "cannot unmarshal !!seq into string"
cfg "server: [unclosed"
run
check "YAML syntax error has a line" has "c.yaml:"
check "YAML syntax error exits 2" eq "$RC" 2
cfg "server: edge:7844" "routes:" "  echo: http://10.0.0.5:8080" "server_pin: md5//abc"
run
check "pin format checked" has "server_pin: must be sha256//"
OUT=$("$AIRLOCK_BIN" gateway --config /nonexistent.yaml 2>&1)
check "missing file named" bash -c "case '$OUT' in *'/nonexistent.yaml: No such file'*) exit 0;; esac; exit 1"
OUT=$(env -u AIRLOCK_TUNNEL_TOKEN "$AIRLOCK_BIN" gateway --config <(printf 'server: 127.0.0.1:1\nroutes:\n  e: http://10.0.0.1:1\n') 2>&1)
check "no token → clear error" bash -c "case '$OUT' in *'no tunnel token'*) exit 0;; esac; exit 1"

# --check runs every check a start runs, short of dialling.
check_only() {
	OUT=$(env -u AIRLOCK_TUNNEL_TOKEN "$AIRLOCK_BIN" gateway --check --config "$T_TMP/c.yaml" 2>&1)
	RC=$?
}
cfg "server: edge:7844" "routes:" "  echo: http://10.0.0.5:8080"
check_only
check "--check: no token is refused" has "no tunnel token"
check "--check: no token exits 2" eq "$RC" 2
cfg "server: edge:7844" "token_file: $T_TMP/absent.token" "routes:" "  echo: http://10.0.0.5:8080"
check_only
check "--check: missing token file named" has "token_file $T_TMP/absent.token: No such file"
check "--check: missing token file exits 2" eq "$RC" 2
: >"$T_TMP/empty.token"
cfg "server: edge:7844" "token_file: $T_TMP/empty.token" "routes:" "  echo: http://10.0.0.5:8080"
check_only
check "--check: empty token refused" has "tunnel token is empty"
printf 'tok_config_test\n' >"$T_TMP/ok.token"
chmod 600 "$T_TMP/ok.token"
printf 'not a certificate\n' >"$T_TMP/bad-ca.pem"
cfg "server: edge:7844" "token_file: $T_TMP/ok.token" "server_ca_file: $T_TMP/bad-ca.pem" \
	"routes:" "  echo: http://10.0.0.5:8080"
check_only
check "--check: a CA that does not load is refused" has "server_ca_file $T_TMP/bad-ca.pem: cannot load"
check "--check: bad CA exits 2" eq "$RC" 2
cfg "server: edge:7844" "token_file: $T_TMP/ok.token" "routes:" "  echo: http://10.0.0.5:8080"
check_only
check "--check: a good token file passes" eq "$RC" 0
check "--check: a 0600 token file draws no warning" bash -c "case '$OUT' in *warning*) exit 1;; esac; exit 0"
chmod 644 "$T_TMP/ok.token"
check_only
check "--check: world-readable token still passes" eq "$RC" 0
check "--check: world-readable token warned" has "warning: the tunnel token file is readable by every user"
chmod 600 "$T_TMP/ok.token"
cfg "server: edge:7844" "token_file: $T_TMP/ok.token" "routes:" "  local: http://127.0.0.1:8080" \
	"  fine: http://10.0.0.5:8080" "  named: http://mcp.internal:8080"
check_only
check "--check: loopback route outside default allowed_ips passes" eq "$RC" 0
check "--check: the warning names the route and upstream.allowed_ips" \
	has "route upstream is outside upstream.allowed_ips: every request on it will be refused (403); add its network to upstream.allowed_ips (route=local address=127.0.0.1)"
check "--check: only the loopback route is warned about" bash -c "case '$OUT' in *route=fine*|*route=named*) exit 1;; esac; exit 0"
cfg "server: edge:7844" "token_file: $T_TMP/ok.token" "routes:" "  local: http://[::1]:8080" \
	"upstream:" "  allowed_ips: [127.0.0.0/8, '::1/128']"
check_only
check "--check: a route inside allowed_ips draws no warning" bash -c "case '$OUT' in *warning*) exit 1;; esac; exit 0"
cfg "server: edge:7844" "token_file: $T_TMP/ok.token" "routes:" "  local: http://[::1]:8080"
check_only
check "--check: IPv6 loopback route warned" has "(route=local address=::1)"
finish
