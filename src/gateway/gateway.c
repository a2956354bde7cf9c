/* `airlock gateway`: configuration, the edge connections (dial, TLS 1.3, HELLO, HTTP/2
 * server role, reconnect with jittered backoff), per-stream relaying to upstreams,
 * SIGTERM drain, SIGHUP route reload, and loopback metrics. See docs/gateway/. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cli.h"
#include "buf.h"
#include "err.h"
#include "gateway.h"
#include "gateway_config.h"
#include "gateway_identity.h"
#include "gateway_upstream.h"
#include "http.h"
#include "log.h"
#include "tunnel_proto.h"
#include "util.h"
#include "xalloc.h"

#define MAX_CONNS 16
#define REQ_BODY_MAX (32u << 20)
/* Request bodies wait here until END_STREAM, then in the upstream client until the
 * upstream has taken them, and nghttp2 reopens the 1 MiB windows as the bytes arrive, so
 * flow control does not bound them: without this an edge grows the gateway by
 * REQ_BODY_MAX per stream (4096 per connection). */
#define CONN_BODY_MAX (64u << 20)
#define OUT_HIGH (1u << 20) /* pause the upstream above this much unsent response */
/* A bulk response with this much unsent pauses its upstream (an MCP answer is smaller). */
#define OUT_PAUSE (64u << 10)
#define OUT_ROOM 16 /* consumed bytes kept before out_off: room for a frame header */
#define FRAME_HD 9
/* Per edge connection. Idle MCP streams (SSE listeners) are cheap, and the default four
 * connections must carry 10,000 of them; nghttp2 on the edge queues any excess. */
#define MAX_STREAMS 4096

enum gc_state { GC_IDLE, GC_CONNECTING, GC_TLS, GC_HELLO, GC_H2 };

struct gw;
struct gw_conn;

/* The request as it arrives; freed once the upstream request is issued, so that a
 * long-lived (SSE) stream keeps none of it. */
struct gw_req {
	struct buf method, path, authority;
	struct buf hdrs; /* "name: value\0" lines for the upstream request */
	size_t nhdrs;
	struct buf body;
};

struct gw_stream {
	struct gw_conn *conn;
	struct gw_stream *next, *prev;
	int32_t id;
	struct gw_req *rq; /* NULL once dispatched */
	bool started;      /* upstream request issued or answered locally */
	bool answered;     /* response HEADERS submitted */
	bool eof;          /* no more response data will come */
	bool failed;       /* upstream broke after the head: reset */
	struct buf out;    /* response body; bytes before out_off were taken by nghttp2 */
	size_t out_off;    /* a read offset, not a memmove per DATA frame (bulk costs 30 %);
	                    * at least OUT_ROOM once bytes are queued, see h2_send_data */
	struct upstream *up;
	bool deferred;
	size_t body_held; /* request body bytes counted in conn->body_bytes */
	/* An upstream chunk lent to nghttp2 while up_data runs conn_send; it points into
	 * httpc's read buffer, so it is cleared before up_data returns. */
	const char *lend;
	size_t lend_len;
	/* Inner TLS (a stream whose request carries TUNNEL_INNER_HEADER): the DATA frames
	 * both ways are this TLS session's records; the HTTP/1.1 request inside collects in
	 * plain until it is whole. */
	bool inner;
	struct tunnel_pipe *tls;
	struct buf plain;
	/* The answer's framing inside TLS: a session carries one exchange after another
	 * (HTTP/1.1 keep-alive), so each answer ends by its own length, not by close. */
	bool head_req; /* the request was HEAD: its answer has no body */
	bool closed;   /* the edge's close_notify came */
	bool chunked;  /* no content-length from the upstream: chunked coding */
};

struct gw_conn {
	struct gw *gw;
	int index;
	int fd;
	enum gc_state state;
	struct tunnel_io io;
	struct buf hello;
	nghttp2_session *h2;
	unsigned attempt;
	struct loop_timer *timer;
	uint64_t last_rx;
	struct gw_stream *streams;
	unsigned nstreams;
	char conn_id[48];
	bool goaway_sent;
	/* What the edge did wrong (a bad handshake reply, a GOAWAY we sent, an nghttp2
	 * error): the "tunnel connection lost/failed" line names it, not "protocol error". */
	char why[160];
	int refused;        /* the edge's handshake status when it refused us, else 0 */
	bool edge_draining; /* the edge sent GOAWAY(NO_ERROR): its close is no failure */
	size_t body_bytes;  /* request bodies held for this connection's streams */
};

struct metrics {
	uint64_t requests, errors, no_route, ssrf_denied, reconnects, registered, identity_refused;
};

struct gw {
	struct loop *loop;
	char *config_path;
	struct gateway_config cfg;
	struct gateway_config *old_cfgs; /* superseded by SIGHUP, kept for in-flight strings */
	size_t nold;
	SSL_CTX *ctx;
	SSL_CTX *inner; /* inner TLS server (tls.cert_file); NULL: not configured */
	char *token;
	char host[256], port[8];
	char gateway_id[64];
	struct gw_conn conns[MAX_CONNS];
	unsigned nconns;
	struct upstream_ctx *up;
	struct http_server *metrics_srv;
	struct metrics m;
	bool draining;
	bool exiting; /* "drained, exiting" said: say it once however many conns close */
	struct loop_timer *drain_timer;
	struct loop_timer *kick_timer; /* see kick_soon */
	int exit_code;
};

static void conn_schedule(struct gw_conn *c, uint64_t delay);
static uint64_t conn_backoff(struct gw_conn *c);
static void conn_event(struct loop *l, int fd, int mask, void *arg);
static void kick_all(void *arg);
static char *read_token(const struct gateway_config *cfg, char *err, size_t errlen);

/* ---- streams ---- */

static struct gw_req *
req_new(void)
{
	struct gw_req *rq = xcalloc(1, sizeof(*rq));
	buf_init(&rq->method, 16);
	buf_init(&rq->path, 8192);
	buf_init(&rq->authority, 256);
	buf_init(&rq->hdrs, 64 * 1024);
	buf_init(&rq->body, REQ_BODY_MAX);
	return rq;
}

static struct gw_stream *
stream_new(struct gw_conn *c, int32_t id)
{
	struct gw_stream *s = xcalloc(1, sizeof(*s));
	s->conn = c;
	s->id = id;
	s->rq = req_new();
	buf_init(&s->out, OUT_HIGH * 2);
	s->next = c->streams;
	if (c->streams)
		c->streams->prev = s;
	c->streams = s;
	c->nstreams++;
	return s;
}

static void
req_free(struct gw_stream *s)
{
	struct gw_req *rq = s->rq;
	if (rq == NULL)
		return;
	buf_free(&rq->method);
	buf_free(&rq->path);
	buf_free(&rq->authority);
	buf_free(&rq->hdrs);
	buf_free(&rq->body);
	free(rq);
	s->rq = NULL;
}

/* The body is no longer ours to hold: refused, or the upstream transfer has ended. */
static void
body_release(struct gw_stream *s)
{
	s->conn->body_bytes -= s->body_held;
	s->body_held = 0;
}

static void
stream_free(struct gw_stream *s)
{
	struct gw_conn *c = s->conn;
	upstream_cancel(s->up);
	body_release(s);
	if (s->prev)
		s->prev->next = s->next;
	else
		c->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	c->nstreams--;
	req_free(s);
	buf_free(&s->out);
	if (s->tls) {
		tunnel_pipe_free(s->tls);
		free(s->tls);
	}
	buf_free(&s->plain);
	free(s);
}

static size_t
out_pending(const struct gw_stream *s)
{
	return s->out.len - s->out_off;
}

/* Appends response bytes. The buffer starts with OUT_ROOM spare bytes so that the
 * 9-byte header of the DATA frame can always be written just before its payload. */
static int
out_add(struct gw_stream *s, const void *p, size_t n)
{
	static const char room[OUT_ROOM];
	if (s->out.len == 0) {
		if (buf_add(&s->out, room, sizeof(room)) != 0)
			return AL_E_TOOBIG;
		s->out_off = OUT_ROOM;
	} else if (s->out_off - OUT_ROOM >= s->out.len / 2) {
		/* Compact once at least half is consumed: amortized O(1) per byte. */
		buf_consume(&s->out, s->out_off - OUT_ROOM);
		s->out_off = OUT_ROOM;
	}
	return buf_add(&s->out, p, n);
}

/* The payload is not copied here (NGHTTP2_DATA_FLAG_NO_COPY): h2_send_data hands the
 * header and the bytes in s->out to TLS in one write. */
