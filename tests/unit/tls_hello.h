/* Builds a minimal TLS 1.2-style ClientHello record for tests: sni NULL = no server_name
 * extension; split > 0 cuts the handshake into two records after that many bytes.
 * Returns the length written to out (>= 512 bytes of room). */
#ifndef AL_TEST_TLS_HELLO_H
#define AL_TEST_TLS_HELLO_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline size_t
test_tls_hello(const char *sni, size_t split, uint8_t *out)
{
	uint8_t hs[400];
	size_t n = 4, sl = sni ? strlen(sni) : 0;
	hs[n++] = 3, hs[n++] = 3;                                 /* client_version */
	memset(hs + n, 0x42, 32), n += 32;                        /* random */
	hs[n++] = 0;                                              /* session id */
	hs[n++] = 0, hs[n++] = 2, hs[n++] = 0x13, hs[n++] = 0x01; /* one suite */
	hs[n++] = 1, hs[n++] = 0;                                 /* null compression */
	size_t ext_len = sni ? 9 + sl : 4;
	hs[n++] = (uint8_t)(ext_len >> 8), hs[n++] = (uint8_t)ext_len;
	if (sni) {
		hs[n++] = 0, hs[n++] = 0; /* server_name */
		hs[n++] = (uint8_t)((sl + 5) >> 8), hs[n++] = (uint8_t)(sl + 5);
		hs[n++] = (uint8_t)((sl + 3) >> 8), hs[n++] = (uint8_t)(sl + 3);
		hs[n++] = 0; /* host_name */
		hs[n++] = (uint8_t)(sl >> 8), hs[n++] = (uint8_t)sl;
		memcpy(hs + n, sni, sl), n += sl;
	} else {
		hs[n++] = 0, hs[n++] = 23, hs[n++] = 0, hs[n++] = 0; /* extended_master_secret */
	}
	hs[0] = 1, hs[1] = 0, hs[2] = (uint8_t)((n - 4) >> 8), hs[3] = (uint8_t)(n - 4);
	size_t o = 0, at = 0;
	while (at < n) {
		size_t part = split && at == 0 && split < n ? split : n - at;
		out[o++] = 22, out[o++] = 3, out[o++] = 1;
		out[o++] = (uint8_t)(part >> 8), out[o++] = (uint8_t)part;
		memcpy(out + o, hs + at, part), o += part, at += part;
	}
	return o;
}

#endif
