/* Streaming multipart/form-data: a fixed window of input is scanned for the delimiter
 * ("\r\n--" boundary); what cannot be the start of one is handed to the current part at
 * once, so a part of any size passes through in window-sized pieces. See multipart.h and
 * docs/lib/multipart.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "multipart.h"
#include "xalloc.h"

#define MP_WINDOW 65536
#define MP_MAX_PADDING 64 /* transport padding (LWSP) after a delimiter */
#define MP_MAX_VALUE 1024 /* a name or filename */
#define MP_MAX_CTYPE 255

enum mp_state { MP_PREAMBLE, MP_AFTER_DELIM, MP_HEADERS, MP_BODY, MP_DONE, MP_FAILED };

struct multipart {
	enum mp_state state;
	struct multipart_limits lim;
	struct multipart_cb cb;
	void *arg;
	char delim[4 + MULTIPART_MAX_BOUNDARY]; /* "\r\n--" boundary */
	size_t dlen;
	char *win; /* the window: input not yet handed on */
	size_t len, cap;
	size_t preamble; /* bytes dropped before the first delimiter */
	size_t parts;
	int err;
	char msg[160];
	/* the current part's headers */
	char *name, *filename, *ctype;
};

static const struct multipart_limits mp_defaults = {
    .max_parts = 64,
    .max_header_bytes = 8192,
    .max_preamble = 1024,
};

static int
mp_fail(struct multipart *m, int err, const char *msg)
{
	m->state = MP_FAILED;
	m->err = err;
	snprintf(m->msg, sizeof(m->msg), "%s", msg);
	return err;
}

/* ---- header values ---- */

static bool
mp_tchar(unsigned char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static bool
mp_bchar(unsigned char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch && strchr("'()+_,-./:=? ", ch) != NULL);
}

static void
mp_skip_ows(const char **p, const char *end)
{
	while (*p < end && (**p == ' ' || **p == '\t'))
		(*p)++;
}

/* A token at *p: advances and returns its length (0: none). */
static size_t
mp_token(const char **p, const char *end)
{
	const char *s = *p;
	while (*p < end && mp_tchar((unsigned char)**p))
		(*p)++;
	return (size_t)(*p - s);
}

/* A parameter value (token or quoted-string) into a fresh string; NULL when malformed,
 * too long, or holding a control character (a NUL in a filename would cut it). */
static char *
mp_param_value(const char **p, const char *end)
{
	char out[MP_MAX_VALUE + 1];
	size_t n = 0;
	if (*p < end && **p == '"') {
		(*p)++;
		for (;;) {
			if (*p >= end)
				return NULL; /* unterminated */
			unsigned char ch = (unsigned char)**p;
			(*p)++;
			if (ch == '"')
				break;
			/* Browsers and undici (the SDK) send backslashes as they are and
			 * percent-encode quotes (WHATWG); curl escapes a quote as \". So a
			 * backslash escapes a quote only, and is kept before anything else. */
			if (ch == '\\' && *p < end && **p == '"') {
				ch = '"';
				(*p)++;
			}
			if ((ch < 0x20 && ch != '\t') || ch == 0x7f || n >= MP_MAX_VALUE)
				return NULL;
			out[n++] = (char)ch;
		}
	} else {
		const char *s = *p;
		size_t k = mp_token(p, end);
		if (k == 0 || k > MP_MAX_VALUE)
			return NULL;
		memcpy(out, s, k);
		n = k;
	}
	out[n] = '\0';
	return xstrdup(out);
}

/* Walks "; key=value" parameters after a type. For each one calls want(key) to learn
 * where its value goes (NULL: skip it). A repeated wanted key is an error. */
struct mp_param {
	const char *key;
	char **dst;
};

