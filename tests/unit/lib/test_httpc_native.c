/* The native httpc transport against a raw loopback "server" on the same loop that
 * answers with scripted bytes, in pieces: chunked, close-delimited and interim
 * responses, head and field limits, malformed chunks, resets, stalls, keep-alive
 * reuse, cancellation from on_data; what a reverse proxy needs (any-status streaming,
 * header iteration, pause/resume, the address check after DNS); TLS against a
 * certificate made here; and the proxy-variable check that makes the worker fall back
 * to libcurl. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "curl_dl.h"
#include "err.h"
#include "http.h"
#include "httpc.h"
#include "loop.h"
#include "tls.h"
#include "xalloc.h"
#include "testcert.h"

enum end { END_KEEP, END_CLOSE, END_RESET };

struct script {
	const char *pieces[8]; /* sent one per loop timer tick, so the client reads them apart */
	enum end end;
};

struct raw {
	struct loop *l;
	int lfd, port;
	int accepts;
	const struct script *sc;
	struct buf got; /* every request byte received, all connections */
};

struct rconn {
	struct raw *s;
	int fd;
	size_t piece;
	size_t heads; /* request heads seen on this connection */
	size_t answered;
	bool sending;
};

static void rconn_send_next(struct loop *l, void *arg);

static void
rconn_close(struct rconn *rc)
{
	loop_fd_del(rc->s->l, rc->fd);
	close(rc->fd);
	rc->fd = -1;
}

static void
rconn_read(struct loop *l, int fd, int mask, void *arg)
{
	struct rconn *rc = arg;
	char b[4096];
	ssize_t n = recv(fd, b, sizeof(b), 0);
	if (n <= 0) {
		rconn_close(rc);
		if (!rc->sending)
			free(rc);
		return;
	}
	buf_add(&rc->s->got, b, (size_t)n);
	/* count request heads; our tests send no request bodies except where noted */
	for (ssize_t i = 3; i < n; i++)
		if (memcmp(b + i - 3, "\r\n\r\n", 4) == 0)
			rc->heads++;
	if (!rc->sending && rc->answered < rc->heads) {
		rc->answered++;
		rc->sending = true;
		rc->piece = 0;
		loop_timer_add(l, 1, rconn_send_next, rc);
	}
}

