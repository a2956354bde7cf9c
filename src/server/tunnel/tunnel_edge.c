/* The tunnel edge: a TLS 1.3 listener that gateways dial. Each connection passes the
 * HELLO/READY handshake (tunnel token), then carries HTTP/2 with the edge as client:
 * every MCP HTTP exchange is one stream, spread over the tunnel's live connections.
 * See docs/proto/tunnel.md and docs/server/tunnels.md. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <openssl/err.h>

#include "err.h"
#include "log.h"
#include "net.h"
#include "server.h"
#include "tls.h"
#include "tunnel.h"
#include "tunnel_inner.h"
#include "tunnel_proto.h"
#include "tunnel_store.h"
#include "util.h"
#include "xalloc.h"

enum conn_state { EC_TLS, EC_HELLO, EC_H2, EC_DEAD };

struct edge_conn;

struct tunnel_stream {
	struct edge_conn *conn;
	struct tunnel_stream *next, *prev;
	int32_t id;
	const struct tunnel_stream_cb *cb;
	void *arg;
	char *body;
	size_t body_len, body_off;
	int status;
	struct http_header h[64];
	size_t nh;
	size_t hbytes;
	bool head_done;
	bool hold; /* the owner acknowledges body bytes itself (tunnel_stream_release) */
	/* Inner TLS: the stream carries a TLS session's records both ways; the owner's
	 * head and body come out of inner, never out of the frames themselves. */
	struct tunnel_inner *inner;
	bool inner_head; /* the owner had its on_head */
	bool deferred;   /* the data provider waits for ciphertext */
	/* Between exchanges an inner stream waits, owned by the edge, for the next request
	 * to its route: a handshake per request would cost more than the request. */
	bool idle;
	/* A held inner stream: ciphertext not yet acknowledged, and the plaintext handed to
	 * the owner that it has not released; releases acknowledge ciphertext in proportion,
	 * so a slow owner holds back the gateway as on a plain stream. */
	size_t cipher_held, plain_held;
	uint64_t idle_since;
	char *authority;
	struct buf refusal; /* a gateway's plain (non-200) answer to an inner stream */
};

struct edge_conn {
	struct tunnel_edge *edge;
	struct edge_conn *next, *prev;
	int fd;
	enum conn_state state;
	struct tunnel_io io;
	struct buf hello;
	nghttp2_session *h2;
	char tunnel_id[80];
	char conn_id[40];
	char gateway[80];
	char index[8];
	char version[64];      /* the HELLO's Version, "-" when it sent none */
	int64_t registered_at; /* wall clock, µs, at READY */
	char peer[64];
	char domain[256]; /* the tunnel's domain, read once at registration */
	unsigned nstreams;
	bool goaway;     /* peer is draining: no new streams here */
	bool closing;    /* scheduled for destruction */
	bool proto_fail; /* a protocol error was counted for this connection */
	uint64_t last_rx;
	struct loop_timer *timer; /* handshake deadline, then ping */
	struct loop_timer *free_timer;
	struct loop_timer *kick_timer; /* deferred flush, see conn_kick_soon */
	struct tunnel_stream *streams;
};

/* What gateways got wrong and what the edge carried, for --tunnel-metrics-listen
 * (Prometheus text, docs/server/tunnels.md "Metrics"). */
enum handshake_fail { HS_AUTH, HS_PROTOCOL, HS_TLS, HS_TIMEOUT, HS_N };
static const char *const hs_reason[HS_N] = {"auth", "protocol", "tls", "timeout"};
struct edge_metrics {
	uint64_t handshake_fail[HS_N];
	uint64_t protocol_errors; /* connections ended by an HTTP/2 error */
	uint64_t invalid_frames;  /* frames nghttp2 rejected (stream or connection error) */
	uint64_t streams;         /* streams opened for ingress requests */
	uint64_t stream_resets;   /* RST_STREAM frames from gateways */
	uint64_t ingress_errors;  /* error answers the ingress made itself */
	uint64_t inner_sessions;  /* inner TLS sessions opened (a handshake each) */
	uint64_t inner_reused;    /* exchanges on an inner session that was waiting */
};

/* Hangs off struct server (s->tunnel): API handlers that hold the server reach it. */
struct tunnel_edge {
	struct server *srv;
	struct loop *loop;
	struct tls_server_ctx *tls;
	int lfd;
	int port;
	char *domain;
	struct edge_conn *conns;
	struct http_server *metrics;
	struct edge_metrics m;
};

static void conn_event(struct loop *l, int fd, int mask, void *arg);
static void conn_kick(struct edge_conn *c);

const char *
tunnel_domain(struct server *s)
{
	const char *d = s->cfg.tunnel.domain;
	return d && *d ? d : "tunnel.localhost";
}

static void
stream_unlink(struct tunnel_stream *st)
{
	struct edge_conn *c = st->conn;
	if (c == NULL)
		return;
	if (st->prev)
		st->prev->next = st->next;
	else
		c->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	st->next = st->prev = NULL;
	st->conn = NULL;
	c->nstreams--;
}

static void
stream_free(struct tunnel_stream *st)
{
	for (size_t i = 0; i < st->nh; i++) {
		free((char *)st->h[i].name);
		free((char *)st->h[i].value);
	}
	free(st->body);
	tunnel_inner_free(st->inner);
	buf_free(&st->refusal);
	free(st->authority);
	free(st);
}

/* Ends a stream towards its owner exactly once. */
static void
stream_finish(struct tunnel_stream *st, int err)
{
	const struct tunnel_stream_cb *cb = st->cb;
	void *arg = st->arg;
	stream_unlink(st);
	stream_free(st);
	if (cb && cb->on_close)
		cb->on_close(arg, err);
}

static void
conn_free_now(struct loop *l, void *arg)
{
	struct edge_conn *c = arg;
	c->free_timer = NULL;
	while (c->streams) {
		struct tunnel_stream *st = c->streams;
		if (c->h2)
			nghttp2_session_set_stream_user_data(c->h2, st->id, NULL);
		stream_finish(st, AL_E_CLOSED);
	}
	if (c->timer)
		loop_timer_cancel(l, c->timer);
	if (c->kick_timer)
		loop_timer_cancel(l, c->kick_timer);
	if (c->prev)
		c->prev->next = c->next;
	else if (c->edge->conns == c)
		c->edge->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	/* Only a registered connection has ids; a refused one was logged when refused. */
	if ((c->state == EC_H2 || c->closing) && c->conn_id[0])
		log_info("tunnel connection closed", "tunnel_id", c->tunnel_id, "connection_id",
		         c->conn_id, "peer", c->peer);
	nghttp2_session_del(c->h2);
	loop_fd_del(l, c->fd);
	close(c->fd);
	tunnel_io_reset(&c->io);
	buf_free(&c->hello);
	free(c);
}