static ssize_t
resp_read(nghttp2_session *h2, int32_t sid, uint8_t *p, size_t len, uint32_t *flags,
          nghttp2_data_source *src, void *ud)
{
	struct gw_stream *s = src->ptr;
	if (s->failed)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	size_t left = s->lend_len > 0 ? s->lend_len : out_pending(s); /* never both */
	size_t n = left < len ? left : len;
	if (n == 0 && !s->eof) {
		s->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	if (n > 0)
		*flags |= NGHTTP2_DATA_FLAG_NO_COPY;
	if (n == left && s->eof)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* A frame from a lent chunk: the 9 bytes before it are httpc's, not ours, and the header
 * written alone would be a TLS record of its own. So the header travels with one
 * record's worth of payload through a 16 KiB copy, and the rest of the frame (15 of its
 * 16 records) goes to TLS straight from httpc's buffer. */
static int
send_lent(struct gw_conn *c, struct gw_stream *s, const uint8_t *hd, size_t len)
{
	char first[16384];
	if (len > s->lend_len)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	size_t k = len < sizeof(first) - FRAME_HD ? len : sizeof(first) - FRAME_HD;
	memcpy(first, hd, FRAME_HD);
	memcpy(first + FRAME_HD, s->lend, k);
	int r = tunnel_io_write(&c->io, first, FRAME_HD + k);
	if (r == 0 && len > k)
		r = tunnel_io_write(&c->io, s->lend + k, len - k);
	s->lend += len;
	s->lend_len -= len;
	return r == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* Called by nghttp2 (inside tunnel_io_flush or conn_send) for a DATA frame resp_read
 * sized. From s->out, the header goes into the consumed bytes right before the payload,
 * so header and payload are one TLS write with no copy. Never would-block: what the
 * socket does not take is queued by tunnel_io_write. */
static int
h2_send_data(nghttp2_session *h2, nghttp2_frame *f, const uint8_t *hd, size_t len,
             nghttp2_data_source *src, void *ud)
{
	struct gw_conn *c = ud;
	struct gw_stream *s = src->ptr;
	if (f->data.padlen == 0 && s->lend_len > 0)
		return send_lent(c, s, hd, len);
	if (f->data.padlen > 0 || len > out_pending(s) || s->out_off < FRAME_HD)
		return NGHTTP2_ERR_CALLBACK_FAILURE; /* we never pad; resp_read sized len */
	char *p = s->out.data + s->out_off - FRAME_HD;
	memcpy(p, hd, FRAME_HD);
	int r = tunnel_io_write(&c->io, p, FRAME_HD + len);
	s->out_off += len;
	if (s->out_off == s->out.len) {
		/* A small buffer is freed (an idle SSE stream keeps none); a bulk one is
		 * kept, or every drain would regrow it. */
		if (s->out.cap <= 4096)
			buf_free(&s->out);
		else
			buf_reset(&s->out);
		s->out_off = 0;
	}
	return r == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* ---- inner TLS: this stream's DATA frames are a TLS session's records ---- */

/* Moves the records TLS produced into the stream's response buffer and wakes its data
 * provider. */
static void
inner_flush(struct gw_stream *s)
{
	char tmp[16384];
	size_t n;
	while ((n = tunnel_pipe_take(s->tls, tmp, sizeof(tmp))) > 0)
		if (out_add(s, tmp, n) != 0) {
			/* A record cut short would corrupt the session: end the stream instead
			 * (up_data pauses the upstream long before this). */
			s->failed = true;
			nghttp2_submit_rst_stream(s->conn->h2, NGHTTP2_FLAG_NONE, s->id,
			                          NGHTTP2_INTERNAL_ERROR);
			return;
		}
	if (s->deferred && out_pending(s) > 0) {
		s->deferred = false;
		nghttp2_session_resume_data(s->conn->h2, s->id);
	}
}

/* Plaintext of the answer into TLS. A TLS failure resets the stream: the edge's side
 * then reports a broken answer. */
static void
inner_send(struct gw_stream *s, const void *p, size_t n)
{
	char err[256];
	while (n > 0 && !s->failed) {
		int k = tunnel_pipe_write(s->tls, p, n, err, sizeof(err));
		if (k <= 0) { /* the handshake is done before a request can be read */
			log_warn("inner TLS write failed", "why", k < 0 ? err : "handshake");
			s->failed = true;
			nghttp2_submit_rst_stream(s->conn->h2, NGHTTP2_FLAG_NONE, s->id,
			                          NGHTTP2_INTERNAL_ERROR);
			return;
		}
		p = (const char *)p + k;
		n -= (size_t)k;
	}
	inner_flush(s);
}

static void inner_next(struct gw_stream *s);

/* The answer is complete (its last bytes are queued): the session waits for the next
 * request on the same stream. The edge ends the stream when it no longer wants it. */
static void
inner_end(struct gw_stream *s)
{
	inner_flush(s);
	if (s->failed)
		return;
	s->started = false;
	s->answered = false;
	s->chunked = false;
	s->head_req = false;
	if (s->rq == NULL)
		s->rq = req_new();
	inner_next(s);
}

/* The inner answer's head as HTTP/1.1 text into TLS (hdrs as for submit_head). */
static void
inner_head(struct gw_stream *s, int status, const char *hdrs, size_t hlen)
{
	struct buf h;
	bool has_length = false;
	buf_init(&h, TUNNEL_INNER_HEAD_MAX);
	int r = buf_addf(&h, "HTTP/1.1 %03d \r\n", status);
	for (size_t off = 0; r == 0 && off < hlen;) {
		const char *name = hdrs + off;
		const char *val = name + strlen(name) + 1;
		off += strlen(name) + strlen(val) + 2;
		has_length |= strcasecmp(name, "content-length") == 0;
		r = buf_addf(&h, "%s: %s\r\n", name, val);
	}
	/* RFC 9112 §6.3: these answers end with their head whatever they say */
	bool no_body = s->head_req || status == 204 || status == 304 || status < 200;
	s->chunked = !has_length && !no_body;
	if (r == 0 && s->chunked)
		r = buf_add_str(&h, "transfer-encoding: chunked\r\n");
	if (r == 0)
		r = buf_add(&h, "\r\n", 2);
	s->answered = true;
	if (r != 0) { /* an upstream head over 64 KiB: reset rather than cut it */
		s->failed = true;
		nghttp2_submit_rst_stream(s->conn->h2, NGHTTP2_FLAG_NONE, s->id,
		                          NGHTTP2_INTERNAL_ERROR);
	} else
		inner_send(s, h.data, h.len);
	buf_free(&h);
}

static void
submit_head(struct gw_stream *s, int status, const char *hdrs, size_t hlen)
{
	if (s->tls) {
		inner_head(s, status, hdrs, hlen);
		return;
	}
	nghttp2_nv nv[101];
	size_t n = 0;
	char st[4];
	snprintf(st, sizeof(st), "%03d", status);
	nv[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)st, 7, 3, NGHTTP2_NV_FLAG_NONE};
	for (size_t off = 0; off < hlen && n < 100;) {
		const char *name = hdrs + off;
		size_t nl = strlen(name);
		const char *val = name + nl + 1;
		size_t vl = strlen(val);
		off += nl + vl + 2;
		nv[n++] =
		    (nghttp2_nv){(uint8_t *)name, (uint8_t *)val, nl, vl, NGHTTP2_NV_FLAG_NONE};
	}
	nghttp2_data_provider dp = {.source.ptr = s, .read_callback = resp_read};
	s->answered = true;
	nghttp2_submit_response(s->conn->h2, s->id, nv, n, &dp);
}

/* A local answer (no route, SSRF refusal, upstream failure before any byte). */
static void
answer_local(struct gw_stream *s, int status, const char *msg)
{
	static const char hdr[] = "content-type\0text/plain; charset=utf-8\0";
	s->started = true;
	req_free(s);
	body_release(s);
	if (status >= 400 && status != 404 && status != 403)
		s->conn->gw->m.errors++;
	if (s->tls) {
		/* "name\0value\0" pairs: hdr, then the length the inner client checks */
		char h[128];
		size_t ml = strlen(msg), hl = sizeof(hdr) - 1;
		memcpy(h, hdr, hl);
		hl += (size_t)snprintf(h + hl, sizeof(h) - hl, "content-length") + 1;
		hl += (size_t)snprintf(h + hl, sizeof(h) - hl, "%zu", ml + 1) + 1;
		submit_head(s, status, h, hl);
		if (!s->head_req) {
			inner_send(s, msg, ml);
			inner_send(s, "\n", 1);
		}
		inner_end(s);
		return;
	}
	s->eof = true;
	buf_reset(&s->out);
	s->out_off = 0;
	out_add(s, msg, strlen(msg));
	out_add(s, "\n", 1);
	submit_head(s, status, hdr, sizeof(hdr) - 1);
}

static void
up_head(void *arg, int status, const char *hdrs, size_t hlen)
{
	struct gw_stream *s = arg;
	submit_head(s, status, hdrs, hlen);
}

/* Whether the connection can take bytes now: nothing queued behind a full socket. */
static bool
conn_idle(const struct gw_conn *c)
{
	return c->state == GC_H2 && c->io.out.len == 0 && !c->io.want_write;
}

/* Frames and encrypts what nghttp2 has to send while the socket takes it, as
 * tunnel_io_flush does, but leaves TLS's write buffer to conn_kick after the callback:
 * the reads of one loop turn then leave in one write, not a short write each. Errors
 * are left to conn_kick too: the connection cannot be torn down under httpc's callback. */
static void
conn_send(struct gw_conn *c)
{
	const uint8_t *d;
	ssize_t n;
	while (conn_idle(c) && (n = nghttp2_session_mem_send(c->h2, &d)) > 0)
		if (tunnel_io_write(&c->io, d, (size_t)n) != 0)
			break;
}

static bool
up_data(void *arg, const char *p, size_t n)
{
	struct gw_stream *s = arg;
	struct gw_conn *c = s->conn;
	if (out_pending(s) >= OUT_HIGH)
		return false; /* edge is slower than the upstream: pause it */
	if (s->tls) {         /* encrypted into s->out; no lending: TLS needs its own records */
		if (!s->failed && s->chunked && n > 0) {
			/* one write per read, so a small answer is one record */
			char *ck = xmalloc(n + 24);
			int hl = snprintf(ck, 24, "%zx\r\n", n);
			memcpy(ck + hl, p, n);
			memcpy(ck + hl + n, "\r\n", 2);
			inner_send(s, ck, (size_t)hl + n + 2);
			free(ck);
		} else if (!s->failed)
			inner_send(s, p, n);
		if (out_pending(s) >= OUT_PAUSE)
			upstream_pause(s->up);
		return true;
	}
	if (out_pending(s) == 0 && s->answered && !s->failed && conn_idle(c)) {
		/* Nothing queued ahead of these bytes on the stream or the connection: frame
		 * and encrypt them from httpc's buffer now instead of copying them into s->out
		 * first (that copy was 14 % of the gateway's bulk CPU). A read is up to 256 KiB,
		 * so the frames are as large as the copy path's. */
		nghttp2_session *h2 = c->h2;
		int32_t id = s->id;
		s->lend = p;
		s->lend_len = n;
		if (s->deferred) {
			s->deferred = false;
			nghttp2_session_resume_data(h2, id);
		}
		conn_send(c);
		if (nghttp2_session_get_stream_user_data(h2, id) != s)
			return true; /* conn_send closed the stream, which cancelled the upstream */
		p = s->lend;
		n = s->lend_len;
		s->lend = NULL;
		s->lend_len = 0;
		/* What the window or the socket did not take is copied as before. */
		if (n == 0)
			return true;
	}
	if (out_add(s, p, n) != 0)
		return false;
	/* The edge cannot take more now (socket or window full). The next reads would only
	 * be copied in behind these bytes: they wait in the upstream's socket instead, until
	 * conn_kick has sent s->out and they can go out straight again. */
	if (out_pending(s) >= OUT_PAUSE)
		upstream_pause(s->up);
	if (s->deferred) {
		s->deferred = false;
		nghttp2_session_resume_data(s->conn->h2, s->id);
	}
	return true;
}

static void
up_done(void *arg, int status, const char *msg)
{
	struct gw_stream *s = arg;
	s->up = NULL;
	body_release(s);
	if (status > 0) {
		if (status == 403)
			s->conn->gw->m.ssrf_denied++;
		answer_local(s, status, msg);
		return;
	}
	if (status < 0) {
		s->failed = true;
		s->conn->gw->m.errors++;
		nghttp2_submit_rst_stream(s->conn->h2, NGHTTP2_FLAG_NONE, s->id,
		                          NGHTTP2_INTERNAL_ERROR);
		return;
	}
	if (!s->answered) { /* finished without a response head */
		answer_local(s, 502, "upstream error: no response");
		return;
	}
	if (s->tls) {
		if (s->chunked)
			inner_send(s, "0\r\n\r\n", 5);
		inner_end(s);
		return;
	}
	s->eof = true;
	if (s->deferred) {
		s->deferred = false;
		nghttp2_session_resume_data(s->conn->h2, s->id);
	}
}

static const struct upstream_cb up_cb = {up_head, up_data, up_done};

static void
stream_dispatch(struct gw_stream *s)
{
	struct gw *g = s->conn->gw;
	struct gw_req *rq = s->rq;
	s->started = true;
	g->m.requests++;
	if (g->inner && !s->tls) {
		/* The operator gave this gateway a certificate: its traffic must not cross the
		 * edge readable. 421: this connection cannot serve the request as sent. */
		answer_local(s, 421,
		             "inner TLS required: this gateway has tls.cert_file set; register its "
		             "CA on the tunnel (/v1/tunnels/{id}/certificates)");
		return;
	}
	if (rq->method.len == 0 || rq->path.len == 0 || rq->path.data[0] != '/') {
		answer_local(s, 400, "bad request: :method and an origin-form :path are required");
		return;
	}
	const struct gateway_route *r =
	    rq->authority.len ? gateway_config_route(&g->cfg, rq->authority.data) : NULL;
	if (r == NULL) {
		/* The route is the first label (host form: <route>.<domain>; the path form's
		 * /routes/<route>/ arrives the same way): name it, whichever form was used. */
		char msg[128];
		const char *a = rq->authority.len ? rq->authority.data : "";
		int rl = (int)strcspn(a, ".");
		g->m.no_route++;
		log_info("no route for host", "host", a);
		snprintf(msg, sizeof(msg), "no route \"%.*s\" in this gateway's routes",
		         rl > 63 ? 63 : rl, a);
		answer_local(s, 404, msg);
		return;
	}
	const struct gateway_identity_rule *ir = gateway_config_identity_rule(&g->cfg, r);
	if (ir != NULL) {
		char why[300];
		const char *tok =
		    gateway_identity_token(rq->hdrs.data ? rq->hdrs.data : "", rq->hdrs.len);
		int st = gateway_identity_check(&g->cfg, ir, rq->authority.data, tok,
		                                now_real_us() / 1000000, why, sizeof why);
		if (st != 0) {
			g->m.identity_refused++;
			log_warn("request refused: agent identity", "route", r->name, "status",
			         st == 401 ? "401" : "403", "why", why);
			answer_local(s, st, why);
			return;
		}
	}
	char *url = xasprintf("%s%s", r->upstream, rq->path.data);
	const char *lines[128];
	size_t n = 0;
	for (size_t off = 0; off < rq->hdrs.len && n < 128;) {
		lines[n++] = rq->hdrs.data + off;
		off += strlen(rq->hdrs.data + off) + 1;
	}
	int rc = upstream_start(g->up, rq->method.data, url, lines, n, rq->body.data, rq->body.len,
	                        &up_cb, s, &s->up);
	log_debug("upstream request", "route", r->name, "method", rq->method.data, "path",
	          rq->path.data);
	free(url);
	req_free(s); /* upstream_start copied what it needs */
	if (rc != 0)
		answer_local(s, 502, "upstream error: cannot start request");
}

/* Starts the inner TLS server for a stream that asked for it: the outer answer (200, a
 * byte pipe) goes out at once, since the client's handshake needs the server's reply. */
static void
inner_begin(struct gw_stream *s)
{
	struct gw *g = s->conn->gw;
	SSL *ssl = g->inner ? SSL_new(g->inner) : NULL;
	if (ssl == NULL) {
		g->m.requests++;
		answer_local(s, 421,
		             g->inner ? "gateway error: cannot start inner TLS"
		                      : "inner TLS requested, but this gateway has no "
		                        "tls.cert_file and tls.key_file");
		return;
	}
	SSL_set_accept_state(ssl);
	s->tls = xcalloc(1, sizeof(*s->tls));
	if (tunnel_pipe_init(s->tls, ssl) != 0) {
		free(s->tls);
		s->tls = NULL;
		g->m.requests++;
		answer_local(s, 421, "gateway error: cannot start inner TLS");
		return;
	}
	buf_init(&s->plain, TUNNEL_INNER_HEAD_MAX + REQ_BODY_MAX);
	static const nghttp2_nv nv[] = {
	    {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE}};
	nghttp2_data_provider dp = {.source.ptr = s, .read_callback = resp_read};
	nghttp2_submit_response(s->conn->h2, s->id, nv, 1, &dp);
}

/* Fills s->rq from the inner request once it is whole: 1 when it is, 0 when more bytes
 * are needed; answers 400/413 itself (through TLS) and returns -1. */
static int
inner_request(struct gw_stream *s)
{
	struct tunnel_head h;
	struct gw_req *rq = s->rq;
	int hl = tunnel_head_parse(s->plain.data ? s->plain.data : "", s->plain.len, false, &h);
	if (hl == 0)
		return 0;
	if (hl < 0) {
		answer_local(s, hl == AL_E_TOOBIG ? 431 : 400,
		             hl == AL_E_TOOBIG ? "request header fields too large"
		                               : "bad request: malformed HTTP/1.1 request head");
		return -1;
	}
	const struct tunnel_slice *cl = tunnel_head_get(&h, "content-length");
	const struct tunnel_slice *host = tunnel_head_get(&h, "host");
	uint64_t n = 0;
	if (tunnel_head_get(&h, "transfer-encoding") || host == NULL ||
	    (cl && parse_uint(cl->p, cl->n, REQ_BODY_MAX, &n) != 0)) {
		answer_local(s, 400,
		             "bad request: the inner request needs host and a content-length of at "
		             "most 32 MiB, and no transfer-encoding");
		return -1;
	}
	if (s->plain.len < (size_t)hl + n)
		return 0;
	/* the outer pseudo-headers described the pipe, not this request */
	buf_reset(&rq->method);
	buf_reset(&rq->path);
	buf_reset(&rq->authority);
	s->head_req = h.method.n == 4 && memcmp(h.method.p, "HEAD", 4) == 0;
	int r = buf_add(&rq->method, h.method.p, h.method.n);
	if (r == 0)
		r = buf_add(&rq->path, h.target.p, h.target.n);
	if (r == 0)
		r = buf_add(&rq->authority, host->p, host->n);
	for (size_t i = 0; r == 0 && i < h.nf; i++) {
		const struct tunnel_slice *nm = &h.f[i].name, *v = &h.f[i].value;
		char lname[64];
		if (nm->n >= sizeof(lname))
			goto field;
		for (size_t k = 0; k < nm->n; k++)
			lname[k] =
			    (char)((nm->p[k] >= 'A' && nm->p[k] <= 'Z') ? nm->p[k] + 32 : nm->p[k]);
		lname[nm->n] = '\0';
		if (strcmp(lname, "host") == 0 || strcmp(lname, "content-length") == 0 ||
		    tunnel_hop_header(lname, nm->n))
			continue;
	field:
		if ((r = buf_add(&rq->hdrs, nm->p, nm->n)) == 0 &&
		    (r = buf_add(&rq->hdrs, ": ", 2)) == 0 &&
		    (r = buf_add(&rq->hdrs, v->p, v->n)) == 0)
			r = buf_add(&rq->hdrs, "", 1);
		rq->nhdrs++;
	}
	if (r == 0)
		r = buf_add(&rq->body, s->plain.data + hl, (size_t)n);
	buf_consume(&s->plain, (size_t)hl + (size_t)n); /* the next request may follow */
	if (r != 0 || rq->nhdrs > 100) {
		answer_local(s, 431, "request header fields too large");
		return -1;
	}
	return 1;
}

/* Ciphertext from the edge: into TLS, then whatever the handshake answers back out;
 * once the request inside is whole it is dispatched like any other. */
static void
inner_rx(struct gw_stream *s, const uint8_t *data, size_t len)
{
	struct gw_conn *c = s->conn;
	char err[256];
	if (s->failed)
		return;
	if (tunnel_pipe_feed(s->tls, data, len) != 0) {
		s->failed = true;
		nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	int r = tunnel_pipe_read(s->tls, &s->plain, err, sizeof(err));
	if (r == AL_E_PROTO) {
		/* The edge's client refused us (our certificate) or sent garbage: its
		 * alert goes back, the stream ends. */
		log_warn("inner TLS handshake or read failed", "why", err);
		inner_flush(s);
		s->eof = true;
		s->failed = !s->started && out_pending(s) == 0;
		if (s->failed)
			nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, s->id,
			                          NGHTTP2_PROTOCOL_ERROR);
		return;
	}
	inner_flush(s);
	if (r == AL_E_TOOBIG && !s->started) {
		answer_local(s, 413, "request body too large");
		return;
	}
	if (r == 1) /* close_notify: the edge is done with this session */
		s->closed = true;
	if (!s->started)
		inner_next(s);
}

/* Starts the next exchange once its request is whole in plain (the edge sends one
 * request at a time and the next only after the answer). */
static void
inner_next(struct gw_stream *s)
{
	int q = inner_request(s);
	if (q == 1)
		stream_dispatch(s);
	else if (q == 0 && s->closed && s->plain.len > 0)
		answer_local(s, 400, "bad request: inner request cut short");
}

/* ---- HTTP/2 server callbacks ---- */

static int
h2_begin_headers(nghttp2_session *h2, const nghttp2_frame *f, void *ud)
{
	struct gw_conn *c = ud;
	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	struct gw_stream *s = stream_new(c, f->hd.stream_id);
	nghttp2_session_set_stream_user_data(h2, f->hd.stream_id, s);
	return 0;
}

static int
h2_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name, size_t nl,
          const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	struct gw_stream *s = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
	if (s == NULL || s->started || s->rq == NULL)
		return 0;
	struct gw_req *rq = s->rq;
	int r = 0;
#define IS(lit) (nl == sizeof(lit) - 1 && memcmp(name, lit, nl) == 0)
	if (IS(":method"))
		r = buf_add(&rq->method, value, vl);
	else if (IS(":path"))
		r = buf_add(&rq->path, value, vl);
	else if (IS(":authority"))
		r = buf_add(&rq->authority, value, vl);
	else if (IS(TUNNEL_INNER_HEADER))
		s->inner = true;
	else if (nl > 0 && name[0] == ':')
		return 0;
	else if (IS("content-length") || tunnel_hop_header((const char *)name, nl))
		return 0;
	else if (memchr(value, '\n', vl) || memchr(value, '\r', vl))
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	else {
		r = buf_add(&rq->hdrs, name, nl);
		if (r == 0)
			r = buf_add(&rq->hdrs, ": ", 2);
		if (r == 0)
			r = buf_add(&rq->hdrs, value, vl);
		if (r == 0)
			r = buf_add(&rq->hdrs, "", 1);
		rq->nhdrs++;
	}
#undef IS
	if (r != 0 || rq->nhdrs > 100) {
		answer_local(s, 431, "request header fields too large");
		return 0;
	}
	return 0;
}

/* The edge's GOAWAY ends the session once its streams are done; what it said is the
 * reason the connection goes. Its text is the peer's bytes: printable ASCII only, so it
 * cannot add lines to the log. */
static void
goaway_recv(struct gw_conn *c, const nghttp2_goaway *g)
{
	int n = snprintf(c->why, sizeof(c->why), "edge sent GOAWAY(%s)%s",
	                 nghttp2_http2_strerror(g->error_code), g->opaque_data_len ? ": " : "");
	size_t i = n > 0 ? (size_t)n : 0;
	for (size_t k = 0; k < g->opaque_data_len && i + 1 < sizeof(c->why); k++) {
		uint8_t b = g->opaque_data[k];
		c->why[i++] = b >= 0x20 && b < 0x7f ? (char)b : '?';
	}
	c->why[i < sizeof(c->why) ? i : sizeof(c->why) - 1] = '\0';
	if (g->error_code == NGHTTP2_NO_ERROR && !c->edge_draining) {
		/* a server shutting down or restarting: normal, said once, at info */
		char idx[8];
		snprintf(idx, sizeof(idx), "%d", c->index);
		c->edge_draining = true;
		log_info("edge draining: this connection ends once its streams do", "index", idx,
		         "connection_id", c->conn_id, "reason", c->why);
	}
}

static int
h2_frame_recv(nghttp2_session *h2, const nghttp2_frame *f, void *ud)
{
	struct gw_conn *c = ud;
	c->last_rx = now_mono_ms();
	if (f->hd.type == NGHTTP2_GOAWAY)
		goaway_recv(c, &f->goaway);
	struct gw_stream *s = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
	if (s == NULL)
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS && s->inner && s->tls == NULL && !s->started)
		inner_begin(s);
	if (s->tls) {
		/* The edge keeps its side open while the answer runs; it ends first only when
		 * it gives up, and then no request can follow. */
		if ((f->hd.flags & NGHTTP2_FLAG_END_STREAM) && !s->started) {
			if (s->plain.len > 0)
				answer_local(s, 400, "bad request: inner request cut short");
			else { /* between exchanges: the session ends here too */
				tunnel_pipe_close(s->tls);
				inner_flush(s);
				s->eof = true;
				if (s->deferred) {
					s->deferred = false;
					nghttp2_session_resume_data(h2, s->id);
				}
			}
		}
		return 0;
	}
	if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
	    (f->hd.flags & NGHTTP2_FLAG_END_STREAM) && !s->started)
		stream_dispatch(s);
	return 0;
}

