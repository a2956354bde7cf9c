/* Tunnel handshake codec and the TLS <-> nghttp2 byte pump; see tunnel_proto.h and
 * docs/proto/tunnel.md. Shared by the server's edge and the gateway. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>

#include "err.h"
#include "tunnel_proto.h"

/* Field names: token characters; values: printable ASCII without CR/LF. */
static bool
name_ok(const char *p, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return false;
	}
	return true;
}

static bool
value_ok(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] > 0x7e)
			return false;
	return true;
}

static int
parse_start(const char *p, size_t n, bool is_reply, struct tunnel_msg *m)
{
	size_t ml = strlen(TUNNEL_MAGIC);
	if (n < ml || memcmp(p, TUNNEL_MAGIC, ml) != 0)
		return AL_E_PROTO;
	if (!is_reply)
		return n == ml ? 0 : AL_E_PROTO;
	/* "AIRLOCK-TUNNEL/1 200 OK" */
	if (n < ml + 5 || p[ml] != ' ' || p[ml + 4] != ' ')
		return AL_E_PROTO;
	uint64_t code;
	if (parse_uint(p + ml + 1, 3, 999, &code) != 0 || code < 100)
		return AL_E_PROTO;
	size_t rl = n - (ml + 5);
	if (rl >= sizeof(m->reason) || !value_ok(p + ml + 5, rl))
		return AL_E_PROTO;
	m->status = (int)code;
	memcpy(m->reason, p + ml + 5, rl);
	m->reason[rl] = '\0';
	return 0;
}

int
tunnel_msg_parse(const char *p, size_t n, bool is_reply, struct tunnel_msg *m)
{
	size_t end = 0;
	memset(m, 0, sizeof(*m));
	/* Find the blank line within the bound. */
	size_t lim = n < TUNNEL_HANDSHAKE_MAX ? n : TUNNEL_HANDSHAKE_MAX;
	for (size_t i = 0; i + 3 < lim; i++)
		if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') {
			end = i + 4;
			break;
		}
	if (end == 0) {
		/* A byte that can never appear in a handshake means it is not one: fail
		 * early instead of waiting for 4 KiB. */
		size_t ml = strlen(TUNNEL_MAGIC);
		size_t k = lim < ml ? lim : ml;
		if (memcmp(p, TUNNEL_MAGIC, k) != 0)
			return AL_E_PROTO;
		return n >= TUNNEL_HANDSHAKE_MAX ? AL_E_TOOBIG : 0;
	}
	size_t pos = 0;
	bool first = true;
	while (pos < end - 2) {
		const char *ls = p + pos;
		const char *le = memchr(ls, '\r', end - pos);
		if (le == NULL || le + 1 >= p + end || le[1] != '\n')
			return AL_E_PROTO;
		size_t ll = (size_t)(le - ls);
		pos += ll + 2;
		if (first) {
			if (parse_start(ls, ll, is_reply, m) != 0)
				return AL_E_PROTO;
			first = false;
			continue;
		}
		if (ll == 0)
			break;
		const char *colon = memchr(ls, ':', ll);
		if (colon == NULL || m->nf >= sizeof(m->f) / sizeof(m->f[0]))
			return AL_E_PROTO;
		size_t nl = (size_t)(colon - ls);
		const char *v = colon + 1;
		size_t vl = ll - nl - 1;
		while (vl > 0 && *v == ' ') {
			v++;
			vl--;
		}
		if (!name_ok(ls, nl) || nl >= sizeof(m->f[0].name) || !value_ok(v, vl) ||
		    vl >= sizeof(m->f[0].value))
			return AL_E_PROTO;
		memcpy(m->f[m->nf].name, ls, nl);
		m->f[m->nf].name[nl] = '\0';
		memcpy(m->f[m->nf].value, v, vl);
		m->f[m->nf].value[vl] = '\0';
		m->nf++;
	}
	if (first)
		return AL_E_PROTO;
	return (int)end;
}

const char *
tunnel_msg_get(const struct tunnel_msg *m, const char *name)
{
	for (size_t i = 0; i < m->nf; i++)
		if (strcasecmp(m->f[i].name, name) == 0)
			return m->f[i].value;
	return NULL;
}