/* Destruction is deferred to a timer so no caller up the stack (an nghttp2 callback,
 * an ingress handler) is left holding a freed connection. */
static void
conn_close(struct edge_conn *c)
{
	if (c->free_timer)
		return;
	c->closing = true;
	c->state = EC_DEAD;
	loop_fd_set(c->edge->loop, c->fd, 0, conn_event, c);
	c->free_timer = loop_timer_add(c->edge->loop, 0, conn_free_now, c);
}

static void
conn_update(struct edge_conn *c)
{
	if (c->state == EC_DEAD)
		return;
	int mask = LOOP_READ;
	if (c->io.want_write || c->io.out.len > 0)
		mask |= LOOP_WRITE;
	loop_fd_set(c->edge->loop, c->fd, mask, conn_event, c);
}

static void
conn_kick(struct edge_conn *c)
{
	if (c->state == EC_DEAD)
		return;
	if (tunnel_io_flush(&c->io, c->state == EC_H2 ? c->h2 : NULL) != 0) {
		conn_close(c);
		return;
	}
	if (c->state == EC_H2 && !nghttp2_session_want_read(c->h2) &&
	    !nghttp2_session_want_write(c->h2) && c->io.out.len == 0) {
		conn_close(c);
		return;
	}
	conn_update(c);
}

static void
kick_timer(struct loop *l, void *arg)
{
	struct edge_conn *c = arg;
	c->kick_timer = NULL;
	conn_kick(c);
}

/* Stream opens and cancels may come from inside nghttp2 callbacks (an ingress or MCP
 * client reacting to another stream), where nghttp2_session_mem_send must not run:
 * the flush happens on the next loop turn instead. */
static void
conn_kick_soon(struct edge_conn *c)
{
	if (c->kick_timer == NULL && c->state != EC_DEAD)
		c->kick_timer = loop_timer_add(c->edge->loop, 0, kick_timer, c);
}

/* Test hook (AIRLOCK_TEST_EDGE_CAPTURE=<file>, logged at start): every DATA payload the
 * edge relays, both ways, is appended to the file, so a test can show what the edge's
 * relaying code holds: ciphertext with inner TLS, the MCP messages without. */
static FILE *capture;

static void
capture_bytes(const void *p, size_t n)
{
	if (capture && n > 0) {
		fwrite(p, 1, n, capture);
		fflush(capture);
	}
}

static const struct tunnel_stream_cb idle_cb = {NULL, NULL, NULL};

/* Idle inner streams per connection beyond this are closed rather than kept. */
#define INNER_IDLE_MAX 64
/* An idle inner stream is closed after this long unused. */
#define INNER_IDLE_MS 30000

/* The owner's answer is complete: it gets on_close(0), and the stream waits for the next
 * exchange to its route. The owner may open that exchange from inside on_close. */
static void
inner_exchange_done(struct tunnel_stream *st)
{
	const struct tunnel_stream_cb *cb = st->cb;
	void *arg = st->arg;
	struct edge_conn *c = st->conn;
	unsigned nidle = 0;
	for (struct tunnel_stream *o = c ? c->streams : NULL; o; o = o->next)
		nidle += o->idle;
	st->cb = &idle_cb;
	st->arg = NULL;
	st->inner_head = false;
	/* the answer is whole: what its owner still holds no longer concerns the gateway */
	if (st->cipher_held > 0 && c != NULL && c->state == EC_H2) {
		nghttp2_session_consume_stream(c->h2, st->id, st->cipher_held);
		conn_kick_soon(c);
	}
	st->cipher_held = st->plain_held = 0;
	st->hold = false;
	if (c == NULL || c->goaway || c->closing || nidle >= INNER_IDLE_MAX)
		tunnel_stream_cancel(st);
	else {
		st->idle = true;
		st->idle_since = now_mono_ms();
	}
	if (cb->on_close)
		cb->on_close(arg, 0);
}

/* Closes the connection's inner streams idle for INNER_IDLE_MS (all of them: draining). */
static void
inner_idle_sweep(struct edge_conn *c, bool all)
{
	uint64_t now = now_mono_ms();
	for (struct tunnel_stream *st = c->streams, *next; st; st = next) {
		next = st->next;
		if (st->idle && (all || now - st->idle_since >= INNER_IDLE_MS))
			tunnel_stream_cancel(st);
	}
}

/* Ends an inner stream on an error of its own (verification, a bad answer): reset
 * towards the gateway and on_close(err) to the owner. */
static void
inner_fail(nghttp2_session *s, struct tunnel_stream *st, int err)
{
	struct edge_conn *c = st->conn;
	log_warn("inner TLS with the gateway failed", "tunnel_id", c ? c->tunnel_id : "", "error",
	         tunnel_inner_error(st->inner));
	nghttp2_session_set_stream_user_data(s, st->id, NULL);
	nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
	if (c)
		conn_kick_soon(c);
	stream_finish(st, err);
}

/* Ciphertext of an inner stream: into its session, then the owner gets the answer's
 * head once and its body as it decrypts. Its callbacks may cancel st. */
static void
inner_data(nghttp2_session *s, struct tunnel_stream *st, int32_t sid, const uint8_t *data,
           size_t len)
{
	int r = tunnel_inner_rx(st->inner, (const char *)data, len);
	if (r != 0) {
		inner_fail(s, st, AL_E_PROTO);
		return;
	}
	if (st->deferred) { /* the handshake may have something to say back */
		st->deferred = false;
		nghttp2_session_resume_data(s, sid);
		if (st->conn)
			conn_kick_soon(st->conn);
	}
	if (st->idle)
		return; /* between exchanges: nothing is owed to anyone (close_notify) */
	int status;
	const struct http_header *h;
	size_t nh;
	if (!tunnel_inner_head(st->inner, &status, &h, &nh))
		return;
	if (!st->inner_head) {
		st->inner_head = true;
		if (st->cb->on_head)
			st->cb->on_head(st->arg, status, h, nh);
		if (nghttp2_session_get_stream_user_data(s, sid) != st)
			return; /* cancelled */
	}
	const char *p;
	size_t n;
	tunnel_inner_body(st->inner, &p, &n);
	if (n > 0 && st->cb->on_data) {
		if (st->hold)
			st->plain_held += n;
		st->cb->on_data(st->arg, p, n);
		if (nghttp2_session_get_stream_user_data(s, sid) != st)
			return;
	}
	tunnel_inner_body_taken(st->inner);
	if (tunnel_inner_complete(st->inner))
		inner_exchange_done(st);
}