/* Frames as they leave. nghttp2 answers a connection error from the edge with a GOAWAY
 * and then ends the session; its code and reason text are all that says what the edge
 * did, so they are kept for the log line. */
static int
h2_frame_sent(nghttp2_session *h2, const nghttp2_frame *f, void *ud)
{
	struct gw_conn *c = ud;
	/* A local answer (413, 431, 503) can end before the request does. Without a reset
	 * the edge keeps sending a body nobody reads and the stream stays open until it is
	 * done: RST_STREAM(NO_ERROR) asks it to stop (RFC 9113 8.1). */
	if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
	    (f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
	    nghttp2_session_get_stream_remote_close(h2, f->hd.stream_id) == 0)
		nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
	if (f->hd.type == NGHTTP2_GOAWAY && f->goaway.error_code != NGHTTP2_NO_ERROR)
		snprintf(c->why, sizeof(c->why), "sent GOAWAY(%s)%s%.*s",
		         nghttp2_http2_strerror(f->goaway.error_code),
		         f->goaway.opaque_data_len ? ": " : "",
		         (int)(f->goaway.opaque_data_len < 100 ? f->goaway.opaque_data_len : 100),
		         (const char *)f->goaway.opaque_data);
	return 0;
}

static int
h2_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t sid, const uint8_t *data, size_t len,
              void *ud)
{
	struct gw_stream *s = nghttp2_session_get_stream_user_data(h2, sid);
	struct gw_conn *c = ud;
	if (s != NULL && s->tls) {
		if (!s->started) { /* ciphertext of a request counts like a body */
			s->body_held += len;
			if ((c->body_bytes += len) > CONN_BODY_MAX) {
				answer_local(s, 503,
				             "gateway busy: too many request bytes buffered");
				return 0;
			}
		}
		inner_rx(s, data, len);
		return 0;
	}
	if (s == NULL || s->started || s->rq == NULL)
		return 0;
	if (buf_add(&s->rq->body, data, len) != 0) {
		answer_local(s, 413, "request body too large");
		return 0;
	}
	s->body_held += len;
	if ((c->body_bytes += len) > CONN_BODY_MAX)
		answer_local(s, 503, "gateway busy: too many request bytes buffered");
	return 0;
}