static void
rconn_send_next(struct loop *l, void *arg)
{
	struct rconn *rc = arg;
	if (rc->fd < 0) { /* the client went away */
		free(rc);
		return;
	}
	const struct script *sc = rc->s->sc;
	const char *p = rc->piece < 8 ? sc->pieces[rc->piece] : NULL;
	if (p != NULL) {
		rc->piece++;
		(void)send(rc->fd, p, strlen(p), MSG_NOSIGNAL);
		loop_timer_add(l, 2, rconn_send_next, rc);
		return;
	}
	rc->sending = false;
	if (sc->end == END_RESET) {
		struct linger lg = {.l_onoff = 1, .l_linger = 0};
		setsockopt(rc->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	if (sc->end != END_KEEP) {
		rconn_close(rc);
		free(rc);
	} else if (rc->answered < rc->heads) { /* a request that came while we were sending */
		rc->answered++;
		rc->sending = true;
		rc->piece = 0;
		loop_timer_add(l, 1, rconn_send_next, rc);
	}
}

static void
raw_accept(struct loop *l, int fd, int mask, void *arg)
{
	struct raw *s = arg;
	int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (c < 0)
		return;
	s->accepts++;
	struct rconn *rc = xcalloc(1, sizeof(*rc));
	rc->s = s;
	rc->fd = c;
	loop_fd_set(l, c, LOOP_READ, rconn_read, rc);
}

/* The per-user epoll watch limit (fs.epoll.max_user_watches, millions here) is shared
 * with every process of the uid; a sandbox that uses it up makes epoll_ctl fail with
 * ENOSPC. This definition takes the place of libc's for lib/loop.c, which is linked into
 * this binary: with enospc_port set, adding any socket not bound to that port (the
 * client's, not the scripted server's) fails that way. */
static int enospc_port;

int
epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	if (enospc_port != 0 && op == EPOLL_CTL_ADD) {
		struct sockaddr_in a;
		socklen_t al = sizeof(a);
		if (getsockname(fd, (struct sockaddr *)&a, &al) == 0 && a.sin_family == AF_INET &&
		    ntohs(a.sin_port) != enospc_port) {
			errno = ENOSPC;
			return -1;
		}
	}
	return (int)syscall(SYS_epoll_ctl, epfd, op, fd, ev);
}

struct fixture {
	struct loop *l;
	struct httpc *c;
	struct raw raw;
	char url[64];
};

static int
setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	f->l = loop_new();
	struct httpc_opts o = {.transport = HTTPC_NATIVE};
	f->c = httpc_new(f->l, &o);
	f->raw.l = f->l;
	buf_init(&f->raw.got, 1 << 20);
	f->raw.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	assert_int_equal(bind(f->raw.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(f->raw.lfd, 16), 0);
	assert_int_equal(getsockname(f->raw.lfd, (struct sockaddr *)&a, &al), 0);
	f->raw.port = ntohs(a.sin_port);
	loop_fd_set(f->l, f->raw.lfd, LOOP_READ, raw_accept, &f->raw);
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d/p?q=1", f->raw.port);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	httpc_free(f->c);
	loop_fd_del(f->l, f->raw.lfd);
	close(f->raw.lfd);
	/* let scripted sends notice their closed peers and free themselves */
	for (int i = 0; i < 20; i++)
		loop_once(f->l, 5);
	buf_free(&f->raw.got);
	loop_free(f->l);
	free(f);
	return 0;
}

struct result {
	bool done;
	int err, status, heads, head_status;
	char *body, *xa, *link, *errmsg;
	size_t streamed;
	bool cancel_in_data;
	bool pause_each;   /* on_data answers HTTPC_PAUSE every time */
	char sbytes[128];  /* what on_data saw, in order */
	size_t data_calls; /* on_data calls */
	struct httpc_xfer *x;
};

static void
on_done(struct httpc_xfer *x, const struct httpc_response *resp, void *arg)
{
	struct result *r = arg;
	r->done = true;
	r->err = resp->err;
	r->status = resp->status;
	r->body = xstrndup(resp->body.data ? resp->body.data : "", resp->body.len);
	r->errmsg = xstrdup(resp->errmsg);
	const char *h = httpc_xfer_header(x, "x-a");
	r->xa = h ? xstrdup(h) : NULL;
	h = httpc_xfer_header(x, "link");
	r->link = h ? xstrdup(h) : NULL;
}

static int
on_head(struct httpc_xfer *x, int status, void *arg)
{
	struct result *r = arg;
	r->heads++;
	r->head_status = status;
	return 0;
}

static int
on_data(struct httpc_xfer *x, const char *p, size_t n, void *arg)
{
	struct result *r = arg;
	if (r->streamed + n < sizeof(r->sbytes))
		memcpy(r->sbytes + r->streamed, p, n);
	r->streamed += n;
	r->data_calls++;
	if (r->pause_each)
		return HTTPC_PAUSE;
	if (r->cancel_in_data) {
		httpc_cancel(x);
		r->done = true; /* no on_done will come */
	}
	return 0;
}

static void
result_free(struct result *r)
{
	free(r->body);
	free(r->xa);
	free(r->link);
	free(r->errmsg);
	memset(r, 0, sizeof(*r));
}

static void
run_until(struct loop *l, bool *flag)
{
	for (int i = 0; i < 3000 && !*flag; i++)
		assert_int_equal(loop_once(l, 100), 0);
	assert_true(*flag);
}

/* Starts req (default: a GET of f->url) answered by sc, results into r. */
static void
start(struct fixture *f, const struct script *sc, struct httpc_request *req, struct result *r)
{
	f->raw.sc = sc;
	struct httpc_request dflt = {0};
	if (req == NULL)
		req = &dflt;
	if (req->url == NULL)
		req->url = f->url;
	req->on_done = on_done;
	if (req->on_head == NULL)
		req->on_head = on_head;
	req->arg = r;
	assert_int_equal(httpc_start(f->c, req, &r->x), 0);
}

/* One request answered by sc, run to its end (free r with result_free). */
static void
fetch(struct fixture *f, const struct script *sc, struct httpc_request *req, struct result *r)
{
	start(f, sc, req, r);
	run_until(f->l, &r->done);
}

static void
test_chunked_split(void **state)
{
	struct fixture *f = *state;
	static const struct script sc = {{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chu",
	                                  "nked\r\nX-A:  b  \r", "\n\r\n5\r\nhel",
	                                  "lo\r\n6\r\n worl", "d\r\n0\r\n\r\n"},
	                                 END_KEEP};
	struct result r = {0};
	const char *hdrs[] = {"X-Custom: 1", "Expect:"};
	struct httpc_request req = {.headers = hdrs, .nheaders = 2};
	fetch(f, &sc, &req, &r);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "hello world");
	assert_string_equal(r.xa, "b");
	/* what went on the wire: origin-form target, Host with port, our header, no empty one */
	char want[128];
	snprintf(want, sizeof(want), "GET /p?q=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n", f->raw.port);
	assert_non_null(strstr(f->raw.got.data, want));
	assert_non_null(strstr(f->raw.got.data, "\r\nX-Custom: 1\r\n"));
	assert_null(strstr(f->raw.got.data, "Expect"));
	result_free(&r);
	/* the native transport never maps libcurl */
	assert_false(curl_dl_loaded());
}