static int
mp_params(const char *p, const char *end, struct mp_param *want, size_t nwant)
{
	for (;;) {
		mp_skip_ows(&p, end);
		if (p == end)
			return 0;
		if (*p != ';')
			return AL_E_INVAL;
		p++;
		mp_skip_ows(&p, end);
		if (p == end)
			return 0; /* a trailing ';' is common enough to allow */
		const char *k = p;
		size_t klen = mp_token(&p, end);
		if (klen == 0)
			return AL_E_INVAL;
		mp_skip_ows(&p, end);
		if (p == end || *p != '=')
			return AL_E_INVAL;
		p++;
		mp_skip_ows(&p, end);
		char *v = mp_param_value(&p, end);
		if (v == NULL)
			return AL_E_INVAL;
		char **dst = NULL;
		for (size_t i = 0; i < nwant; i++)
			if (strlen(want[i].key) == klen && strncasecmp(k, want[i].key, klen) == 0)
				dst = want[i].dst;
		if (dst == NULL) {
			free(v); /* filename* and the like: RFC 7578 4.2 says senders do not use it
			          */
			continue;
		}
		if (*dst != NULL) {
			free(v);
			return AL_E_INVAL;
		}
		*dst = v;
	}
}

int
multipart_boundary(const char *content_type, char *out, size_t outsz)
{
	if (content_type == NULL)
		return AL_E_INVAL;
	const char *p = content_type, *end = p + strlen(p);
	static const char type[] = "multipart/form-data";
	mp_skip_ows(&p, end);
	if ((size_t)(end - p) < sizeof(type) - 1 || strncasecmp(p, type, sizeof(type) - 1) != 0)
		return AL_E_INVAL;
	p += sizeof(type) - 1;
	char *b = NULL;
	struct mp_param want[] = {{"boundary", &b}};
	int r = mp_params(p, end, want, 1);
	if (r != 0 || b == NULL)
		goto bad;
	size_t n = strlen(b);
	if (n == 0 || n > MULTIPART_MAX_BOUNDARY || b[n - 1] == ' ' || n + 1 > outsz)
		goto bad;
	for (size_t i = 0; i < n; i++)
		if (!mp_bchar((unsigned char)b[i]))
			goto bad;
	memcpy(out, b, n + 1);
	free(b);
	return 0;
bad:
	free(b);
	return AL_E_INVAL;
}

/* ---- the parser ---- */

struct multipart *
multipart_new(const char *boundary, const struct multipart_limits *lim,
              const struct multipart_cb *cb, void *arg)
{
	size_t blen = strlen(boundary);
	if (blen == 0 || blen > MULTIPART_MAX_BOUNDARY)
		return NULL;
	struct multipart *m = xcalloc(1, sizeof(*m));
	m->lim = mp_defaults;
	if (lim) {
		if (lim->max_parts)
			m->lim.max_parts = lim->max_parts;
		if (lim->max_header_bytes)
			m->lim.max_header_bytes = lim->max_header_bytes;
		if (lim->max_preamble)
			m->lim.max_preamble = lim->max_preamble;
	}
	m->cb = *cb;
	m->arg = arg;
	memcpy(m->delim, "\r\n--", 4);
	memcpy(m->delim + 4, boundary, blen);
	m->dlen = 4 + blen;
	/* a whole header block plus its terminator must fit, or it could never be seen */
	m->cap = MP_WINDOW + m->lim.max_header_bytes + 4;
	m->win = xmalloc(m->cap);
	/* The first delimiter may open the body without the CRLF that belongs to every later
	 * one: start with it, so one search finds both. */
	memcpy(m->win, "\r\n", 2);
	m->len = 2;
	m->state = MP_PREAMBLE;
	return m;
}

static void
mp_part_reset(struct multipart *m)
{
	free(m->name);
	free(m->filename);
	free(m->ctype);
	m->name = m->filename = m->ctype = NULL;
}

void
multipart_free(struct multipart *m)
{
	if (m == NULL)
		return;
	mp_part_reset(m);
	free(m->win);
	free(m);
}

const char *
multipart_error(const struct multipart *m)
{
	return m->msg;
}

static void
mp_consume(struct multipart *m, size_t n)
{
	memmove(m->win, m->win + n, m->len - n);
	m->len -= n;
}

static const char *
mp_find(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
	return memmem(hay, hlen, needle, nlen);
}

/* One header line (no CRLF). Only the two headers form-data gives meaning to are kept;
 * a transfer encoding we would have to undo is refused rather than stored encoded. */