static int
h2_stream_close(nghttp2_session *h2, int32_t sid, uint32_t code, void *ud)
{
	struct gw_stream *s = nghttp2_session_get_stream_user_data(h2, sid);
	if (s == NULL)
		return 0;
	nghttp2_session_set_stream_user_data(h2, sid, NULL);
	/* A reset from the edge (client went away) cancels the upstream request. */
	stream_free(s);
	return 0;
}

/* A DATA frame (9-byte header + payload) fills exactly TUNNEL_DATA_RECORDS 16 KiB TLS
 * records: one frame (and one callback, one receive on the edge) per 256 KiB instead of
 * per record; a payload of a whole multiple would cost an extra 9-byte record. An edge
 * that keeps the 16 KiB default frame size gets one record per frame. */
static ssize_t
h2_data_len(nghttp2_session *h2, uint8_t type, int32_t sid, int32_t conn_win, int32_t win,
            uint32_t max_frame, void *ud)
{
	ssize_t big = TUNNEL_DATA_RECORDS * 16384 - 9;
	ssize_t n = (ssize_t)max_frame >= big ? big : 16384 - 9;
	/* A lent chunk (see up_data; a read is 256 KiB) goes as one frame: cut at the size
	 * above, its last 9 bytes would be a frame of their own, and the edge's too. */
	struct gw_stream *s = nghttp2_session_get_stream_user_data(h2, sid);
	if (s != NULL && s->lend_len > (size_t)n && s->lend_len <= max_frame)
		n = (ssize_t)s->lend_len;
	if (conn_win < n)
		n = conn_win;
	if (win < n)
		n = win;
	if ((ssize_t)max_frame < n)
		n = (ssize_t)max_frame;
	return n > 0 ? n : 1;
}