void
tunnel_msg_add(struct tunnel_msg *m, const char *name, const char *value)
{
	if (m->nf >= sizeof(m->f) / sizeof(m->f[0]))
		return;
	snprintf(m->f[m->nf].name, sizeof(m->f[0].name), "%s", name);
	snprintf(m->f[m->nf].value, sizeof(m->f[0].value), "%s", value);
	m->nf++;
}

int
tunnel_msg_write(const struct tunnel_msg *m, bool is_reply, struct buf *out)
{
	int r;
	if (is_reply)
		r = buf_addf(out, "%s %03d %s\r\n", TUNNEL_MAGIC, m->status, m->reason);
	else
		r = buf_addf(out, "%s\r\n", TUNNEL_MAGIC);
	for (size_t i = 0; r == 0 && i < m->nf; i++) {
		if (!value_ok(m->f[i].value, strlen(m->f[i].value)))
			return AL_E_INVAL;
		r = buf_addf(out, "%s: %s\r\n", m->f[i].name, m->f[i].value);
	}
	if (r == 0)
		r = buf_add_str(out, "\r\n");
	return r;
}

/* TLS records go through a write buffer in front of the socket: one send per
 * TUNNEL_WRITE_BATCH instead of one per 16 KiB record. Loopback carries up to 64 KiB
 * per packet, so the receiving side gets a quarter of the packets and wakeups; the cost
 * is one memcpy per record. tunnel_io_flush empties the buffer on every call, and
 * OpenSSL flushes it after each handshake flight. Without the BIOs (no memory) the
 * SSL keeps the plain socket BIO set by SSL_set_fd. */
static void
write_coalesce(SSL *ssl)
{
	int fd = SSL_get_fd(ssl);
	if (fd < 0)
		return;
	BIO *r = BIO_new_socket(fd, BIO_NOCLOSE);
	BIO *w = BIO_new_socket(fd, BIO_NOCLOSE);
	BIO *b = BIO_new(BIO_f_buffer());
	if (r == NULL || w == NULL || b == NULL ||
	    BIO_set_write_buffer_size(b, TUNNEL_WRITE_BATCH) != 1) {
		BIO_free(r);
		BIO_free(w);
		BIO_free(b);
		return;
	}
	SSL_set_bio(ssl, r, BIO_push(b, w));
}

void
tunnel_io_init(struct tunnel_io *io, SSL *ssl)
{
	memset(io, 0, sizeof(*io));
	io->ssl = ssl;
	/* Read ahead: one recv per several records instead of two (header, then body) per
	 * 16 KiB record; tunnel_io_read drains what is buffered. Not more than
	 * TUNNEL_READ_AHEAD: before each record OpenSSL 3 moves everything still buffered
	 * to the front of its buffer (ssl3_read_n aligns the payload), a cost that grows
	 * with the fill. 256 KiB cost the edge ~10 % more CPU per MiB than 64 KiB (a bulk
	 * download, interleaved runs); reading through a BIO_f_buffer with read-ahead off,
	 * which avoids the move, cost more still. */
	if (ssl) {
		SSL_set_read_ahead(ssl, 1);
		SSL_set_default_read_buffer_len(ssl, TUNNEL_READ_AHEAD);
		write_coalesce(ssl);
	}
	/* Bounded so a peer that never reads cannot grow us without limit; the pump
	 * stops pulling from nghttp2 well before this. */
	buf_init(&io->out, 4 << 20);
}

void
tunnel_io_reset(struct tunnel_io *io)
{
	buf_free(&io->out);
	io->out_off = 0;
	if (io->ssl)
		SSL_free(io->ssl);
	io->ssl = NULL;
}

