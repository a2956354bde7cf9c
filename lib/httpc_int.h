/* Internals shared by lib/httpc.c (the public entry points and the libcurl transport)
 * and lib/httpc_native.c (our own HTTP/1.1 transport). Not for callers. */
#ifndef AL_HTTPC_INT_H
#define AL_HTTPC_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <llhttp.h>

#include "buf.h"
#include "httpc.h"
#include "loop.h"

struct curl_slist;
struct hconn;
struct ssl_ctx_st;

#define HTTPC_ERRBUF 256 /* >= CURL_ERROR_SIZE, checked in httpc.c */

struct httpc_xfer {
	struct httpc *c;
	struct buf body;
	struct buf resp_hdrs; /* "lowercased-name\0trimmed value\0" pairs of the last head */
	int status;
	int cb_err;
	bool cancelled;
	bool in_done; /* its on_done is running: cancel is a no-op */
	httpc_head_fn *on_head;
	httpc_data_fn *on_data;
	httpc_done_fn *on_done;
	httpc_release_fn *on_release; /* set once httpc_start succeeded */
	void *arg;
	char errbuf[HTTPC_ERRBUF];
	struct httpc_xfer *prev, *next;
	/* libcurl transport */
	void *easy; /* CURL * */
	struct curl_slist *hdrs;
	char *body_copy;
	bool added; /* handed to the multi handle */
	/* native transport (httpc_native.c) */
	struct hconn *conn;
	char *req; /* the whole request: head and body */
	size_t req_len;
	char *origin; /* "scheme://host:port": the pool key */
	char *host;   /* for getaddrinfo, SNI and certificate checks; no brackets */
	char port[8];
	bool tls;
	bool head_only;
	bool retried;    /* already re-sent once after a stale pooled connection */
	bool stream_any; /* on_data for every final status */
	bool paused;     /* on_data returned HTTPC_PAUSE; httpc_resume not yet run */
	unsigned connect_ms, timeout_ms, idle_ms;
	uint64_t last_rx;
	/* t_start: the first connect, later the run after httpc_resume */
	struct loop_timer *t_start, *t_total, *t_idle;
};

struct httpc {
	struct loop *l;
	bool native;
	char *ca_file;
	bool include_system_cas;
	char *user_agent;
	struct httpc_xfer *xfers;
	size_t n;
	int depth; /* >0 while a transport is on the stack (callbacks may run) */
	bool need_sweep;
	/* libcurl transport */
	void *multi; /* CURLM * */
	struct loop_timer *timer;
	/* native transport */
	llhttp_settings_t settings;
	struct hconn *idle; /* kept-alive connections, newest first */
	size_t nidle;
	struct ssl_ctx_st *tls_ctx; /* created by the first https connection */
	size_t max_idle;
	httpc_addr_check_fn *addr_check;
	void *addr_check_arg;
	char *rbuf; /* one read buffer for all connections: reads never nest */
};

/* Frees a transfer and whatever its transport holds (no callback). */
void httpc_xfer_destroy(struct httpc_xfer *x);

void httpc_native_init(struct httpc *c);
void httpc_native_free(struct httpc *c);
/* Validates and queues x (already linked into c->xfers); it starts from a zero-delay
 * timer so that no callback runs inside httpc_start. */
int httpc_native_start(struct httpc_xfer *x, const struct httpc_request *req);
/* Releases x's connection and timers; called by httpc_xfer_destroy. */
void httpc_native_release(struct httpc_xfer *x);
void httpc_native_resume(struct httpc_xfer *x);
/* Drops the TLS context and pooled https connections (new CA options). */
void httpc_native_tls_reset(struct httpc *c);
/* Closes pooled connections: all, or only the https ones. */
void httpc_native_close_idle(struct httpc *c, bool tls_only);

#endif