static nghttp2_session_callbacks *
h2_callbacks(void)
{
	static nghttp2_session_callbacks *cbs;
	if (cbs)
		return cbs;
	nghttp2_session_callbacks_new(&cbs);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, h2_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, h2_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, h2_frame_recv);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs, h2_frame_sent);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, h2_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, h2_stream_close);
	nghttp2_session_callbacks_set_data_source_read_length_callback(cbs, h2_data_len);
	nghttp2_session_callbacks_set_send_data_callback(cbs, h2_send_data);
	return cbs;
}

/* ---- connections ---- */

static unsigned
ready_conns(const struct gw *g)
{
	unsigned n = 0;
	for (unsigned i = 0; i < g->nconns; i++)
		if (g->conns[i].state == GC_H2 && !g->conns[i].goaway_sent)
			n++;
	return n;
}

static size_t
active_streams(const struct gw *g)
{
	size_t n = 0;
	for (unsigned i = 0; i < g->nconns; i++)
		n += g->conns[i].nstreams;
	return n;
}

static void
conn_reset(struct gw_conn *c)
{
	struct gw *g = c->gw;
	if (c->timer) {
		loop_timer_cancel(g->loop, c->timer);
		c->timer = NULL;
	}
	while (c->streams)
		stream_free(c->streams);
	if (c->h2) {
		nghttp2_session_del(c->h2);
		c->h2 = NULL;
	}
	tunnel_io_reset(&c->io);
	buf_free(&c->hello);
	if (c->fd >= 0) {
		loop_fd_del(g->loop, c->fd);
		close(c->fd);
	}
	c->fd = -1;
	c->goaway_sent = false;
	c->why[0] = '\0';
	c->refused = 0;
	c->edge_draining = false;
	c->state = GC_IDLE;
}

static void
maybe_exit(struct gw *g)
{
	if (g->draining && active_streams(g) == 0 && !g->exiting) {
		g->exiting = true;
		log_info("drained, exiting", NULL);
		loop_stop(g->loop);
	}
}

static void
conn_fail(struct gw_conn *c, const char *why)
{
	struct gw *g = c->gw;
	char idx[8], st[8], retry[24];
	snprintf(idx, sizeof(idx), "%d", c->index);
	if (g->draining) {
		/* We asked for it (GOAWAY): a drained connection closing is no failure. */
		if (c->state == GC_H2)
			log_info("tunnel connection closed (draining)", "index", idx,
			         "connection_id", c->conn_id);
		conn_reset(c);
		maybe_exit(g);
		return;
	}
	/* One line per failed attempt, with when the next one comes. */
	uint64_t delay = conn_backoff(c);
	snprintf(retry, sizeof(retry), "%llu", (unsigned long long)delay);
	snprintf(st, sizeof(st), "%d", c->refused);
	if (c->refused == 401)
		log_error("edge refused the tunnel token", "index", idx, "status", st, "reason",
		          c->why, "retry_ms", retry);
	else if (c->refused)
		log_error("edge refused the tunnel connection", "index", idx, "status", st,
		          "reason", c->why, "retry_ms", retry);
	else if (c->state == GC_H2 && c->edge_draining)
		log_info("tunnel connection closed by the draining edge", "index", idx,
		         "connection_id", c->conn_id, "retry_ms", retry);
	else if (c->state == GC_H2)
		log_warn("tunnel connection lost", "index", idx, "connection_id", c->conn_id,
		         "error", why, "retry_ms", retry);
	else
		log_warn("tunnel connection failed", "index", idx, "error", why, "retry_ms", retry);
	conn_reset(c);
	g->m.reconnects++;
	conn_schedule(c, delay);
}

static void
conn_update(struct gw_conn *c)
{
	int mask = LOOP_READ;
	if (c->io.want_write || c->io.out.len > 0)
		mask |= LOOP_WRITE;
	loop_fd_set(c->gw->loop, c->fd, mask, conn_event, c);
}

/* Pushes queued frames out; resumes upstreams whose responses drained. */
static void
conn_kick(struct gw_conn *c)
{
	if (c->state != GC_H2 && c->state != GC_HELLO)
		return;
	if (tunnel_io_flush(&c->io, c->state == GC_H2 ? c->h2 : NULL) != 0) {
		conn_fail(c, "write failed");
		return;
	}
	if (c->state == GC_H2) {
		for (struct gw_stream *s = c->streams; s; s = s->next)
			if (s->up && out_pending(s) == 0 && conn_idle(c))
				upstream_resume(s->up);
		if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2) &&
		    c->io.out.len == 0) {
			conn_fail(c, c->why[0] ? c->why : "session ended");
			return;
		}
	}
	conn_update(c);
	maybe_exit(c->gw);
}

static void
kick_all(void *arg)
{
	struct gw *g = arg;
	for (unsigned i = 0; i < g->nconns; i++)
		conn_kick(&g->conns[i]);
}

static void
kick_timer(struct loop *l, void *arg)
{
	struct gw *g = arg;
	g->kick_timer = NULL;
	kick_all(g);
}

/* After upstream events: the edge connections are flushed once, after every socket
 * that was ready in this loop turn has been handled (a 0 ms timer runs after the fd
 * callbacks), so responses that finish together leave in one TLS write. */
static void
kick_soon(void *arg)
{
	struct gw *g = arg;
	if (g->kick_timer == NULL)
		g->kick_timer = loop_timer_add(g->loop, 0, kick_timer, g);
}

static void
conn_timer(struct loop *l, void *arg)
{
	struct gw_conn *c = arg;
	c->timer = NULL;
	if (c->state == GC_IDLE) {
		/* backoff elapsed: dial */
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
		struct addrinfo *ai = NULL;
		int e = getaddrinfo(c->gw->host, c->gw->port, &hints, &ai);
		if (e != 0 || ai == NULL) {
			conn_fail(c, e ? gai_strerror(e) : "no address");
			return;
		}
		c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->fd < 0 ||
		    (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)) {
			freeaddrinfo(ai);
			conn_fail(c, strerror(errno));
			return;
		}
		freeaddrinfo(ai);
		int one = 1;
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->state = GC_CONNECTING;
		c->timer = loop_timer_add(l, 10000, conn_timer, c);
		loop_fd_set(l, c->fd, LOOP_WRITE, conn_event, c);
		return;
	}
	if (c->state != GC_H2) {
		conn_fail(c, "handshake timed out");
		return;
	}
	if (now_mono_ms() - c->last_rx > TUNNEL_DEAD_MS) {
		conn_fail(c, "no frames from the edge for 45 s");
		return;
	}
	nghttp2_submit_ping(c->h2, NGHTTP2_FLAG_NONE, NULL);
	c->timer = loop_timer_add(l, TUNNEL_PING_MS, conn_timer, c);
	conn_kick(c);
}

/* 1 s doubling to 16 s, then steady; ±20 % jitter so replicas do not stampede. */
/* The delay (ms) before this connection's next dial: exponential with jitter. */
static uint64_t
conn_backoff(struct gw_conn *c)
{
	unsigned shift = c->attempt < 4 ? c->attempt : 4;
	uint64_t base = 1000ULL << shift;
	uint32_t rnd;
	random_bytes(&rnd, sizeof(rnd));
	return base * 8 / 10 + rnd % (base * 4 / 10 + 1);
}

static void
conn_schedule(struct gw_conn *c, uint64_t delay)
{
	c->attempt++;
	c->timer = loop_timer_add(c->gw->loop, delay, conn_timer, c);
}

