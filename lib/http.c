/* HTTP/1.1 server connections on llhttp; see http.h and docs/lib/http.md.
 *
 * A connection alternates between reading a request and answering it. llhttp is
 * paused at the end of each message so pipelined bytes stay in the input buffer
 * until the answer is complete; the handler is called after llhttp returns, never
 * from inside its callbacks. Closing is always deferred to a zero-delay timer so no
 * caller ever sees its connection freed under its feet. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <llhttp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "err.h"
#include "http.h"
#include "log.h"
#include "net.h"
#include "tls.h"
#include "util.h"
#include "xalloc.h"

#define MAX_HEADERS 100
#define READ_CHUNK 16384

enum conn_state {
	CONN_IDLE,     /* between requests (keep-alive) */
	CONN_HEAD,     /* request line and headers arriving */
	CONN_BODY,     /* body arriving */
	CONN_HANDLING, /* handler owns the request; no answer yet */
	CONN_STREAM,   /* streaming answer */
	CONN_DEAD,     /* close scheduled */
};

struct listener {
	int fd;
	struct tls_server_ctx *tls;
	struct http_server *srv;
};

struct http_conn {
	int fd;
	struct http_server *srv;
	struct http_conn *prev, *next;
	enum conn_state state;
	SSL *ssl;
	bool tls_handshaken;
	bool tls_peeked;          /* the first byte was looked at (plain HTTP on a TLS port?) */
	bool want_write_for_read; /* TLS: a read needs the socket writable */
	llhttp_t parser;
	struct buf in;
	struct buf out;
	size_t out_off; /* sent prefix of out: a slow reader's partial writes move nothing */
	bool close_after_write;
	bool abort;   /* a streamed answer broke off midway, see http_stream_abort */
	bool chunked; /* the streamed answer is framed in chunks */
	bool no_body; /* the streamed answer has none (HEAD, 204, 304): it ends with its head */
	bool keep_alive;
	bool paused;      /* message complete; parser paused until the answer is done */
	bool reading_off; /* input buffer full while a request is held */
	struct loop_timer *timer;
	struct loop_timer *close_timer;
	size_t head_bytes;
	size_t body_bytes;
	size_t body_max; /* this request's: max_body_bytes, or its sink's */
	struct http_body_sink sink;
	bool sink_on;         /* the body goes to sink; sink.abort pending until dispatch */
	int sink_err;         /* the sink refused the body */
	const char *sink_msg; /* and why */
	bool linger;          /* an error answer went out mid-body: drain, then close */
	size_t lingered;
	/* request under construction / in flight */
	struct http_request *req;
	struct buf url;
	struct buf hname;
	struct buf hval;
	bool last_was_value;
	bool value_cut;       /* this llhttp_execute's input ended inside a header value */
	bool value_resumable; /* the previous one's did: its span resumes at the input start */
	http_close_fn *on_close;
	void *on_close_arg;
	http_drain_fn *on_drain;
	void *on_drain_arg;
	char peer[64];
};

struct http_server {
	struct loop *loop;
	struct http_limits lim;
	http_handler_fn *handler;
	void *arg;
	struct listener **listeners;
	size_t nlisteners;
	struct http_conn *conns;
	size_t nconns;
	bool shutting_down;
	llhttp_settings_t settings;
	http_body_hook_fn *body_hook;
	void *body_hook_arg;
};

static void conn_process(struct http_conn *c);
static void conn_timeout(struct loop *l, void *arg);
static void conn_close_soon(struct http_conn *c);
static void conn_flush(struct http_conn *c);
static void conn_update_interest(struct http_conn *c);
static void out_str(struct http_conn *c, const char *s);

const char *
http_status_text(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 402:
		return "Payment Required";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 411:
		return "Length Required";
	case 412:
		return "Precondition Failed";
	case 413:
		return "Content Too Large";
	case 415:
		return "Unsupported Media Type";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 529:
		return "Overloaded";
	default:
		return "Unknown";
	}
}

/* ---- request objects ---- */

static void
request_free(struct http_request *r)
{
	if (r == NULL)
		return;
	if (r->sink_arg != NULL && r->sink_abort != NULL)
		r->sink_abort(r, r->sink_arg); /* a handler that never claimed it */
	free(r->method);
	free(r->target);
	free(r->path);
	free(r->query);
	for (size_t i = 0; i < r->nheaders; i++) {
		free((char *)r->headers[i].name);
		free((char *)r->headers[i].value);
	}
	free(r->headers);
	buf_wipe_free(&r->body);
	free(r);
}

const char *
http_request_header(const struct http_request *req, const char *lname)
{
	for (size_t i = 0; i < req->nheaders; i++)
		if (strcmp(req->headers[i].name, lname) == 0)
			return req->headers[i].value;
	return NULL;
}

void
http_request_on_close(struct http_request *req, http_close_fn *cb, void *arg)
{
	req->conn->on_close = cb;
	req->conn->on_close_arg = arg;
}

/* ---- llhttp callbacks: collect, bound, never dispatch ---- */

static struct http_conn *
parser_conn(llhttp_t *p)
{
	return p->data;
}

static int
head_account(struct http_conn *c, size_t n)
{
	c->head_bytes += n;
	if (c->head_bytes > c->srv->lim.max_header_bytes)
		return -1;
	return 0;
}

