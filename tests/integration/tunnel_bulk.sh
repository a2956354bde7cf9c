#!/usr/bin/env bash
# Large bodies through the tunnel arrive intact: the gateway sends response DATA frames
# that span many TLS records, written without a copy from its response buffer
# (NGHTTP2_DATA_FLAG_NO_COPY), and the edge hands many decrypted records to nghttp2 at
# once. Several concurrent streams share the 4 connections, so frames interleave; the
# sizes are not multiples of a record or a frame. Checked by SHA-256, both ingress forms.
# A slow client gets a large answer whole: back-pressure reaches the gateway. An answer
# the upstream breaks off reads as broken at the client.
. "$(dirname "$0")/tunnel_lib.sh"

mk_certs
start_upstream
start_tunnel_server
create_tunnel
if [ "${TUNNEL_INNER:-}" = 1 ]; then # tunnel_bulk_inner.sh: the same through inner TLS
	mapfile -t tls < <(inner_tls_lines)
	gw_config "$T_TMP/gw.yaml" "$T_TMP/token" "${tls[@]}"
else
	gw_config "$T_TMP/gw.yaml" "$T_TMP/token"
fi
start_gateway "$T_TMP/gw.yaml"
wait_for 20 bash -c "[ \$(grep -c 'registered tunnel connection' '$SERVER_LOG') -ge 4 ]"
check "gateway registered 4 connections" eq "$(grep -c 'registered tunnel connection' "$SERVER_LOG")" 4

head -c $((20 * 1024 * 1024 + 12345)) /dev/urandom >"$T_TMP/big.bin"
head -c 1000003 /dev/urandom >"$T_TMP/mid.bin"
want_big=$(sha256sum <"$T_TMP/big.bin" | cut -d' ' -f1)
want_mid=$(sha256sum <"$T_TMP/mid.bin" | cut -d' ' -f1)

# The upstream echoes a POST body as its answer (with a content-length).
post() { # NAME FILE URL [curl args...] → $T_TMP/NAME.out, $T_TMP/NAME.code
	local name=$1 file=$2 url=$3
	shift 3
	curl -s -o "$T_TMP/$name.out" -w '%{http_code}' -H 'content-type: application/octet-stream' \
		--data-binary "@$file" "$url" "$@" >"$T_TMP/$name.code"
}
posts=()
for i in 1 2 3 4 5 6; do
	post "big$i" "$T_TMP/big.bin" "$BASE/v1/tunnels/$TID/routes/echo/mcp" -H 'x-api-key: testkey' \
		--max-time 120 &
	posts+=($!)
done
for i in 1 2 3; do
	post "mid$i" "$T_TMP/mid.bin" "http://127.0.0.1:$INGRESS_PORT/mcp" -H "Host: echo.$DOMAIN" \
		-H 'x-api-key: testkey' --max-time 120 &
	posts+=($!)
done
wait "${posts[@]}"
for i in 1 2 3 4 5 6; do
	check "20 MiB echo $i (path form): status" eq "$(cat "$T_TMP/big$i.code")" 201
	check "20 MiB echo $i (path form): same bytes" eq \
		"$(sha256sum <"$T_TMP/big$i.out" | cut -d' ' -f1)" "$want_big"
done
for i in 1 2 3; do
	check "1 MB echo $i (host form): status" eq "$(cat "$T_TMP/mid$i.code")" 201
	check "1 MB echo $i (host form): same bytes" eq \
		"$(sha256sum <"$T_TMP/mid$i.out" | cut -d' ' -f1)" "$want_mid"
done

# A client slower than the tunnel gets every byte. The edge acknowledges a streamed
# answer to the gateway only as the client's socket takes it (back-pressure), instead
# of queueing it until the client counts as not reading (8 MiB) and is cut off. The
# upstream sends no length, so the ingress frames the answer in chunks.
curl -s -D "$T_TMP/slow.head" -o "$T_TMP/slow.out" -w '%{http_code}' --limit-rate 6M \
	--max-time 60 -H 'x-api-key: testkey' "$BASE/v1/tunnels/$TID/routes/echo/file" \
	>"$T_TMP/slow.code"
check "20 MiB to a client reading 6 MB/s: curl ok, 200" eq "$?:$(cat "$T_TMP/slow.code")" 0:200
check "20 MiB to a client reading 6 MB/s: same bytes" eq \
	"$(sha256sum <"$T_TMP/slow.out" | cut -d' ' -f1)" "$want_big"
check "... framed in chunks (no length from the upstream)" eq \
	"$(grep -ci '^transfer-encoding: chunked' "$T_TMP/slow.head")" 1
check "... never cut off as a client not reading" eq "$(grep -c 'client not reading' "$SERVER_LOG")" 0

# The last chunk ends such an answer, so the client's connection carries its next
# request (curl reuses it: no new connect for the second transfer).
conns=$(curl -s -o /dev/null -o /dev/null -w '%{num_connects} ' --max-time 60 \
	-H 'x-api-key: testkey' "$BASE/v1/tunnels/$TID/routes/echo/file" \
	"$BASE/v1/tunnels/$TID/routes/echo/file")
check "two chunked answers on one client connection (connects per transfer)" eq "$conns" "1 0 "

# An upstream answer that breaks off midway reaches the client as a broken one: the
# gateway resets the stream, and the ingress ends the chunked answer without its last
# chunk (curl: 18, partial transfer) instead of a clean end with 5 bytes.
curl -s -o "$T_TMP/cut.out" --max-time 20 -H 'x-api-key: testkey' \
	"$BASE/v1/tunnels/$TID/routes/echo/cut"
check "answer cut off upstream: the client sees a partial transfer (curl 18)" eq "$?" 18
check "... after the bytes that did arrive" eq "$(cat "$T_TMP/cut.out")" hello

# Small answers after the bulk ones still work on the same connections.
ing POST /echo/mcp -H 'content-type: application/json' -d '{"jsonrpc":"2.0","id":7}'
check "small POST after bulk" eq "$BODY" '{"jsonrpc":"2.0","id":7}'
if [ "${TUNNEL_INNER:-}" = 1 ]; then
	sess=$(server_metric airlock_tunnel_inner_sessions_total)
	reused=$(server_metric airlock_tunnel_inner_reused_total)
	check "inner TLS sessions were opened" test "${sess:-0}" -ge 1
	check "every exchange ran inside inner TLS" eq \
		"$(server_metric airlock_tunnel_streams_total)" "$((sess + reused))"
fi
finish
