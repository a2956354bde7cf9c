/* SSE parser and frame writer; see sse.h. The parser keeps one partial line and one
 * partial event; bytes are scanned in spans between line breaks, so the cost is one
 * copy per byte whatever the split. */
#include <string.h>

#include "err.h"
#include "sse.h"

enum {
	ST_AFTER_CR = 1, /* last byte was CR: a following LF belongs to it */
	ST_STARTED = 2,  /* first line seen: the BOM check is done */
	ST_HAS_DATA = 4, /* a data: line arrived since the last dispatch */
};

void
sse_parser_init(struct sse_parser *p, size_t max_line, size_t max_event, sse_event_fn *cb,
                void *arg)
{
	memset(p, 0, sizeof(*p));
	if (max_line == 0)
		max_line = 64 * 1024;
	if (max_event == 0)
		max_event = 16 * 1024 * 1024;
	buf_init(&p->line, max_line);
	buf_init(&p->event, max_line);
	buf_init(&p->id, max_line);
	/* +1: each data line carries its joining '\n' until dispatch trims the last */
	buf_init(&p->data, max_event + 1);
	p->max_event = max_event;
	p->cb = cb;
	p->arg = arg;
}

void
sse_parser_free(struct sse_parser *p)
{
	buf_free(&p->line);
	buf_free(&p->event);
	buf_free(&p->data);
	buf_free(&p->id);
}

static int
dispatch(struct sse_parser *p)
{
	int r = 0;
	if ((p->state & ST_HAS_DATA) || p->event.len > 0) {
		size_t dlen = p->data.len;
		if (dlen > 0 && p->data.data[dlen - 1] == '\n')
			dlen--;
		struct sse_event ev = {
		    .event = {p->event.data ? p->event.data : "", p->event.len},
		    .data = {p->data.data ? p->data.data : "", dlen},
		    .id = {p->id.data ? p->id.data : "", p->id.len},
		};
		r = p->cb(&ev, p->arg);
	}
	buf_reset(&p->event);
	buf_reset(&p->data);
	buf_reset(&p->id);
	p->state &= ~(unsigned)ST_HAS_DATA;
	return r;
}

static int
set_field(struct buf *b, const char *v, size_t n)
{
	buf_reset(b);
	return buf_add(b, v, n);
}

static int
process_line(struct sse_parser *p, const char *s, size_t n)
{
	if (!(p->state & ST_STARTED)) {
		p->state |= ST_STARTED;
		if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
			s += 3, n -= 3;
	}
	if (n == 0)
		return dispatch(p);
	if (s[0] == ':') {
		p->comments++;
		return 0;
	}
	const char *colon = memchr(s, ':', n);
	size_t flen = colon ? (size_t)(colon - s) : n;
	const char *v = colon ? colon + 1 : s + n;
	size_t vlen = colon ? n - flen - 1 : 0;
	if (vlen > 0 && v[0] == ' ')
		v++, vlen--;
	struct str f = {s, flen};
	if (str_eq(f, "data")) {
		if (p->data.len + vlen + 1 > p->max_event + 1)
			return AL_E_TOOBIG;
		p->state |= ST_HAS_DATA;
		int r = buf_add(&p->data, v, vlen);
		return r != 0 ? r : buf_add(&p->data, "\n", 1);
	}
	if (str_eq(f, "event"))
		return set_field(&p->event, v, vlen);
	if (str_eq(f, "id")) {
		if (memchr(v, '\0', vlen) != NULL)
			return 0; /* the standard ignores ids holding NUL */
		return set_field(&p->id, v, vlen);
	}
	return 0; /* retry and unknown fields are ignored */
}

int
sse_parser_feed(struct sse_parser *p, const char *data, size_t n)
{
	if (p->err != 0)
		return p->err;
	int r = 0;
	size_t i = 0;
	while (i < n) {
		if ((p->state & ST_AFTER_CR) && data[i] == '\n') {
			p->state &= ~(unsigned)ST_AFTER_CR;
			i++;
			continue;
		}
		p->state &= ~(unsigned)ST_AFTER_CR;
		size_t j = i;
		while (j < n && data[j] != '\n' && data[j] != '\r')
			j++;
		if (j == n) {
			if ((r = buf_add(&p->line, data + i, n - i)) != 0)
				goto out;
			break;
		}
		if (data[j] == '\r')
			p->state |= ST_AFTER_CR;
		if (p->line.len > 0) {
			if ((r = buf_add(&p->line, data + i, j - i)) != 0)
				goto out;
			r = process_line(p, p->line.data, p->line.len);
			buf_reset(&p->line);
		} else {
			if (j - i > p->line.max) {
				r = AL_E_TOOBIG;
				goto out;
			}
			r = process_line(p, data + i, j - i);
		}
		if (r != 0)
			goto out;
		i = j + 1;
	}
out:
	if (r != 0)
		p->err = r;
	return r;
}

int
sse_frame(struct buf *b, const char *event, const char *id, const char *json)
{
	if ((event != NULL && strpbrk(event, "\r\n") != NULL) ||
	    (id != NULL && strpbrk(id, "\r\n") != NULL))
		return AL_E_INVAL;
	size_t start = b->len;
	int r = 0;
	if (id != NULL && (r = buf_addf(b, "id: %s\n", id)) != 0)
		goto out;
	if (event != NULL && (r = buf_addf(b, "event: %s\n", event)) != 0)
		goto out;
	const char *s = json != NULL ? json : "";
	for (;;) {
		size_t k = strcspn(s, "\r\n");
		if ((r = buf_add(b, "data: ", 6)) != 0 || (r = buf_add(b, s, k)) != 0 ||
		    (r = buf_add(b, "\n", 1)) != 0)
			goto out;
		s += k;
		if (*s == '\0')
			break;
		s += (s[0] == '\r' && s[1] == '\n') ? 2 : 1;
	}
	r = buf_add(b, "\n", 1);
out:
	if (r != 0) {
		b->len = start; /* all or nothing: never a half frame */
		if (b->data)
			b->data[start] = '\0';
	}
	return r;
}