int
tunnel_io_read(struct tunnel_io *io, int (*feed)(void *arg, const char *p, size_t n), void *arg)
{
	/* Records are decrypted into one batch and handed over together: a DATA frame that
	 * spans many records reaches its owner in one callback (on the edge, one send to the
	 * client) instead of one per 16 KiB record. One static batch: each process runs one
	 * loop thread; a feed that reads another connection gets a stack buffer instead. */
	static char batch[TUNNEL_READ_BATCH];
	static bool busy;
	char small[16384];
	bool nested = busy;
	char *b = nested ? small : batch;
	size_t cap = nested ? sizeof(small) : sizeof(batch), have = 0;
	int rc = 0;
	busy = true;
	/* After 64 records other connections get a turn (epoll is level-triggered), but
	 * only once nothing is left in the read-ahead buffer: the socket may be empty then
	 * and no event would come for it. The peer's h2 windows bound how long this runs. */
	for (int rounds = 0; rounds < 64 || SSL_has_pending(io->ssl); rounds++) {
		if (cap - have < 16384) { /* room for a whole record, else hand over first */
			if ((rc = feed(arg, b, have)) != 0)
				goto out;
			have = 0;
		}
		ERR_clear_error();
		int n = SSL_read(io->ssl, b + have, (int)(cap - have));
		if (n > 0) {
			have += (size_t)n;
			continue;
		}
		int e = SSL_get_error(io->ssl, n);
		if (e == SSL_ERROR_WANT_WRITE)
			io->want_write = true;
		else if (e != SSL_ERROR_WANT_READ) {
			io->eof = true;
			rc = AL_E_CLOSED;
		}
		break;
	}
	/* What arrived before an EOF is still delivered. */
	if (have > 0) {
		int r = feed(arg, b, have);
		if (r != 0)
			rc = r;
	}
out:
	busy = nested;
	return rc;
}

/* SSL_write with SSL_MODE_ENABLE_PARTIAL_WRITE returns after each 16 KiB record, so
 * the pending bytes are tracked with an offset (a buf_consume per record moved the
 * whole queue each time). When nothing is queued, nghttp2's frame bytes go straight to
 * SSL_write and only the part the socket did not take is copied. */
static int
io_write(struct tunnel_io *io, const uint8_t *p, size_t len, size_t *done)
{
	ERR_clear_error();
	int n = SSL_write(io->ssl, p, (int)(len > 1 << 20 ? 1 << 20 : len));
	if (n > 0) {
		*done = (size_t)n;
		return 0;
	}
	*done = 0;
	int e = SSL_get_error(io->ssl, n);
	if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
		io->want_write = true;
		return AL_E_AGAIN;
	}
	io->eof = true;
	return AL_E_CLOSED;
}

static void
io_consumed(struct tunnel_io *io, size_t n)
{
	io->out_off += n;
	if (io->out_off >= io->out.len) {
		buf_reset(&io->out);
		io->out_off = 0;
	}
}

/* Empties the write buffer of write_coalesce as far as the socket takes it. */
static int
bio_flush(struct tunnel_io *io)
{
	BIO *w = SSL_get_wbio(io->ssl);
	if (w == NULL || BIO_wpending(w) == 0)
		return 0;
	if (BIO_flush(w) > 0)
		return 0;
	if (BIO_should_retry(w)) {
		io->want_write = true;
		return 0;
	}
	io->eof = true;
	return AL_E_CLOSED;
}

/* Appends to out behind what is queued. */
static int
queue(struct tunnel_io *io, const uint8_t *p, size_t n)
{
	if (n == 0)
		return 0;
	if (io->out_off > 0 && io->out_off >= io->out.len / 2) {
		/* compact once half is consumed: amortized O(1) per byte */
		buf_consume(&io->out, io->out_off);
		io->out_off = 0;
	}
	if (buf_add(&io->out, p, n) == 0)
		return 0;
	io->eof = true; /* the peer has not read 4 MiB: treat it as gone */
	return AL_E_CLOSED;
}

/* Writes out as far as the socket takes it. */
static int
drain(struct tunnel_io *io)
{
	while (io->out.len > 0) {
		size_t w;
		int r = io_write(io, (const uint8_t *)io->out.data + io->out_off,
		                 io->out.len - io->out_off, &w);
		if (r == AL_E_AGAIN)
			return 0;
		if (r != 0)
			return r;
		io_consumed(io, w);
	}
	return 0;
}

/* Small writes share a TLS record. Each record costs its own cipher setup and tag on
 * both ends (~5k instructions with OpenSSL 3, more than copying 16 KiB), and nghttp2
 * hands over one frame at a time, so a small request or answer was three to five
 * records (HEADERS, DATA, WINDOW_UPDATE...). Bytes that still fit one record together
 * with what is queued wait in out until the pump runs dry and sends out. A larger write
 * sends the queue first and then goes out from the caller's bytes: topping the queued
 * record up from it instead cost a copy per frame that a bulk transfer felt more than
 * the short record it saved. */
