/* The native HTTP/1.1 transport of httpc (see httpc.h, docs/lib/httpc.md): one
 * request at a time per connection, a small keep-alive pool per client, responses
 * parsed by llhttp, https through OpenSSL set up on the first https connection. It
 * exists so that the worker maps neither libcurl nor (for http://) OpenSSL's state. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "err.h"
#include "httpc_int.h"
#include "util.h"
#include "xalloc.h"

#define MAX_HEAD_BYTES (64 * 1024)
#define MAX_FIELDS 100
#define IDLE_KEEP_MS (30u * 1000) /* a pooled connection older than this is closed */
/* One recv per this many bytes of a bulk body; malloc'ed on the first read, so its
 * pages are touched only as far as reads ever filled it */
#define READ_BYTES (256 * 1024)
#define DEFAULT_CONNECT_MS (10u * 1000)

enum hconn_state { HC_CONNECTING, HC_HANDSHAKE, HC_OPEN };

struct hconn {
	struct httpc *c;
	int fd;
	SSL *ssl;
	char *origin;
	enum hconn_state state;
	struct httpc_xfer *x; /* NULL while pooled */
	struct addrinfo *ai, *ai_cur;
	llhttp_t parser;
	struct buf field, value; /* the header line being parsed (llhttp may split it) */
	bool in_value;
	size_t head_bytes;
	unsigned nfields;
	bool done;       /* the final response is complete */
	bool keep_alive; /* and the connection may carry another request */
	bool got_bytes;  /* a response byte arrived for the current request */
	bool reused;     /* it came from the pool for the current request */
	bool want_write; /* TLS needs the socket writable to make progress */
	bool polled;     /* registered with the loop (not while the caller paused us) */
	size_t out_off;
	char *pend; /* received bytes not yet parsed when the caller paused */
	size_t pend_off, pend_len;
	struct loop_timer *idle_timer;
	struct hconn *next; /* pool list */
};

static void conn_event(struct loop *l, int fd, int mask, void *arg);
static void conn_step(struct hconn *k, int mask);
static void xfer_begin(struct httpc_xfer *x);
static void on_idle_check(struct loop *l, void *arg);

/* One timer per transfer watches the connect deadline until the connection is open,
 * then the idle limit; this re-arms it when that phase changes. */
static void
arm_watch(struct httpc_xfer *x)
{
	struct loop *l = x->c->l;
	loop_timer_cancel(l, x->t_idle);
	x->t_idle = NULL;
	x->last_rx = now_mono_ms();
	bool open = x->conn != NULL && x->conn->state == HC_OPEN;
	unsigned ms = open ? x->idle_ms : x->connect_ms;
	if (ms != 0)
		x->t_idle = loop_timer_add(l, ms, on_idle_check, x);
}

/* ---- connections ---- */

static void
conn_close(struct hconn *k)
{
	struct httpc *c = k->c;
	if (k->fd >= 0) {
		if (k->polled)
			loop_fd_del(c->l, k->fd);
		if (k->ssl != NULL)
			SSL_free(k->ssl);
		close(k->fd);
	}
	if (k->ai != NULL)
		freeaddrinfo(k->ai);
	loop_timer_cancel(c->l, k->idle_timer);
	buf_free(&k->field);
	buf_free(&k->value);
	wipe_free(k->pend);
	free(k->origin);
	free(k);
}

static void
pool_unlink(struct hconn *k)
{
	struct httpc *c = k->c;
	for (struct hconn **pp = &c->idle; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == k) {
			*pp = k->next;
			c->nidle--;
			break;
		}
	}
	k->next = NULL;
	loop_timer_cancel(c->l, k->idle_timer);
	k->idle_timer = NULL;
}

static void
pool_expire(struct loop *l, void *arg)
{
	struct hconn *k = arg;
	k->idle_timer = NULL;
	pool_unlink(k);
	conn_close(k);
}

static void
pool_put(struct hconn *k)
{
	struct httpc *c = k->c;
	if (c->nidle >= c->max_idle) {
		conn_close(k);
		return;
	}
	k->next = c->idle;
	c->idle = k;
	c->nidle++;
	k->idle_timer = loop_timer_add(c->l, IDLE_KEEP_MS, pool_expire, k);
	/* readable while pooled means the server closed it (or sent junk): drop it then; one
	 * the loop cannot watch (epoll watches exhausted) is not worth keeping */
	if (loop_fd_set(c->l, k->fd, LOOP_READ, conn_event, k) != 0) {
		pool_unlink(k);
		conn_close(k);
		return;
	}
	k->polled = true;
}

static struct hconn *
pool_take(struct httpc *c, const char *origin)
{
	for (struct hconn *k = c->idle; k != NULL; k = k->next) {
		if (strcmp(k->origin, origin) == 0) {
			pool_unlink(k);
			return k;
		}
	}
	return NULL;
}