static void
test_close_delimited(void **state)
{
	struct fixture *f = *state;
	static const struct script sc = {{"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc", "def"},
	                                 END_CLOSE};
	struct result r = {0};
	fetch(f, &sc, NULL, &r);
	assert_int_equal(r.err, 0);
	assert_string_equal(r.body, "abcdef");
	result_free(&r);
}

static void
test_interim_skipped(void **state)
{
	struct fixture *f = *state;
	static const struct script sc = {
	    {"HTTP/1.1 100 Continue\r\n\r\n", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
	     "HTTP/1.1 201 Created\r\nX-A: c\r\nContent-Length: 2\r\n\r\nok"},
	    END_KEEP};
	struct result r = {0};
	fetch(f, &sc, NULL, &r);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.status, 201);
	assert_int_equal(r.heads, 1);
	assert_int_equal(r.head_status, 201);
	assert_string_equal(r.xa, "c");
	assert_null(r.link); /* headers of interim responses are forgotten */
	assert_string_equal(r.body, "ok");
	result_free(&r);
}

static void
test_head_limits(void **state)
{
	struct fixture *f = *state;
	/* a 70 KiB header value */
	struct buf big;
	buf_init(&big, 1 << 20);
	buf_add_str(&big, "HTTP/1.1 200 OK\r\nX-Big: ");
	for (int i = 0; i < 70 * 1024; i++)
		buf_add(&big, "a", 1);
	buf_add_str(&big, "\r\nContent-Length: 0\r\n\r\n");
	struct script sc = {{big.data}, END_CLOSE};
	struct result r = {0};
	fetch(f, &sc, NULL, &r);
	assert_int_equal(r.err, AL_E_TOOBIG);
	result_free(&r);
	/* 101 header fields */
	buf_reset(&big);
	buf_add_str(&big, "HTTP/1.1 200 OK\r\n");
	for (int i = 0; i < 101; i++)
		buf_addf(&big, "X-H%d: v\r\n", i);
	buf_add_str(&big, "Content-Length: 0\r\n\r\n");
	sc.pieces[0] = big.data;
	fetch(f, &sc, NULL, &r);
	assert_int_equal(r.err, AL_E_TOOBIG);
	result_free(&r);
	buf_free(&big);
}