/* ---- HTTP/2 client callbacks ---- */

static int
on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	return 0;
}

static int
on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
          const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	struct tunnel_stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	if (st == NULL || f->hd.type != NGHTTP2_HEADERS)
		return 0;
	if (nl == 7 && memcmp(name, ":status", 7) == 0) {
		uint64_t v;
		if (parse_uint((const char *)value, vl, 999, &v) != 0 || v < 100)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		st->status = (int)v;
		if (v < 200) /* interim: drop what it carried */
			st->nh = 0;
		return 0;
	}
	if (st->head_done || nl == 0 || name[0] == ':' || tunnel_hop_header((const char *)name, nl))
		return 0; /* trailers and hop-by-hop are not forwarded */
	st->hbytes += nl + vl;
	if (st->nh >= sizeof(st->h) / sizeof(st->h[0]) || st->hbytes > 64 * 1024)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets just this stream */
	st->h[st->nh].name = xstrndup((const char *)name, nl);
	st->h[st->nh].value = xstrndup((const char *)value, vl);
	st->nh++;
	return 0;
}

static int
on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct edge_conn *c = ud;
	c->last_rx = now_mono_ms();
	if (f->hd.type == NGHTTP2_GOAWAY) {
		/* The gateway is draining: finish what runs here, open nothing new. */
		c->goaway = true;
		inner_idle_sweep(c, true);
		log_info("tunnel connection draining", "tunnel_id", c->tunnel_id, "connection_id",
		         c->conn_id);
		return 0;
	}
	if (f->hd.type == NGHTTP2_RST_STREAM)
		c->edge->m.stream_resets++;
	struct tunnel_stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	if (st == NULL)
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS && !st->head_done && st->status >= 200) {
		st->head_done = true;
		if (st->inner) /* the pipe's own head: the owner's comes from inside */
			return 0;
		if (st->cb->on_head)
			st->cb->on_head(st->arg, st->status, st->h, st->nh);
	}
	return 0;
}

/* Windows are reopened by hand (NGHTTP2_OPT_NO_AUTO_WINDOW_UPDATE): the connection's
 * at once, so one slow stream never stalls the others, and a stream's when its owner is
 * done with the bytes: at once, or for a held stream when tunnel_stream_release says
 * they reached the client. A gateway then never has more than one stream window in
 * flight for a client that reads slowly. */
static int
on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data, size_t len,
              void *ud)
{
	struct tunnel_stream *st = nghttp2_session_get_stream_user_data(s, sid);
	capture_bytes(data, len);
	if (st && st->inner) {
		/* The connection's window reopens at once; the stream's too unless the owner
		 * holds: then tunnel_stream_release acknowledges it as plaintext leaves. */
		if (st->hold && !st->idle) {
			nghttp2_session_consume_connection(s, len);
			st->cipher_held += len;
		} else
			nghttp2_session_consume(s, sid, len);
		if (st->status != 200) { /* the gateway answered without TLS: keep its text */
			buf_add(&st->refusal, data, len < 512 - st->refusal.len ? len : 0);
			return 0;
		}
		if (st->head_done)
			inner_data(s, st, sid, data, len);
		return 0;
	}
	bool hold = st && st->hold;
	if (st && st->head_done && st->cb->on_data)
		st->cb->on_data(st->arg, (const char *)data, len); /* may cancel st */
	if (hold)
		nghttp2_session_consume_connection(s, len);
	else
		nghttp2_session_consume(s, sid, len);
	return 0;
}

static int
on_stream_close(nghttp2_session *s, int32_t sid, uint32_t error_code, void *ud)
{
	struct tunnel_stream *st = nghttp2_session_get_stream_user_data(s, sid);
	if (st == NULL)
		return 0;
	nghttp2_session_set_stream_user_data(s, sid, NULL);
	int err = 0;
	if (error_code != NGHTTP2_NO_ERROR || !st->head_done)
		err = error_code == NGHTTP2_REFUSED_STREAM ? AL_E_AGAIN : AL_E_CLOSED;
	if (st->inner && err == 0 && st->status != 200) {
		char code[8];
		snprintf(code, sizeof(code), "%d", st->status);
		for (size_t i = 0; i < st->refusal.len; i++) /* the gateway's bytes: one line */
			if ((unsigned char)st->refusal.data[i] < 0x20)
				st->refusal.data[i] = ' ';
		log_warn("inner TLS refused by the gateway", "tunnel_id",
		         st->conn ? st->conn->tunnel_id : "", "status", code, "answer",
		         st->refusal.data ? st->refusal.data : "");
		err = AL_E_PROTO;
	} else if (st->inner && err == 0 && !tunnel_inner_complete(st->inner))
		err = AL_E_CLOSED; /* ended without close_notify: a cut answer */
	stream_finish(st, err);
	return 0;
}

