/* HTTP/1.1 server on llhttp: keep-alive, bounded headers and bodies, slowloris
 * timeouts, and three ways to answer a request: at once (http_respond), later
 * (hold the request, answer from a timer or another event: long-poll), or as an
 * open stream (http_stream_*: SSE). One request per connection is in flight at a
 * time; pipelined bytes wait in the input buffer until the answer is complete. */
#ifndef AL_HTTP_H
#define AL_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "loop.h"

struct http_server;
struct http_conn;
struct tls_server_ctx;

struct http_header {
	const char *name; /* requests: lower-cased by the parser */
	const char *value;
};

struct http_request {
	struct http_conn *conn;
	char *method; /* "GET", "POST", ... */
	char *target; /* raw request target */
	char *path;   /* percent-decoded path, no query; never contains NUL */
	char *query;  /* raw query string after '?', "" if none */
	struct http_header *headers;
	size_t nheaders;
	struct buf body;
	char peer[64]; /* "127.0.0.1:54321" for logs */
	void *user;    /* handler-owned state for held requests */
	/* A body taken as a stream (http_server_set_body_hook): body stays empty, and
	 * sink_arg is what the hook gave. The handler claims it by setting sink_arg to
	 * NULL; unclaimed, it goes to sink_abort when the request is freed. */
	bool body_streamed;
	void *sink_arg;
	void (*sink_abort)(struct http_request *req, void *arg);
};

/* Streaming request bodies, for uploads too large to hold: when a request's head is
 * complete the hook may take its body. Each piece goes to write() as it arrives instead
 * of into req->body; the handler runs at the end as usual. */
struct http_body_sink {
	size_t max_bytes; /* this body's limit instead of max_body_bytes: 413 beyond */
	/* 0 to go on; AL_E_TOOBIG answers 413, AL_E_IO 500 (the sink could not store it),
	 * anything else 400; with *message (or a generic one). The request never reaches
	 * the handler after a failure. */
	int (*write)(struct http_request *req, const char *data, size_t len, void *arg,
	             const char **message);
	/* The body will not reach a handler (client gone, malformed or refused body), or
	 * the handler left it unclaimed: free arg and what it holds. */
	void (*abort)(struct http_request *req, void *arg);
	void *arg;
};
/* Called with method, target, path, query and headers filled; returns true after
 * filling *sink to stream the body, false to buffer it as usual. */
typedef bool http_body_hook_fn(struct http_request *req, struct http_body_sink *sink, void *arg);

/* Called once per complete request. The handler must eventually call http_respond()
 * or http_stream_start(); until then the request stays held. */
typedef void http_handler_fn(struct http_request *req, void *arg);
/* Called when the client goes away before a held request or stream was finished.
 * After it returns, req is freed: drop every pointer to it. */
typedef void http_close_fn(struct http_request *req, void *arg);

struct http_limits {
	size_t max_header_bytes;    /* request line + headers; 431 beyond. Default 64 KiB */
	size_t max_body_bytes;      /* 413 beyond. Default 32 MiB */
	unsigned header_timeout_ms; /* whole head must arrive within this (slowloris). 10 s */
	unsigned body_timeout_ms;   /* body must progress at least once per this. 30 s */
	unsigned idle_timeout_ms;   /* keep-alive idle. 60 s */
	size_t max_conns;           /* new connections beyond are closed at once. 20000 */
	size_t max_output_bytes;    /* per-connection unsent output; a stream that exceeds it
	                             * (a client that stopped reading) is closed. 8 MiB */
};

struct http_server *http_server_new(struct loop *l, const struct http_limits *lim,
                                    http_handler_fn *handler, void *arg);
void http_server_set_body_hook(struct http_server *s, http_body_hook_fn *fn, void *arg);
/* Listens on "host:port" ("127.0.0.1:8400", "[::1]:0", "0.0.0.0:443"). With tls non-NULL
 * every connection is TLS. *bound_port (optional) receives the actual port. */
int http_server_listen(struct http_server *s, const char *addr, struct tls_server_ctx *tls,
                       int *bound_port);
/* Serves an already-connected stream socket (socketpair, inherited fd) as plain HTTP.
 * The server owns fd afterwards. Used by tests and fuzz targets. */
int http_server_adopt(struct http_server *s, int fd, const char *peer);
/* Stops accepting, closes idle connections; held requests and streams stay until done. */
void http_server_shutdown(struct http_server *s);
void http_server_free(struct http_server *s);
size_t http_server_conn_count(const struct http_server *s);

const char *http_request_header(const struct http_request *req, const char *lname);
void http_request_on_close(struct http_request *req, http_close_fn *cb, void *arg);

/* Complete answer. headers may be NULL; content-length is added. */
void http_respond(struct http_request *req, int status, const struct http_header *headers,
                  size_t nheaders, const char *body, size_t body_len);

/* Streaming answer without content-length (connection closes after http_stream_end,
 * keep-alive is not worth the chunked framing for SSE). */
void http_stream_start(struct http_request *req, int status, const struct http_header *headers,
                       size_t nheaders);
/* The same, framed with chunked transfer-coding when the client speaks HTTP/1.1 and
 * the answer has a body: its end is then explicit, so a client can tell an answer that
 * broke off (http_stream_abort) from a complete one, and the connection stays open for
 * the next request (keep-alive as the client asked). For answers without a length
 * relayed from elsewhere; SSE keeps the plain form. An answer without a body (HEAD,
 * 204, 304) ends with its head, keeps the connection, and drops any bytes written. */
void http_stream_start_chunked(struct http_request *req, int status,
                               const struct http_header *headers, size_t nheaders);
/* Returns 0, or AL_E_CLOSED when the peer is gone or too far behind (more than
 * max_output_bytes queued: the connection is then reset, see http_stream_abort). */
int http_stream_write(struct http_request *req, const char *data, size_t len);
void http_stream_end(struct http_request *req);
/* Ends a streamed answer that broke off midway: what is still queued is dropped and
 * the connection closed without the last chunk (chunked), or reset (RST, no TLS
 * close_notify) for a close-delimited body, so the client sees an error instead of a
 * clean, short end. No on_close callback follows. */
void http_stream_abort(struct http_request *req);

/* Back-pressure for an owner relaying from a faster source: how much of the answer
 * is still queued here (not yet taken by the socket), and a callback run each time
 * the socket took some of it (never from inside http_stream_write; cleared when the
 * stream ends). */
typedef void http_drain_fn(struct http_request *req, void *arg);
size_t http_stream_queued(const struct http_request *req);
void http_stream_on_drain(struct http_request *req, http_drain_fn *cb, void *arg);

const char *http_status_text(int status);

/* Query strings: keys and values percent-decoded ('+' is a space), repeated keys kept
 * in order. "types%5B%5D=a&types[]=b" gives two entries with key "types[]". */
struct query_param {
	char *key;
	char *value;
};
struct query {
	struct query_param *params;
	size_t n;
};
int query_parse(const char *qs, struct query *q); /* AL_E_INVAL on bad escapes or > 256 params */
void query_free(struct query *q);
const char *query_get(const struct query *q, const char *key); /* first value or NULL */
/* Percent-decodes in place semantics into a fresh string; rejects %00 and bad escapes. */
int url_decode(const char *s, size_t len, bool plus_is_space, char **out);

#endif