static bool
pin_ok(struct gw *g, SSL *ssl)
{
	if (g->cfg.server_pin == NULL)
		return true;
	X509 *cert = SSL_get1_peer_certificate(ssl);
	if (cert == NULL)
		return false;
	unsigned char *der = NULL;
	int len = i2d_PUBKEY(X509_get0_pubkey(cert), &der);
	X509_free(cert);
	if (len <= 0)
		return false;
	unsigned char md[32];
	unsigned int mdl = 0;
	EVP_Digest(der, (size_t)len, md, &mdl, EVP_sha256(), NULL);
	OPENSSL_free(der);
	unsigned char b64[64];
	EVP_EncodeBlock(b64, md, 32);
	return strcmp((const char *)b64, g->cfg.server_pin + 8) == 0;
}

static int
h2_recv(struct gw_conn *c, const char *p, size_t n)
{
	ssize_t r = nghttp2_session_mem_recv(c->h2, (const uint8_t *)p, n);
	if (r >= 0)
		return 0;
	/* A bad preface, a flood...: say which (conn_event logs it with the lost line). */
	snprintf(c->why, sizeof(c->why), "HTTP/2: %s", nghttp2_strerror((int)r));
	return AL_E_PROTO;
}

static int
feed(void *arg, const char *p, size_t n)
{
	struct gw_conn *c = arg;
	struct gw *g = c->gw;
	if (c->state == GC_H2)
		return h2_recv(c, p, n);
	if (buf_add(&c->hello, p, n) != 0)
		return AL_E_TOOBIG;
	struct tunnel_msg m;
	int len = tunnel_msg_parse(c->hello.data, c->hello.len, true, &m);
	if (len == 0)
		return 0;
	if (len < 0) {
		snprintf(c->why, sizeof(c->why), "%s",
		         len == AL_E_TOOBIG
		             ? "handshake reply over 4096 bytes"
		             : "malformed handshake reply (not AIRLOCK-TUNNEL/1 <status>)");
		return AL_E_PROTO;
	}
	if (m.status != 200) {
		/* conn_fail logs it, once, with the retry time */
		c->refused = m.status > 0 ? m.status : 1;
		snprintf(c->why, sizeof(c->why), "%s", m.reason);
		return AL_E_AUTH;
	}
	const char *cid = tunnel_msg_get(&m, "Connection-Id");
	const char *dom = tunnel_msg_get(&m, "Tunnel-Domain");
	snprintf(c->conn_id, sizeof(c->conn_id), "%s", cid ? cid : "-");
	if (dom && g->cfg.tunnel_domain && strcasecmp(dom, g->cfg.tunnel_domain) != 0)
		log_warn("tunnel_domain differs from the tunnel's domain", "configured",
		         g->cfg.tunnel_domain, "edge", dom);
	nghttp2_session_server_new(&c->h2, h2_callbacks(), c);
	nghttp2_settings_entry iv[] = {
	    {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS},
	    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
	    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 64 * 1024},
	    {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, TUNNEL_MAX_FRAME},
	};
	nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, ARRAY_LEN(iv));
	nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, 16 << 20);
	c->state = GC_H2;
	c->attempt = 0;
	c->last_rx = now_mono_ms();
	g->m.registered++;
	if (c->timer)
		loop_timer_cancel(g->loop, c->timer);
	c->timer = loop_timer_add(g->loop, TUNNEL_PING_MS, conn_timer, c);
	char idx[8];
	snprintf(idx, sizeof(idx), "%d", c->index);
	log_info("Registered tunnel connection", "index", idx, "connection_id", c->conn_id,
	         "tunnel_id",
	         tunnel_msg_get(&m, "Tunnel-Id") ? tunnel_msg_get(&m, "Tunnel-Id") : "-", "cipher",
	         SSL_CIPHER_get_name(SSL_get_current_cipher(c->io.ssl)));
	size_t rest = c->hello.len - (size_t)len;
	if (rest > 0 && h2_recv(c, c->hello.data + len, rest) != 0)
		return AL_E_PROTO;
	buf_free(&c->hello);
	return 0;
}

static void
conn_event(struct loop *l, int fd, int mask, void *arg)
{
	struct gw_conn *c = arg;
	struct gw *g = c->gw;
	if (c->state == GC_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof(err);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err != 0) {
			conn_fail(c, strerror(err));
			return;
		}
		SSL *ssl = SSL_new(g->ctx);
		SSL_set_fd(ssl, fd);
		const char *name = g->cfg.server_name ? g->cfg.server_name : g->host;
		SSL_set_tlsext_host_name(ssl, name);
		SSL_set1_host(ssl, name);
		static const unsigned char alpn[] = "\x10" TUNNEL_ALPN;
		SSL_set_alpn_protos(ssl, alpn, sizeof(alpn) - 1);
		SSL_set_connect_state(ssl);
		tunnel_io_init(&c->io, ssl);
		buf_init(&c->hello, TUNNEL_HANDSHAKE_MAX + TUNNEL_READ_BATCH);
		c->state = GC_TLS;
	}
	if (c->state == GC_TLS) {
		ERR_clear_error();
		int r = SSL_do_handshake(c->io.ssl);
		if (r != 1) {
			int e = SSL_get_error(c->io.ssl, r);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				loop_fd_set(l, fd,
				            e == SSL_ERROR_WANT_READ ? LOOP_READ : LOOP_WRITE,
				            conn_event, c);
				return;
			}
			char eb[160] = "TLS handshake failed";
			unsigned long ec = ERR_peek_error();
			if (ec)
				ERR_error_string_n(ec, eb, sizeof(eb));
			long vr = SSL_get_verify_result(c->io.ssl);
			if (vr != X509_V_OK)
				snprintf(eb, sizeof(eb), "certificate verify failed: %s",
				         X509_verify_cert_error_string(vr));
			conn_fail(c, eb);
			return;
		}
		const unsigned char *sel = NULL;
		unsigned sl = 0;
		SSL_get0_alpn_selected(c->io.ssl, &sel, &sl);
		if (sl != strlen(TUNNEL_ALPN) || memcmp(sel, TUNNEL_ALPN, sl) != 0) {
			conn_fail(c, "edge did not select ALPN " TUNNEL_ALPN);
			return;
		}
		if (!pin_ok(g, c->io.ssl)) {
			conn_fail(c, "edge public key does not match server_pin");
			return;
		}
		/* Re-read token_file on every dial: a rotated token deployed to the file is
		 * used by the next reconnect without a restart. */
		if (g->cfg.token_file) {
			char terr[256];
			char *t = read_token(&g->cfg, terr, sizeof(terr));
			if (t) {
				secret_free(g->token);
				g->token = t;
			}
		}
		struct tunnel_msg m;
		char idx[8];
		memset(&m, 0, sizeof(m));
		snprintf(idx, sizeof(idx), "%d", c->index);
		tunnel_msg_add(&m, "Token", g->token);
		tunnel_msg_add(&m, "Gateway-Id", g->gateway_id);
		tunnel_msg_add(&m, "Connection-Index", idx);
		tunnel_msg_add(&m, "Version", "airlock/0.1.0");
		tunnel_msg_write(&m, false, &c->io.out);
		explicit_wipe(&m, sizeof(m));
		c->state = GC_HELLO;
	}
	int r = tunnel_io_read(&c->io, feed, c);
	if (c->state == GC_IDLE)
		return;
	if (r != 0) {
		conn_fail(c, r == AL_E_AUTH     ? "refused by edge"
		             : r == AL_E_CLOSED ? "closed by edge"
		             : c->why[0]        ? c->why
		                                : "protocol error");
		return;
	}
	conn_kick(c);
}

/* ---- metrics, signals, main ---- */

static void
metrics_handler(struct http_request *req, void *arg)
{
	struct gw *g = arg;
	struct buf b;
	struct http_header ct = {"content-type", "text/plain; version=0.0.4"};
	struct http_header cj = {"content-type", "application/json"};
	buf_init(&b, 1 << 16);
	unsigned ready = ready_conns(g);
	if (strcmp(req->path, "/ready") == 0) {
		buf_addf(&b, "{\"status\":%d,\"readyConnections\":%u,\"connectorId\":\"%s\"}\n",
		         ready ? 200 : 503, ready, g->gateway_id);
		http_respond(req, ready ? 200 : 503, &cj, 1, b.data, b.len);
	} else if (strcmp(req->path, "/health") == 0) {
		http_respond(req, 200, &ct, 1, "ok\n", 3);
	} else if (strcmp(req->path, "/metrics") == 0) {
		buf_addf(&b,
		         "# HELP airlock_gateway_ha_connections Registered edge connections.\n"
		         "# TYPE airlock_gateway_ha_connections gauge\n"
		         "airlock_gateway_ha_connections %u\n"
		         "# TYPE airlock_gateway_active_streams gauge\n"
		         "airlock_gateway_active_streams %zu\n"
		         "# TYPE airlock_gateway_requests_total counter\n"
		         "airlock_gateway_requests_total %llu\n"
		         "# TYPE airlock_gateway_request_errors_total counter\n"
		         "airlock_gateway_request_errors_total %llu\n"
		         "# TYPE airlock_gateway_no_route_total counter\n"
		         "airlock_gateway_no_route_total %llu\n"
		         "# TYPE airlock_gateway_ssrf_denied_total counter\n"
		         "airlock_gateway_ssrf_denied_total %llu\n"
		         "# TYPE airlock_gateway_identity_refused_total counter\n"
		         "airlock_gateway_identity_refused_total %llu\n"
		         "# TYPE airlock_gateway_reconnects_total counter\n"
		         "airlock_gateway_reconnects_total %llu\n"
		         "# TYPE airlock_gateway_register_success_total counter\n"
		         "airlock_gateway_register_success_total %llu\n",
		         ready, active_streams(g), (unsigned long long)g->m.requests,
		         (unsigned long long)g->m.errors, (unsigned long long)g->m.no_route,
		         (unsigned long long)g->m.ssrf_denied,
		         (unsigned long long)g->m.identity_refused,
		         (unsigned long long)g->m.reconnects, (unsigned long long)g->m.registered);
		http_respond(req, 200, &ct, 1, b.data, b.len);
	} else
		http_respond(req, 404, &ct, 1, "not found\n", 10);
	buf_free(&b);
}