static ssize_t
body_read(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags,
          nghttp2_data_source *src, void *ud)
{
	struct tunnel_stream *st = src->ptr;
	size_t n = st->body_len - st->body_off;
	if (n > len)
		n = len;
	memcpy(buf, st->body + st->body_off, n);
	capture_bytes(buf, n);
	st->body_off += n;
	if (st->body_off == st->body_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* An inner stream's request side: the session's records as TLS makes them; the stream
 * stays open (the gateway ends it after close_notify). */
static ssize_t
inner_read(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags,
           nghttp2_data_source *src, void *ud)
{
	struct tunnel_stream *st = src->ptr;
	size_t n = tunnel_inner_take(st->inner, buf, len);
	if (n == 0) {
		st->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	capture_bytes(buf, n);
	return (ssize_t)n;
}

/* Counts a connection's first connection-ending HTTP/2 error (later ones are its
 * consequences) and names it in the log: the gateway's operator needs the reason, the
 * metric the rate. */
static void
protocol_error(struct edge_conn *c, const char *what, const char *detail)
{
	if (c->proto_fail)
		return;
	c->proto_fail = true;
	c->edge->m.protocol_errors++;
	log_warn("tunnel gateway protocol error, closing the connection", "tunnel_id", c->tunnel_id,
	         "connection_id", c->conn_id, "peer", c->peer, "frame", what, "error", detail);
}

static const char *
frame_name(uint8_t type)
{
	static const char *const names[] = {
	    "DATA",         "HEADERS", "PRIORITY", "RST_STREAM",    "SETTINGS",
	    "PUSH_PROMISE", "PING",    "GOAWAY",   "WINDOW_UPDATE", "CONTINUATION"};
	return type < ARRAY_LEN(names) ? names[type] : "unknown";
}

/* A frame nghttp2 rejected: for a stream the edge never opened, on a closed stream, a
 * response without :status, malformed. nghttp2 answers with RST_STREAM (the stream
 * alone fails) or GOAWAY (the connection ends: on_frame_send counts that). */
static int
on_invalid_frame(nghttp2_session *s, const nghttp2_frame *f, int lib_error, void *ud)
{
	(void)s;
	struct edge_conn *c = ud;
	char sid[16];
	snprintf(sid, sizeof(sid), "%d", f->hd.stream_id);
	c->edge->m.invalid_frames++;
	log_warn("tunnel gateway sent an invalid frame", "tunnel_id", c->tunnel_id, "connection_id",
	         c->conn_id, "frame", frame_name(f->hd.type), "stream", sid, "error",
	         nghttp2_strerror(lib_error));
	return 0;
}

/* A GOAWAY with an error code leaving the edge ends the connection for a protocol error
 * nghttp2 found without an invalid-frame callback (bad preface, flow control...). */
static int
on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	(void)s;
	if (f->hd.type == NGHTTP2_GOAWAY && f->goaway.error_code != NGHTTP2_NO_ERROR)
		protocol_error(ud, "GOAWAY sent", nghttp2_http2_strerror(f->goaway.error_code));
	return 0;
}

static nghttp2_session_callbacks *
h2_callbacks(void)
{
	static nghttp2_session_callbacks *cbs;
	if (cbs)
		return cbs;
	nghttp2_session_callbacks_new(&cbs);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
	nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, on_invalid_frame);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
	return cbs;
}

/* ---- connection lifecycle ---- */

static void
conn_timer(struct loop *l, void *arg)
{
	struct edge_conn *c = arg;
	c->timer = NULL;
	if (c->closing)
		return;
	if (c->state != EC_H2) {
		c->edge->m.handshake_fail[HS_TIMEOUT]++;
		log_warn("tunnel handshake timed out", "peer", c->peer);
		conn_close(c);
		return;
	}
	if (now_mono_ms() - c->last_rx > TUNNEL_DEAD_MS) {
		log_warn("tunnel connection silent, closing", "tunnel_id", c->tunnel_id,
		         "connection_id", c->conn_id);
		conn_close(c);
		return;
	}
	inner_idle_sweep(c, false);
	nghttp2_submit_ping(c->h2, NGHTTP2_FLAG_NONE, NULL);
	c->timer = loop_timer_add(l, TUNNEL_PING_MS, conn_timer, c);
	conn_kick(c);
}

static void
send_reply(struct edge_conn *c, int status, const char *reason)
{
	struct tunnel_msg m;
	memset(&m, 0, sizeof(m));
	m.status = status;
	snprintf(m.reason, sizeof(m.reason), "%s", reason);
	if (status == 200) {
		tunnel_msg_add(&m, "Tunnel-Id", c->tunnel_id);
		tunnel_msg_add(&m, "Connection-Id", c->conn_id);
		if (tunnel_store_domain(c->edge->srv->db, c->tunnel_id, false, c->domain,
		                        sizeof(c->domain)) == 0 &&
		    c->domain[0])
			tunnel_msg_add(&m, "Tunnel-Domain", c->domain);
	}
	tunnel_msg_write(&m, true, &c->io.out);
}

/* Why the edge refused a token: the log's error and the reply's reason. An operator
 * facing a 401 needs to know whether to reveal the rotated token, give up on an
 * archived tunnel, or look for the right server. */
struct token_refusal {
	const char *log, *reply;
};
static const struct token_refusal REFUSED_UNKNOWN = {
    "invalid tunnel token", "unknown tunnel token (not issued by this server)"};
static const struct token_refusal REFUSED_ROTATED = {
    "rotated tunnel token", "tunnel token replaced by a rotation: reveal the new one"};
static const struct token_refusal REFUSED_ARCHIVED = {"archived tunnel", "tunnel archived"};

/* The live tunnel a gateway's token opens; AL_E_AUTH for any other token, with *why
 * (and tunnel_id when the token was one of a tunnel's, retired). */
static int
token_lookup(struct server *s, const char *token, char *tunnel_id, size_t len,
             const struct token_refusal **why)
{
	char hash[65];
	bool archived = false;
	size_t tl = strlen(token);
	*why = &REFUSED_UNKNOWN;
	if (tl < strlen(TUNNEL_TOKEN_PREFIX) + 16 || tl > 256 ||
	    strncmp(token, TUNNEL_TOKEN_PREFIX, strlen(TUNNEL_TOKEN_PREFIX)) != 0)
		return AL_E_AUTH;
	sha256_hex(token, tl, hash);
	int r = tunnel_store_find_token(s->db, hash, tunnel_id, len);
	if (r != AL_E_NOTFOUND)
		return r;
	r = tunnel_store_retired_token(s->db, hash, tunnel_id, len, &archived);
	if (r == 0)
		*why = archived ? &REFUSED_ARCHIVED : &REFUSED_ROTATED;
	else
		tunnel_id[0] = '\0';
	return r == 0 || r == AL_E_NOTFOUND ? AL_E_AUTH : r;
}

static int
hello_feed(void *arg, const char *p, size_t n)
{
	struct edge_conn *c = arg;
	if (c->state == EC_H2) {
		ssize_t r = nghttp2_session_mem_recv(c->h2, (const uint8_t *)p, n);
		if (r < 0) {
			protocol_error(c, "-", nghttp2_strerror((int)r));
			return AL_E_PROTO;
		}
		c->last_rx = now_mono_ms();
		return 0;
	}
	if (c->state != EC_HELLO)
		return AL_E_PROTO;
	if (buf_add(&c->hello, p, n) != 0) {
		c->edge->m.handshake_fail[HS_PROTOCOL]++;
		log_warn("tunnel handshake rejected", "peer", c->peer, "error",
		         "handshake too large");
		send_reply(c, 400, "handshake too large");
		return AL_E_TOOBIG;
	}
	struct tunnel_msg m;
	int len = tunnel_msg_parse(c->hello.data, c->hello.len, false, &m);
	if (len == 0)
		return 0;
	if (len < 0) {
		c->edge->m.handshake_fail[HS_PROTOCOL]++;
		log_warn("tunnel handshake rejected", "peer", c->peer, "error", "malformed hello");
		send_reply(c, 400, "malformed hello");
		return AL_E_PROTO;
	}
	const char *tok = tunnel_msg_get(&m, "Token");
	const char *gw = tunnel_msg_get(&m, "Gateway-Id");
	const char *idx = tunnel_msg_get(&m, "Connection-Index");
	snprintf(c->gateway, sizeof(c->gateway), "%s", gw ? gw : "-");
	snprintf(c->index, sizeof(c->index), "%s", idx ? idx : "-");
	const char *ver = tunnel_msg_get(&m, "Version");
	snprintf(c->version, sizeof(c->version), "%s", ver ? ver : "-");
	const struct token_refusal *why = &REFUSED_UNKNOWN;
	int r = tok ? token_lookup(c->edge->srv, tok, c->tunnel_id, sizeof(c->tunnel_id), &why)
	            : AL_E_AUTH;
	explicit_wipe(m.f, sizeof(m.f));
	explicit_wipe(c->hello.data, c->hello.len);
	if (r != 0) {
		if (r == AL_E_AUTH)
			c->edge->m.handshake_fail[HS_AUTH]++;
		/* tunnel_id last, and only when known: no empty field for an unknown token */
		log_warn("tunnel handshake rejected", "peer", c->peer, "gateway", c->gateway,
		         "error", r == AL_E_AUTH ? why->log : al_strerror(r),
		         r == AL_E_AUTH && c->tunnel_id[0] ? "tunnel_id" : NULL, c->tunnel_id);
		send_reply(c, r == AL_E_AUTH ? 401 : 503,
		           r == AL_E_AUTH ? why->reply : "unavailable");
		c->tunnel_id[0] = '\0';
		return AL_E_AUTH;
	}
	char *cid = id_new("tcon_");
	snprintf(c->conn_id, sizeof(c->conn_id), "%s", cid);
	free(cid);
	c->registered_at = now_real_us();
	send_reply(c, 200, "OK");
	nghttp2_option *opt;
	nghttp2_option_new(&opt);
	nghttp2_option_set_peer_max_concurrent_streams(opt, 1000);
	nghttp2_option_set_no_auto_window_update(opt, 1); /* see on_data_chunk */
	nghttp2_session_client_new2(&c->h2, h2_callbacks(), c, opt);
	nghttp2_option_del(opt);
	nghttp2_settings_entry iv[] = {
	    {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
	    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 4 << 20},
	    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 64 * 1024},
	    {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, TUNNEL_MAX_FRAME},
	};
	nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, ARRAY_LEN(iv));
	nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, 16 << 20);
	c->state = EC_H2;
	c->last_rx = now_mono_ms();
	if (c->timer)
		loop_timer_cancel(c->edge->loop, c->timer);
	c->timer = loop_timer_add(c->edge->loop, TUNNEL_PING_MS, conn_timer, c);
	log_info("registered tunnel connection", "tunnel_id", c->tunnel_id, "connection_id",
	         c->conn_id, "gateway", c->gateway, "index", c->index, "version", c->version,
	         "peer", c->peer);
	/* Bytes after the HELLO already belong to HTTP/2. */
	size_t rest = c->hello.len - (size_t)len;
	if (rest > 0) {
		ssize_t rr =
		    nghttp2_session_mem_recv(c->h2, (const uint8_t *)c->hello.data + len, rest);
		if (rr < 0) {
			protocol_error(c, "-", nghttp2_strerror((int)rr));
			return AL_E_PROTO;
		}
	}
	buf_free(&c->hello);
	return 0;
}