/* ---- finishing a transfer ---- */

static void
xfer_timers_stop(struct httpc_xfer *x)
{
	struct loop *l = x->c->l;
	loop_timer_cancel(l, x->t_start);
	loop_timer_cancel(l, x->t_total);
	loop_timer_cancel(l, x->t_idle);
	x->t_start = x->t_total = x->t_idle = NULL;
}

/* Delivers on_done and frees x. A transfer cancelled while we were on the stack is
 * left for settle(), which frees it without a callback. */
static void
finish(struct httpc_xfer *x, int err)
{
	if (x->cancelled)
		return;
	xfer_timers_stop(x);
	struct httpc_response resp = {
	    .err = x->cb_err != 0 ? x->cb_err : err,
	    .status = x->status,
	    .body = x->body,
	    .errmsg = x->errbuf,
	};
	if (resp.err == 0)
		x->errbuf[0] = '\0';
	x->in_done = true;
	x->on_done(x, &resp, x->arg);
	httpc_xfer_destroy(x);
}

static void
fail(struct httpc_xfer *x, int err, const char *msg, const char *detail)
{
	if (x->errbuf[0] == '\0' || x->cb_err == 0)
		snprintf(x->errbuf, sizeof(x->errbuf), "%s%s%s", msg, detail ? ": " : "",
		         detail ? detail : "");
	if (x->conn != NULL) {
		struct hconn *k = x->conn;
		x->conn = NULL;
		k->x = NULL;
		conn_close(k);
	}
	finish(x, err);
}

/* Destroys transfers cancelled while a transport callback was on the stack. */
static void
settle(struct httpc *c)
{
	if (!c->need_sweep || c->depth > 0)
		return;
	c->need_sweep = false;
	struct httpc_xfer *x = c->xfers, *next;
	for (; x != NULL; x = next) {
		next = x->next;
		if (x->cancelled)
			httpc_xfer_destroy(x);
	}
}

/* ---- llhttp callbacks: collect and bound; user callbacks run from here too ---- */

static struct hconn *
pconn(llhttp_t *p)
{
	return p->data;
}

static int
count_head(struct hconn *k, size_t n)
{
	k->head_bytes += n;
	if (k->head_bytes > MAX_HEAD_BYTES) {
		k->x->cb_err = AL_E_TOOBIG;
		snprintf(k->x->errbuf, sizeof(k->x->errbuf), "response head over %d bytes",
		         MAX_HEAD_BYTES);
		return HPE_USER;
	}
	return 0;
}

static int
on_message_begin(llhttp_t *p)
{
	struct hconn *k = pconn(p);
	buf_reset(&k->field);
	buf_reset(&k->value);
	k->in_value = false;
	k->nfields = 0;
	k->head_bytes = 0;
	buf_reset(&k->x->resp_hdrs);
	return 0;
}

static int
on_status(llhttp_t *p, const char *at, size_t n)
{
	return count_head(pconn(p), n);
}

/* Stores the header line collected so far as a lower-cased name and trimmed value. */
static int
commit_field(struct hconn *k)
{
	struct httpc_xfer *x = k->x;
	k->in_value = false;
	if (k->field.len == 0)
		return 0;
	if (++k->nfields > MAX_FIELDS) {
		x->cb_err = AL_E_TOOBIG;
		snprintf(x->errbuf, sizeof(x->errbuf), "response has over %d header fields",
		         MAX_FIELDS);
		return HPE_USER;
	}
	char *n = k->field.data;
	for (size_t i = 0; i < k->field.len; i++)
		n[i] = (char)((n[i] >= 'A' && n[i] <= 'Z') ? n[i] + 32 : n[i]);
	const char *v = k->value.len ? k->value.data : "";
	size_t vl = k->value.len;
	while (vl > 0 && (*v == ' ' || *v == '\t'))
		v++, vl--;
	while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
		vl--;
	int r = 0;
	/* llhttp rejects NUL in names and values, so the pair encoding cannot split */
	if (buf_add(&x->resp_hdrs, n, k->field.len) != 0 || buf_add(&x->resp_hdrs, "", 1) != 0 ||
	    buf_add(&x->resp_hdrs, v, vl) != 0 || buf_add(&x->resp_hdrs, "", 1) != 0) {
		x->cb_err = AL_E_TOOBIG;
		r = HPE_USER;
	}
	buf_reset(&k->field);
	buf_reset(&k->value);
	return r;
}

static int
on_header_field(llhttp_t *p, const char *at, size_t n)
{
	struct hconn *k = pconn(p);
	int r;
	if ((r = count_head(k, n)) != 0)
		return r;
	if (k->in_value && (r = commit_field(k)) != 0)
		return r;
	return buf_add(&k->field, at, n) == 0 ? 0 : HPE_USER;
}