static void
drain_timeout(struct loop *l, void *arg)
{
	struct gw *g = arg;
	g->drain_timer = NULL;
	char n[24];
	snprintf(n, sizeof(n), "%zu", active_streams(g));
	log_warn("shutdown timeout: dropping in-flight streams", "streams", n);
	loop_stop(l);
}

static void
on_term(struct loop *l, int signo, void *arg)
{
	struct gw *g = arg;
	if (g->draining) {
		log_info("second signal: exiting now", NULL);
		loop_stop(l);
		return;
	}
	g->draining = true;
	char n[24];
	snprintf(n, sizeof(n), "%zu", active_streams(g));
	log_info("draining", "streams", n, "signal", signo == SIGTERM ? "TERM" : "INT");
	/* GOAWAY tells the edge to open nothing new here; in-flight streams finish. */
	for (unsigned i = 0; i < g->nconns; i++) {
		struct gw_conn *c = &g->conns[i];
		if (c->state == GC_H2) {
			nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
			                      nghttp2_session_get_last_proc_stream_id(c->h2),
			                      NGHTTP2_NO_ERROR, NULL, 0);
			c->goaway_sent = true;
			conn_kick(c);
		} else if (c->state != GC_IDLE || c->timer) {
			conn_reset(c);
		}
	}
	g->drain_timer = loop_timer_add(l, g->cfg.shutdown_timeout_ms, drain_timeout, g);
	maybe_exit(g);
}

/* The inner TLS server context from tls.cert_file/tls.key_file: TLS 1.3 only, the tunnel's
 * suites. The key is read here and never leaves this process. NULL and err on failure. */
static SSL_CTX *
inner_ctx_new(const struct gateway_config *cfg, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		snprintf(err, errlen, "cannot create a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_ciphersuites(ctx, TUNNEL_TLS13_SUITES);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert_file) != 1) {
		/* OpenSSL's reason: a missing file, not PEM, or a key its security level
		 * refuses ("ee key too small") */
		char why[200] = "not a PEM certificate?";
		unsigned long e = 0;
		for (unsigned long x; (x = ERR_get_error()) != 0;)
			e = x; /* the last one is the nearest to the cause */
		if (e != 0)
			ERR_error_string_n(e, why, sizeof(why));
		snprintf(err, errlen, "tls.cert_file %s: cannot load (%s)", cfg->tls_cert_file,
		         why);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key_file, SSL_FILETYPE_PEM) != 1) {
		/* OpenSSL checks the pair as it loads the key: say which failed */
		bool mismatch = false;
		for (unsigned long e; (e = ERR_get_error()) != 0;)
			mismatch |= ERR_GET_LIB(e) == ERR_LIB_X509 &&
			            ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH;
		if (mismatch)
			snprintf(err, errlen, "tls.key_file %s does not match tls.cert_file %s",
			         cfg->tls_key_file, cfg->tls_cert_file);
		else
			snprintf(err, errlen,
			         "tls.key_file %s: cannot load (not a PEM private key?)",
			         cfg->tls_key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "tls.key_file %s does not match tls.cert_file %s",
		         cfg->tls_key_file, cfg->tls_cert_file);
		goto fail;
	}
	return ctx;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

/* After a certificate reload: inner sessions waiting between exchanges end
 * (close_notify, END_STREAM), so the next exchange opens a session with the new
 * certificate; exchanges in progress finish on theirs. */
static void
inner_close_idle(struct gw *g)
{
	for (unsigned i = 0; i < g->nconns; i++) {
		struct gw_conn *c = &g->conns[i];
		if (c->state != GC_H2)
			continue;
		for (struct gw_stream *s = c->streams; s; s = s->next) {
			if (s->tls == NULL || s->started || s->eof || s->failed || s->plain.len > 0)
				continue;
			tunnel_pipe_close(s->tls);
			inner_flush(s);
			s->eof = true;
			if (s->deferred) {
				s->deferred = false;
				nghttp2_session_resume_data(c->h2, s->id);
			}
		}
		conn_kick(c);
	}
}

static void
on_hup(struct loop *l, int signo, void *arg)
{
	struct gw *g = arg;
	struct gateway_config nc;
	char err[512];
	if (gateway_config_load(g->config_path, &nc, err, sizeof(err)) != 0) {
		log_error("reload failed; keeping the running configuration", "error", err);
		return;
	}
	/* The inner TLS pair: a new one serves new streams; open streams keep the session
	 * (and certificate) they started with, so nothing drops. */
	SSL_CTX *inner = NULL;
	if (nc.tls_cert_file && (inner = inner_ctx_new(&nc, err, sizeof(err))) == NULL) {
		log_error("reload failed; keeping the running configuration", "error", err);
		gateway_config_free(&nc);
		return;
	}
	SSL_CTX_free(g->inner);
	g->inner = inner;
	inner_close_idle(g);
	if (strcmp(nc.server, g->cfg.server) != 0 || nc.connections != g->cfg.connections)
		log_warn("server and connections changes need a restart", NULL);
	/* Swap routes and upstream policy; keep the old strings alive, since in-flight
	 * transfers were started from them. Server settings stay as they are. */
	g->old_cfgs = xreallocarray(g->old_cfgs, g->nold + 1, sizeof(*g->old_cfgs));
	struct gateway_config *old = &g->old_cfgs[g->nold++];
	*old = g->cfg;
	g->cfg = nc;
	/* Keep connection-level settings from the running config. */
	char *tmp;
#define KEEP(f) tmp = g->cfg.f, g->cfg.f = old->f, old->f = tmp
	KEEP(server);
	KEEP(server_name);
	KEEP(server_ca_file);
	KEEP(server_pin);
	KEEP(token_file);
	KEEP(metrics_listen);
#undef KEEP
	g->cfg.connections = old->connections;
	upstream_ctx_set_config(g->up, &g->cfg);
	char n[16];
	snprintf(n, sizeof(n), "%zu", g->cfg.nroutes);
	log_info("configuration reloaded", "routes", n, "inner_tls", g->inner ? "on" : "off");
}

static char *
read_token(const struct gateway_config *cfg, char *err, size_t errlen)
{
	char *tok = NULL;
	if (cfg->token_file) {
		int fd = open(cfg->token_file, O_RDONLY | O_CLOEXEC);
		char b[1024];
		ssize_t n = fd >= 0 ? read(fd, b, sizeof(b) - 1) : -1;
		if (fd >= 0)
			close(fd);
		if (n < 0) {
			snprintf(err, errlen, "token_file %s: %s", cfg->token_file,
			         strerror(errno));
			return NULL;
		}
		b[n] = '\0';
		tok = xstrdup(b);
		explicit_wipe(b, sizeof(b));
	} else {
		const char *e = getenv("AIRLOCK_TUNNEL_TOKEN");
		if (e == NULL || *e == '\0') {
			snprintf(err, errlen,
			         "no tunnel token: set token_file or AIRLOCK_TUNNEL_TOKEN");
			return NULL;
		}
		tok = xstrdup(e);
	}
	size_t l = strlen(tok);
	while (l > 0 && (tok[l - 1] == '\n' || tok[l - 1] == '\r' || tok[l - 1] == ' '))
		tok[--l] = '\0';
	for (size_t i = 0; i < l; i++)
		if ((unsigned char)tok[i] < 0x21 || (unsigned char)tok[i] > 0x7e || l > 500) {
			secret_free(tok);
			snprintf(err, errlen, "tunnel token: unexpected characters");
			return NULL;
		}
	if (l == 0) {
		secret_free(tok);
		snprintf(err, errlen, "tunnel token is empty");
		return NULL;
	}
	return tok;
}

/* A warning from the start checks: on stderr under --check (the operator is at a
 * terminal), in the log otherwise. */
static void
start_warn(bool check, const char *what, const char *k1, const char *v1, const char *k2,
           const char *v2)
{
	if (check)
		fprintf(stderr, "airlock gateway: warning: %s (%s=%s%s%s%s%s)\n", what, k1, v1,
		        k2 ? " " : "", k2 ? k2 : "", k2 ? "=" : "", k2 ? v2 : "");
	else
		log_warn(what, k1, v1, k2, v2);
}

/* A route whose upstream is an IP literal (or localhost) outside allowed_ips is refused on
 * every request (403 IP validation failed): say so once, at start, naming the route and
 * the setting that would admit it. Host names are not resolved here: a start does not
 * depend on DNS, and each request re-checks the address it actually dials. */
