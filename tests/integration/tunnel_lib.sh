# Shared setup for the tunnel_*.sh integration scripts: a throwaway CA and edge
# certificate, a loopback upstream (python http.server) with JSON echo, SSE and fault
# endpoints, a server with the tunnel edge on, and gateway configs. Sourced, not run.
# shellcheck disable=SC2034
. "$(dirname "$0")/lib/common.sh"

mk_certs() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
		-keyout "$T_TMP/ca.key" -out "$T_TMP/ca.pem" -subj "/CN=airlock test CA" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=keyCertSign" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$T_TMP/edge.key" -out "$T_TMP/edge.csr" -subj "/CN=localhost" 2>/dev/null
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$T_TMP/ext.cnf"
	openssl x509 -req -in "$T_TMP/edge.csr" -CA "$T_TMP/ca.pem" -CAkey "$T_TMP/ca.key" \
		-CAcreateserial -out "$T_TMP/edge.pem" -days 1 -extfile "$T_TMP/ext.cnf" 2>/dev/null
	# A second, unrelated CA: a gateway trusting only it must refuse the edge.
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
		-keyout "$T_TMP/other.key" -out "$T_TMP/other.pem" -subj "/CN=other CA" 2>/dev/null
}

# The upstream: /echo (JSON of what arrived), POST echoes the body, /sse sends
# "tick 0" then waits for $T_TMP/release before "tick 1", /hold streams until the
# client is gone and then writes $T_TMP/cancelled, /bighdr answers a 80 KiB header,
# /file sends $T_TMP/big.bin without a content-length, /cut drops a chunked answer
# after its first chunk.
start_upstream() {
	cat >"$T_TMP/upstream.py" <<'PY'
import http.server, json, os, sys, time
TMP = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def sse_head(self):
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.end_headers()
    def do_GET(self):
        if self.path.startswith("/sse"):
            self.sse_head()
            self.wfile.write(b"id: 0\ndata: tick 0\n\n"); self.wfile.flush()
            for _ in range(600):
                if os.path.exists(TMP + "/release"): break
                time.sleep(0.05)
            self.wfile.write(b"id: 1\ndata: tick 1\n\n"); self.wfile.flush()
            self.close_connection = True
            return
        if self.path.startswith("/hold"):
            self.sse_head()
            try:
                for i in range(3000):
                    self.wfile.write(b"data: x\n\n"); self.wfile.flush()
                    time.sleep(0.02)
            except Exception:
                open(TMP + "/cancelled", "w").write("yes")
            self.close_connection = True
            return
        if self.path.startswith("/file"):
            # $T_TMP/big.bin with no content-length: the answer ends with the connection
            data = open(TMP + "/big.bin", "rb").read()
            self.send_response(200)
            self.send_header("content-type", "application/octet-stream")
            self.send_header("connection", "close")
            self.end_headers(); self.wfile.write(data)
            self.close_connection = True
            return
        if self.path.startswith("/cut"):
            # a chunked answer whose connection drops before the last chunk
            self.send_response(200)
            self.send_header("content-type", "application/octet-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"5\r\nhello\r\n"); self.wfile.flush()
            self.close_connection = True
            return
        if self.path.startswith("/bighdr"):
            self.send_response(200)
            self.send_header("x-big", "a" * 80000)
            self.send_header("content-length", "2")
            self.end_headers(); self.wfile.write(b"ok")
            return
        body = json.dumps({"path": self.path, "method": "GET",
                           "authorization": self.headers.get("authorization"),
                           "x_api_key": self.headers.get("x-api-key"),
                           "custom": self.headers.get("x-custom")}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    def do_POST(self):
        n = int(self.headers.get("content-length", "0")); d = self.rfile.read(n)
        self.send_response(201)
        self.send_header("content-type", self.headers.get("content-type", "application/octet-stream"))
        self.send_header("content-length", str(len(d)))
        self.end_headers(); self.wfile.write(d)
    def do_DELETE(self):
        self.send_response(204); self.send_header("content-length", "0"); self.end_headers()
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(TMP + "/upstream.port", "w").write(str(s.server_address[1]))
s.serve_forever()
PY
	${UP_WRAP:-} python3 "$T_TMP/upstream.py" 0 "$T_TMP" 2>>"$T_TMP/upstream.err" &
	T_PIDS+=($!)
	for _ in $(seq 100); do [ -s "$T_TMP/upstream.port" ] && break; sleep 0.05; done
	UP_PORT=$(cat "$T_TMP/upstream.port")
}

# start_tunnel_server [API_PORT EDGE_PORT INGRESS_PORT]: 0 or absent = any free port.
start_tunnel_server() {
	local log="$T_TMP/server.$RANDOM.log"
	env AIRLOCK_DATA_DIR="$T_TMP/data" AIRLOCK_API_KEY=testkey \
		AIRLOCK_TUNNEL_LISTEN="127.0.0.1:${2:-0}" AIRLOCK_TUNNEL_TLS_CERT="$T_TMP/edge.pem" \
		AIRLOCK_TUNNEL_TLS_KEY="$T_TMP/edge.key" AIRLOCK_TUNNEL_DOMAIN=tunnel.test \
		AIRLOCK_TUNNEL_INGRESS_LISTEN="127.0.0.1:${3:-0}" \
		"$AIRLOCK_BIN" server --listen "127.0.0.1:${1:-0}" \
		--tunnel-metrics-listen 127.0.0.1:0 2>"$log" &
	SERVER_PID=$!
	T_PIDS+=("$SERVER_PID")
	PORT=
	for _ in $(seq 200); do
		PORT=$(sed -n 's/.*server: listening .*port=\([0-9]*\).*/\1/p' "$log" | head -1)
		[ -n "$PORT" ] && break
		sleep 0.05
	done
	[ -n "$PORT" ] || { echo "server did not start:"; cat "$log"; exit 1; }
	EDGE_PORT=$(sed -n 's/.*tunnel edge ready.* port=\([0-9]*\).*/\1/p' "$log" | head -1)
	INGRESS_PORT=$(sed -n 's/.*tunnel ingress ready.* port=\([0-9]*\).*/\1/p' "$log" | head -1)
	SMETRICS_PORT=$(sed -n 's/.*tunnel metrics listening.* port=\([0-9]*\).*/\1/p' "$log" | head -1)
	BASE=http://127.0.0.1:$PORT
	SERVER_LOG=$log
}

# server_metric NAME: the value of one sample of the server's tunnel metrics ("" if absent)
server_metric() {
	curl -s "http://127.0.0.1:$SMETRICS_PORT/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}

# gw_config FILE TOKEN_FILE [extra YAML lines...]
gw_config() {
	local f=$1 tok=$2
	shift 2
	{
		echo "server: 127.0.0.1:$EDGE_PORT"
		echo "server_name: localhost"
		echo "server_ca_file: $T_TMP/ca.pem"
		echo "token_file: $tok"
		echo "tunnel_domain: $DOMAIN"
		echo "shutdown_timeout: 20s"
		echo "routes:"
		echo "  echo: http://127.0.0.1:$UP_PORT"
		echo "  public: http://1.1.1.1:80"
		echo "upstream:"
		echo "  allowed_ips: [127.0.0.0/8]"
		for l in "$@"; do echo "$l"; done
	} >"$f"
}

# start_gateway CONFIG → GW_PID, GW_LOG. UP_WRAP / GW_WRAP prefix the upstream and
# gateway commands (tunnel_netns.sh runs them inside a network namespace).
start_gateway() {
	GW_LOG="$T_TMP/gw.$RANDOM.log"
	${GW_WRAP:-} "$AIRLOCK_BIN" gateway --config "$1" 2>"$GW_LOG" &
	GW_PID=$!
	T_PIDS+=("$GW_PID")
}

# wait_for SECONDS COMMAND...: polls until COMMAND succeeds (a deadline, not a timing
# assertion: the check after it decides).
wait_for() {
	local n=$(($1 * 20))
	shift
	for _ in $(seq "$n"); do "$@" && return 0; sleep 0.05; done
	return 1
}

conns_of() { # GATEWAY_LOG → number of "Registered tunnel connection" lines
	grep -c "Registered tunnel connection" "$1" 2>/dev/null || true
}
ready_conns() { # METRICS_PORT → readyConnections
	curl -s "http://127.0.0.1:$1/ready" | python3 -c 'import json,sys; print(json.load(sys.stdin)["readyConnections"])' 2>/dev/null || echo 0
}
has_ready() { [ "$(ready_conns "$1")" -ge "$2" ]; }

# Inner TLS for the tunnel made by create_tunnel: a customer CA registered on it and a
# gateway certificate for *.$DOMAIN signed by it; prints the gateway's "tls:" lines.
inner_tls_lines() {
	printf '[req]\ndistinguished_name=dn\n[dn]\n' >"$T_TMP/min.cnf"
	openssl req -x509 -config "$T_TMP/min.cnf" -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-nodes -days 1 -keyout "$T_TMP/ica.key" -out "$T_TMP/ica.pem" -subj "/CN=customer CA" \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
		-addext subjectKeyIdentifier=hash 2>/dev/null
	openssl req -config "$T_TMP/min.cnf" -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$T_TMP/igw.key" -out "$T_TMP/igw.csr" -subj "/CN=*.$DOMAIN" 2>/dev/null
	echo "subjectAltName=DNS:*.$DOMAIN" >"$T_TMP/iext.cnf"
	openssl x509 -req -in "$T_TMP/igw.csr" -CA "$T_TMP/ica.pem" -CAkey "$T_TMP/ica.key" \
		-CAcreateserial -out "$T_TMP/igw.pem" -days 1 -extfile "$T_TMP/iext.cnf" 2>/dev/null
	req testkey POST "/v1/tunnels/$TID/certificates" "$(python3 -c \
		'import json,sys; print(json.dumps({"ca_certificate_pem": open(sys.argv[1]).read()}))' \
		"$T_TMP/ica.pem")"
	[ "$STATUS" = 200 ] || { echo "cannot register the CA: $STATUS $BODY" >&2; return 1; }
	printf 'tls:\n  cert_file: %s\n  key_file: %s\n' "$T_TMP/igw.pem" "$T_TMP/igw.key"
}
create_tunnel() {
	req testkey POST /v1/tunnels '{"display_name":"integration"}'
	TID=$(jget 'j["id"]')
	DOMAIN=$(jget 'j["domain"]')
	req testkey POST "/v1/tunnels/$TID/reveal_token"
	jget 'j["tunnel_token"]' >"$T_TMP/token"
}

# tunnel_stand: certificates, the upstream, a server with the edge, a tunnel and its
# token file (0600, as the gateway wants it)
tunnel_stand() {
	mk_certs
	start_upstream
	start_tunnel_server
	create_tunnel
	chmod 600 "$T_TMP/token"
}

# ing METHOD PATH [curl args...]: path-form ingress → STATUS, BODY
ing() {
	local m=$1 p=$2
	shift 2
	STATUS=$(curl -s -o "$T_TMP/iresp" -w '%{http_code}' -X "$m" \
		"$BASE/v1/tunnels/$TID/routes$p" -H 'x-api-key: testkey' "$@")
	BODY=$(cat "$T_TMP/iresp")
}
# hing HOSTROUTE PATH [curl args...]: host-form ingress
hing() {
	local r=$1 p=$2
	shift 2
	STATUS=$(curl -s -o "$T_TMP/iresp" -w '%{http_code}' "http://127.0.0.1:$INGRESS_PORT$p" \
		-H "Host: $r.$DOMAIN" -H 'x-api-key: testkey' "$@")
	BODY=$(cat "$T_TMP/iresp")
}
