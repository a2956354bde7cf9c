/* Table-driven tests of the tunnel handshake codec and the inner-TLS HTTP/1.1 head
 * parser (docs/proto/tunnel.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "tunnel_proto.h"

static void
test_parse(void **state)
{
	static const struct {
		const char *in;
		bool reply;
		int want; /* >0: full length expected; 0 need more; <0 error */
	} cases[] = {
	    {"AIRLOCK-TUNNEL/1\r\nToken: t\r\n\r\n", false, 1},
	    {"AIRLOCK-TUNNEL/1\r\n\r\n", false, 1},
	    {"AIRLOCK-TUNNEL/1\r\nToken: t\r\n", false, 0},
	    {"AIRLOCK-TUN", false, 0},
	    {"GET / HTTP/1.1\r\n\r\n", false, AL_E_PROTO},
	    {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", false, AL_E_PROTO},
	    {"AIRLOCK-TUNNEL/1 200 OK\r\nTunnel-Id: tnl_x\r\n\r\n", true, 1},
	    {"AIRLOCK-TUNNEL/1 401 invalid tunnel token\r\n\r\n", true, 1},
	    {"AIRLOCK-TUNNEL/1 2x0 OK\r\n\r\n", true, AL_E_PROTO},
	    {"AIRLOCK-TUNNEL/1 200 OK\r\n\r\n", false, AL_E_PROTO}, /* reply where a hello is due */
	    {"AIRLOCK-TUNNEL/1\r\n\r\n", true, AL_E_PROTO},
	    {"AIRLOCK-TUNNEL/1\r\nNo colon\r\n\r\n", false, AL_E_PROTO},
	    {"AIRLOCK-TUNNEL/1\r\nBad Name: v\r\n\r\n", false, AL_E_PROTO},
	    {"AIRLOCK-TUNNEL/1\r\nA: \x01\r\n\r\n", false, AL_E_PROTO},
	    {"AIRLOCK-TUNNEL/1\nToken: t\n\n", false, 0},
	    {"AIRLOCK-TUNNEL/1\r\nA: 1\r\nA: 2\r\nA: 3\r\nA: 4\r\nA: 5\r\nA: 6\r\nA: 7\r\nA: "
	     "8\r\nA: 9\r\n\r\n",
	     false, AL_E_PROTO},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tunnel_msg m;
		size_t n = strlen(cases[i].in);
		int r = tunnel_msg_parse(cases[i].in, n, cases[i].reply, &m);
		if (cases[i].want > 0)
			assert_int_equal(r, (int)n);
		else
			assert_int_equal(r, cases[i].want);
	}
}

static void
test_roundtrip_and_bounds(void **state)
{
	struct tunnel_msg m, back;
	struct buf b;
	memset(&m, 0, sizeof(m));
	m.status = 200;
	snprintf(m.reason, sizeof(m.reason), "OK");
	tunnel_msg_add(&m, "Tunnel-Id", "tnl_abc");
	tunnel_msg_add(&m, "Connection-Id", "tcon_x");
	buf_init(&b, 8192);
	assert_int_equal(tunnel_msg_write(&m, true, &b), 0);
	/* Bytes after the message (the start of HTTP/2) are not consumed. */
	buf_add(&b, "\x00\x00\x06\x04", 4);
	int n = tunnel_msg_parse(b.data, b.len, true, &back);
	assert_int_equal(n, (int)b.len - 4);
	assert_int_equal(back.status, 200);
	assert_string_equal(tunnel_msg_get(&back, "tunnel-id"), "tnl_abc");
	assert_null(tunnel_msg_get(&back, "Token"));
	buf_free(&b);

	/* 4 KiB without an end: too big, not "need more" forever. */
	char big[TUNNEL_HANDSHAKE_MAX + 10];
	memcpy(big, "AIRLOCK-TUNNEL/1\r\nX: ", 21);
	memset(big + 21, 'a', sizeof(big) - 21);
	assert_int_equal(tunnel_msg_parse(big, sizeof(big), false, &back), AL_E_TOOBIG);

	/* Values with CR/LF cannot be written (no header injection through a field). */
	memset(&m, 0, sizeof(m));
	tunnel_msg_add(&m, "Token", "a\r\nX: y");
	buf_init(&b, 8192);
	assert_int_equal(tunnel_msg_write(&m, false, &b), AL_E_INVAL);
	buf_free(&b);
}