static void
conn_event(struct loop *l, int fd, int mask, void *arg)
{
	struct edge_conn *c = arg;
	if (c->state == EC_DEAD)
		return;
	if (c->state == EC_TLS) {
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
			c->edge->m.handshake_fail[HS_TLS]++;
			log_warn("tunnel TLS handshake failed", "peer", c->peer);
			conn_close(c);
			return;
		}
		const unsigned char *alpn = NULL;
		unsigned alen = 0;
		SSL_get0_alpn_selected(c->io.ssl, &alpn, &alen);
		if (alen != strlen(TUNNEL_ALPN) || memcmp(alpn, TUNNEL_ALPN, alen) != 0) {
			c->edge->m.handshake_fail[HS_TLS]++;
			log_warn("tunnel peer did not negotiate ALPN " TUNNEL_ALPN, "peer",
			         c->peer);
			conn_close(c);
			return;
		}
		c->state = EC_HELLO;
	}
	int r = tunnel_io_read(&c->io, hello_feed, c);
	if (r != 0) {
		/* Flush a rejection reply before closing when there is one. */
		tunnel_io_flush(&c->io, NULL);
		conn_close(c);
		return;
	}
	conn_kick(c);
}

static void
accept_ready(struct loop *l, int lfd, int mask, void *arg)
{
	struct tunnel_edge *e = arg;
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct edge_conn *c = xcalloc(1, sizeof(*c));
		char host[48], serv[8];
		if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv, sizeof(serv),
		                NI_NUMERICHOST | NI_NUMERICSERV) == 0)
			snprintf(c->peer, sizeof(c->peer), "%s:%s", host, serv);
		c->edge = e;
		c->fd = fd;
		c->state = EC_TLS;
		SSL *ssl = SSL_new(e->tls->ctx);
		SSL_set_fd(ssl, fd);
		SSL_set_accept_state(ssl);
		tunnel_io_init(&c->io, ssl);
		/* A gateway sends nothing after its HELLO until READY: an unauthenticated
		 * peer gets no more buffer than that, whatever tunnel_io_read batches. */
		buf_init(&c->hello, TUNNEL_HANDSHAKE_MAX + 16384);
		c->next = e->conns;
		if (e->conns)
			e->conns->prev = c;
		e->conns = c;
		c->timer = loop_timer_add(l, 10000, conn_timer, c);
		loop_fd_set(l, fd, LOOP_READ, conn_event, c);
	}
}

/* ---- public API ---- */

/* An idle inner stream to authority on a live connection of the tunnel, taken out of
 * the pool; ones that may no longer be used (certificates changed) are closed. */
static struct tunnel_stream *
inner_idle_take(struct server *s, struct tunnel_edge *e, const char *tunnel_id,
                const char *authority)
{
	for (struct edge_conn *c = e->conns; c; c = c->next) {
		if (c->state != EC_H2 || c->goaway || c->closing ||
		    strcmp(c->tunnel_id, tunnel_id) != 0)
			continue;
		for (struct tunnel_stream *st = c->streams, *next; st; st = next) {
			next = st->next;
			if (!st->idle || strcmp(st->authority, authority) != 0)
				continue;
			if (!tunnel_inner_reusable(s, st->inner)) {
				tunnel_stream_cancel(st);
				continue;
			}
			st->idle = false;
			return st;
		}
	}
	return NULL;
}