int
tunnel_io_write(struct tunnel_io *io, const void *p, size_t n)
{
	const uint8_t *data = p;
	size_t pending = io->out.len - io->out_off;
	if (io->eof)
		return AL_E_CLOSED;
	if (io->want_write || pending + n < TUNNEL_RECORD_MAX)
		return queue(io, data, n); /* socket full, or still short of a record */
	if (pending > 0) {
		int r = drain(io);
		if (r != 0)
			return r;
		if (io->out.len > 0)
			return queue(io, data, n); /* the socket did not take the queue */
	}
	size_t off = 0;
	while (off < n) {
		size_t w;
		int r = io_write(io, data + off, n - off, &w);
		if (r == AL_E_CLOSED)
			return r;
		if (r != 0)
			break;
		off += w;
	}
	return queue(io, data + off, n - off);
}

static int
pump(struct tunnel_io *io, nghttp2_session *h2)
{
	for (;;) {
		bool dry = true; /* nghttp2 has nothing more to send */
		while (h2) {
			if (io->out.len - io->out_off >= 256 * 1024) {
				dry = false;
				break;
			}
			const uint8_t *data;
			ssize_t n = nghttp2_session_mem_send(h2, &data);
			if (n < 0)
				return AL_E_CLOSED;
			if (n == 0)
				break;
			int r = tunnel_io_write(io, data, (size_t)n);
			if (r != 0)
				return r;
			if (io->want_write)
				return 0; /* socket full: the rest goes on the next writable event
				           */
		}
		int r = drain(io);
		if (r != 0 || dry || io->out.len > 0)
			return r;
	}
}

int
tunnel_io_flush(struct tunnel_io *io, nghttp2_session *h2)
{
	io->want_write = false;
	int r = pump(io, h2);
	return r != 0 ? r : bio_flush(io);
}

bool
tunnel_hop_header(const char *n, size_t len)
{
	static const char *const hop[] = {
	    "connection",     "keep-alive", "proxy-connection", "transfer-encoding",
	    "upgrade",        "te",         "trailer",          "host",
	    "http2-settings", NULL};
	for (size_t i = 0; hop[i]; i++)
		if (strlen(hop[i]) == len && strncasecmp(hop[i], n, len) == 0)
			return true;
	return false;
}

/* ---- inner TLS: the HTTP/1.1 head inside, and TLS over memory ---- */

static bool
tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Field values and reasons: visible ASCII, space, tab and obs-text; no other controls. */
static bool
vchar(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int
head_start(const char *p, size_t n, bool response, struct tunnel_head *h)
{
	if (response) {
		if (n < 12 || memcmp(p, "HTTP/1.1 ", 9) != 0 || (n > 12 && p[12] != ' '))
			return AL_E_PROTO;
		int st = 0;
		for (size_t i = 9; i < 12; i++) {
			if (p[i] < '0' || p[i] > '9')
				return AL_E_PROTO;
			st = st * 10 + (p[i] - '0');
		}
		for (size_t i = 13; i < n; i++)
			if (!vchar((unsigned char)p[i]))
				return AL_E_PROTO;
		if (st < 100)
			return AL_E_PROTO;
		h->status = st;
		return 0;
	}
	const char *sp1 = memchr(p, ' ', n);
	if (sp1 == NULL || sp1 == p || sp1 - p > 16)
		return AL_E_PROTO;
	const char *t = sp1 + 1;
	const char *sp2 = memchr(t, ' ', n - (size_t)(t - p));
	if (sp2 == NULL || sp2 == t || *t != '/' || (size_t)(p + n - sp2) != 9 ||
	    memcmp(sp2, " HTTP/1.1", 9) != 0)
		return AL_E_PROTO;
	for (const char *c = p; c < sp1; c++)
		if (!tchar((unsigned char)*c))
			return AL_E_PROTO;
	for (const char *c = t; c < sp2; c++)
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c == 0x7f)
			return AL_E_PROTO;
	h->method = (struct tunnel_slice){p, (size_t)(sp1 - p)};
	h->target = (struct tunnel_slice){t, (size_t)(sp2 - t)};
	return 0;
}