static void
test_hop_headers(void **state)
{
	assert_true(tunnel_hop_header("connection", 10));
	assert_true(tunnel_hop_header("Transfer-Encoding", 17));
	assert_true(tunnel_hop_header("host", 4));
	assert_false(tunnel_hop_header("mcp-session-id", 14));
	assert_false(tunnel_hop_header("authorization", 13));
	assert_false(tunnel_hop_header("hostx", 5));
}

static void
test_inner_head(void **state)
{
	static const struct {
		const char *in;
		bool response;
		int want; /* > 0: the head's length (strlen up to the blank line); 0; error */
		size_t nf;
	} cases[] = {
	    {"POST /mcp HTTP/1.1\r\nHost: a.b\r\ncontent-length: 2\r\n\r\n{}", false, 52, 2},
	    {"GET /x?y=1 HTTP/1.1\r\nhost:a\r\n\r\n", false, 31, 1},
	    {"HTTP/1.1 200 OK\r\nx:  padded \t\r\n\r\nbody", true, 33, 1},
	    {"HTTP/1.1 204\r\n\r\n", true, 16, 0},
	    {"HTTP/1.1 200 \r\n\r\n", true, 17, 0},
	    {"POST /mcp HTTP/1.1\r\nhost: a", false, 0, 0},                 /* more bytes */
	    {"POST /mcp HTTP/1.1\r", false, 0, 0},                          /* cut at CR */
	    {"POST /mcp HTTP/1.1\nhost: a\n\n", false, AL_E_PROTO, 0},      /* bare LF */
	    {"POST /mcp HTTP/1.0\r\n\r\n", false, AL_E_PROTO, 0},           /* version */
	    {"POST mcp HTTP/1.1\r\n\r\n", false, AL_E_PROTO, 0},            /* not origin form */
	    {"POST /a b HTTP/1.1\r\n\r\n", false, AL_E_PROTO, 0},           /* space in target */
	    {"P(ST / HTTP/1.1\r\n\r\n", false, AL_E_PROTO, 0},              /* method token */
	    {"GET / HTTP/1.1\r\nx: 1\r\n y\r\n\r\n", false, AL_E_PROTO, 0}, /* obs-fold */
	    {"GET / HTTP/1.1\r\nx : 1\r\n\r\n", false, AL_E_PROTO, 0},      /* space before : */
	    {"GET / HTTP/1.1\r\n: 1\r\n\r\n", false, AL_E_PROTO, 0},        /* empty name */
	    {"GET / HTTP/1.1\r\nx: a\rb\r\n\r\n", false, AL_E_PROTO, 0},    /* CR in value */
	    {"GET / HTTP/1.1\r\nx: a\x01\r\n\r\n", false, AL_E_PROTO, 0},   /* control */
	    {"HTTP/1.1 2000 OK\r\n\r\n", true, AL_E_PROTO, 0},
	    {"HTTP/1.1 099 x\r\n\r\n", true, AL_E_PROTO, 0},
	    {"HTTP/1.0 200 OK\r\n\r\n", true, AL_E_PROTO, 0},
	    {"GET / HTTP/1.1\r\n\r\n", true, AL_E_PROTO, 0}, /* request as answer */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tunnel_head h;
		int r = tunnel_head_parse(cases[i].in, strlen(cases[i].in), cases[i].response, &h);
		if (r != cases[i].want || (r > 0 && h.nf != cases[i].nf))
			fail_msg("case %zu: got %d (%zu fields), want %d (%zu)", i, r, h.nf,
			         cases[i].want, cases[i].nf);
	}
	struct tunnel_head h;
	const char *req = "POST /mcp HTTP/1.1\r\nHost: Echo.T\r\nX-A:  v  \r\n\r\n";
	assert_true(tunnel_head_parse(req, strlen(req), false, &h) > 0);
	assert_int_equal(h.method.n, 4);
	assert_memory_equal(h.target.p, "/mcp", 4);
	const struct tunnel_slice *v = tunnel_head_get(&h, "x-a");
	assert_non_null(v);
	assert_int_equal(v->n, 1); /* surrounding whitespace trimmed */
	assert_non_null(tunnel_head_get(&h, "host"));
	assert_null(tunnel_head_get(&h, "content-length"));
	/* bounds: 101 fields, and a head over 64 KiB without its end */
	char big[TUNNEL_INNER_HEAD_MAX + 64];
	size_t off = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\n");
	for (int k = 0; k <= TUNNEL_INNER_FIELDS; k++)
		off += (size_t)snprintf(big + off, sizeof(big) - off, "f%d: v\r\n", k);
	off += (size_t)snprintf(big + off, sizeof(big) - off, "\r\n");
	assert_int_equal(tunnel_head_parse(big, off, false, &h), AL_E_TOOBIG);
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET / HTTP/1.1\r\nx: ", 19);
	assert_int_equal(tunnel_head_parse(big, sizeof(big), false, &h), AL_E_TOOBIG);
}