static int
stream_attach(struct tunnel_edge *e, struct edge_conn *best, struct tunnel_stream *st, int32_t sid,
              struct tunnel_stream **out)
{
	st->id = sid;
	st->conn = best;
	st->next = best->streams;
	if (best->streams)
		best->streams->prev = st;
	best->streams = st;
	best->nstreams++;
	e->m.streams++;
	*out = st;
	conn_kick_soon(best);
	return 0;
}

int
tunnel_stream_open(struct server *s, const struct tunnel_request *rq,
                   const struct tunnel_stream_cb *cb, void *arg, struct tunnel_stream **out)
{
	struct tunnel_edge *e = s->tunnel;
	struct edge_conn *best = NULL;
	char domain[256] = "";
	if (e == NULL)
		return AL_E_UNSUPPORTED;
	size_t rl = strlen(rq->route);
	if (rl == 0 || rl > 63)
		return AL_E_INVAL;
	for (size_t i = 0; i < rl; i++) {
		char ch = rq->route[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		      (ch >= 'A' && ch <= 'Z')))
			return AL_E_INVAL;
	}
	if (rq->path[0] != '/' || strlen(rq->path) > 8192)
		return AL_E_INVAL;
	/* Least-loaded live connection; the list is newest first, so ties go to the
	 * newest, which spreads new streams over freshly (re)connected gateways. */
	for (struct edge_conn *c = e->conns; c; c = c->next) {
		if (c->state != EC_H2 || c->goaway || c->closing ||
		    strcmp(c->tunnel_id, rq->tunnel_id) != 0)
			continue;
		if (best == NULL || c->nstreams < best->nstreams)
			best = c;
	}
	/* A live connection proves the tunnel exists and is not archived (archiving
	 * closes its connections at once), so the domain it registered with is used and
	 * the database is only asked when none is live (404 vs 503), not per request. */
	if (best && best->domain[0])
		snprintf(domain, sizeof(domain), "%s", best->domain);
	else if (tunnel_store_domain(s->db, rq->tunnel_id, true, domain, sizeof(domain)) != 0)
		return AL_E_IO;
	if (domain[0] == '\0')
		return AL_E_NOTFOUND;
	if (best == NULL)
		return AL_E_AGAIN;
	char *authority = xasprintf("%s.%s", rq->route, domain);
	for (char *p = authority; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + 32);
	struct tunnel_stream *idle = inner_idle_take(s, e, rq->tunnel_id, authority);
	if (idle) {
		int nr = tunnel_inner_next(idle->inner, authority, rq);
		free(authority);
		if (nr != 0) {
			tunnel_stream_cancel(idle);
			return nr;
		}
		idle->cb = cb;
		idle->arg = arg;
		e->m.streams++;
		e->m.inner_reused++;
		if (idle->deferred) {
			idle->deferred = false;
			nghttp2_session_resume_data(idle->conn->h2, idle->id);
		}
		conn_kick_soon(idle->conn);
		*out = idle;
		return 0;
	}
	struct tunnel_inner *inner = NULL;
	int ir = tunnel_inner_open(s, rq->tunnel_id, authority, rq, &inner);
	if (ir != 0) {
		if (ir == AL_E_PERM)
			log_warn("tunnel has certificates but none is active; refusing the request",
			         "tunnel_id", rq->tunnel_id);
		free(authority);
		return ir;
	}
	if (inner) {
		/* What the edge's HTTP/2 layer sees of an inner exchange: the route's host
		 * name and a byte pipe, as the reference's transport sees the subdomain. */
		static const char marker[] = TUNNEL_INNER_HEADER;
		nghttp2_nv nv[5] = {
		    {(uint8_t *)":method", (uint8_t *)"POST", 7, 4, NGHTTP2_NV_FLAG_NONE},
		    {(uint8_t *)":scheme", (uint8_t *)"https", 7, 5, NGHTTP2_NV_FLAG_NONE},
		    {(uint8_t *)":authority", (uint8_t *)authority, 10, strlen(authority),
		     NGHTTP2_NV_FLAG_NONE},
		    {(uint8_t *)":path", (uint8_t *)"/", 5, 1, NGHTTP2_NV_FLAG_NONE},
		    {(uint8_t *)marker, (uint8_t *)"1", sizeof(marker) - 1, 1,
		     NGHTTP2_NV_FLAG_NONE}};
		struct tunnel_stream *st = xcalloc(1, sizeof(*st));
		st->cb = cb;
		st->arg = arg;
		st->inner = inner;
		st->authority = xstrdup(authority);
		e->m.inner_sessions++;
		buf_init(&st->refusal, 512);
		nghttp2_data_provider dp = {.source.ptr = st, .read_callback = inner_read};
		int32_t sid = nghttp2_submit_request(best->h2, NULL, nv, 5, &dp, st);
		free(authority);
		if (sid < 0) {
			stream_free(st);
			return AL_E_INVAL;
		}
		return stream_attach(e, best, st, sid, out);
	}
	size_t nnv = 4 + rq->nheaders;
	nghttp2_nv *nv = xcalloc(nnv, sizeof(*nv));
	size_t k = 0;
#define NV(n, v)                                                                                   \
	nv[k++] = (nghttp2_nv){(uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v),               \
	                       NGHTTP2_NV_FLAG_NONE}
	NV(":method", rq->method);
	NV(":scheme", "https");
	NV(":authority", authority);
	NV(":path", rq->path);
	for (size_t i = 0; i < rq->nheaders; i++) {
		const char *n = rq->headers[i].name;
		if (n[0] == ':' || tunnel_hop_header(n, strlen(n)))
			continue;
		NV(n, rq->headers[i].value);
	}
#undef NV
	struct tunnel_stream *st = xcalloc(1, sizeof(*st));
	st->cb = cb;
	st->arg = arg;
	nghttp2_data_provider dp = {.source.ptr = st, .read_callback = body_read};
	if (rq->body_len > 0) {
		st->body = xmalloc(rq->body_len);
		memcpy(st->body, rq->body, rq->body_len);
		st->body_len = rq->body_len;
	}
	int32_t sid = nghttp2_submit_request(best->h2, NULL, nv, k, rq->body_len ? &dp : NULL, st);
	free(nv);
	free(authority);
	if (sid < 0) {
		stream_free(st);
		return AL_E_INVAL;
	}
	return stream_attach(e, best, st, sid, out);
}