static int
on_message_begin(llhttp_t *p)
{
	struct http_conn *c = parser_conn(p);
	c->req = xcalloc(1, sizeof(*c->req));
	c->req->conn = c;
	buf_init(&c->req->body, c->srv->lim.max_body_bytes);
	memcpy(c->req->peer, c->peer, sizeof(c->peer));
	buf_reset(&c->url);
	buf_reset(&c->hname);
	buf_reset(&c->hval);
	c->last_was_value = false;
	c->head_bytes = 0;
	c->body_bytes = 0;
	c->body_max = c->srv->lim.max_body_bytes;
	c->sink_on = false;
	c->sink_err = 0;
	c->sink_msg = NULL;
	if (c->state == CONN_IDLE)
		c->state = CONN_HEAD;
	return 0;
}

static int
on_url(llhttp_t *p, const char *at, size_t len)
{
	struct http_conn *c = parser_conn(p);
	if (head_account(c, len) || buf_add(&c->url, at, len))
		return HPE_USER;
	return 0;
}

static int
push_header(struct http_conn *c)
{
	struct http_request *r = c->req;
	if (c->hname.len == 0)
		return 0;
	if (r->nheaders >= MAX_HEADERS)
		return -1;
	char *name = xstrndup(c->hname.data, c->hname.len);
	for (char *q = name; *q; q++)
		if (*q >= 'A' && *q <= 'Z')
			*q = (char)(*q - 'A' + 'a');
	/* NUL bytes inside values would truncate them silently; refuse instead. */
	if (memchr(c->hval.data ? c->hval.data : "", '\0', c->hval.len)) {
		free(name);
		return -1;
	}
	r->headers = xreallocarray(r->headers, r->nheaders + 1, sizeof(*r->headers));
	r->headers[r->nheaders].name = name;
	r->headers[r->nheaders].value = xstrndup(c->hval.data ? c->hval.data : "", c->hval.len);
	r->nheaders++;
	buf_reset(&c->hname);
	buf_reset(&c->hval);
	return 0;
}

static int
on_header_field(llhttp_t *p, const char *at, size_t len)
{
	struct http_conn *c = parser_conn(p);
	if (head_account(c, len))
		return HPE_USER;
	/* Trailers of a chunked body (llhttp reports them as headers) are dropped, within
	 * the header limit: appended to the request's headers they reached handlers and
	 * tunnel upstreams as headers a proxy in front never saw (RFC 9110 6.5.1). */
	if (c->state == CONN_BODY)
		return 0;
	if (c->last_was_value) {
		if (push_header(c))
			return HPE_USER;
		c->last_was_value = false;
	}
	if (buf_add(&c->hname, at, len))
		return HPE_USER;
	return 0;
}

static int
on_header_value(llhttp_t *p, const char *at, size_t len)
{
	struct http_conn *c = parser_conn(p);
	if (head_account(c, len))
		return HPE_USER;
	if (c->state == CONN_BODY)
		return 0; /* a trailer, see on_header_field */
	/* llhttp 8 accepts obs-fold and hands the next line over as more of the value.
	 * Refused (RFC 9112 5.2): a proxy in front may have read that line as a header of
	 * its own. The only other way a value arrives in two spans is an input that ended
	 * inside it: the rest then starts the next input (however the fold is split up). */
	if (c->last_was_value && !(c->value_resumable && at == c->in.data))
		return HPE_USER;
	c->last_was_value = true;
	c->value_resumable = false;
	c->value_cut = at + len == c->in.data + c->in.len;
	if (buf_add(&c->hval, at, len))
		return HPE_USER;
	return 0;
}

static int
split_target(struct http_request *r)
{
	const char *t = r->target;
	const char *q = strchr(t, '?');
	size_t plen = q ? (size_t)(q - t) : strlen(t);
	if (plen == 0 || t[0] != '/')
		return -1;
	if (url_decode(t, plen, false, &r->path) != 0)
		return -1;
	r->query = xstrdup(q ? q + 1 : "");
	/* fragments never reach a server; cut one if a client sent it anyway */
	char *hash = strchr(r->query, '#');
	if (hash)
		*hash = '\0';
	return 0;
}

/* llhttp accepts a transfer coding list ending in chunked ("gzip, chunked") and two
 * Host lines; we decode only chunked, so the rest would reach the handler (and a tunnel
 * upstream) as a body in an undeclared coding, and two Hosts let a proxy in front and
 * this server route one request to different places. Both are refused (RFC 9112 3.2,
 * 6.1). */
static bool
framing_unambiguous(const struct http_request *r)
{
	size_t hosts = 0, tes = 0;
	for (size_t i = 0; i < r->nheaders; i++) {
		const char *n = r->headers[i].name, *v = r->headers[i].value;
		if (strcmp(n, "host") == 0)
			hosts++;
		else if (strcmp(n, "transfer-encoding") == 0 &&
		         (tes++ || strcasecmp(v, "chunked") != 0))
			return false;
	}
	return hosts <= 1;
}

