#!/usr/bin/env bash
# MCP tunnel benchmark, one command. Every figure is a ratio against a baseline measured
# in the same run on the same loopback:
#   1. bulk download (BULK_MIB, best of 3) through the tunnel vs direct loopback TCP
#      (target >= 0.5x) and vs an OpenSSH reverse tunnel, ssh -R (target >= 2.5x); and,
#      to show what this machine allows any tunnel, through two plain TCP relays (socat:
#      the two extra hops a tunnel adds, without TLS or HTTP/2);
#   2. small JSON-RPC POSTs with wrk, 16 connections, through the tunnel vs direct
#      (target >= 0.4x req/s, p99 <= 3x);
#   3. IDLE (10,000) concurrent idle SSE streams through one gateway: RSS per stream in
#      the gateway and in the server (target <= 16 KiB each);
#   4. inner TLS: the small POSTs of 2 through a second tunnel whose exchanges run inside
#      inner TLS (a registered CA, a gateway certificate) vs the plain tunnel, interleaved
#      plain, inner, plain, inner (target >= 0.7x req/s).
# The tunnel path is client -> API-port ingress -> edge -> TLS 1.3 + HTTP/2 -> gateway ->
# libcurl -> upstream. usage: bench/tunnel_bench.sh [AIRLOCK_BIN]
set -u
cd "$(dirname "$0")/.."
top=$(pwd)
BIN=${1:-$top/build-bench/src/airlock}
BULK_MIB=${BULK_MIB:-256}
WRK_SECS=${WRK_SECS:-5}
IDLE=${IDLE:-10000}
PARTS=${PARTS:-bulk wrk idle inner} # a subset runs only those sections
NODE="$top/tests/interop/run-node.sh"
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

missing=()
command -v wrk >/dev/null || missing+=(wrk)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null || missing+=(openssh-client)
command -v socat >/dev/null || missing+=(socat)
if [ "${#missing[@]}" -gt 0 ]; then
	echo "installing ${missing[*]}" >&2
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends "${missing[@]}" >&2 || { echo "cannot install ${missing[*]}"; exit 1; }
fi

