/* Fuzzes the multipart/form-data parser (lib/multipart.c). The input's first line is a
 * Content-Type header value (its boundary is parsed with multipart_boundary; "XyZ" when
 * it has none), the rest the body. The body is fed whole and again in pieces whose sizes
 * come from the input; both runs must report the same parts, bytes and verdict. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "multipart.h"

static int
on_begin(const struct multipart_part *p, void *arg)
{
	struct buf *b = arg;
	buf_addf(b, "[%s|%s|%s]", p->name, p->filename ? p->filename : "-", p->content_type);
	return 0;
}

static int
on_data(const char *d, size_t n, void *arg)
{
	return buf_add(arg, d, n) == 0 ? 0 : 1;
}

static int
on_end(void *arg)
{
	buf_add_str(arg, "<end>");
	return 0;
}

static const struct multipart_cb cb = {on_begin, on_data, on_end};

static int
parse(const char *boundary, const char *body, size_t len, const uint8_t *steps, size_t nsteps,
      struct buf *out)
{
	struct multipart_limits lim = {.max_parts = 8, .max_header_bytes = 512, .max_preamble = 64};
	struct multipart *m = multipart_new(boundary, &lim, &cb, out);
	if (m == NULL)
		abort();
	int r = 0;
	size_t off = 0, k = 0;
	while (off < len && r == 0) {
		size_t n = nsteps ? (size_t)(1 + steps[k++ % nsteps] % 13) : len - off;
		if (n > len - off)
			n = len - off;
		r = multipart_feed(m, body + off, n);
		off += n;
	}
	if (r == 0)
		r = multipart_finish(m);
	multipart_free(m);
	return r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	const char *nl = memchr(in, '\n', size);
	char boundary[MULTIPART_MAX_BOUNDARY + 1] = "XyZ";
	const char *body = in;
	size_t len = size;
	if (nl != NULL) {
		char *ct = strndup(in, (size_t)(nl - in));
		char b[MULTIPART_MAX_BOUNDARY + 1];
		if (multipart_boundary(ct, b, sizeof(b)) == 0)
			memcpy(boundary, b, sizeof(b));
		free(ct);
		body = nl + 1;
		len = size - (size_t)(nl + 1 - in);
	}
	struct buf whole, pieces;
	buf_init(&whole, 1 << 22);
	buf_init(&pieces, 1 << 22);
	int r1 = parse(boundary, body, len, NULL, 0, &whole);
	int r2 = parse(boundary, body, len, data, size, &pieces);
	if (r1 != r2 || whole.len != pieces.len ||
	    (whole.len && memcmp(whole.data, pieces.data, whole.len) != 0))
		abort();
	buf_free(&whole);
	buf_free(&pieces);
	return 0;
}