static int
on_headers_complete(llhttp_t *p)
{
	struct http_conn *c = parser_conn(p);
	struct http_request *r = c->req;
	if (c->last_was_value && push_header(c))
		return HPE_USER;
	r->method = xstrdup(llhttp_method_name((llhttp_method_t)p->method));
	r->target = xstrndup(c->url.data ? c->url.data : "", c->url.len);
	if (split_target(r) != 0)
		return HPE_USER;
	if (!framing_unambiguous(r))
		return HPE_USER;
	if (c->srv->body_hook) {
		struct http_body_sink sink = {0};
		if (c->srv->body_hook(r, &sink, c->srv->body_hook_arg)) {
			c->sink = sink;
			c->sink_on = true;
			c->body_max = sink.max_bytes;
			r->body_streamed = true;
			r->sink_arg = sink.arg;
			r->sink_abort = sink.abort;
		}
	}
	if ((p->flags & F_CONTENT_LENGTH) && p->content_length > c->body_max)
		return HPE_USER;
	c->keep_alive = llhttp_should_keep_alive(p);
	c->state = CONN_BODY;
	/* A client that waits for the interim answer before its body (as RFC 9110 10.1.1
	 * lets it) would otherwise hang until the body timeout. */
	const char *expect = http_request_header(r, "expect");
	bool has_body =
	    (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length);
	if (expect && strcasecmp(expect, "100-continue") == 0 && has_body && p->http_major == 1 &&
	    p->http_minor >= 1)
		out_str(c, "HTTP/1.1 100 Continue\r\n\r\n");
	return 0;
}

static int
on_body(llhttp_t *p, const char *at, size_t len)
{
	struct http_conn *c = parser_conn(p);
	c->body_bytes += len;
	if (c->sink_on) {
		if (c->body_bytes > c->body_max)
			return HPE_USER;
		int r = c->sink.write(c->req, at, len, c->sink.arg, &c->sink_msg);
		if (r != 0) {
			c->sink_err = r;
			return HPE_USER;
		}
		return 0;
	}
	if (buf_add(&c->req->body, at, len))
		return HPE_USER;
	return 0;
}

static int
on_message_complete(llhttp_t *p)
{
	struct http_conn *c = parser_conn(p);
	c->keep_alive = llhttp_should_keep_alive(p);
	c->state = CONN_HANDLING;
	return HPE_PAUSED;
}

/* ---- output ---- */

/* Output not yet taken by the socket. */
static size_t
out_pending(const struct http_conn *c)
{
	return c->out.len - c->out_off;
}

static void
out_add(struct http_conn *c, const void *p, size_t n)
{
	if (c->out_off > 0 && c->out_off >= c->out.len / 2) {
		/* compact once half is sent: amortized O(1) per byte */
		buf_consume(&c->out, c->out_off);
		c->out_off = 0;
	}
	/* The per-connection output cap is enforced by the stream writer; responses
	 * are bounded by what handlers produce (≤ body cap), so the buffer max is the
	 * sum of both and add cannot fail here. */
	if (buf_add(&c->out, p, n) != 0)
		conn_close_soon(c);
}

static void
out_str(struct http_conn *c, const char *s)
{
	out_add(c, s, strlen(s));
}

/* Appended piece by piece straight into the connection's output: every response
 * passes here, and formatting into a scratch buffer first cost an allocation, a
 * printf per header and a second copy. */
static void
write_head(struct http_conn *c, int status, const struct http_header *h, size_t nh,
           long content_length, bool keep_alive)
{
	char num[48];
	int n = snprintf(num, sizeof(num), "HTTP/1.1 %d ", status);
	out_add(c, num, (size_t)n);
	out_str(c, http_status_text(status));
	out_add(c, "\r\n", 2);
	for (size_t i = 0; i < nh; i++) {
		/* Never let a header value split the response (CR/LF injection). */
		if (strpbrk(h[i].name, "\r\n:") || strpbrk(h[i].value, "\r\n"))
			continue;
		out_str(c, h[i].name);
		out_add(c, ": ", 2);
		out_str(c, h[i].value);
		out_add(c, "\r\n", 2);
	}
	if (content_length >= 0) {
		n = snprintf(num, sizeof(num), "content-length: %ld\r\n", content_length);
		out_add(c, num, (size_t)n);
	}
	out_str(c, keep_alive ? "connection: keep-alive\r\n\r\n" : "connection: close\r\n\r\n");
}

static int
io_write(struct http_conn *c, const char *p, size_t n, size_t *done)
{
	if (c->ssl) {
		size_t w = 0;
		int r = SSL_write_ex(c->ssl, p, n, &w);
		if (r == 1) {
			*done = w;
			return 0;
		}
		int e = SSL_get_error(c->ssl, r);
		ERR_clear_error();
		if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
			return AL_E_AGAIN;
		return AL_E_CLOSED;
	}
	ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
	if (w < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return AL_E_AGAIN;
		return AL_E_CLOSED;
	}
	*done = (size_t)w;
	return 0;
}

static void
conn_flush(struct http_conn *c)
{
	size_t sent = 0;
	while (out_pending(c) > 0 && c->state != CONN_DEAD) {
		size_t done = 0;
		int r = io_write(c, c->out.data + c->out_off, out_pending(c), &done);
		if (r == AL_E_AGAIN)
			break;
		if (r != 0) {
			conn_close_soon(c);
			return;
		}
		c->out_off += done;
		sent += done;
	}
	if (out_pending(c) == 0) {
		buf_reset(&c->out);
		c->out_off = 0;
	}
	if (c->out.len == 0 && c->close_after_write && c->linger) {
		/* the answer is out: say so with a FIN, and drain until the client's own
		 * (or the linger timer) */
		if (c->ssl == NULL)
			shutdown(c->fd, SHUT_WR);
		conn_update_interest(c);
		return;
	}
	if (c->out.len == 0 && c->close_after_write) {
		conn_close_soon(c);
		return;
	}
	if (c->out.len == 0 && c->out.cap > 4096)
		buf_free(&c->out); /* a burst's buffer is not kept by an idle stream */
	conn_update_interest(c);
	/* Last: the owner may write more from here (it runs after the socket took bytes,
	 * not from inside its own http_stream_write, see there). */
	if (sent > 0 && c->state == CONN_STREAM && c->on_drain)
		c->on_drain(c->req, c->on_drain_arg);
}

