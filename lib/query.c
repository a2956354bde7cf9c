/* Query-string and percent decoding; see http.h. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "http.h"
#include "xalloc.h"

#define QUERY_MAX_PARAMS 256

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
url_decode(const char *s, size_t len, bool plus_is_space, char **out)
{
	char *o = xmalloc(len + 1);
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '%') {
			int hi, lo;
			if (i + 2 >= len || (hi = hexval(s[i + 1])) < 0 ||
			    (lo = hexval(s[i + 2])) < 0 || (hi == 0 && lo == 0)) {
				free(o);
				return AL_E_INVAL;
			}
			o[n++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (c == '+' && plus_is_space) {
			o[n++] = ' ';
		} else if (c == '\0') {
			free(o);
			return AL_E_INVAL;
		} else {
			o[n++] = c;
		}
	}
	o[n] = '\0';
	*out = o;
	return 0;
}

int
query_parse(const char *qs, struct query *q)
{
	q->params = NULL;
	q->n = 0;
	const char *p = qs ? qs : "";
	while (*p) {
		const char *amp = strchr(p, '&');
		size_t seglen = amp ? (size_t)(amp - p) : strlen(p);
		if (seglen > 0) {
			const char *eq = memchr(p, '=', seglen);
			size_t klen = eq ? (size_t)(eq - p) : seglen;
			const char *v = eq ? eq + 1 : p + seglen;
			size_t vlen = eq ? seglen - klen - 1 : 0;
			char *k = NULL, *val = NULL;
			if (q->n >= QUERY_MAX_PARAMS || url_decode(p, klen, true, &k) != 0 ||
			    url_decode(v, vlen, true, &val) != 0) {
				free(k);
				query_free(q);
				return AL_E_INVAL;
			}
			q->params = xreallocarray(q->params, q->n + 1, sizeof(*q->params));
			q->params[q->n].key = k;
			q->params[q->n].value = val;
			q->n++;
		}
		p += seglen;
		if (*p == '&')
			p++;
	}
	return 0;
}

void
query_free(struct query *q)
{
	for (size_t i = 0; i < q->n; i++) {
		free(q->params[i].key);
		free(q->params[i].value);
	}
	free(q->params);
	q->params = NULL;
	q->n = 0;
}

const char *
query_get(const struct query *q, const char *key)
{
	for (size_t i = 0; i < q->n; i++)
		if (strcmp(q->params[i].key, key) == 0)
			return q->params[i].value;
	return NULL;
}
