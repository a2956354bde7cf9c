/* Bounded buffers and slices; see buf.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "xalloc.h"

void
buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
	b->secret = false;
}

void
buf_init_secret(struct buf *b, size_t max)
{
	buf_init(b, max);
	b->secret = true;
}

void
buf_reset(struct buf *b)
{
	if (b->data && b->secret)
		explicit_wipe(b->data, b->len);
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void
buf_free(struct buf *b)
{
	if (b->data && b->secret)
		explicit_wipe(b->data, b->cap + 1);
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void
buf_wipe_free(struct buf *b)
{
	if (b->data)
		explicit_wipe(b->data, b->cap + 1);
	buf_free(b);
}

int
buf_reserve(struct buf *b, size_t n, char **wp)
{
	if (n > b->max || b->len > b->max - n)
		return AL_E_TOOBIG;
	if (b->len + n > b->cap ||
	    b->data == NULL) { /* n == 0 on a fresh buf still needs the NUL */
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->len + n)
			cap = cap > b->max / 2 ? b->max : cap * 2;
		if (b->secret && b->data) {
			/* realloc may move the bytes and free the old block unwiped */
			char *nd = xmalloc(cap + 1);
			memcpy(nd, b->data, b->cap + 1);
			explicit_wipe(b->data, b->cap + 1);
			free(b->data);
			b->data = nd;
		} else {
			b->data = xrealloc(b->data, cap + 1);
		}
		b->cap = cap;
	}
	*wp = b->data + b->len;
	return 0;
}

void
buf_commit(struct buf *b, size_t n)
{
	b->len += n;
	b->data[b->len] = '\0';
}

int
buf_add(struct buf *b, const void *p, size_t n)
{
	char *wp;
	int r;
	if ((r = buf_reserve(b, n, &wp)) != 0)
		return r;
	if (n)
		memcpy(wp, p, n);
	buf_commit(b, n);
	return 0;
}

int
buf_add_str(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

int
buf_vaddf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	char *wp;
	int n, r;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return AL_E_INVAL;
	if ((r = buf_reserve(b, (size_t)n, &wp)) != 0)
		return r;
	vsnprintf(wp, (size_t)n + 1, fmt, ap);
	buf_commit(b, (size_t)n);
	return 0;
}

int
buf_addf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = buf_vaddf(b, fmt, ap);
	va_end(ap);
	return r;
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	if (b->secret) /* the tail still holds the last n bytes */
		explicit_wipe(b->data + b->len - n, n);
	b->len -= n;
	b->data[b->len] = '\0';
}

char *
buf_steal(struct buf *b)
{
	char *s = b->data ? b->data : xstrdup("");
	b->data = NULL;
	b->len = b->cap = 0;
	return s;
}

struct str
str_from(const char *s)
{
	return (struct str){s, s ? strlen(s) : 0};
}

bool
str_eq(struct str a, const char *b)
{
	size_t n = strlen(b);
	return a.len == n && memcmp(a.p, b, n) == 0;
}

bool
str_has_prefix(struct str a, const char *prefix)
{
	size_t n = strlen(prefix);
	return a.len >= n && memcmp(a.p, prefix, n) == 0;
}

char *
str_dup(struct str s)
{
	char *p = xmalloc(s.len + 1);
	memcpy(p, s.p, s.len);
	p[s.len] = '\0';
	return p;
}

int
parse_uint(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (len == 0 || len > 20)
		return AL_E_INVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return AL_E_INVAL;
		unsigned d = (unsigned)(s[i] - '0');
		if (d > max || v > (max - d) / 10)
			return AL_E_INVAL;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int
parse_uint_cstr(const char *s, uint64_t max, uint64_t *out)
{
	return parse_uint(s, strlen(s), max, out);
}

int
parse_duration_ms(const char *s, uint64_t max_ms, uint64_t *out)
{
	uint64_t total = 0, v;
	if (s == NULL || *s == '\0')
		return AL_E_INVAL;
	if (parse_uint_cstr(s, max_ms / 1000, &v) == 0) { /* bare: seconds */
		*out = v * 1000;
		return 0;
	}
	while (*s) {
		size_t n = 0;
		uint64_t mul;
		while (s[n] >= '0' && s[n] <= '9')
			n++;
		if (n == 0 || parse_uint(s, n, max_ms, &v) != 0)
			return AL_E_INVAL;
		s += n;
		if (strncmp(s, "ms", 2) == 0)
			mul = 1, s += 2;
		else if (*s == 's')
			mul = 1000, s++;
		else if (*s == 'm')
			mul = 60000, s++;
		else if (*s == 'h')
			mul = 3600000, s++;
		else
			return AL_E_INVAL;
		if (v > max_ms / mul || total + v * mul > max_ms)
			return AL_E_INVAL;
		total += v * mul;
	}
	*out = total;
	return 0;
}