/* Answers a request the layer above never saw (malformed, too large, too slow) in the
 * reference error envelope, with its own request-id like every other answer, then
 * closes: the connection's framing can no longer be trusted. */
static void
conn_sink_abort(struct http_conn *c)
{
	if (!c->sink_on)
		return;
	c->sink_on = false;
	if (c->req && c->req->sink_arg) {
		void *arg = c->req->sink_arg;
		c->req->sink_arg = NULL;
		if (c->sink.abort)
			c->sink.abort(c->req, arg);
	}
}

#define LINGER_MS 2000
#define LINGER_MAX_BYTES (64u << 20)

static void
conn_error_reply(struct http_conn *c, int status, const char *type, const char *message)
{
	struct buf b;
	conn_sink_abort(c);
	char *rid = id_new("req_");
	buf_init(&b, 4096);
	buf_addf(&b,
	         "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":\"%s\"},"
	         "\"request_id\":\"%s\"}",
	         type, message, rid);
	struct http_header h[] = {
	    {"content-type", "application/json"}, {"request-id", rid}, {"x-should-retry", "false"}};
	write_head(c, status, h, status == 408 ? 2 : 3, (long)b.len, false);
	out_add(c, b.data, b.len);
	buf_free(&b);
	free(rid);
	c->close_after_write = true;
	c->state = CONN_HANDLING;
	c->reading_off = !c->linger;
	if (c->linger) {
		loop_timer_cancel(c->srv->loop, c->timer);
		c->timer = loop_timer_add(c->srv->loop, LINGER_MS, conn_timeout, c);
	}
	conn_flush(c);
}

/* ---- timers ---- */

static void
conn_timeout(struct loop *l, void *arg)
{
	struct http_conn *c = arg;
	c->timer = NULL;
	if (c->state == CONN_HEAD || c->state == CONN_BODY) {
		/* A slow client gets a 408 and the connection closes: the request was
		 * never complete, so nothing was acted on. */
		conn_error_reply(c, 408, "timeout_error", "request not received in time");
		return;
	}
	conn_close_soon(c);
}

static void
conn_arm_timer(struct http_conn *c)
{
	struct loop *l = c->srv->loop;
	loop_timer_cancel(l, c->timer);
	c->timer = NULL;
	unsigned ms = 0;
	switch (c->state) {
	case CONN_IDLE:
		ms = c->srv->lim.idle_timeout_ms;
		break;
	case CONN_HEAD:
		ms = c->srv->lim.header_timeout_ms;
		break;
	case CONN_BODY:
		ms = c->srv->lim.body_timeout_ms;
		break;
	default:
		return;
	}
	c->timer = loop_timer_add(l, ms, conn_timeout, c);
}

/* ---- connection lifecycle ---- */