static int
on_header_value(llhttp_t *p, const char *at, size_t n)
{
	struct hconn *k = pconn(p);
	int r;
	if ((r = count_head(k, n)) != 0)
		return r;
	k->in_value = true;
	return buf_add(&k->value, at, n) == 0 ? 0 : HPE_USER;
}

static int
on_headers_complete(llhttp_t *p)
{
	struct hconn *k = pconn(p);
	struct httpc_xfer *x = k->x;
	if (commit_field(k) != 0)
		return -1;
	if (p->status_code < 200) {
		/* 1xx: an interim head without a body; the real one follows */
		buf_reset(&x->resp_hdrs);
		return 0;
	}
	x->status = p->status_code;
	/* a long-lived stream keeps no header scratch space */
	buf_free(&k->field);
	buf_free(&k->value);
	buf_init(&k->field, 1024);
	buf_init(&k->value, MAX_HEAD_BYTES);
	if (x->on_head != NULL) {
		int r = x->on_head(x, x->status, x->arg);
		if (x->cancelled)
			return -1;
		if (r != 0) {
			x->cb_err = r;
			snprintf(x->errbuf, sizeof(x->errbuf), "aborted by the head callback");
			return -1;
		}
	}
	return x->head_only ? 1 : 0; /* 1: no body follows */
}

static int
on_body(llhttp_t *p, const char *at, size_t n)
{
	struct httpc_xfer *x = pconn(p)->x;
	if (n == 0)
		return 0; /* llhttp flushes an empty span when a paused parse goes on */
	if (x->on_data != NULL && (x->stream_any || (x->status >= 200 && x->status < 300))) {
		int r = x->on_data(x, at, n, x->arg);
		if (x->cancelled)
			return HPE_USER;
		if (r == HTTPC_PAUSE) {
			/* llhttp stops after this span: the rest waits in k->pend */
			x->paused = true;
			return HPE_PAUSED;
		}
		if (r != 0) {
			x->cb_err = r;
			snprintf(x->errbuf, sizeof(x->errbuf), "aborted by the data callback");
			return HPE_USER;
		}
		return 0;
	}
	if (buf_add(&x->body, at, n) != 0) {
		x->cb_err = AL_E_TOOBIG;
		snprintf(x->errbuf, sizeof(x->errbuf), "response body over %zu bytes", x->body.max);
		return HPE_USER;
	}
	return 0;
}

static int
on_message_complete(llhttp_t *p)
{
	struct hconn *k = pconn(p);
	if (p->status_code < 200)
		return 0;
	k->done = true;
	k->keep_alive = llhttp_should_keep_alive(p);
	return HPE_PAUSED; /* anything after the response is not ours to parse */
}

void
httpc_native_init(struct httpc *c)
{
	llhttp_settings_init(&c->settings);
	c->settings.on_message_begin = on_message_begin;
	c->settings.on_status = on_status;
	c->settings.on_header_field = on_header_field;
	c->settings.on_header_value = on_header_value;
	c->settings.on_headers_complete = on_headers_complete;
	c->settings.on_body = on_body;
	c->settings.on_message_complete = on_message_complete;
}

void
httpc_native_free(struct httpc *c)
{
	while (c->idle != NULL) {
		struct hconn *k = c->idle;
		pool_unlink(k);
		conn_close(k);
	}
	SSL_CTX_free(c->tls_ctx);
	wipe_free(c->rbuf); /* the last answer read: it may hold a secret */
}

void
httpc_native_close_idle(struct httpc *c, bool tls_only)
{
	for (struct hconn **pp = &c->idle; *pp != NULL;) {
		struct hconn *k = *pp;
		if (tls_only && k->ssl == NULL) {
			pp = &k->next;
			continue;
		}
		pool_unlink(k);
		conn_close(k);
	}
}

void
httpc_native_tls_reset(struct httpc *c)
{
	/* open connections hold their own reference to the old context */
	SSL_CTX_free(c->tls_ctx);
	c->tls_ctx = NULL;
	httpc_native_close_idle(c, true);
}

/* ---- socket and TLS I/O ---- */

static const char *
tls_errstr(char *b, size_t n)
{
	unsigned long e = ERR_get_error();
	ERR_error_string_n(e, b, n);
	ERR_clear_error();
	return e ? b : "connection closed during TLS";
}

