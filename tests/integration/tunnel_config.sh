#!/usr/bin/env bash
# `airlock gateway --check`: the reference proxy's validation errors, as
# `file:line: message`, and unknown keys rejected. No network.
. "$(dirname "$0")/lib/common.sh"

cfg() { printf '%s\n' "$@" >"$T_TMP/c.yaml"; }
run() {
	OUT=$("$AIRLOCK_BIN" gateway --check --config "$T_TMP/c.yaml" 2>&1)
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
	"tls:" "  cert_file: /x" "  key_file: /y" "metrics_listen: 127.0.0.1:20241"
run
check "reference fields accepted" eq "$RC" 0
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
finish