static void
conn_free_now(struct loop *l, void *arg)
{
	struct http_conn *c = arg;
	struct http_server *s = c->srv;
	c->close_timer = NULL;
	loop_timer_cancel(l, c->timer);
	conn_sink_abort(c);
	loop_fd_del(l, c->fd);
	if (c->abort && !c->chunked) {
		/* A reset, not a FIN: the client of a close-delimited answer must not take
		 * the bytes it got for the whole answer. (A chunked one lacks its last chunk,
		 * which says the same after a plain FIN; undici reads a reset after a
		 * non-keep-alive answer as its end.) */
		struct linger lg = {.l_onoff = 1, .l_linger = 0};
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	if (c->req && c->on_close) {
		http_close_fn *cb = c->on_close;
		c->on_close = NULL;
		cb(c->req, c->on_close_arg);
	}
	request_free(c->req);
	if (c->ssl) {
		if (!c->abort) /* no close_notify: that would end the answer cleanly */
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		ERR_clear_error();
	}
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	buf_wipe_free(&c->in);
	buf_free(&c->out);
	buf_free(&c->url);
	buf_free(&c->hname);
	buf_free(&c->hval);
	free(c);
}

static void
conn_close_soon(struct http_conn *c)
{
	if (c->state == CONN_DEAD)
		return;
	c->state = CONN_DEAD;
	loop_timer_cancel(c->srv->loop, c->timer);
	c->timer = NULL;
	loop_fd_set(c->srv->loop, c->fd, 0, NULL, NULL);
	c->close_timer = loop_timer_add(c->srv->loop, 0, conn_free_now, c);
}

static void conn_event(struct loop *l, int fd, int mask, void *arg);

static void
conn_update_interest(struct http_conn *c)
{
	if (c->state == CONN_DEAD)
		return;
	int mask = 0;
	if (!c->reading_off)
		mask |= LOOP_READ;
	if (out_pending(c) > 0 || c->want_write_for_read)
		mask |= LOOP_WRITE;
	loop_fd_set(c->srv->loop, c->fd, mask, conn_event, c);
}

static void
reply_parse_error(struct http_conn *c, int status, const char *message)
{
	conn_error_reply(c, status, "invalid_request_error", message);
}

/* Feeds buffered input to the parser and dispatches at most one complete request. */
static void
conn_process(struct http_conn *c)
{
	while (c->state != CONN_DEAD && c->state != CONN_HANDLING && c->state != CONN_STREAM &&
	       c->in.len > 0) {
		enum conn_state before = c->state;
		c->value_resumable = c->value_cut;
		c->value_cut = false;
		llhttp_errno_t e = llhttp_execute(&c->parser, c->in.data, c->in.len);
		size_t used = c->in.len;
		if (e == HPE_PAUSED) {
			used = (size_t)(llhttp_get_error_pos(&c->parser) - c->in.data);
		} else if (e != HPE_OK) {
			bool too_big_head = c->head_bytes > c->srv->lim.max_header_bytes;
			bool too_big_body =
			    c->req && (c->req->body.len >= c->req->body.max ||
			               c->body_bytes > c->body_max || c->sink_err == AL_E_TOOBIG ||
			               ((c->parser.flags & F_CONTENT_LENGTH) &&
			                c->parser.content_length > c->body_max));
			bool refused = c->sink_err != 0 && c->sink_err != AL_E_TOOBIG;
			char why[192]; /* copied: the message may live in what the abort frees */
			snprintf(why, sizeof(why), "%s",
			         refused && c->sink_msg ? c->sink_msg : "malformed request body");
			/* A client still sending its body reads the answer only if we keep
			 * taking the body for a while (lingering close, RFC 9112 9.6). */
			c->linger = too_big_body || refused; /* head refused on its length too */
			conn_sink_abort(c);
			if (too_big_head)
				reply_parse_error(c, 431, "request headers too large");
			else if (too_big_body)
				reply_parse_error(c, 413, "request body too large");
			else if (refused && c->sink_err == AL_E_IO)
				/* the sink could not store it (disk full): ours, not the client's
				 */
				conn_error_reply(c, 500, "api_error", why);
			else if (refused)
				reply_parse_error(c, 400, why);
			else
				reply_parse_error(c, 400, "malformed HTTP request");
			return;
		}
		buf_consume(&c->in, used);
		if (c->state != before || c->state == CONN_BODY)
			conn_arm_timer(c);
		if (e == HPE_PAUSED)
			break;
	}
	if (c->state != CONN_HANDLING || c->req == NULL || c->paused)
		return;
	c->paused = true;
	loop_timer_cancel(c->srv->loop, c->timer);
	c->timer = NULL;
	/* The parse buffers are empty until the next request: give their memory back, so
	 * a held request or a stream costs only what it uses. */
	buf_free(&c->url);
	buf_free(&c->hname);
	buf_free(&c->hval);
	if (c->in.len == 0)
		buf_wipe_free(&c->in);
	c->sink_on = false; /* the handler may claim the sink's state (see request_free) */
	c->srv->handler(c->req, c->srv->arg);
}

static void
conn_request_done(struct http_conn *c)
{
	/* The answer is queued. Reset for the next request on this connection. */
	request_free(c->req);
	c->req = NULL;
	c->on_close = NULL;
	c->on_close_arg = NULL;
	c->on_drain = NULL;
	c->on_drain_arg = NULL;
	c->chunked = false;
	c->no_body = false;
	c->paused = false;
	if (!c->keep_alive || c->srv->shutting_down)
		c->close_after_write = true;
	if (c->state == CONN_DEAD)
		return;
	c->state = CONN_IDLE;
	c->reading_off = false;
	llhttp_resume(&c->parser);
	conn_arm_timer(c);
	conn_flush(c);
	if (c->state != CONN_DEAD && !c->close_after_write)
		conn_process(c);
}

static int
io_read(struct http_conn *c, char *p, size_t n, size_t *got)
{
	c->want_write_for_read = false;
	if (c->ssl) {
		size_t r = 0;
		int ok = SSL_read_ex(c->ssl, p, n, &r);
		if (ok == 1) {
			*got = r;
			return 0;
		}
		int e = SSL_get_error(c->ssl, ok);
		ERR_clear_error();
		if (e == SSL_ERROR_WANT_READ)
			return AL_E_AGAIN;
		if (e == SSL_ERROR_WANT_WRITE) {
			c->want_write_for_read = true;
			return AL_E_AGAIN;
		}
		return AL_E_CLOSED; /* includes clean close_notify */
	}
	ssize_t r = recv(c->fd, p, n, 0);
	if (r < 0)
		return (errno == EAGAIN || errno == EINTR) ? AL_E_AGAIN : AL_E_CLOSED;
	if (r == 0)
		return AL_E_CLOSED;
	*got = (size_t)r;
	return 0;
}

static void
conn_read(struct http_conn *c)
{
	for (int rounds = 0; rounds < 16 && c->state != CONN_DEAD; rounds++) {
		/* While a request is held, keep reading only to notice EOF, and stop once
		 * a header's worth of pipelined bytes is waiting. */
		if (c->in.len >= c->srv->lim.max_header_bytes + READ_CHUNK) {
			if (c->state == CONN_HANDLING || c->state == CONN_STREAM) {
				c->reading_off = true;
				conn_update_interest(c);
				return;
			}
		}
		/* Read into a stack buffer and keep only what arrived: an idle keep-alive
		 * or SSE connection must not pin a 16 KiB input buffer (10,000 streams). */
		char chunk[READ_CHUNK];
		size_t got = 0;
		int r = io_read(c, chunk, sizeof(chunk), &got);
		if (r == AL_E_AGAIN)
			break;
		if (r != 0) {
			conn_close_soon(c);
			return;
		}
		if (c->linger) {
			c->lingered += got;
			if (c->lingered > LINGER_MAX_BYTES) {
				conn_close_soon(c);
				return;
			}
			continue;
		}
		if (buf_add(&c->in, chunk, got) != 0) {
			reply_parse_error(c, 431, "request too large");
			return;
		}
		if (c->state == CONN_IDLE || c->state == CONN_HEAD || c->state == CONN_BODY)
			conn_process(c);
		if (got < READ_CHUNK)
			break;
	}
}

/* Plain HTTP sent to the TLS port: a request line starts with an upper-case method,
 * a TLS record with 0x16. Answer it in plain text, as nginx does, rather than drop the
 * connection with a TLS alert the client shows as garbage or a reset. true: answered
 * (or gone), false: go on with TLS. */
static bool
conn_plain_on_tls(struct http_conn *c)
{
	static const char body[] = "plain HTTP sent to an HTTPS port: use https:// for this port\n";
	char b[4096];
	ssize_t n = recv(c->fd, b, 1, MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return false; /* SSL_accept waits for the first bytes */
	c->tls_peeked = true;
	if (n != 1 || b[0] < 'A' || b[0] > 'Z')
		return false;
	/* Take what the client sent first: closing with unread input would reset the
	 * connection and lose the answer. One request head fits; more is not waited for. */
	for (int i = 0; i < 16 && recv(c->fd, b, sizeof(b), MSG_DONTWAIT) > 0; i++)
		;
	int len = snprintf(b, sizeof(b),
	                   "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
	                   "connection: close\r\ncontent-length: %zu\r\n\r\n%s",
	                   sizeof(body) - 1, body);
	ssize_t w = send(c->fd, b, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)w;
	shutdown(c->fd, SHUT_WR);
	conn_close_soon(c);
	return true;
}

static void
conn_handshake(struct http_conn *c)
{
	if (!c->tls_peeked && conn_plain_on_tls(c))
		return;
	int r = SSL_accept(c->ssl);
	if (r == 1) {
		c->tls_handshaken = true;
		conn_update_interest(c);
		return;
	}
	int e = SSL_get_error(c->ssl, r);
	ERR_clear_error();
	if (e == SSL_ERROR_WANT_READ) {
		loop_fd_set(c->srv->loop, c->fd, LOOP_READ, conn_event, c);
	} else if (e == SSL_ERROR_WANT_WRITE) {
		loop_fd_set(c->srv->loop, c->fd, LOOP_WRITE, conn_event, c);
	} else {
		conn_close_soon(c);
	}
}

static void
conn_event(struct loop *l, int fd, int mask, void *arg)
{
	struct http_conn *c = arg;
	if (c->state == CONN_DEAD)
		return;
	if (c->ssl && !c->tls_handshaken) {
		conn_handshake(c);
		if (!c->tls_handshaken)
			return;
	}
	if (mask & LOOP_WRITE) {
		if (c->want_write_for_read)
			conn_read(c);
		conn_flush(c);
	}
	if ((mask & LOOP_READ) && c->state != CONN_DEAD)
		conn_read(c);
	if (c->state != CONN_DEAD)
		conn_update_interest(c);
}

static void
conn_new(struct http_server *s, int fd, struct tls_server_ctx *tls, const char *peer)
{
	struct http_conn *c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	c->srv = s;
	/* Input may hold a full header block plus one read; output a body plus
	 * a streaming backlog. */
	buf_init(&c->in, s->lim.max_header_bytes + 2 * READ_CHUNK + s->lim.max_body_bytes);
	/* answers may carry secrets (egress_secrets, tokens): wiped as written and freed */
	buf_init_secret(&c->out, s->lim.max_body_bytes + s->lim.max_output_bytes + (1 << 20));
	buf_init(&c->url, s->lim.max_header_bytes);
	buf_init(&c->hname, s->lim.max_header_bytes);
	buf_init(&c->hval, s->lim.max_header_bytes);
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	llhttp_init(&c->parser, HTTP_REQUEST, &s->settings);
	c->parser.data = c;
	c->state = CONN_IDLE;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	if (tls) {
		c->ssl = SSL_new(tls->ctx);
		if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
			conn_close_soon(c);
			return;
		}
		c->state = CONN_HEAD; /* the handshake counts against the head timeout */
		conn_arm_timer(c);
		c->state = CONN_IDLE;
		conn_handshake(c);
		return;
	}
	conn_arm_timer(c);
	conn_update_interest(c);
}

int
http_server_adopt(struct http_server *s, int fd, const char *peer)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	conn_new(s, fd, NULL, peer ? peer : "adopted");
	return 0;
}