static int
mp_header_line(struct multipart *m, const char *p, const char *end, bool *seen_cd)
{
	if (p < end && (*p == ' ' || *p == '\t'))
		return mp_fail(m, AL_E_INVAL, "multipart: folded part header");
	const char *k = p;
	size_t klen = mp_token(&p, end);
	if (klen == 0 || p == end || *p != ':')
		return mp_fail(m, AL_E_INVAL, "multipart: malformed part header");
	p++;
	mp_skip_ows(&p, end);
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	for (const char *q = p; q < end; q++)
		if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f)
			return mp_fail(m, AL_E_INVAL,
			               "multipart: control character in a part header");
	if (klen == 19 && strncasecmp(k, "content-disposition", klen) == 0) {
		if (*seen_cd)
			return mp_fail(m, AL_E_INVAL, "multipart: two Content-Disposition headers");
		*seen_cd = true;
		const char *t = p;
		size_t tlen = mp_token(&p, end);
		if (tlen != 9 || strncasecmp(t, "form-data", 9) != 0)
			return mp_fail(m, AL_E_INVAL,
			               "multipart: Content-Disposition must be form-data");
		struct mp_param want[] = {{"name", &m->name}, {"filename", &m->filename}};
		if (mp_params(p, end, want, 2) != 0)
			return mp_fail(m, AL_E_INVAL, "multipart: malformed Content-Disposition");
	} else if (klen == 12 && strncasecmp(k, "content-type", klen) == 0) {
		if (m->ctype != NULL)
			return mp_fail(m, AL_E_INVAL, "multipart: two Content-Type headers");
		if (end == p || (size_t)(end - p) > MP_MAX_CTYPE)
			return mp_fail(m, AL_E_INVAL, "multipart: bad part Content-Type");
		m->ctype = xstrndup(p, (size_t)(end - p));
	} else if (klen == 25 && strncasecmp(k, "content-transfer-encoding", klen) == 0) {
		size_t vlen = (size_t)(end - p);
		if (!((vlen == 6 && strncasecmp(p, "binary", 6) == 0) ||
		      (vlen == 4 && strncasecmp(p, "8bit", 4) == 0) ||
		      (vlen == 4 && strncasecmp(p, "7bit", 4) == 0)))
			return mp_fail(m, AL_E_INVAL,
			               "multipart: unsupported Content-Transfer-Encoding");
	}
	return 0;
}

static int
mp_headers(struct multipart *m, const char *p, size_t n)
{
	const char *end = p + n;
	bool seen_cd = false;
	if (memchr(p, '\0', n) != NULL)
		return mp_fail(m, AL_E_INVAL, "multipart: NUL in part headers");
	while (p < end) {
		const char *eol = mp_find(p, (size_t)(end - p), "\r\n", 2);
		const char *le = eol ? eol : end;
		if (memchr(p, '\r', (size_t)(le - p)) || memchr(p, '\n', (size_t)(le - p)))
			return mp_fail(m, AL_E_INVAL, "multipart: bare CR or LF in part headers");
		int r = mp_header_line(m, p, le, &seen_cd);
		if (r != 0)
			return r;
		p = eol ? eol + 2 : end;
	}
	if (m->name == NULL)
		return mp_fail(m, AL_E_INVAL,
		               "multipart: a part without a Content-Disposition name");
	return 0;
}

static int
mp_begin_part(struct multipart *m)
{
	if (++m->parts > m->lim.max_parts)
		return mp_fail(m, AL_E_TOOBIG, "multipart: too many parts");
	struct multipart_part part = {
	    .name = m->name,
	    .filename = m->filename,
	    .content_type = m->ctype ? m->ctype : "text/plain",
	    .index = m->parts - 1,
	};
	int r = m->cb.part_begin ? m->cb.part_begin(&part, m->arg) : 0;
	if (r != 0)
		return mp_fail(m, r, "multipart: part refused");
	return 0;
}