static void
test_malformed(void **state)
{
	struct fixture *f = *state;
	static const struct script bad_chunk = {
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "zz\r\nhello\r\n0\r\n\r\n"},
	    END_CLOSE};
	struct result r = {0};
	fetch(f, &bad_chunk, NULL, &r);
	assert_int_equal(r.err, AL_E_PROTO);
	assert_non_null(strstr(r.errmsg, "bad response"));
	result_free(&r);
	static const struct script not_http = {{"SSH-2.0-OpenSSH\r\n"}, END_CLOSE};
	fetch(f, &not_http, NULL, &r);
	assert_int_equal(r.err, AL_E_PROTO);
	result_free(&r);
	/* the peer goes away mid-body: closed, then reset */
	static const struct script cut = {
	    {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", "0123456789"}, END_CLOSE};
	fetch(f, &cut, NULL, &r);
	assert_int_equal(r.err, AL_E_IO);
	assert_string_equal(r.body, "0123456789");
	result_free(&r);
	static const struct script reset = {
	    {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", "0123456789"}, END_RESET};
	fetch(f, &reset, NULL, &r);
	assert_int_equal(r.err, AL_E_IO);
	result_free(&r);
	/* no answer at all */
	static const struct script none = {{NULL}, END_CLOSE};
	fetch(f, &none, NULL, &r);
	assert_int_equal(r.err, AL_E_IO);
	assert_int_equal(r.status, 0);
	result_free(&r);
}

static void
test_idle_timeout(void **state)
{
	struct fixture *f = *state;
	static const struct script slow = {
	    {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", "0123456789"}, END_KEEP};
	struct result r = {0};
	struct httpc_request req = {.idle_timeout_s = 1};
	fetch(f, &slow, &req, &r);
	assert_int_equal(r.err, AL_E_TIMEOUT);
	assert_int_equal(r.status, 200);
	result_free(&r);
	struct httpc_request req2 = {.timeout_ms = 50};
	fetch(f, &slow, &req2, &r);
	assert_int_equal(r.err, AL_E_TIMEOUT);
	result_free(&r);
	assert_int_equal(httpc_active(f->c), 0);
}

static void
test_keepalive_reuse(void **state)
{
	struct fixture *f = *state;
	static const struct script ka = {{"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"},
	                                 END_KEEP};
	struct result r = {0};
	for (int i = 0; i < 3; i++) {
		struct httpc_request req = {.method = i == 1 ? "POST" : "GET",
		                            .body = i == 1 ? "" : NULL};
		fetch(f, &ka, &req, &r);
		assert_int_equal(r.err, 0);
		assert_string_equal(r.body, "one");
		result_free(&r);
	}
	assert_int_equal(f->raw.accepts, 1); /* one connection carried all three */
	assert_non_null(strstr(f->raw.got.data, "POST /p?q=1 HTTP/1.1\r\n"));
	assert_non_null(strstr(f->raw.got.data, "Content-Length: 0\r\n"));
	/* "Connection: close" answers are not pooled */
	static const struct script cl = {
	    {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\ntwo"}, END_KEEP};
	fetch(f, &cl, NULL, &r);
	result_free(&r);
	fetch(f, &cl, NULL, &r);
	assert_string_equal(r.body, "two");
	result_free(&r);
	assert_int_equal(f->raw.accepts, 2); /* the first "two" still came on the pooled one */
	/* a pooled connection the server closes is dropped; the next request dials anew */
	static const struct script then_close = {
	    {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nthr"}, END_CLOSE};
	fetch(f, &then_close, NULL, &r);
	result_free(&r);
	for (int i = 0; i < 10; i++)
		loop_once(f->l, 5);
	fetch(f, &then_close, NULL, &r);
	assert_int_equal(r.err, 0);
	assert_string_equal(r.body, "thr");
	result_free(&r);
	assert_int_equal(f->raw.accepts, 4);
}

static void
test_cancel_in_data(void **state)
{
	struct fixture *f = *state;
	static const struct script st = {{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	                                  "3\r\nabc\r\n", "3\r\ndef\r\n"},
	                                 END_KEEP};
	struct result r = {.cancel_in_data = true};
	struct httpc_request req = {.on_data = on_data};
	fetch(f, &st, &req, &r);
	for (int i = 0; i < 10; i++)
		loop_once(f->l, 5);
	assert_int_equal(r.streamed, 3);
	assert_null(r.body); /* on_done never ran */
	assert_int_equal(httpc_active(f->c), 0);
	/* non-2xx answers to a streaming request are buffered instead */
	static const struct script e = {{"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy"},
	                                END_KEEP};
	struct result r2 = {0};
	struct httpc_request req2 = {.on_data = on_data};
	fetch(f, &e, &req2, &r2);
	assert_int_equal(r2.status, 503);
	assert_int_equal(r2.streamed, 0);
	assert_string_equal(r2.body, "busy");
	result_free(&r2);
}

/* A proxy relays error bodies as they come, and every response header. */
static void
test_any_status_and_headers(void **state)
{
	struct fixture *f = *state;
	static const struct script e = {
	    {"HTTP/1.1 404 Not Found\r\nX-A: 1\r\nContent-Type: text/plain\r\nSET-Cookie:  a=b "
	     "\r\nContent-Length: 7\r\n\r\nnot ",
	     "her"},
	    END_KEEP};
	struct result r = {0};
	struct httpc_request req = {.on_data = on_data, .stream_any_status = true};
	start(f, &e, &req, &r);
	while (r.streamed < 4)
		assert_int_equal(loop_once(f->l, 100), 0);
	/* mid-transfer: the head is readable, names lower-cased, values trimmed, in order */
	size_t pos = 0;
	const char *n, *v;
	const char *want[][2] = {{"x-a", "1"},
	                         {"content-type", "text/plain"},
	                         {"set-cookie", "a=b"},
	                         {"content-length", "7"}};
	for (size_t i = 0; i < 4; i++) {
		assert_true(httpc_xfer_header_next(r.x, &pos, &n, &v));
		assert_string_equal(n, want[i][0]);
		assert_string_equal(v, want[i][1]);
	}
	assert_false(httpc_xfer_header_next(r.x, &pos, &n, &v));
	run_until(f->l, &r.done);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.status, 404);
	assert_int_equal(r.streamed, 7);
	assert_memory_equal(r.sbytes, "not her", 7);
	assert_string_equal(r.body, ""); /* streamed, not buffered */
	result_free(&r);
}

/* Runs the loop for about ms, whatever happens. */
static void
spin(struct loop *l, unsigned ms)
{
	for (unsigned i = 0; i < ms / 10; i++)
		assert_int_equal(loop_once(l, 10), 0);
}

/* Runs the loop until on_data has been called calls times. */
static void
run_until_calls(struct loop *l, struct result *r, size_t calls)
{
	for (int i = 0; i < 3000 && r->data_calls < calls && !r->done; i++)
		assert_int_equal(loop_once(l, 100), 0);
	assert_int_equal(r->data_calls, calls);
}

/* HTTPC_PAUSE: no more bytes until httpc_resume, even those already read (they wait
 * parsed-so-far); the idle timer does not count the paused time; a pause on the last
 * body bytes still completes on resume; the connection is reused afterwards. */
static void
test_pause_resume(void **state)
{
	struct fixture *f = *state;
	/* one piece holding two chunks: the pause lands mid-read */
	static const struct script sc = {
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n",
	     "1\r\n!\r\n0\r\n\r\n"},
	    END_KEEP};
	struct result r = {.pause_each = true};
	struct httpc_request req = {.on_data = on_data, .idle_timeout_s = 1};
	start(f, &sc, &req, &r);
	run_until_calls(f->l, &r, 1);
	assert_memory_equal(r.sbytes, "hello", 5);
	/* longer than the idle limit: every byte has arrived, none is delivered, no timeout */
	spin(f->l, 1300);
	assert_int_equal(r.data_calls, 1);
	assert_false(r.done);
	httpc_resume(r.x);
	httpc_resume(r.x);                 /* twice is once */
	assert_int_equal(r.data_calls, 1); /* never from inside httpc_resume */
	run_until_calls(f->l, &r, 2);
	assert_memory_equal(r.sbytes, "helloworld", 10);
	httpc_resume(r.x);
	run_until_calls(f->l, &r, 3);
	assert_false(r.done);
	/* paused on the last body byte: the end of the message needs no more input */
	httpc_resume(r.x);
	run_until(f->l, &r.done);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.streamed, 11);
	assert_memory_equal(r.sbytes, "helloworld!", 11);
	result_free(&r);

	/* Content-Length body paused on its final bytes, on the same connection */
	static const struct script cl = {{"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabc", "def"},
	                                 END_KEEP};
	struct result r2 = {.pause_each = true};
	struct httpc_request req2 = {.on_data = on_data};
	start(f, &cl, &req2, &r2);
	run_until_calls(f->l, &r2, 1);
	spin(f->l, 30);
	assert_int_equal(r2.data_calls, 1);
	httpc_resume(r2.x);
	run_until_calls(f->l, &r2, 2);
	assert_false(r2.done);
	httpc_resume(r2.x);
	run_until(f->l, &r2.done);
	assert_int_equal(r2.err, 0);
	assert_memory_equal(r2.sbytes, "abcdef", 6);
	assert_int_equal(f->raw.accepts, 1);
	result_free(&r2);

	/* a server that closes while we are paused: nothing happens until resume, then
	 * the close-delimited body ends normally */
	static const struct script cd = {{"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nxy", "z"},
	                                 END_CLOSE};
	struct result r3 = {.pause_each = true};
	struct httpc_request req3 = {.on_data = on_data};
	start(f, &cd, &req3, &r3);
	run_until_calls(f->l, &r3, 1);
	spin(f->l, 100);
	assert_false(r3.done);
	r3.pause_each = false;
	httpc_resume(r3.x);
	run_until(f->l, &r3.done);
	assert_int_equal(r3.err, 0);
	assert_memory_equal(r3.sbytes, "xyz", 3);
	result_free(&r3);
	assert_int_equal(httpc_active(f->c), 0);
}

struct checks {
	int calls;
	bool allow;
	char last[64];
};

static int
check_addr(const struct sockaddr *sa, socklen_t len, char *why, size_t whylen, void *arg)
{
	struct checks *ck = arg;
	ck->calls++;
	const void *a = sa->sa_family == AF_INET
	                    ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
	                    : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
	inet_ntop(sa->sa_family, a, ck->last, sizeof(ck->last));
	if (ck->allow)
		return 0;
	snprintf(why, whylen, "IP validation failed: %s is not a private address", ck->last);
	return -1;
}

/* The address check sees each resolved address before connect; a refusal fails the
 * transfer with its message and no connection is made. Also: user_agent "" sends none. */
static void
test_addr_check(void **state)
{
	struct fixture *f = *state;
	struct checks ck = {0};
	struct httpc_opts o = {.transport = HTTPC_NATIVE,
	                       .user_agent = "",
	                       .addr_check = check_addr,
	                       .addr_check_arg = &ck};
	struct httpc *c = httpc_new(f->l, &o);
	assert_non_null(c);
	struct httpc *saved = f->c;
	f->c = c;
	static const struct script ok = {{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
	                                 END_KEEP};
	struct result r = {0};
	fetch(f, &ok, NULL, &r);
	assert_int_equal(r.err, AL_E_PERM);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.errmsg, "IP validation failed: 127.0.0.1 is not a private address");
	assert_int_equal(ck.calls, 1);
	assert_int_equal(f->raw.accepts, 0);
	result_free(&r);
	ck.allow = true;
	fetch(f, &ok, NULL, &r);
	assert_int_equal(r.err, 0);
	assert_string_equal(r.body, "ok");
	assert_int_equal(ck.calls, 2);
	assert_string_equal(ck.last, "127.0.0.1");
	assert_null(strstr(f->raw.got.data, "User-Agent"));
	result_free(&r);
	/* a pooled connection skips the check; httpc_close_idle makes the next one dial */
	fetch(f, &ok, NULL, &r);
	result_free(&r);
	assert_int_equal(ck.calls, 2);
	assert_int_equal(f->raw.accepts, 1);
	httpc_close_idle(c);
	ck.allow = false;
	fetch(f, &ok, NULL, &r);
	assert_int_equal(r.err, AL_E_PERM);
	assert_int_equal(ck.calls, 3);
	result_free(&r);
	httpc_free(c);
	f->c = saved;
	/* libcurl cannot honour the check, so it is refused rather than skipped */
	struct httpc_opts oc = {.transport = HTTPC_CURL, .addr_check = check_addr};
	assert_null(httpc_new(f->l, &oc));
}

static void
test_bad_urls(void **state)
{
	struct fixture *f = *state;
	const char *bad[] = {"ftp://x/",     "http://",         "http://u:p@127.0.0.1/",
	                     "http://[::1/", "http://h:99999/", "http://h:0/",
	                     "http://h/a b"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct httpc_request req = {.url = bad[i], .on_done = on_done};
		assert_int_equal(httpc_start(f->c, &req, NULL), AL_E_INVAL);
	}
	struct result r = {0};
	struct httpc_request req = {.url = "http://nonexistent.invalid/"};
	fetch(f, NULL, &req, &r);
	assert_int_equal(r.err, AL_E_IO);
	assert_non_null(strstr(r.errmsg, "resolve"));
	result_free(&r);
	assert_int_equal(httpc_active(f->c), 0);
}

static void
test_proxy_env(void **state)
{
	unsetenv("http_proxy");
	unsetenv("HTTP_PROXY");
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("all_proxy");
	unsetenv("ALL_PROXY");
	unsetenv("no_proxy");
	unsetenv("NO_PROXY");
	assert_null(httpc_proxy_env("https://api.example.com/"));
	setenv("HTTPS_PROXY", "http://proxy:3128", 1);
	assert_string_equal(httpc_proxy_env("https://api.example.com/"), "HTTPS_PROXY");
	assert_null(httpc_proxy_env("http://api.example.com/"));
	setenv("NO_PROXY", "localhost, .example.com", 1);
	assert_null(httpc_proxy_env("https://api.example.com:8443/x"));
	assert_null(httpc_proxy_env("https://example.com/"));
	assert_string_equal(httpc_proxy_env("https://badexample.com/"), "HTTPS_PROXY");
	setenv("ALL_PROXY", "socks5://p", 1);
	assert_string_equal(httpc_proxy_env("http://10.0.0.1:80/"), "ALL_PROXY");
	setenv("NO_PROXY", "*", 1);
	assert_null(httpc_proxy_env("http://10.0.0.1:80/"));
	unsetenv("HTTPS_PROXY");
	unsetenv("ALL_PROXY");
	unsetenv("NO_PROXY");
}

/* A connection the loop cannot watch fails its transfer at once with a clear message
 * (before: it hung until the transfer's timeout, or forever on an event stream). */
static void
test_epoll_enospc(void **state)
{
	struct fixture *f = *state;
	static const struct script sc = {{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
	                                 END_KEEP};
	struct result r = {0};
	struct httpc_request req = {.timeout_ms = 5000};
	enospc_port = f->raw.port;
	fetch(f, &sc, &req, &r);
	enospc_port = 0;
	assert_int_equal(r.err, AL_E_IO);
	assert_non_null(r.errmsg);
	assert_non_null(strstr(r.errmsg, "cannot watch the connection"));
	assert_non_null(strstr(r.errmsg, "max_user_watches"));
	result_free(&r);
	/* the client is fine afterwards */
	fetch(f, &sc, NULL, &r);
	assert_int_equal(r.err, 0);
	assert_string_equal(r.body, "ok");
	result_free(&r);
}

/* ---- TLS: a self-signed certificate for 127.0.0.1 made here ---- */

static void
tls_handler(struct http_request *req, void *arg)
{
	http_respond(req, 200, NULL, 0, "secure", 6);
}

static void
tls_fetch(struct loop *l, const char *ca_file, const char *url, struct result *r)
{
	struct httpc_opts o = {.transport = HTTPC_NATIVE, .ca_file = ca_file};
	struct httpc *c = httpc_new(l, &o);
	struct httpc_request req = {.url = url, .on_done = on_done, .arg = r};
	assert_int_equal(httpc_start(c, &req, NULL), 0);
	run_until(l, &r->done);
	httpc_free(c);
}

static void
test_tls(void **state)
{
	char dir[] = "/tmp/httpc-tls-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char cert[64], key[64], other[64], okey[64];
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	snprintf(other, sizeof(other), "%s/other.pem", dir);
	snprintf(okey, sizeof(okey), "%s/okey.pem", dir);
	assert_int_equal(testcert_write(cert, key, "airlock test", "IP:127.0.0.1,DNS:localhost"),
	                 0);
	assert_int_equal(testcert_write(other, okey, "airlock test", "DNS:elsewhere.invalid"), 0);
	struct loop *l = loop_new();
	char err[256];
	struct tls_server_ctx *t = tls_server_ctx_new(cert, key, NULL, err, sizeof(err));
	assert_non_null(t);
	struct tls_server_ctx *t2 = tls_server_ctx_new(other, okey, NULL, err, sizeof(err));
	assert_non_null(t2);
	struct http_server *srv = http_server_new(l, NULL, tls_handler, NULL);
	struct http_server *srv2 = http_server_new(l, NULL, tls_handler, NULL);
	int port, port2;
	assert_int_equal(http_server_listen(srv, "127.0.0.1:0", t, &port), 0);
	assert_int_equal(http_server_listen(srv2, "127.0.0.1:0", t2, &port2), 0);
	char url[64];
	struct result r = {0};
	/* trusted, by IP and by name */
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/x", port);
	tls_fetch(l, cert, url, &r);
	assert_int_equal(r.err, 0);
	assert_string_equal(r.body, "secure");
	result_free(&r);
	snprintf(url, sizeof(url), "https://localhost:%d/x", port);
	tls_fetch(l, cert, url, &r);
	if (r.err == 0) /* localhost may resolve to ::1 first, where nothing listens */
		assert_string_equal(r.body, "secure");
	result_free(&r);
	/* not in the trust store */
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/x", port);
	tls_fetch(l, other, url, &r);
	assert_int_equal(r.err, AL_E_IO);
	assert_non_null(strstr(r.errmsg, "certificate"));
	result_free(&r);
	/* trusted, but for another name */
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/x", port2);
	tls_fetch(l, other, url, &r);
	assert_int_equal(r.err, AL_E_IO);
	assert_non_null(strstr(r.errmsg, "certificate"));
	result_free(&r);
	/* plain http to a TLS port: lib/http answers it in plain text, a 400 that says so */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", port);
	tls_fetch(l, NULL, url, &r);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.status, 400);
	assert_non_null(strstr(r.body, "plain HTTP sent to an HTTPS port"));
	result_free(&r);
	http_server_free(srv);
	http_server_free(srv2);
	tls_server_ctx_free(t);
	tls_server_ctx_free(t2);
	loop_free(l);
	unlink(cert);
	unlink(key);
	unlink(other);
	unlink(okey);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_chunked_split, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_close_delimited, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_interim_skipped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_head_limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keepalive_reuse, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel_in_data, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_urls, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_any_status_and_headers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pause_resume, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_addr_check, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_epoll_enospc, setup, teardown),
	    cmocka_unit_test(test_proxy_env),
	    cmocka_unit_test(test_tls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