void
tunnel_count_ingress_error(struct server *s)
{
	if (s->tunnel)
		s->tunnel->m.ingress_errors++;
}

void
tunnel_stream_cancel(struct tunnel_stream *st)
{
	if (st == NULL)
		return;
	struct edge_conn *c = st->conn;
	if (c == NULL) {
		stream_free(st);
		return;
	}
	nghttp2_session_set_stream_user_data(c->h2, st->id, NULL);
	nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
	stream_unlink(st);
	stream_free(st);
	conn_kick_soon(c);
}

void
tunnel_stream_hold(struct tunnel_stream *st)
{
	if (st)
		st->hold = true;
}

void
tunnel_stream_release(struct tunnel_stream *st, size_t n)
{
	struct edge_conn *c = st ? st->conn : NULL;
	if (c == NULL || c->state != EC_H2 || n == 0)
		return;
	if (st->inner) { /* plaintext released: the ciphertext that carried it, pro rata */
		if (n > st->plain_held)
			n = st->plain_held;
		size_t k = n == st->plain_held
		               ? st->cipher_held
		               : (size_t)((unsigned __int128)st->cipher_held * n / st->plain_held);
		st->plain_held -= n;
		st->cipher_held -= k;
		n = k;
		if (n == 0)
			return;
	}
	nghttp2_session_consume_stream(c->h2, st->id, n);
	/* nghttp2 queues a WINDOW_UPDATE once half the window is consumed */
	if (nghttp2_session_want_write(c->h2))
		conn_kick_soon(c);
}

void
tunnel_edge_close_tunnel(struct server *s, const char *tunnel_id)
{
	if (s->tunnel == NULL)
		return;
	for (struct edge_conn *c = s->tunnel->conns; c; c = c->next)
		if (strcmp(c->tunnel_id, tunnel_id) == 0)
			conn_close(c);
}

void
tunnel_edge_drain(struct server *s)
{
	static const char why[] = "server draining";
	char n[16];
	unsigned count = 0;
	if (s->tunnel == NULL)
		return;
	for (struct edge_conn *c = s->tunnel->conns; c; c = c->next) {
		if (c->state != EC_H2 || c->closing || c->goaway)
			continue;
		nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
		                      nghttp2_session_get_last_proc_stream_id(c->h2),
		                      NGHTTP2_NO_ERROR, (const uint8_t *)why, sizeof(why) - 1);
		c->goaway = true; /* no new stream on it (stream_open skips it) */
		/* now, not on the next turn: an idle server stops its loop in this one */
		conn_kick(c);
		count++;
	}
	snprintf(n, sizeof(n), "%u", count);
	log_info("tunnel edge draining: gateways told (GOAWAY)", "connections", n);
}

unsigned
tunnel_edge_conn_count(struct server *s, const char *tunnel_id)
{
	unsigned n = 0;
	if (s->tunnel == NULL)
		return 0;
	for (struct edge_conn *c = s->tunnel->conns; c; c = c->next)
		if (c->state == EC_H2 && !c->closing && strcmp(c->tunnel_id, tunnel_id) == 0)
			n++;
	return n;
}

json_t *
tunnel_edge_connections(struct server *s, const char *tunnel_id)
{
	json_t *a = json_array();
	if (s->tunnel == NULL)
		return a;
	for (struct edge_conn *c = s->tunnel->conns; c; c = c->next) {
		if (c->state != EC_H2 || c->closing || strcmp(c->tunnel_id, tunnel_id) != 0)
			continue;
		json_array_append_new(
		    a, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:b}", "type",
		                 "tunnel_connection", "id", c->conn_id, "gateway_id", c->gateway,
		                 "connection_index", c->index, "gateway_version", c->version,
		                 "peer", c->peer, "connected_at", api_time(c->registered_at),
		                 "open_streams", (json_int_t)c->nstreams, "draining", c->goaway));
	}
	return a;
}

/* The edge's families, Prometheus text format 0.0.4: on its own loopback listener
 * (tunnel.metrics_listen) and inside the API server's /metrics (api/metrics.c). */
static void
edge_metrics_render(struct tunnel_edge *e, struct buf *b)
{
	unsigned live = 0;
	for (struct edge_conn *c = e->conns; c; c = c->next)
		live += c->state == EC_H2 && !c->closing;
	buf_addf(b,
	         "# HELP airlock_tunnel_connections Gateway connections registered now.\n"
	         "# TYPE airlock_tunnel_connections gauge\n"
	         "airlock_tunnel_connections %u\n"
	         "# HELP airlock_tunnel_handshake_failures_total Gateway connections refused "
	         "before HTTP/2, by reason.\n"
	         "# TYPE airlock_tunnel_handshake_failures_total counter\n",
	         live);
	for (int i = 0; i < HS_N; i++)
		buf_addf(b, "airlock_tunnel_handshake_failures_total{reason=\"%s\"} %llu\n",
		         hs_reason[i], (unsigned long long)e->m.handshake_fail[i]);
	buf_addf(b,
	         "# HELP airlock_tunnel_protocol_errors_total Gateway connections ended by an "
	         "HTTP/2 protocol error.\n"
	         "# TYPE airlock_tunnel_protocol_errors_total counter\n"
	         "airlock_tunnel_protocol_errors_total %llu\n"
	         "# HELP airlock_tunnel_invalid_frames_total HTTP/2 frames from gateways that "
	         "the edge rejected (the stream or the connection ends).\n"
	         "# TYPE airlock_tunnel_invalid_frames_total counter\n"
	         "airlock_tunnel_invalid_frames_total %llu\n"
	         "# HELP airlock_tunnel_streams_total Streams opened for ingress requests.\n"
	         "# TYPE airlock_tunnel_streams_total counter\n"
	         "airlock_tunnel_streams_total %llu\n"
	         "# HELP airlock_tunnel_stream_resets_total RST_STREAM frames from gateways.\n"
	         "# TYPE airlock_tunnel_stream_resets_total counter\n"
	         "airlock_tunnel_stream_resets_total %llu\n"
	         "# HELP airlock_tunnel_ingress_errors_total Error answers made by the ingress "
	         "itself (no gateway, tunnel lost, refused...).\n"
	         "# TYPE airlock_tunnel_ingress_errors_total counter\n"
	         "airlock_tunnel_ingress_errors_total %llu\n"
	         "# HELP airlock_tunnel_inner_sessions_total Inner TLS sessions opened (one "
	         "handshake each).\n"
	         "# TYPE airlock_tunnel_inner_sessions_total counter\n"
	         "airlock_tunnel_inner_sessions_total %llu\n"
	         "# HELP airlock_tunnel_inner_reused_total Exchanges sent on an inner TLS session "
	         "that was waiting (no handshake).\n"
	         "# TYPE airlock_tunnel_inner_reused_total counter\n"
	         "airlock_tunnel_inner_reused_total %llu\n",
	         (unsigned long long)e->m.protocol_errors, (unsigned long long)e->m.invalid_frames,
	         (unsigned long long)e->m.streams, (unsigned long long)e->m.stream_resets,
	         (unsigned long long)e->m.ingress_errors, (unsigned long long)e->m.inner_sessions,
	         (unsigned long long)e->m.inner_reused);
}