/* Advances through the window as far as its bytes allow. */
static int
mp_process(struct multipart *m)
{
	for (;;) {
		switch (m->state) {
		case MP_PREAMBLE: {
			const char *d = mp_find(m->win, m->len, m->delim, m->dlen);
			size_t drop = d ? (size_t)(d - m->win)
			                : (m->len >= m->dlen ? m->len - (m->dlen - 1) : 0);
			m->preamble += drop;
			/* the leading CRLF we added counts for nothing */
			if (m->preamble > m->lim.max_preamble + 2)
				return mp_fail(m, AL_E_INVAL,
				               "multipart: no boundary where the body "
				               "starts");
			if (d == NULL) {
				mp_consume(m, drop);
				return 0;
			}
			mp_consume(m, drop + m->dlen);
			m->state = MP_AFTER_DELIM;
			break;
		}
		case MP_AFTER_DELIM: {
			if (m->len < 2)
				return 0;
			if (m->win[0] == '-' && m->win[1] == '-') {
				m->state = MP_DONE;
				break;
			}
			size_t i = 0;
			while (i < m->len && (m->win[i] == ' ' || m->win[i] == '\t'))
				i++;
			if (i > MP_MAX_PADDING)
				return mp_fail(m, AL_E_INVAL, "multipart: junk after a boundary");
			if (i + 2 > m->len)
				return 0;
			if (m->win[i] != '\r' || m->win[i + 1] != '\n')
				return mp_fail(m, AL_E_INVAL, "multipart: junk after a boundary");
			mp_consume(m, i + 2);
			m->state = MP_HEADERS;
			break;
		}
		case MP_HEADERS: {
			size_t hlen, skip;
			if (m->len >= 2 && m->win[0] == '\r' && m->win[1] == '\n') {
				hlen = 0; /* no headers at all: refused below (no name) */
				skip = 2;
			} else {
				const char *e = mp_find(m->win, m->len, "\r\n\r\n", 4);
				if (e == NULL) {
					/* the terminator may have begun in the last 3 bytes: fail
					 * only when it could no longer end the block in bounds, so
					 * a body fed in pieces gets the whole body's verdict */
					if (m->len > m->lim.max_header_bytes + 3)
						return mp_fail(m, AL_E_TOOBIG,
						               "multipart: part headers too large");
					return 0;
				}
				hlen = (size_t)(e - m->win);
				skip = hlen + 4;
			}
			if (hlen > m->lim.max_header_bytes)
				return mp_fail(m, AL_E_TOOBIG, "multipart: part headers too large");
			int r = mp_headers(m, m->win, hlen);
			if (r == 0)
				r = mp_begin_part(m);
			if (r != 0)
				return r;
			mp_consume(m, skip);
			m->state = MP_BODY;
			break;
		}
		case MP_BODY: {
			const char *d = mp_find(m->win, m->len, m->delim, m->dlen);
			size_t emit = d ? (size_t)(d - m->win)
			                : (m->len >= m->dlen ? m->len - (m->dlen - 1) : 0);
			if (emit > 0 && m->cb.part_data) {
				int r = m->cb.part_data(m->win, emit, m->arg);
				if (r != 0)
					return mp_fail(m, r, "multipart: part data refused");
			}
			if (d == NULL) {
				mp_consume(m, emit);
				return 0;
			}
			mp_consume(m, emit + m->dlen);
			int r = m->cb.part_end ? m->cb.part_end(m->arg) : 0;
			mp_part_reset(m);
			if (r != 0)
				return mp_fail(m, r, "multipart: part refused");
			m->state = MP_AFTER_DELIM;
			break;
		}
		case MP_DONE:
			m->len = 0; /* the epilogue means nothing */
			return 0;
		case MP_FAILED:
			return m->err;
		}
	}
}

int
multipart_feed(struct multipart *m, const char *data, size_t len)
{
	while (len > 0) {
		if (m->state == MP_FAILED)
			return m->err;
		size_t n = m->cap - m->len;
		if (n > len)
			n = len;
		memcpy(m->win + m->len, data, n);
		m->len += n;
		data += n;
		len -= n;
		int r = mp_process(m);
		if (r != 0)
			return r;
		if (m->len == m->cap) /* every state drains a full window or fails */
			return mp_fail(m, AL_E_INTERNAL, "multipart: window stuck");
	}
	return m->state == MP_FAILED ? m->err : 0;
}

int
multipart_finish(struct multipart *m)
{
	if (m->state == MP_FAILED)
		return m->err;
	if (m->state != MP_DONE)
		return mp_fail(m, AL_E_INVAL, "multipart: body ends before the closing boundary");
	return 0;
}