/* Chunked answers of inner TLS, whole and fed one byte at a time. */
static void
test_chunked(void **state)
{
	static const struct {
		const char *in;
		int want; /* 1 complete, 0 more, AL_E_PROTO */
		const char *body;
		size_t used; /* input read (complete: up to the end of the last chunk) */
	} cases[] = {
	    {"5\r\nhello\r\n0\r\n\r\n", 1, "hello", 15},
	    {"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nXX", 1, "hello world", 26},
	    {"A\r\n0123456789\r\n0\r\n\r\n", 1, "0123456789", 20},
	    {"0\r\n\r\n", 1, "", 5},
	    {"5\r\nhel", 0, "hel", 6},
	    {"5\r\nhello\r\n", 0, "hello", 10},
	    {"5;x=1\r\nhello\r\n0\r\n\r\n", AL_E_PROTO, NULL, 0}, /* no extensions */
	    {"5\r\nhelloXX0\r\n\r\n", AL_E_PROTO, NULL, 0},       /* no CRLF after data */
	    {"\r\n", AL_E_PROTO, NULL, 0},                        /* no size */
	    {"g\r\n", AL_E_PROTO, NULL, 0},
	    {"1000000000000000\r\n", AL_E_PROTO, NULL, 0}, /* 16 hex digits */
	    {"0\r\nx: y\r\n\r\n", AL_E_PROTO, NULL, 0},    /* no trailers */
	    {"5\nhello\n0\n\n", AL_E_PROTO, NULL, 0},      /* bare LF */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].in);
		for (int split = 0; split < 2; split++) {
			struct tunnel_chunked c = {0};
			char out[128];
			size_t outn = 0, total = 0;
			int r = 0;
			char buf[128];
			/* whole, or one byte per call */
			for (size_t off = 0; off < len && r == 0;) {
				size_t k = split ? 1 : len - off, n = k, used = 0;
				memcpy(buf, cases[i].in + off, k);
				r = tunnel_chunked_decode(&c, buf, &n, &used);
				memcpy(out + outn, buf, n);
				outn += n;
				total += used;
				off += k;
			}
			if (r != cases[i].want)
				fail_msg("case %zu split %d: got %d, want %d", i, split, r,
				         cases[i].want);
			if (r >= 0 &&
			    (outn != strlen(cases[i].body) ||
			     memcmp(out, cases[i].body, outn) != 0 || total != cases[i].used))
				fail_msg("case %zu split %d: body %.*s used %zu", i, split,
				         (int)outn, out, total);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),       cmocka_unit_test(test_roundtrip_and_bounds),
	    cmocka_unit_test(test_hop_headers), cmocka_unit_test(test_inner_head),
	    cmocka_unit_test(test_chunked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