/* >0 bytes, 0 EOF, -EAGAIN, or another -errno. */
static ssize_t
conn_read(struct hconn *k, char *b, size_t n)
{
	if (k->ssl == NULL) {
		ssize_t r = recv(k->fd, b, n, 0);
		if (r < 0)
			return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? -EAGAIN
			                                                                   : -errno;
		return r;
	}
	int r = SSL_read(k->ssl, b, (int)(n > INT32_MAX ? INT32_MAX : n));
	if (r > 0)
		return r;
	switch (SSL_get_error(k->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return -EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		k->want_write = true;
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	default:
		ERR_clear_error();
		return -EIO;
	}
}

static ssize_t
conn_write(struct hconn *k, const char *b, size_t n)
{
	if (k->ssl == NULL) {
		ssize_t r = send(k->fd, b, n, MSG_NOSIGNAL);
		if (r < 0)
			return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? -EAGAIN
			                                                                   : -errno;
		return r;
	}
	int r = SSL_write(k->ssl, b, (int)(n > INT32_MAX ? INT32_MAX : n));
	if (r > 0)
		return r;
	switch (SSL_get_error(k->ssl, r)) {
	case SSL_ERROR_WANT_WRITE:
		k->want_write = true;
		return -EAGAIN;
	case SSL_ERROR_WANT_READ:
		return -EAGAIN;
	default:
		ERR_clear_error();
		return -EIO;
	}
}

/* Sets what the loop watches for. A connection the loop cannot watch would hang until a
 * timeout (or forever on a stream): its transfer fails now instead, and conn_interest
 * returns -1 (k and its transfer are gone). ENOSPC is the per-user epoll watch limit,
 * shared by every process of the uid (issue 11, finding 3). */
static int
conn_interest(struct hconn *k)
{
	bool paused = k->x != NULL && k->x->paused;
	int mask = paused ? 0 : LOOP_READ;
	if (k->state == HC_CONNECTING || k->want_write ||
	    (k->state == HC_OPEN && k->x != NULL && k->out_off < k->x->req_len))
		mask |= LOOP_WRITE;
	if (mask == 0) {
		/* off the loop entirely: epoll reports a hang-up even with no interest, and
		 * that would spin until the caller resumes */
		if (k->polled)
			loop_fd_del(k->c->l, k->fd);
		k->polled = false;
		return 0;
	}
	int r = loop_fd_set(k->c->l, k->fd, mask, conn_event, k);
	if (r != 0) {
		const char *why = r == -ENOSPC ? "epoll watch limit reached "
		                                 "(fs.epoll.max_user_watches, per user)"
		                               : strerror(-r);
		if (k->x != NULL)
			fail(k->x, AL_E_IO, "cannot watch the connection", why);
		else
			conn_close(k);
		return -1;
	}
	k->polled = true;
	return 0;
}

/* The client context: created here, on the first https connection, so that a worker
 * talking plain http to a local server never initializes OpenSSL. */
static int
tls_ctx_get(struct httpc *c, char *err, size_t errlen)
{
	if (c->tls_ctx != NULL)
		return 0;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* close-delimited bodies from servers that skip close_notify; lengths and chunking
	 * still catch truncation of everything else */
	/* CLEANSE_PLAINTEXT: answers carry tokens and egress secrets; OpenSSL wipes what it
	 * decrypted once it is read, not when its buffer is next reused */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION |
	                             SSL_OP_CLEANSE_PLAINTEXT);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	                          SSL_MODE_RELEASE_BUFFERS);
	if (c->ca_file != NULL && SSL_CTX_load_verify_locations(ctx, c->ca_file, NULL) != 1)
		goto fail;
	if ((c->ca_file == NULL || c->include_system_cas) &&
	    SSL_CTX_set_default_verify_paths(ctx) != 1)
		goto fail;
	c->tls_ctx = ctx;
	return 0;
fail:
	snprintf(err, errlen, "TLS setup%s%s: ", c->ca_file ? " with ca_file " : "",
	         c->ca_file ? c->ca_file : "");
	size_t used = strlen(err);
	tls_errstr(err + used, errlen - used);
	SSL_CTX_free(ctx);
	return AL_E_IO;
}

static int
tls_start(struct hconn *k)
{
	struct httpc_xfer *x = k->x;
	char err[200];
	if (tls_ctx_get(k->c, err, sizeof(err)) != 0) {
		fail(x, AL_E_IO, err, NULL);
		return -1;
	}
	k->ssl = SSL_new(k->c->tls_ctx);
	if (k->ssl == NULL || SSL_set_fd(k->ssl, k->fd) != 1)
		goto bad;
	X509_VERIFY_PARAM *vp = SSL_get0_param(k->ssl);
	struct in6_addr a6;
	if (inet_pton(AF_INET, x->host, &a6) == 1 || inet_pton(AF_INET6, x->host, &a6) == 1) {
		if (X509_VERIFY_PARAM_set1_ip_asc(vp, x->host) != 1)
			goto bad;
	} else {
		X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set_tlsext_host_name(k->ssl, x->host) != 1 ||
		    X509_VERIFY_PARAM_set1_host(vp, x->host, 0) != 1)
			goto bad;
	}
	SSL_set_connect_state(k->ssl);
	k->state = HC_HANDSHAKE;
	return 0;
bad:
	fail(x, AL_E_IO, "TLS setup", tls_errstr(err, sizeof(err)));
	return -1;
}