static int
head_field(const char *p, size_t n, struct tunnel_head *h)
{
	const char *colon = memchr(p, ':', n);
	if (colon == NULL || colon == p)
		return AL_E_PROTO;
	for (const char *c = p; c < colon; c++)
		if (!tchar((unsigned char)*c))
			return AL_E_PROTO; /* also refuses obs-fold and "name :" */
	const char *v = colon + 1, *e = p + n;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	for (const char *c = v; c < e; c++)
		if (!vchar((unsigned char)*c))
			return AL_E_PROTO;
	if (h->nf == TUNNEL_INNER_FIELDS)
		return AL_E_TOOBIG;
	h->f[h->nf].name = (struct tunnel_slice){p, (size_t)(colon - p)};
	h->f[h->nf].value = (struct tunnel_slice){v, (size_t)(e - v)};
	h->nf++;
	return 0;
}

int
tunnel_head_parse(const char *p, size_t n, bool response, struct tunnel_head *h)
{
	memset(h, 0, sizeof(*h));
	size_t lim = n < TUNNEL_INNER_HEAD_MAX ? n : TUNNEL_INNER_HEAD_MAX;
	size_t off = 0;
	for (unsigned line = 0;; line++) {
		const char *lf = memchr(p + off, '\n', lim - off);
		if (lf == NULL)
			return n >= TUNNEL_INNER_HEAD_MAX ? AL_E_TOOBIG : 0;
		size_t end = (size_t)(lf - p);
		if (end == off || p[end - 1] != '\r')
			return AL_E_PROTO; /* bare LF */
		size_t len = end - 1 - off;
		if (memchr(p + off, '\r', len) || memchr(p + off, '\0', len))
			return AL_E_PROTO;
		int r = 0;
		if (line == 0)
			r = head_start(p + off, len, response, h);
		else if (len == 0)
			return (int)(end + 1);
		else
			r = head_field(p + off, len, h);
		if (r != 0)
			return r;
		off = end + 1;
	}
}

const struct tunnel_slice *
tunnel_head_get(const struct tunnel_head *h, const char *name)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < h->nf; i++)
		if (h->f[i].name.n == nl && strncasecmp(h->f[i].name.p, name, nl) == 0)
			return &h->f[i].value;
	return NULL;
}

int
tunnel_pipe_init(struct tunnel_pipe *tp, SSL *ssl)
{
	memset(tp, 0, sizeof(*tp));
	tp->ssl = ssl;
	tp->in = BIO_new(BIO_s_mem());
	tp->out = BIO_new(BIO_s_mem());
	if (ssl == NULL || tp->in == NULL || tp->out == NULL) {
		BIO_free(tp->in);
		BIO_free(tp->out);
		tp->in = tp->out = NULL;
		return AL_E_IO;
	}
	/* An empty memory BIO reads as "retry", not EOF: the peer's bytes come later. */
	BIO_set_mem_eof_return(tp->in, -1);
	SSL_set_bio(ssl, tp->in, tp->out);
	return 0;
}

void
tunnel_pipe_free(struct tunnel_pipe *tp)
{
	/* A session the peer closed cleanly is answered in kind before it is freed:
	 * OpenSSL's SSL_free marks a session that was never shut down as not resumable, and
	 * the client's next stream could not resume it. */
	if (tp->ssl && (SSL_get_shutdown(tp->ssl) & SSL_RECEIVED_SHUTDOWN))
		tunnel_pipe_close(tp);
	if (tp->ssl)
		SSL_free(tp->ssl); /* frees both BIOs */
	memset(tp, 0, sizeof(*tp));
}

int
tunnel_pipe_feed(struct tunnel_pipe *tp, const void *p, size_t n)
{
	while (n > 0) {
		int k = BIO_write(tp->in, p, n > (1u << 30) ? 1 << 30 : (int)n);
		if (k <= 0)
			return AL_E_IO;
		p = (const char *)p + k;
		n -= (size_t)k;
	}
	return 0;
}

size_t
tunnel_pipe_pending(struct tunnel_pipe *tp)
{
	return BIO_ctrl_pending(tp->out);
}

size_t
tunnel_pipe_take(struct tunnel_pipe *tp, void *p, size_t len)
{
	int k = BIO_read(tp->out, p, len > (1u << 30) ? 1 << 30 : (int)len);
	return k > 0 ? (size_t)k : 0;
}

