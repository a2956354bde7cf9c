/* libFuzzer target: the HTTP/1.1 head parser and the chunked decoder of inner TLS
 * (lib/tunnel_proto.c), which the gateway runs on requests and the server on answers.
 * The first byte picks request head, answer head or chunked body. A parsed head must lie
 * inside the input, its slices must hold no CR, LF or NUL, and bytes after the head must
 * not change the verdict; the decoder must give the same verdict, body and bytes read
 * whether it gets the input whole or one byte at a time. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fuzz.h"
#include "tunnel_proto.h"

static void
slice_ok(const struct tunnel_slice *s, const char *base, size_t n)
{
	if (s->n == 0)
		return;
	if (s->p < base || s->p + s->n > base + n)
		__builtin_trap();
	for (size_t i = 0; i < s->n; i++)
		if (s->p[i] == '\r' || s->p[i] == '\n' || s->p[i] == '\0')
			__builtin_trap();
}

static int
chunked(const char *p, size_t n)
{
	struct tunnel_chunked a = {0}, b = {0};
	char *whole = malloc(n + 1), *one = malloc(n + 1);
	memcpy(whole, p, n);
	size_t wn = n, wused = 0, on = 0, oused = 0;
	int rw = tunnel_chunked_decode(&a, whole, &wn, &wused);
	int ro = 0;
	for (size_t i = 0; i < n && ro == 0; i++) {
		char c = p[i];
		size_t k = 1, used = 0;
		ro = tunnel_chunked_decode(&b, &c, &k, &used);
		if (k == 1)
			one[on++] = c;
		oused += used;
	}
	if (rw != ro || wn > n || wused > n ||
	    (rw >= 0 && (wn != on || wused != oused || memcmp(whole, one, wn) != 0)))
		__builtin_trap();
	free(whole);
	free(one);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct tunnel_head h, h2;
	if (size < 1)
		return 0;
	bool response = data[0] & 1;
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	if (data[0] & 2)
		return chunked(p, n);
	int r = tunnel_head_parse(p, n, response, &h);
	if (r <= 0)
		return 0;
	if ((size_t)r > n || h.nf > TUNNEL_INNER_FIELDS)
		__builtin_trap();
	slice_ok(&h.method, p, n);
	slice_ok(&h.target, p, n);
	for (size_t i = 0; i < h.nf; i++) {
		slice_ok(&h.f[i].name, p, n);
		slice_ok(&h.f[i].value, p, n);
	}
	if (response && (h.status < 100 || h.status > 999))
		__builtin_trap();
	/* the head ends where it ends, whatever follows */
	char *more = malloc(n + 4);
	memcpy(more, p, n);
	memcpy(more + n, "X\r\n", 3);
	int r2 = tunnel_head_parse(more, n + 3, response, &h2);
	if (r2 != r || h2.nf != h.nf || h2.status != h.status)
		__builtin_trap();
	free(more);
	return 0;
}