static void
accept_ready(struct loop *l, int lfd, int mask, void *arg)
{
	struct listener *li = arg;
	struct http_server *s = li->srv;
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN, or EMFILE: try again on the next readiness */
		if (s->shutting_down || s->nconns >= s->lim.max_conns) {
			close(fd);
			continue;
		}
		char host[INET6_ADDRSTRLEN] = "?", peer[64];
		int port = 0;
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
			port = ntohs(sin->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
			port = ntohs(sin6->sin6_port);
		}
		snprintf(peer, sizeof(peer), "%s:%d", host, port);
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		conn_new(s, fd, li->tls, peer);
	}
}

/* ---- public API ---- */

struct http_server *
http_server_new(struct loop *l, const struct http_limits *lim, http_handler_fn *handler, void *arg)
{
	struct http_server *s = xcalloc(1, sizeof(*s));
	s->loop = l;
	s->handler = handler;
	s->arg = arg;
	s->lim = (struct http_limits){
	    .max_header_bytes = 64 * 1024,
	    .max_body_bytes = 32 * 1024 * 1024,
	    .header_timeout_ms = 10000,
	    .body_timeout_ms = 30000,
	    .idle_timeout_ms = 60000,
	    .max_conns = 20000,
	    .max_output_bytes = 8 * 1024 * 1024,
	};
	if (lim) {
		if (lim->max_header_bytes)
			s->lim.max_header_bytes = lim->max_header_bytes;
		if (lim->max_body_bytes)
			s->lim.max_body_bytes = lim->max_body_bytes;
		if (lim->header_timeout_ms)
			s->lim.header_timeout_ms = lim->header_timeout_ms;
		if (lim->body_timeout_ms)
			s->lim.body_timeout_ms = lim->body_timeout_ms;
		if (lim->idle_timeout_ms)
			s->lim.idle_timeout_ms = lim->idle_timeout_ms;
		if (lim->max_conns)
			s->lim.max_conns = lim->max_conns;
		if (lim->max_output_bytes)
			s->lim.max_output_bytes = lim->max_output_bytes;
	}
	llhttp_settings_init(&s->settings);
	s->settings.on_message_begin = on_message_begin;
	s->settings.on_url = on_url;
	s->settings.on_header_field = on_header_field;
	s->settings.on_header_value = on_header_value;
	s->settings.on_headers_complete = on_headers_complete;
	s->settings.on_body = on_body;
	s->settings.on_message_complete = on_message_complete;
	return s;
}