cd "$tmp"
wait_file() { for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done; return 1; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -keyout ca.key \
	-out ca.pem -subj "/CN=bench CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout edge.key -out edge.csr \
	-subj "/CN=localhost" 2>/dev/null
echo "subjectAltName=DNS:localhost" >ext.cnf
openssl x509 -req -in edge.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out edge.pem -days 1 \
	-extfile ext.cnf 2>/dev/null

AIRLOCK_DATA_DIR=$tmp/data AIRLOCK_API_KEY=benchkey "$BIN" server --listen 127.0.0.1:0 \
	--tunnel-listen 127.0.0.1:0 --tunnel-tls-cert edge.pem --tunnel-tls-key edge.key \
	2>server.log &
spid=$!
port=
edge=
for _ in $(seq 200); do
	port=$(sed -n 's/.*server: listening .*port=\([0-9]*\).*/\1/p' server.log | head -1)
	edge=$(sed -n 's/.*tunnel edge ready.* port=\([0-9]*\).*/\1/p' server.log | head -1)
	[ -n "$port" ] && [ -n "$edge" ] && break
	sleep 0.05
done
[ -n "$port" ] && [ -n "$edge" ] || { echo "server did not start"; cat server.log; exit 1; }
tjson=$(curl -s -X POST "http://127.0.0.1:$port/v1/tunnels" -H 'x-api-key: benchkey' -d '{}')
tid=$(echo "$tjson" | sed -n 's/.*"id":"\(tnl_[^"]*\)".*/\1/p')
dom=$(echo "$tjson" | sed -n 's/.*"domain":"\([^"]*\)".*/\1/p')
curl -s -X POST "http://127.0.0.1:$port/v1/tunnels/$tid/reveal_token" -H 'x-api-key: benchkey' |
	sed -n 's/.*"tunnel_token":"\([^"]*\)".*/\1/p' >token

"$NODE" "$top/bench/tunnel_bench.mjs" upstream "$tmp/up.port" &
upid=$!
wait_file up.port || { echo "upstream did not start"; exit 1; }
up=$(cat up.port)
cat >gw.yaml <<YAML
server: 127.0.0.1:$edge
server_name: localhost
server_ca_file: $tmp/ca.pem
token_file: $tmp/token
tunnel_domain: $dom
log_level: warn
routes:
  bench: http://127.0.0.1:$up
upstream:
  allowed_ips: [127.0.0.0/8]
YAML
"$BIN" gateway --config gw.yaml 2>gw.log &
gpid=$!
for _ in $(seq 100); do
	[ "$(grep -c 'registered tunnel connection' server.log)" -ge 4 ] && break
	sleep 0.05
done

# OpenSSH reverse tunnel on loopback: throwaway host and user keys, sshd in the
# foreground on a free port, ssh -R exposing the upstream on another free port.
mkdir -p /run/sshd
ssh-keygen -q -t ed25519 -N '' -f host_key
ssh-keygen -q -t ed25519 -N '' -f user_key
cp user_key.pub authorized_keys
sshp=$(free_port)
rport=$(free_port)
cat >sshd_config <<CFG
ListenAddress 127.0.0.1:$sshp
HostKey $tmp/host_key
AuthorizedKeysFile $tmp/authorized_keys
PidFile $tmp/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
CFG
/usr/sbin/sshd -D -e -f "$tmp/sshd_config" 2>sshd.log &
wait_port "$sshp" || { echo "sshd did not start"; cat sshd.log; exit 1; }
ssh -F /dev/null -i user_key -p "$sshp" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
	-o BatchMode=yes -o ExitOnForwardFailure=yes -N -R "127.0.0.1:$rport:127.0.0.1:$up" \
	"$(id -un)@127.0.0.1" 2>ssh.log &
wait_port "$rport" || { echo "ssh -R did not start"; cat ssh.log sshd.log; exit 1; }
cipher=$(grep -o 'cipher: [^ ]*' sshd.log | head -1)

# Two plain relays in a row, as the server and the gateway sit on the tunnel's path:
# each copies every byte through user space once (read, then write), nothing else.
relay2=$(free_port)
relay1=$(free_port)
socat -b 262144 "TCP-LISTEN:$relay1,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$up" &
r1pid=$!
socat -b 262144 "TCP-LISTEN:$relay2,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$relay1" &
r2pid=$!
wait_port "$relay1" && wait_port "$relay2" || { echo "socat relays did not start"; exit 1; }

TUN="http://127.0.0.1:$port/v1/tunnels/$tid/routes/bench/mcp"
# PERF=DIR profiles the gateway and the server during each tunnel run (perf record -g
# into DIR/bulk-gateway.data, DIR/wrk-server.data, ...; PERF_CG="--call-graph dwarf"
# gives stacks through libraries built without frame pointers).
perf_start() {
	[ -n "${PERF:-}" ] || return 0
	perf record -q ${PERF_CG:--g} -o "$PERF/$1-gateway.data" -p "$gpid" 2>/dev/null &
	perf_pids="$!"
	perf record -q ${PERF_CG:--g} -o "$PERF/$1-server.data" -p "$spid" 2>/dev/null &
	perf_pids="$perf_pids $!"
	sleep 0.5
}
perf_stop() {
	[ -n "${PERF:-}" ] || return 0
	kill -INT $perf_pids
	wait $perf_pids
}
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # utime + stime, clock ticks
# ... and of its reaped children too (socat forks one per connection)
cpu_all() { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat"; }
reaped() { # PID: waits until PID has no child left (a finished relay is then counted)
	for _ in $(seq 100); do [ -z "$(pgrep -P "$1")" ] && return 0; sleep 0.02; done
}
if [[ " $PARTS " == *" bulk "* ]]; then
echo "1. bulk download, $BULK_MIB MiB, best of 3 (ssh -R: OpenSSH $(ssh -V 2>&1 | cut -d, -f1)${cipher:+, $cipher})"
bulk() { # URL [HEADER] -> best MB/s of 3; curl's CPU seconds (user + sys) added to bulk.cpu
	local best=0 s TIMEFORMAT='%U %S'
	for _ in 1 2 3; do
		{ time curl -s -o /dev/null -w '%{speed_download}' ${2:+-H "$2"} \
			"$1?bulk=$((BULK_MIB << 20))" >bulk.speed; } 2>>bulk.cpu
		s=$(cat bulk.speed)
		best=$(awk -v a="$best" -v b="$s" 'BEGIN { print (b > a) ? b : a }')
	done
	awk -v b="$best" 'BEGIN { printf "%.0f", b / 1e6 }'
}
ms_per_mib() { # TICKS [CURL_SECONDS_FILE] -> ms of CPU per MiB moved by one bulk() call
	awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v m=$((3 * BULK_MIB)) '
		{ c += $1 + $2 } END { printf "%.2f", (t / hz + c) * 1000 / m }' "${2:-/dev/null}"
}
rm -f bulk.cpu
u0=$(cpu "$upid")
d=$(bulk "http://127.0.0.1:$up/mcp")
u1=$(cpu "$upid")
direct_ms=$(ms_per_mib $((u1 - u0)) bulk.cpu)
s=$(bulk "http://127.0.0.1:$rport/mcp")
rm -f bulk.cpu
r0=$(($(cpu_all "$r1pid") + $(cpu_all "$r2pid"))) u0=$(cpu "$upid")
r=$(bulk "http://127.0.0.1:$relay2/mcp")
reaped "$r1pid"
reaped "$r2pid"
r1=$(($(cpu_all "$r1pid") + $(cpu_all "$r2pid"))) u1=$(cpu "$upid")
relay_ms=$(ms_per_mib $((r1 - r0 + u1 - u0)) bulk.cpu)
rm -f bulk.cpu
g0=$(cpu "$gpid") s0=$(cpu "$spid") u0=$(cpu "$upid")
perf_start bulk
t=$(bulk "$TUN" "x-api-key: benchkey")
perf_stop
g1=$(cpu "$gpid") s1=$(cpu "$spid") u1=$(cpu "$upid")
printf '   direct %6s MB/s   ssh -R %6s MB/s   tunnel %6s MB/s\n' "$d" "$s" "$t"
# CPU per MiB moved is what bounds throughput when every process shares the cores.
echo "   tunnel CPU per MiB: gateway $(ms_per_mib $((g1 - g0))) ms, server $(ms_per_mib $((s1 - s0))) ms"
awk -v d="$d" -v s="$s" -v t="$t" 'BEGIN {
	printf "   tunnel/direct %.2fx (target >= 0.5)   tunnel/ssh -R %.2fx (target >= 2.5)\n", t / d, t / s }'
# The ceiling on this machine. The tunnel run keeps every core busy, so its throughput
# is cores / (CPU per MiB of all the processes on the path); the direct pair (upstream +
# client) usually does not. Any tunnel adds two relaying processes, and the two plain
# relays show what those hops alone cost here (each a read and a write per byte: the
# kernel's socket copies and loopback TCP); a TLS tunnel must also run AES-GCM over every
# byte at both ends. cores / (relays + AES) is the most any such tunnel reaches here.
tunnel_ms=$(ms_per_mib $((g1 - g0 + s1 - s0 + u1 - u0)) bulk.cpu)
aes=$(openssl speed -seconds 3 -bytes 16384 -evp aes-128-gcm 2>/dev/null | awk '/^AES-128-GCM/ { print $2 }')
awk -v d="$direct_ms" -v rl="$relay_ms" -v t="$tunnel_ms" -v aes="${aes%k}" -v n="$(nproc)" \
	-v dmb="$d" -v rmb="$r" -v tmb="$t" 'BEGIN {
	printf "   two plain TCP relays (socat, no TLS): %.0f MB/s = %.2fx direct\n", rmb, rmb / dmb
	printf "   CPU per MiB, all processes on the path: direct %.2f ms, relays %.2f ms, tunnel %.2f ms (%d cores)\n", d, rl, t, n
	if (aes > 0) {
		z = 2 * 1048576 / (aes * 1000) * 1000
		c = n / (rl + z) * 1.048576 * 1000
		if (c > rmb) c = rmb
		printf "   AES-128-GCM, gateway + server: %.2f ms per MiB (openssl speed, one core)\n", z
		printf "   ceiling for a TLS tunnel here, cores / (relays + AES): %.0f MB/s = %.2fx direct; tunnel at %.2f of it\n", c, c / dmb, tmb / c }
}'
fi