void
tunnel_edge_metrics_render(struct server *s, struct buf *b)
{
	if (s->tunnel != NULL)
		edge_metrics_render(s->tunnel, b);
}

/* GET /metrics on the loopback metrics listener. */
static void
metrics_handler(struct http_request *req, void *arg)
{
	struct tunnel_edge *e = arg;
	static const struct http_header text[] = {
	    {"content-type", "text/plain; version=0.0.4; charset=utf-8"}};
	if (strcmp(req->path, "/metrics") != 0) {
		http_respond(req, 404, text, 1, "not found\n", 10);
		return;
	}
	struct buf b;
	buf_init(&b, 64 * 1024);
	edge_metrics_render(e, &b);
	http_respond(req, 200, text, 1, b.data, b.len);
	buf_free(&b);
}

/* An HTTP listener beside the edge (metrics): NULL with *rc set when it cannot
 * listen; ready names the log line tests and operators read the port from. */
static struct http_server *
side_listener(struct loop *l, const char *what, const char *ready, const char *addr,
              struct tls_server_ctx *tls, http_handler_fn *fn, void *arg, int *rc)
{
	char port[16];
	int p = 0;
	struct http_server *h = http_server_new(l, NULL, fn, arg);
	if ((*rc = http_server_listen(h, addr, tls, &p)) != 0) {
		log_error(what, "addr", addr, "error", al_strerror(*rc));
		return h; /* freed with the edge */
	}
	snprintf(port, sizeof(port), "%d", p);
	log_info(ready, "addr", addr, "port", port);
	return h;
}

int
tunnel_start(struct server *s)
{
	const struct server_tunnel_config *tc = &s->cfg.tunnel;
	const char *addr = tc->listen, *cert = tc->tls_cert_file, *key = tc->tls_key_file;
	const char *metrics = tc->metrics_listen;
	static const char *const alpn[] = {TUNNEL_ALPN, NULL};
	char err[512], port[16];
	int r;
	if (addr == NULL || *addr == '\0')
		return 0;
	if (cert == NULL || key == NULL || !*cert || !*key) {
		log_error("the tunnel edge needs a certificate: tunnel.tls.cert_file and "
		          "tunnel.tls.key_file (--tunnel-tls-cert, --tunnel-tls-key)",
		          NULL);
		return AL_E_INVAL;
	}
	struct tunnel_edge *e = xcalloc(1, sizeof(*e));
	e->srv = s;
	e->loop = s->loop;
	e->lfd = -1;
	e->tls = tls_server_ctx_new(cert, key, alpn, err, sizeof(err));
	if (e->tls == NULL) {
		log_error("tunnel edge TLS", "error", err);
		free(e);
		return AL_E_INVAL;
	}
	const char *cap = getenv("AIRLOCK_TEST_EDGE_CAPTURE");
	if (cap && *cap && capture == NULL) {
		capture = fopen(cap, "ae");
		log_warn("test hook: the tunnel edge appends every byte it relays to a file",
		         "file", cap);
	}
	/* Gateways are ours: no reason to speak anything older than TLS 1.3. */
	SSL_CTX_set_min_proto_version(e->tls->ctx, TLS1_3_VERSION);
	SSL_CTX_set_ciphersuites(e->tls->ctx, TUNNEL_TLS13_SUITES);
	if ((r = net_listen_tcp(addr, &e->lfd, &e->port)) != 0) {
		log_error("cannot listen for tunnels", "addr", addr, "error", al_strerror(r));
		tls_server_ctx_free(e->tls);
		free(e);
		return r;
	}
	loop_fd_set(e->loop, e->lfd, LOOP_READ, accept_ready, e);
	s->tunnel = e;
	snprintf(port, sizeof(port), "%d", e->port);
	log_info("tunnel edge ready", "addr", addr, "port", port, "domain", tunnel_domain(s));
	if (metrics && *metrics) {
		/* Loopback only: the counters describe tunnels and their gateways to whoever
		 * asks. */
		if (!net_addr_is_loopback(metrics)) {
			log_error("--tunnel-metrics-listen must be a loopback address", "addr",
			          metrics);
			return AL_E_INVAL;
		}
		e->metrics = side_listener(e->loop, "cannot listen for tunnel metrics",
		                           "tunnel metrics listening", metrics, NULL,
		                           metrics_handler, e, &r);
		if (r != 0)
			return r;
	}
	return 0;
}

int
tunnel_reload_tls(struct server *s, char *what, size_t whatlen)
{
	struct tunnel_edge *e = s->tunnel;
	char err[512];
	int bad = 0;
	if (e == NULL)
		return 0;
	if (tls_server_ctx_reload(e->tls, s->cfg.tunnel.tls_cert_file, s->cfg.tunnel.tls_key_file,
	                          err, sizeof(err)) != 0) {
		log_error("tunnel edge certificate not reloaded; keeping the running one", "error",
		          err);
		bad = 1;
	} else {
		size_t n = strlen(what);
		snprintf(what + n, whatlen - n, "%stunnel edge certificate", n ? ", " : "");
	}
	return bad ? AL_E_INVAL : 0;
}

void
tunnel_stop(struct server *s)
{
	struct tunnel_edge *e = s->tunnel;
	if (e == NULL)
		return;
	if (e->metrics) {
		http_server_shutdown(e->metrics);
		http_server_free(e->metrics);
	}
	while (e->conns) {
		struct edge_conn *c = e->conns;
		if (c->free_timer) {
			loop_timer_cancel(e->loop, c->free_timer);
			c->free_timer = NULL;
		}
		conn_free_now(e->loop, c);
	}
	loop_fd_del(e->loop, e->lfd);
	close(e->lfd);
	tls_server_ctx_free(e->tls);
	free(e);
	s->tunnel = NULL;
	tunnel_inner_cleanup();
	if (capture)
		fclose(capture);
	capture = NULL;
}
