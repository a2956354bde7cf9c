/* Fuzzes the SSE parser (lib/sse.c): the input is fed whole and again in pieces whose
 * sizes come from the input itself; both runs must see the same events. Each event's
 * data is re-framed with sse_frame and parsed back unchanged. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "sse.h"

struct acc {
	struct buf all;
};

static int
collect(const struct sse_event *ev, void *arg)
{
	struct acc *a = arg;
	buf_add(&a->all, ev->event.p, ev->event.len);
	buf_add(&a->all, "\x01", 1);
	buf_add(&a->all, ev->id.p, ev->id.len);
	buf_add(&a->all, "\x01", 1);
	buf_add(&a->all, ev->data.p, ev->data.len);
	buf_add(&a->all, "\x02", 1);
	return 0;
}

static int
roundtrip(const struct sse_event *ev, void *arg)
{
	/* data may hold any byte but NUL-free text is what sse_frame takes */
	if (memchr(ev->data.p, '\0', ev->data.len) != NULL || ev->data.len > 4096)
		return 0;
	char *d = strndup(ev->data.p, ev->data.len);
	struct buf f;
	buf_init(&f, 1 << 20);
	if (sse_frame(&f, "x", NULL, d) == 0) {
		struct acc a;
		buf_init(&a.all, 1 << 20);
		struct sse_parser p;
		sse_parser_init(&p, 0, 0, collect, &a);
		sse_parser_feed(&p, f.data, f.len);
		/* CRLF and CR inside data become LF: compare against that normal form */
		struct buf want;
		buf_init(&want, 1 << 20);
		buf_add(&want, "x\x01\x01", 3);
		for (size_t i = 0; i < ev->data.len; i++) {
			char ch = ev->data.p[i];
			if (ch == '\r' && i + 1 < ev->data.len && ev->data.p[i + 1] == '\n')
				continue;
			buf_add(&want, ch == '\r' ? "\n" : &ch, 1);
		}
		buf_add(&want, "\x02", 1);
		if (a.all.len != want.len || memcmp(a.all.data, want.data, want.len) != 0)
			abort();
		sse_parser_free(&p);
		buf_free(&a.all);
		buf_free(&want);
	}
	buf_free(&f);
	free(d);
	return 0;
}

static int
both(const struct sse_event *ev, void *arg)
{
	collect(ev, arg);
	return roundtrip(ev, NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct acc whole, pieces;
	buf_init(&whole.all, 1 << 22);
	buf_init(&pieces.all, 1 << 22);
	struct sse_parser p1, p2;
	sse_parser_init(&p1, 256, 1024, both, &whole);
	sse_parser_init(&p2, 256, 1024, collect, &pieces);
	int r1 = sse_parser_feed(&p1, (const char *)data, size);
	int r2 = 0;
	size_t off = 0, k = 0;
	while (off < size && r2 == 0) {
		size_t n = 1 + (size > 0 ? data[k++ % size] % 7 : 0);
		if (n > size - off)
			n = size - off;
		r2 = sse_parser_feed(&p2, (const char *)data + off, n);
		off += n;
	}
	if (r1 != r2 || whole.all.len != pieces.all.len ||
	    (whole.all.len && memcmp(whole.all.data, pieces.all.data, whole.all.len) != 0))
		abort();
	sse_parser_free(&p1);
	sse_parser_free(&p2);
	buf_free(&whole.all);
	buf_free(&pieces.all);
	return 0;
}