if [[ " $PARTS " == *" wrk "* || " $PARTS " == *" inner "* ]]; then
printf 'wrk.method = "POST"\nwrk.headers["content-type"] = "application/json"\nwrk.body = [[%s]]\n' \
	"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":\"$(head -c 900 /dev/zero | tr '\0' x)\"}}}" >post.lua
wrk_run() { # NAME URL [HEADER] -> "rps p50_ms p99_ms"
	wrk -t2 -c16 -d"${WRK_SECS}s" --latency -s post.lua ${3:+-H "$3"} "$2" >"wrk-$1.out" 2>&1
	awk '
		function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
		/^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) } /^Requests\/sec/ { rps = $2 }
		/Non-2xx|Socket errors/ { err = err " [" $0 "]" }
		END { printf "%s %s %s%s\n", rps, p50, p99, err }' "wrk-$1.out"
}
fi
if [[ " $PARTS " == *" wrk "* ]]; then
echo "2. small POSTs (1 KiB JSON-RPC echo), wrk, 16 connections, $WRK_SECS s each"
wrk_run warm "$TUN" "x-api-key: benchkey" >/dev/null
read -r drps dp50 dp99 derr < <(wrk_run direct "http://127.0.0.1:$up/mcp")
g0=$(cpu "$gpid") s0=$(cpu "$spid")
perf_start wrk
read -r trps tp50 tp99 terr < <(wrk_run tunnel "$TUN" "x-api-key: benchkey")
perf_stop
g1=$(cpu "$gpid") s1=$(cpu "$spid")
printf '   direct %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms %s\n' "$drps" "$dp50" "$dp99" "$derr"
printf '   tunnel %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms %s\n' "$trps" "$tp50" "$tp99" "$terr"
awk -v g=$((g1 - g0)) -v s=$((s1 - s0)) -v hz="$(getconf CLK_TCK)" -v r="$trps" -v t="$WRK_SECS" 'BEGIN {
	printf "   tunnel CPU per request: gateway %.1f us, server %.1f us\n", g * 1e6 / hz / (r * t), s * 1e6 / hz / (r * t) }'