/* Why TLS failed: the certificate check's verdict first (what an operator can act on),
 * else OpenSSL's first error. */
static int
pipe_fail(struct tunnel_pipe *tp, char *err, size_t errlen)
{
	long v = SSL_get_verify_result(tp->ssl);
	unsigned long e = ERR_get_error();
	char es[256] = "TLS session ended";
	if (e != 0)
		ERR_error_string_n(e, es, sizeof(es));
	if (v != X509_V_OK)
		snprintf(err, errlen, "certificate verify failed: %s",
		         X509_verify_cert_error_string(v));
	else
		snprintf(err, errlen, "%s", es);
	ERR_clear_error();
	return AL_E_PROTO;
}

int
tunnel_pipe_write(struct tunnel_pipe *tp, const void *p, size_t n, char *err, size_t errlen)
{
	size_t put = 0;
	if (n == 0)
		return 0;
	ERR_clear_error();
	if (SSL_write_ex(tp->ssl, p, n, &put) == 1)
		return (int)(put > INT32_MAX ? INT32_MAX : put);
	int e = SSL_get_error(tp->ssl, 0);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return 0;
	return pipe_fail(tp, err, errlen);
}

int
tunnel_pipe_read(struct tunnel_pipe *tp, struct buf *b, char *err, size_t errlen)
{
	for (;;) {
		char *wp;
		size_t room = b->max > b->len ? b->max - b->len : 0, got = 0;
		if (room == 0)
			return AL_E_TOOBIG;
		if (room > 64 * 1024)
			room = 64 * 1024;
		if (buf_reserve(b, room, &wp) != 0)
			return AL_E_TOOBIG;
		ERR_clear_error();
		if (SSL_read_ex(tp->ssl, wp, room, &got) == 1) {
			buf_commit(b, got);
			continue;
		}
		int e = SSL_get_error(tp->ssl, 0);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			return 0;
		if (e == SSL_ERROR_ZERO_RETURN)
			return 1;
		return pipe_fail(tp, err, errlen);
	}
}

void
tunnel_pipe_close(struct tunnel_pipe *tp)
{
	ERR_clear_error();
	SSL_shutdown(tp->ssl);
	ERR_clear_error();
}

enum { CH_SIZE, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_END_CR, CH_END_LF, CH_DONE };

static int
hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int
tunnel_chunked_decode(struct tunnel_chunked *c, char *p, size_t *n, size_t *used)
{
	size_t in = 0, out = 0, len = *n;
	int r = 0;
	while (in < len && r == 0) {
		char ch = p[in];
		switch (c->state) {
		case CH_SIZE: {
			int v = hexval(ch);
			if (v >= 0 && c->digits < 15) { /* 15 hex digits cannot overflow */
				c->left = c->left * 16 + (uint64_t)v;
				c->digits++;
			} else if (ch == '\r' && c->digits > 0)
				c->state = CH_SIZE_LF;
			else
				r = AL_E_PROTO;
			in++;
			break;
		}
		case CH_SIZE_LF:
			if (ch != '\n')
				r = AL_E_PROTO;
			c->state = c->left == 0 ? CH_END_CR : CH_DATA;
			in++;
			break;
		case CH_DATA: {
			size_t k = len - in;
			if (k > c->left)
				k = (size_t)c->left;
			memmove(p + out, p + in, k);
			out += k;
			in += k;
			c->left -= k;
			if (c->left == 0)
				c->state = CH_DATA_CR;
			break;
		}
		case CH_DATA_CR:
		case CH_END_CR:
			if (ch != '\r')
				r = AL_E_PROTO;
			c->state = c->state == CH_DATA_CR ? CH_DATA_LF : CH_END_LF;
			in++;
			break;
		case CH_DATA_LF:
			if (ch != '\n')
				r = AL_E_PROTO;
			c->state = CH_SIZE;
			c->digits = 0;
			in++;
			break;
		case CH_END_LF:
			if (ch != '\n')
				r = AL_E_PROTO;
			c->state = CH_DONE;
			in++;
			r = r ? r : 1;
			break;
		default:
			r = 1;
		}
	}
	if (c->state == CH_DONE && r == 0)
		r = 1;
	*n = out;
	*used = in;
	return r;
}