int
http_server_listen(struct http_server *s, const char *addr, struct tls_server_ctx *tls,
                   int *bound_port)
{
	int fd = -1, port = 0, r;
	if ((r = net_listen_tcp(addr, &fd, &port)) != 0)
		return r;
	if (bound_port)
		*bound_port = port;
	s->listeners = xreallocarray(s->listeners, s->nlisteners + 1, sizeof(*s->listeners));
	struct listener *li = xcalloc(1, sizeof(*li));
	li->fd = fd;
	li->tls = tls;
	li->srv = s;
	s->listeners[s->nlisteners++] = li;
	return loop_fd_set(s->loop, li->fd, LOOP_READ, accept_ready, li);
}

void
http_server_set_body_hook(struct http_server *s, http_body_hook_fn *fn, void *arg)
{
	s->body_hook = fn;
	s->body_hook_arg = arg;
}

void
http_server_shutdown(struct http_server *s)
{
	s->shutting_down = true;
	for (size_t i = 0; i < s->nlisteners; i++) {
		if (s->listeners[i]->fd < 0)
			continue;
		loop_fd_del(s->loop, s->listeners[i]->fd);
		close(s->listeners[i]->fd);
		s->listeners[i]->fd = -1;
	}
	for (struct http_conn *c = s->conns; c; c = c->next)
		if (c->state == CONN_IDLE)
			conn_close_soon(c);
}

void
http_server_free(struct http_server *s)
{
	if (s == NULL)
		return;
	while (s->conns) {
		struct http_conn *c = s->conns;
		if (c->close_timer) {
			loop_timer_cancel(s->loop, c->close_timer);
			c->close_timer = NULL;
		}
		conn_free_now(s->loop, c);
	}
	for (size_t i = 0; i < s->nlisteners; i++) {
		if (s->listeners[i]->fd >= 0) {
			loop_fd_del(s->loop, s->listeners[i]->fd); /* the fd number gets reused */
			close(s->listeners[i]->fd);
		}
		free(s->listeners[i]);
	}
	free(s->listeners);
	free(s);
}

size_t
http_server_conn_count(const struct http_server *s)
{
	return s->nconns;
}

void
http_respond(struct http_request *req, int status, const struct http_header *headers,
             size_t nheaders, const char *body, size_t body_len)
{
	struct http_conn *c = req->conn;
	if (c->state == CONN_DEAD) {
		/* The close is already scheduled; the on_close callback was cleared by the
		 * caller answering, so just drop the request. */
		c->on_close = NULL;
		return;
	}
	bool keep = c->keep_alive && !c->srv->shutting_down;
	bool head = strcmp(req->method, "HEAD") == 0;
	write_head(c, status, headers, nheaders, (long)body_len, keep);
	if (body_len && !head)
		out_add(c, body, body_len);
	conn_request_done(c);
}

static void
stream_start(struct http_request *req, int status, const struct http_header *headers,
             size_t nheaders, bool keep_alive)
{
	struct http_conn *c = req->conn;
	if (c->state == CONN_DEAD)
		return;
	write_head(c, status, headers, nheaders, -1, keep_alive);
	c->keep_alive = keep_alive;
	c->state = CONN_STREAM;
	buf_wipe_free(&req->body); /* a stream's request body is never read again */
	conn_flush(c);
}