awk -v a="$drps" -v b="$trps" -v c="$dp99" -v e="$tp99" 'BEGIN {
	printf "   tunnel/direct: throughput %.2fx (target >= 0.4)   p99 %.2fx (target <= 3)\n", b / a, e / c }'
fi
kill "$(cat sshd.pid 2>/dev/null)" "$r1pid" "$r2pid" 2>/dev/null

if [[ " $PARTS " == *" idle "* ]]; then

echo "3. $IDLE concurrent idle SSE streams through one gateway"
"$NODE" "$top/bench/tunnel_bench.mjs" idle "$TUN?hold" benchkey "$IDLE" "$gpid" "$spid" |
	sed 's/^/   /'
fi

if [[ " $PARTS " == *" inner "* ]]; then
echo "4. inner TLS: small POSTs as in 2, plain tunnel vs a tunnel with inner TLS, $WRK_SECS s each"
# A second tunnel: its CA registered (the reference's rules), its gateway holding a
# certificate for *.<domain> signed by it.
ijson=$(curl -s -X POST "http://127.0.0.1:$port/v1/tunnels" -H 'x-api-key: benchkey' -d '{}')
itid=$(echo "$ijson" | sed -n 's/.*"id":"\(tnl_[^"]*\)".*/\1/p')
idom=$(echo "$ijson" | sed -n 's/.*"domain":"\([^"]*\)".*/\1/p')
curl -s -X POST "http://127.0.0.1:$port/v1/tunnels/$itid/reveal_token" -H 'x-api-key: benchkey' |
	sed -n 's/.*"tunnel_token":"\([^"]*\)".*/\1/p' >itoken