/* 0: done or waiting; -1: the transfer failed (and k is gone). */
static int
tls_handshake(struct hconn *k)
{
	k->want_write = false;
	int r = SSL_do_handshake(k->ssl);
	if (r == 1) {
		k->state = HC_OPEN;
		return 0;
	}
	int e = SSL_get_error(k->ssl, r);
	if (e == SSL_ERROR_WANT_READ)
		return 0;
	if (e == SSL_ERROR_WANT_WRITE) {
		k->want_write = true;
		return 0;
	}
	char err[200];
	long v = SSL_get_verify_result(k->ssl);
	if (v != X509_V_OK) {
		ERR_clear_error();
		fail(k->x, AL_E_IO, "TLS certificate verification failed",
		     X509_verify_cert_error_string(v));
	} else {
		fail(k->x, AL_E_IO, "TLS handshake failed", tls_errstr(err, sizeof(err)));
	}
	return -1;
}

/* Starts a non-blocking connect to the next address; -1 when none is left (failed). */
static int
connect_next(struct hconn *k, int last_errno)
{
	for (; k->ai_cur != NULL; k->ai_cur = k->ai_cur->ai_next) {
		struct addrinfo *a = k->ai_cur;
		struct httpc *c = k->c;
		if (k->fd >= 0) {
			if (k->polled)
				loop_fd_del(c->l, k->fd);
			k->polled = false;
			close(k->fd);
			k->fd = -1;
		}
		char why[HTTPC_ERRBUF] = "";
		if (c->addr_check != NULL && c->addr_check(a->ai_addr, a->ai_addrlen, why,
		                                           sizeof(why), c->addr_check_arg) != 0) {
			/* a refused name is refused: its other addresses are no better */
			fail(k->x, AL_E_PERM, why[0] ? why : "address refused", NULL);
			return -1;
		}
		k->fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (k->fd < 0) {
			last_errno = errno;
			continue;
		}
		int one = 1;
		setsockopt(k->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		/* curl's CURLOPT_TCP_KEEPALIVE defaults: probe after 60 s idle, every 60 s, so a
		 * quiet event stream behind a NAT is not dropped silently */
		int sixty = 60;
		setsockopt(k->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
		setsockopt(k->fd, IPPROTO_TCP, TCP_KEEPIDLE, &sixty, sizeof(sixty));
		setsockopt(k->fd, IPPROTO_TCP, TCP_KEEPINTVL, &sixty, sizeof(sixty));
		if (connect(k->fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) {
			k->ai_cur = a->ai_next;
			k->state = HC_CONNECTING;
			return conn_interest(k);
		}
		last_errno = errno;
	}
	fail(k->x, AL_E_IO, "connect failed", strerror(last_errno ? last_errno : ECONNREFUSED));
	return -1;
}

/* ---- driving one connection ---- */

static int
conn_write_pending(struct hconn *k)
{
	struct httpc_xfer *x = k->x;
	while (k->out_off < x->req_len) {
		ssize_t n = conn_write(k, x->req + k->out_off, x->req_len - k->out_off);
		if (n == -EAGAIN)
			break;
		if (n < 0)
			return (int)n;
		k->out_off += (size_t)n;
	}
	return 0;
}

/* Re-sends x on a fresh connection: a pooled one the server had already closed. */
static void
retry_fresh(struct hconn *k)
{
	struct httpc_xfer *x = k->x;
	x->conn = NULL;
	k->x = NULL;
	conn_close(k);
	x->retried = true;
	buf_reset(&x->body);
	buf_reset(&x->resp_hdrs);
	xfer_begin(x);
}

static void
complete(struct hconn *k)
{
	struct httpc_xfer *x = k->x;
	x->conn = NULL;
	k->x = NULL;
	wipe_free(k->pend);
	k->pend = NULL;
	k->pend_off = k->pend_len = 0;
	if (k->keep_alive)
		pool_put(k);
	else
		conn_close(k);
	finish(x, 0);
}

/* Parses n received bytes at b (the read buffer, or inside k->pend when from_pend).
 * true: still in flight, possibly paused with the unparsed rest in k->pend; false: x
 * finished, failed or was cancelled, and k must not be touched. */
static bool
feed(struct hconn *k, const char *b, size_t n, bool from_pend)
{
	struct httpc_xfer *x = k->x;
	llhttp_errno_t e = llhttp_execute(&k->parser, b, n);
	if (x->cancelled)
		return false; /* settle() frees it and this connection */
	const char *pos = e == HPE_PAUSED ? llhttp_get_error_pos(&k->parser) : b + n;
	size_t rest = (size_t)(b + n - pos);
	if (e == HPE_PAUSED && k->done) {
		if (rest != 0)
			k->keep_alive = false; /* bytes after the response: not reusable */
		complete(k);
		return false;
	}
	if (e == HPE_PAUSED && x->paused) {
		llhttp_resume(&k->parser);
		if (from_pend) {
			k->pend_off = (size_t)(pos - k->pend);
		} else if (rest != 0) {
			/* copied only when a pause lands mid-read */
			wipe_free(k->pend);
			k->pend = xmalloc(rest);
			memcpy(k->pend, pos, rest);
			k->pend_off = 0;
			k->pend_len = rest;
		}
		return true;
	}
	if (e != HPE_OK) {
		int err = x->cb_err != 0 ? x->cb_err : AL_E_PROTO;
		fail(x, err, "bad response", x->cb_err != 0 ? NULL : llhttp_errno_name(e));
		return false;
	}
	return true;
}

/* Reads and parses what arrived. true: still in flight (or paused); false: x
 * finished, failed, was cancelled or went to a fresh connection, and k must not be
 * touched. */
static bool
conn_read_all(struct hconn *k)
{
	struct httpc_xfer *x = k->x;
	struct httpc *c = k->c;
	for (;;) {
		if (x->paused)
			return true;
		if (c->rbuf == NULL)
			c->rbuf = xmalloc(READ_BYTES);
		char *b = c->rbuf;
		ssize_t n = conn_read(k, b, READ_BYTES);
		if (n == -EAGAIN)
			return true;
		bool stale = k->reused && !k->got_bytes && !x->retried;
		if (n < 0) {
			if (stale) {
				retry_fresh(k);
				return false;
			}
			fail(x, AL_E_IO, "receive failed", strerror((int)-n));
			return false;
		}
		if (n == 0) {
			if (stale) {
				retry_fresh(k);
				return false;
			}
			/* a close-delimited body ends here; anything else is truncated */
			llhttp_errno_t fe =
			    k->got_bytes ? llhttp_finish(&k->parser) : HPE_INVALID_EOF_STATE;
			if (k->done && (fe == HPE_OK || fe == HPE_PAUSED)) {
				k->keep_alive = false;
				complete(k);
			} else if (!x->cancelled) {
				fail(x, AL_E_IO,
				     "connection closed before the response was complete", NULL);
			}
			return false;
		}
		k->got_bytes = true;
		x->last_rx = now_mono_ms();
		if (x->req != NULL && k->out_off >= x->req_len) {
			/* answered, so never re-sent: a long stream keeps no request copy */
			explicit_wipe(x->req, x->req_len);
			free(x->req);
			x->req = NULL;
			x->req_len = k->out_off = 0;
		}
		if (!feed(k, b, (size_t)n, false))
			return false;
		/* a short plain read drained the socket; the loop is level-triggered, so skip
		 * the recv that would only say EAGAIN (TLS may hold decrypted bytes: go on) */
		if (k->ssl == NULL && (size_t)n < READ_BYTES)
			return true;
	}
}

static void
conn_step(struct hconn *k, int mask)
{
	struct httpc_xfer *x = k->x;
	if (x == NULL) { /* pooled: the server closed it or sent something unasked */
		pool_unlink(k);
		conn_close(k);
		return;
	}
	if (k->state == HC_CONNECTING) {
		if (!(mask & (LOOP_WRITE | LOOP_READ)))
			return;
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
			soerr = errno;
		if (soerr != 0) {
			connect_next(k, soerr);
			return;
		}
		freeaddrinfo(k->ai);
		k->ai = k->ai_cur = NULL;
		if (x->tls) {
			if (tls_start(k) != 0)
				return;
		} else {
			k->state = HC_OPEN;
			arm_watch(x);
		}
	}
	if (k->state == HC_HANDSHAKE) {
		if (tls_handshake(k) != 0)
			return;
		if (k->state != HC_OPEN) {
			conn_interest(k);
			return;
		}
		arm_watch(x);
	}
	k->want_write = false;
	int r = conn_write_pending(k);
	if (r != 0) {
		if (k->reused && !k->got_bytes && !x->retried)
			retry_fresh(k);
		else
			fail(x, AL_E_IO, "send failed", strerror(-r));
		return;
	}
	/* Only when the socket said readable: right after sending a request the answer is
	 * not there yet, and level-triggered epoll reports it when it is (one EAGAIN recv
	 * per request saved). TLS never holds unread records here: reads drain it. */
	if (!(mask & LOOP_READ) || conn_read_all(k))
		conn_interest(k);
}

static void
conn_event(struct loop *l, int fd, int mask, void *arg)
{
	struct hconn *k = arg;
	struct httpc *c = k->c;
	c->depth++;
	conn_step(k, mask);
	c->depth--;
	settle(c);
}

/* ---- starting ---- */

static void
attach(struct httpc_xfer *x, struct hconn *k)
{
	x->conn = k;
	k->x = x;
	k->out_off = 0;
	k->done = k->keep_alive = k->got_bytes = false;
	llhttp_init(&k->parser, HTTP_RESPONSE, &x->c->settings);
	k->parser.data = k;
	arm_watch(x);
}

static void
xfer_begin(struct httpc_xfer *x)
{
	struct httpc *c = x->c;
	struct hconn *k = x->retried ? NULL : pool_take(c, x->origin);
	if (k != NULL) {
		attach(x, k);
		k->reused = true;
		/* send now instead of asking epoll whether an idle socket is writable: two
		 * epoll_ctl calls and a loop turn per request saved */
		conn_step(k, LOOP_WRITE);
		return;
	}
	k = xcalloc(1, sizeof(*k));
	k->c = c;
	k->fd = -1;
	k->origin = xstrdup(x->origin);
	buf_init(&k->field, 1024);
	buf_init(&k->value, MAX_HEAD_BYTES);
	attach(x, k);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	/* blocking: the worker resolves one name, usually a literal or /etc/hosts entry */
	int g = getaddrinfo(x->host, x->port, &hints, &k->ai);
	if (g != 0) {
		k->ai = NULL;
		fail(x, AL_E_IO, "cannot resolve host", gai_strerror(g));
		return;
	}
	k->ai_cur = k->ai;
	connect_next(k, 0);
}

static void
on_start(struct loop *l, void *arg)
{
	struct httpc_xfer *x = arg;
	struct httpc *c = x->c;
	x->t_start = NULL;
	c->depth++;
	xfer_begin(x);
	c->depth--;
	settle(c);
}

/* After httpc_resume: parse what the pause left over, then read again. */
static void
on_resume(struct loop *l, void *arg)
{
	struct httpc_xfer *x = arg;
	struct httpc *c = x->c;
	struct hconn *k = x->conn;
	x->t_start = NULL;
	x->paused = false;
	if (k == NULL)
		return;
	c->depth++;
	arm_watch(x);
	/* even with nothing left over: a pause on the last body bytes leaves the parser
	 * one step short of the message's end, which needs no input */
	bool live = k->pend != NULL
	                ? feed(k, k->pend + k->pend_off, k->pend_len - k->pend_off, true)
	                : feed(k, "", 0, false);
	if (live && !x->paused) {
		wipe_free(k->pend);
		k->pend = NULL;
		k->pend_off = k->pend_len = 0;
		live = conn_read_all(k);
	}
	if (live)
		conn_interest(k);
	c->depth--;
	settle(c);
}

void
httpc_native_resume(struct httpc_xfer *x)
{
	if (!x->paused || x->t_start != NULL)
		return;
	/* from the loop, not here: the caller may be inside another transfer's callback */
	x->t_start = loop_timer_add(x->c->l, 0, on_resume, x);
}

static void
on_total_timeout(struct loop *l, void *arg)
{
	struct httpc_xfer *x = arg;
	x->t_total = NULL;
	char m[64];
	snprintf(m, sizeof(m), "%u ms", x->timeout_ms);
	fail(x, AL_E_TIMEOUT, "transfer timed out after", m);
}

static void
on_idle_check(struct loop *l, void *arg)
{
	struct httpc_xfer *x = arg;
	x->t_idle = NULL;
	if (x->paused)
		return; /* the caller holds us back, not the server; re-armed on resume */
	uint64_t now = now_mono_ms(), idle = now - x->last_rx;
	bool connecting = x->conn == NULL || x->conn->state != HC_OPEN;
	unsigned limit = connecting ? x->connect_ms : x->idle_ms;
	if (limit == 0)
		return; /* connected, and no idle limit asked for */
	if (idle < limit) {
		x->t_idle = loop_timer_add(l, limit - idle, on_idle_check, x);
		return;
	}
	char m[64];
	snprintf(m, sizeof(m), connecting ? "%u ms" : "%u ms without data", limit);
	fail(x, AL_E_TIMEOUT, connecting ? "connect timed out after" : "transfer stalled:", m);
}

/* Splits url into what a connection and a request need; AL_E_INVAL when it is not an
 * absolute http(s) URL without credentials. *path points into url. */
static int
parse_url(struct httpc_xfer *x, const char *url, const char **path, char **hostport)
{
	const char *p;
	if (strncasecmp(url, "http://", 7) == 0) {
		p = url + 7;
	} else if (strncasecmp(url, "https://", 8) == 0) {
		p = url + 8;
		x->tls = true;
	} else {
		return AL_E_INVAL;
	}
	size_t alen = strcspn(p, "/?#");
	if (alen == 0 || memchr(p, '@', alen) != NULL)
		return AL_E_INVAL; /* no host, or userinfo we would have to put somewhere */
	for (const char *q = p; *q; q++)
		if ((unsigned char)*q <= ' ' || *q == 0x7f)
			return AL_E_INVAL;
	const char *hs = p, *he, *ps = NULL;
	if (*p == '[') {
		const char *rb = memchr(p, ']', alen);
		if (rb == NULL)
			return AL_E_INVAL;
		hs = p + 1;
		he = rb;
		if (rb + 1 < p + alen) {
			if (rb[1] != ':')
				return AL_E_INVAL;
			ps = rb + 2;
		}
	} else {
		const char *colon = memchr(p, ':', alen);
		he = colon ? colon : p + alen;
		ps = colon ? colon + 1 : NULL;
	}
	if (he == hs)
		return AL_E_INVAL;
	uint64_t port = x->tls ? 443 : 80;
	if (ps != NULL && ps < p + alen &&
	    parse_uint(ps, (size_t)(p + alen - ps), 65535, &port) != 0)
		return AL_E_INVAL;
	if (port == 0)
		return AL_E_INVAL;
	x->host = xstrndup(hs, (size_t)(he - hs));
	snprintf(x->port, sizeof(x->port), "%u", (unsigned)port);
	x->origin = xasprintf("%s://%.*s:%u", x->tls ? "https" : "http", (int)(he - hs), hs,
	                      (unsigned)port);
	*hostport = xstrndup(p, alen);
	const char *rest = p + alen;
	*path = *rest == '#' ? "" : rest;
	return 0;
}

static bool
has_header(const struct httpc_request *req, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < req->nheaders; i++)
		if (strncasecmp(req->headers[i], name, n) == 0 && req->headers[i][n] == ':')
			return true;
	return false;
}

/* Appends prefix, value and CRLF. */
static void
add_line(struct buf *b, const char *prefix, const char *value)
{
	buf_add_str(b, prefix);
	buf_add_str(b, value);
	buf_add(b, "\r\n", 2);
}

int
httpc_native_start(struct httpc_xfer *x, const struct httpc_request *req)
{
	int r = AL_E_INVAL;
	char *hostport = NULL;
	const char *path;
	struct buf b;
	buf_init(&b, SIZE_MAX);
	const char *method = req->method ? req->method : "GET";
	if (method[0] == '\0' || strpbrk(method, " \t\r\n") != NULL)
		goto out;
	if ((r = parse_url(x, req->url, &path, &hostport)) != 0)
		goto out;
	size_t plen = strcspn(path, "#");
	x->head_only = strcmp(method, "HEAD") == 0;
	x->connect_ms = req->connect_timeout_ms ? req->connect_timeout_ms : DEFAULT_CONNECT_MS;
	x->timeout_ms = req->timeout_ms;
	x->idle_ms = req->idle_timeout_s * 1000u;
	/* Plain appends, not buf_addf: a reverse proxy (the gateway) builds one of these
	 * per request, and a printf per line was most of this function's cost. */
	buf_add_str(&b, method);
	buf_add_str(&b, plen && path[0] != '?' ? " " : " /");
	buf_add(&b, path, plen);
	buf_add_str(&b, " HTTP/1.1\r\n");
	if (!has_header(req, "Host"))
		add_line(&b, "Host: ", hostport);
	if (x->c->user_agent[0] != '\0' && !has_header(req, "User-Agent"))
		add_line(&b, "User-Agent: ", x->c->user_agent);
	if (!has_header(req, "Accept"))
		buf_add_str(&b, "Accept: */*\r\n");
	for (size_t i = 0; i < req->nheaders; i++) {
		const char *h = req->headers[i];
		const char *colon = strchr(h, ':');
		if (colon == NULL || colon == h)
			goto out; /* not a header line */
		if (colon[strspn(colon + 1, " \t") + 1] == '\0')
			continue; /* "Name:" removes a header in curl's convention; we add none */
		add_line(&b, "", h);
	}
	if (req->body != NULL || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
	    strcmp(method, "PATCH") == 0)
		buf_addf(&b, "Content-Length: %zu\r\n", req->body ? req->body_len : 0);
	buf_add(&b, "\r\n", 2);
	if (req->body != NULL)
		buf_add(&b, req->body, req->body_len);
	x->req = b.data;
	x->req_len = b.len;
	b.data = NULL;
	struct loop *l = x->c->l;
	x->t_start = loop_timer_add(l, 0, on_start, x);
	if (x->timeout_ms)
		x->t_total = loop_timer_add(l, x->timeout_ms, on_total_timeout, x);
	r = 0;
out:
	free(hostport);
	if (b.data != NULL) {
		explicit_wipe(b.data, b.len);
		buf_free(&b);
	}
	return r;
}

void
httpc_native_release(struct httpc_xfer *x)
{
	xfer_timers_stop(x);
	if (x->conn != NULL) {
		/* a transfer that ends mid-response leaves its connection unusable */
		struct hconn *k = x->conn;
		x->conn = NULL;
		k->x = NULL;
		conn_close(k);
	}
	if (x->req != NULL) {
		/* Authorization lines and request bodies */
		explicit_wipe(x->req, x->req_len);
		free(x->req);
	}
	free(x->origin);
	free(x->host);
}