void
http_stream_start(struct http_request *req, int status, const struct http_header *headers,
                  size_t nheaders)
{
	stream_start(req, status, headers, nheaders, false);
}

void
http_stream_start_chunked(struct http_request *req, int status, const struct http_header *headers,
                          size_t nheaders)
{
	struct http_conn *c = req->conn;
	bool http11 =
	    c->parser.http_major > 1 || (c->parser.http_major == 1 && c->parser.http_minor >= 1);
	bool body =
	    strcmp(req->method, "HEAD") != 0 && status >= 200 && status != 204 && status != 304;
	if (c->state != CONN_DEAD && !body) {
		/* Nothing follows the head, so its end is known without chunks or a close and
		 * the connection stays for the next request (a HEAD used to close it). */
		c->no_body = true;
		stream_start(req, status, headers, nheaders,
		             c->keep_alive && !c->srv->shutting_down);
		return;
	}
	if (c->state == CONN_DEAD || !http11) {
		http_stream_start(req, status, headers, nheaders);
		return;
	}
	struct http_header h[MAX_HEADERS + 1];
	size_t n = 0;
	for (size_t i = 0; i < nheaders && n < MAX_HEADERS; i++)
		h[n++] = headers[i];
	h[n++] = (struct http_header){"transfer-encoding", "chunked"};
	c->chunked = true;
	/* The last chunk ends the answer, so the connection can carry the client's next
	 * request (an MCP client POSTs every message; SSE answers are common). */
	stream_start(req, status, h, n, c->keep_alive && !c->srv->shutting_down);
}

/* A chunk's framing around the caller's bytes. On a plain socket with nothing queued
 * the three go out in one sendmsg, the bytes uncopied; otherwise they are queued. */
static int
stream_write_chunk(struct http_conn *c, const char *data, size_t len)
{
	char hd[24];
	int hn = snprintf(hd, sizeof(hd), "%zx\r\n", len);
	if (out_pending(c) == 0 && c->ssl == NULL) {
		struct iovec iov[3] = {{hd, (size_t)hn}, {(void *)data, len}, {(void *)"\r\n", 2}};
		struct msghdr m = {.msg_iov = iov, .msg_iovlen = 3};
		ssize_t w = sendmsg(c->fd, &m, MSG_NOSIGNAL);
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return AL_E_CLOSED;
		size_t done = w > 0 ? (size_t)w : 0;
		for (int i = 0; i < 3; i++) { /* queue what the socket did not take */
			size_t skip = done < iov[i].iov_len ? done : iov[i].iov_len;
			done -= skip;
			out_add(c, (const char *)iov[i].iov_base + skip, iov[i].iov_len - skip);
		}
		return 0;
	}
	out_add(c, hd, (size_t)hn);
	out_add(c, data, len);
	out_add(c, "\r\n", 2);
	return 0;
}

int
http_stream_write(struct http_request *req, const char *data, size_t len)
{
	struct http_conn *c = req->conn;
	if (c->state != CONN_STREAM)
		return AL_E_CLOSED;
	if (out_pending(c) + len > c->srv->lim.max_output_bytes) {
		log_warn("closing stream: client not reading", "peer", c->peer);
		c->abort = true;
		conn_close_soon(c);
		return AL_E_CLOSED;
	}
	if (len == 0 || c->no_body)
		return 0; /* an empty chunk would end a chunked answer; body bytes for a HEAD
		           * (a peer's mistake) would be read as the next answer */
	if (c->chunked) {
		if (stream_write_chunk(c, data, len) != 0) {
			conn_close_soon(c);
			return AL_E_CLOSED;
		}
		conn_update_interest(c);
		return c->state == CONN_DEAD ? AL_E_CLOSED : 0;
	}
	if (out_pending(c) == 0) { /* nothing queued: send from the caller's bytes, no copy */
		size_t done = 0;
		if (io_write(c, data, len, &done) == AL_E_CLOSED) {
			conn_close_soon(c);
			return AL_E_CLOSED;
		}
		data += done;
		len -= done;
		if (len == 0)
			return 0;
	}
	out_add(c, data, len);
	/* No conn_flush: the socket just refused more (or had a queue), and a flush here
	 * would call on_drain from inside the owner's own write. The write event sends it. */
	conn_update_interest(c);
	return c->state == CONN_DEAD ? AL_E_CLOSED : 0;
}

size_t
http_stream_queued(const struct http_request *req)
{
	return out_pending(req->conn);
}

void
http_stream_on_drain(struct http_request *req, http_drain_fn *cb, void *arg)
{
	req->conn->on_drain = cb;
	req->conn->on_drain_arg = arg;
}

void
http_stream_abort(struct http_request *req)
{
	struct http_conn *c = req->conn;
	c->on_close = NULL;
	c->on_drain = NULL;
	c->abort = true;
	conn_close_soon(c);
}

void
http_stream_end(struct http_request *req)
{
	struct http_conn *c = req->conn;
	c->on_close = NULL;
	c->on_drain = NULL;
	if (c->state == CONN_DEAD)
		return;
	if (c->chunked)
		out_add(c, "0\r\n\r\n", 5); /* the last chunk: the answer is complete */
	else if (!c->no_body)
		c->keep_alive = false; /* a close-delimited answer ends with the connection */
	c->state = CONN_HANDLING;
	conn_request_done(c);
}