printf '[req]\ndistinguished_name=dn\n[dn]\n' >min.cnf
openssl req -x509 -config min.cnf -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
	-keyout ica.key -out ica.pem -subj "/CN=bench customer CA" \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
	-addext subjectKeyIdentifier=hash 2>/dev/null
openssl req -config min.cnf -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout igw.key \
	-out igw.csr -subj "/CN=*.$idom" 2>/dev/null
echo "subjectAltName=DNS:*.$idom" >iext.cnf
openssl x509 -req -in igw.csr -CA ica.pem -CAkey ica.key -CAcreateserial -out igw.pem -days 1 \
	-extfile iext.cnf 2>/dev/null
python3 -c 'import json,sys; print(json.dumps({"ca_certificate_pem": open(sys.argv[1]).read()}))' \
	ica.pem >ica.json
curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$port/v1/tunnels/$itid/certificates" \
	-H 'x-api-key: benchkey' -H 'content-type: application/json' --data @ica.json | grep -q 200 ||
	{ echo "cannot register the CA"; exit 1; }
sed -e "s|token_file: .*|token_file: $tmp/itoken|" -e "s|tunnel_domain: .*|tunnel_domain: $idom|" \
	gw.yaml >igw.yaml
printf 'tls:\n  cert_file: %s/igw.pem\n  key_file: %s/igw.key\n' "$tmp" "$tmp" >>igw.yaml
"$BIN" gateway --config igw.yaml 2>igw.log &
igpid=$!
for _ in $(seq 100); do
	[ "$(grep -c "registered tunnel connection tunnel_id=$itid" server.log)" -ge 4 ] && break
	sleep 0.05
done
ITUN="http://127.0.0.1:$port/v1/tunnels/$itid/routes/bench/mcp"
PTUN="http://127.0.0.1:$port/v1/tunnels/$tid/routes/bench/mcp"
wrk_run iwarm "$ITUN" "x-api-key: benchkey" >/dev/null
wrk_run pwarm "$PTUN" "x-api-key: benchkey" >/dev/null
sum_p=0 sum_i=0
for round in 1 2; do
	pg0=$(cpu "$gpid") ps0=$(cpu "$spid")
	read -r prps pp50 pp99 perr < <(wrk_run "plain$round" "$PTUN" "x-api-key: benchkey")
	pg1=$(cpu "$gpid") ps1=$(cpu "$spid")
	g0=$(cpu "$igpid") s0=$(cpu "$spid")
	read -r irps ip50 ip99 ierr < <(wrk_run "inner$round" "$ITUN" "x-api-key: benchkey")
	g1=$(cpu "$igpid") s1=$(cpu "$spid")
	printf '   round %d: plain %8.0f req/s p99 %6.2f ms %s | inner TLS %8.0f req/s p99 %6.2f ms %s\n' \
		"$round" "$prps" "$pp99" "$perr" "$irps" "$ip99" "$ierr"
	awk -v g=$((g1 - g0)) -v s=$((s1 - s0)) -v pg=$((pg1 - pg0)) -v ps=$((ps1 - ps0)) \
		-v hz="$(getconf CLK_TCK)" -v r="$irps" -v pr="$prps" -v t="$WRK_SECS" 'BEGIN {
		printf "            CPU per request, gateway / server: plain %.1f / %.1f us, inner TLS %.1f / %.1f us\n",
			pg * 1e6 / hz / (pr * t), ps * 1e6 / hz / (pr * t), g * 1e6 / hz / (r * t), s * 1e6 / hz / (r * t) }'
	sum_p=$(awk -v a="$sum_p" -v b="$prps" 'BEGIN { print a + b }')
	sum_i=$(awk -v a="$sum_i" -v b="$irps" 'BEGIN { print a + b }')
done
awk -v a="$sum_p" -v b="$sum_i" 'BEGIN {
	printf "   inner TLS/plain: throughput %.2fx (target >= 0.7)\n", b / a }'
fi