static void
check_route_addresses(const struct gateway_config *cfg, bool check)
{
	for (size_t i = 0; i < cfg->nroutes; i++) {
		const struct gateway_route *r = &cfg->routes[i];
		const char *h = strstr(r->upstream, "://");
		char host[INET6_ADDRSTRLEN + 2];
		h = h ? h + 3 : r->upstream;
		const char *end = h[0] == '[' ? strchr(h, ']') : strrchr(h, ':');
		if (end == NULL)
			continue;
		if (h[0] == '[')
			h++;
		size_t hl = (size_t)(end - h);
		if (hl == 0 || hl >= sizeof(host))
			continue;
		memcpy(host, h, hl);
		host[hl] = '\0';
		struct sockaddr_storage ss;
		memset(&ss, 0, sizeof(ss));
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		if (strcasecmp(host, "localhost") == 0)
			snprintf(host, sizeof(host), "127.0.0.1");
		if (inet_pton(AF_INET, host, &s4->sin_addr) == 1)
			s4->sin_family = AF_INET;
		else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1)
			s6->sin6_family = AF_INET6;
		else
			continue;
		if (!gateway_config_ip_allowed(cfg, (struct sockaddr *)&ss))
			start_warn(check,
			           "route upstream is outside upstream.allowed_ips: every request "
			           "on it will be refused (403); add its network to "
			           "upstream.allowed_ips",
			           "route", r->name, "address", host);
	}
}

/* Everything a start checks before it dials: the server address, the token (present,
 * well-formed, not readable by everyone), the server CA, the routes' addresses. Fills
 * g's host, port, token and TLS context. 0, or -1 with err set. */
static int
start_checks(struct gw *g, bool check, char *err, size_t errlen)
{
	const char *colon = strrchr(g->cfg.server, ':');
	uint64_t port;
	size_t hl = colon ? (size_t)(colon - g->cfg.server) : 0;
	if (colon == NULL || hl == 0 || hl >= sizeof(g->host) ||
	    parse_uint_cstr(colon + 1, 65535, &port) != 0 || port == 0) {
		snprintf(err, errlen, "server: must be host:port");
		return -1;
	}
	const char *h = g->cfg.server;
	if (h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	memcpy(g->host, h, hl);
	g->host[hl] = '\0';
	snprintf(g->port, sizeof(g->port), "%u", (unsigned)port);
	if ((g->token = read_token(&g->cfg, err, errlen)) == NULL)
		return -1;
	struct stat st;
	if (g->cfg.token_file && stat(g->cfg.token_file, &st) == 0 && (st.st_mode & S_IROTH))
		start_warn(check, "the tunnel token file is readable by every user: chmod 600 it",
		           "token_file", g->cfg.token_file, NULL, NULL);
	g->ctx = SSL_CTX_new(TLS_client_method());
	if (g->ctx == NULL) {
		snprintf(err, errlen, "cannot create a TLS context");
		return -1;
	}
	SSL_CTX_set_min_proto_version(g->ctx, TLS1_3_VERSION);
	SSL_CTX_set_ciphersuites(g->ctx, TUNNEL_TLS13_SUITES);
	SSL_CTX_set_verify(g->ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_mode(g->ctx,
	                 SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (g->cfg.server_ca_file) {
		if (SSL_CTX_load_verify_locations(g->ctx, g->cfg.server_ca_file, NULL) != 1) {
			ERR_clear_error();
			snprintf(err, errlen, "server_ca_file %s: cannot load (not a PEM CA file?)",
			         g->cfg.server_ca_file);
			return -1;
		}
	} else
		SSL_CTX_set_default_verify_paths(g->ctx);
	if (g->cfg.tls_cert_file && (g->inner = inner_ctx_new(&g->cfg, err, errlen)) == NULL)
		return -1;
	check_route_addresses(&g->cfg, check);
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: airlock gateway --config FILE [--check] [--log-format text|json]\n"
	           "                       [--log-level debug|info|warn|error]\n"
	           "\n"
	           "Dials the server's tunnel edge and relays MCP requests to the routes in FILE.\n"
	           "  --config FILE          YAML configuration (docs/gateway/config.md)\n"
	           "  --check                validate the configuration and exit\n"
	           "  --log-format text|json (default text)\n"
	           "  --log-level LEVEL      overrides the file's log_level (default info)\n"
	           "\n"
	           "environment:\n"
	           "  AIRLOCK_TUNNEL_TOKEN   tunnel token, when the config has no token_file\n"
	           "\n"
	           "signals: TERM/INT drain in-flight streams (shutdown_timeout), HUP reloads "
	           "routes.\n");
}

int
gateway_main(int argc, char **argv)
{
	struct gw g;
	const char *config = NULL;
	bool check = false;
	enum log_format fmt = LOG_FMT_TEXT;
	enum log_level lvl = LOG_LVL_INFO;
	bool lvl_flag = false;
	char err[512];
	int rc = 1;
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check", no_argument, NULL, 'k'},
	    {"log-format", required_argument, NULL, 'f'},
	    {"log-level", required_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	memset(&g, 0, sizeof(g));
	optind = 1;
	int ch;
	opterr = 0; /* cli_option_error words it */
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			break;
		case 'k':
			check = true;
			break;
		case 'f':
			if (log_parse_format(optarg, &fmt) != 0) {
				fprintf(stderr, "airlock gateway: --log-format: text or json\n");
				return 2;
			}
			break;
		case 'v':
			if (log_parse_level(optarg, &lvl) != 0) {
				fprintf(stderr,
				        "airlock gateway: --log-level: debug|info|warn|error\n");
				return 2;
			}
			lvl_flag = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return cli_option_error("gateway", ch, argc, argv);
		}
	}
	if (config == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (gateway_config_load(config, &g.cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "airlock gateway: %s\n", err);
		return 2; /* a configuration error, as in every role */
	}
	if (lvl_flag)
		g.cfg.log_level = lvl; /* the flag over the file's log_level, as in every role */
	log_setup(fmt, g.cfg.log_level, "gateway");
	g.config_path = xstrdup(config);
	/* --check runs exactly what a start runs, short of dialling: an operator who saw OK
	 * must not meet a start-time refusal (missing token, CA that does not load). */
	if (start_checks(&g, check, err, sizeof(err)) != 0) {
		fprintf(stderr, "airlock gateway: %s: %s\n", config, err);
		rc = 2;
		goto out;
	}
	if (check) {
		printf("%s: OK (%zu routes)\n", config, g.cfg.nroutes);
		rc = 0;
		goto out;
	}
	if (g.cfg.listen_addr)
		log_info("listen_addr is ignored: the gateway only dials out", NULL);
	signal(SIGPIPE, SIG_IGN);
	char *gid = id_new("gw_");
	snprintf(g.gateway_id, sizeof(g.gateway_id), "%s", gid);
	free(gid);
	g.loop = loop_new();
	g.up = upstream_ctx_new(g.loop);
	upstream_ctx_set_config(g.up, &g.cfg);
	upstream_ctx_set_after(g.up, kick_soon, &g);
	if (g.cfg.metrics_listen) {
		int mp = 0, r;
		g.metrics_srv = http_server_new(g.loop, NULL, metrics_handler, &g);
		if ((r = http_server_listen(g.metrics_srv, g.cfg.metrics_listen, NULL, &mp)) != 0) {
			log_error("cannot listen for metrics", "addr", g.cfg.metrics_listen,
			          "error", al_strerror(r));
			goto out;
		}
		char ps[16];
		snprintf(ps, sizeof(ps), "%d", mp);
		log_info("metrics listening", "addr", g.cfg.metrics_listen, "port", ps);
	}
	loop_signal_add(g.loop, SIGTERM, on_term, &g);
	loop_signal_add(g.loop, SIGINT, on_term, &g);
	loop_signal_add(g.loop, SIGHUP, on_hup, &g);
	g.nconns = g.cfg.connections;
	for (unsigned i = 0; i < g.nconns; i++) {
		g.conns[i].gw = &g;
		g.conns[i].index = (int)i;
		g.conns[i].fd = -1;
		conn_schedule(&g.conns[i], 0); /* first dial at start-up */
	}
	char nc[8];
	snprintf(nc, sizeof(nc), "%u", g.nconns);
	log_info("gateway starting", "server", g.cfg.server, "connections", nc, "gateway_id",
	         g.gateway_id);
	loop_run(g.loop);
	rc = 0;
out:
	for (unsigned i = 0; i < g.nconns; i++)
		conn_reset(&g.conns[i]);
	if (g.metrics_srv)
		http_server_free(g.metrics_srv);
	upstream_ctx_free(g.up);
	if (g.drain_timer)
		loop_timer_cancel(g.loop, g.drain_timer);
	if (g.kick_timer)
		loop_timer_cancel(g.loop, g.kick_timer);
	loop_free(g.loop);
	SSL_CTX_free(g.ctx);
	SSL_CTX_free(g.inner);
	secret_free(g.token);
	for (size_t i = 0; i < g.nold; i++)
		gateway_config_free(&g.old_cfgs[i]);
	free(g.old_cfgs);
	gateway_config_free(&g.cfg);
	free(g.config_path);
	return rc;
}
