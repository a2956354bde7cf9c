/* MCP ingress: forwards one client HTTP exchange to a tunnel route as one HTTP/2 stream
 * and relays the answer as it arrives (SSE event by event, never buffered whole).
 * Two entry forms: /v1/tunnels/{id}/routes/{route}/mcp on the API port, and any path
 * on the host-routed ingress listener (Host: <route>.<tunnel domain>). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "audit.h"
#include "auth.h"
#include "buf.h"
#include "err.h"
#include "log.h"
#include "net.h"
#include "server.h"
#include "tls.h"
#include "tunnel.h"
#include "tunnel_proto.h"
#include "tunnel_store.h"
#include "util.h"
#include "xalloc.h"

static void tunnel_ingress_host(struct http_request *req, void *arg);

/* An answer with a content-length up to this is collected and sent with its length, so
 * the client's connection stays open for the next request (lib/http ends a streamed
 * answer by closing). JSON-RPC replies fit; SSE and bulk bodies stream. */
#define BUFFER_MAX (256u * 1024)
#define MAX_HEADERS 64

struct ingress {
	struct server *srv;
	struct http_request *req;
	struct api_call *c; /* API-port form; NULL on the host-routed listener */
	struct tunnel_stream *st;
	bool started;  /* head sent to the client (streaming) */
	bool buffered; /* collecting a content-length answer in body */
	int status;
	struct buf hdrs; /* buffered: "name\0value\0" pairs */
	size_t nhdrs;
	struct buf body;
	size_t held; /* streamed body bytes not yet acknowledged to the gateway */
	char rid[48];
	char tunnel_id[80], route[64]; /* for the audit record */
};

/* tunnel.request: what passed through the server (method, route, status), never a
 * body or a header. Before any reply: a reply frees the API call. */
static void
ingress_audit(struct ingress *in, int status)
{
	char st[12];
	snprintf(st, sizeof st, "%d", status);
	json_t *res = json_pack("{s:s, s:s, s:s}", "tunnel_id", in->tunnel_id, "route", in->route,
	                        "method", in->req->method);
	if (in->c) {
		audit_api(in->c, "tunnel.request", NULL, st, res);
		return;
	}
	struct audit_event e = {
	    .request_id = in->rid, .action = "tunnel.request", .outcome = st, .resources = res};
	audit_emit(in->srv, &e);
	json_decref(res);
}

static void
ingress_free(struct ingress *in)
{
	buf_free(&in->hdrs);
	buf_free(&in->body);
	free(in);
}

/* Error before any byte of the answer went out. */
static void
reply_error(struct ingress *in, int status, const char *type, const char *msg)
{
	tunnel_count_ingress_error(in->srv);
	ingress_audit(in, status);
	if (in->c) {
		api_reply_error(in->c, status, type, NULL, "%s", msg);
		return;
	}
	json_t *o = json_pack("{s:s, s:{s:s, s:s}, s:s}", "type", "error", "error", "type", type,
	                      "message", msg, "request_id", in->rid);
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	struct http_header h[] = {{"content-type", "application/json"}, {"request-id", in->rid}};
	http_respond(in->req, status, h, 2, s, strlen(s));
	free(s);
}

static void
finish(struct ingress *in)
{
	if (in->c)
		api_stream_end(in->c);
	else
		http_stream_end(in->req);
	ingress_free(in);
}

/* The streamed answer broke off (gateway reset, tunnel connection lost): it ends
 * without its last chunk, or with a TCP reset when it could not be chunked, so the
 * client does not take what arrived for the whole answer (http_stream_abort). */
static void
finish_broken(struct ingress *in)
{
	http_stream_abort(in->req);
	api_call_free(in->c);
	ingress_free(in);
}

/* Back-pressure: the gateway may send the next bytes of a streamed answer only as the
 * client takes the previous ones. What the client's socket took since the last call is
 * acknowledged to the edge (tunnel_stream_release); what still waits here is not, so at
 * most one HTTP/2 stream window sits in this server per slow client. */
static void
release_sent(struct ingress *in)
{
	size_t queued = http_stream_queued(in->req);
	if (in->held > queued) {
		tunnel_stream_release(in->st, in->held - queued);
		in->held = queued;
	}
}

static void
on_client_drain(struct http_request *req, void *arg)
{
	release_sent(arg);
}

/* Sends the collected answer with its length (keep-alive). */
static void
reply_buffered(struct ingress *in)
{
	struct http_header h[MAX_HEADERS + 8];
	size_t n = 0;
	for (size_t off = 0; off < in->hdrs.len && n < MAX_HEADERS;) {
		const char *name = in->hdrs.data + off;
		const char *val = name + strlen(name) + 1;
		off += strlen(name) + strlen(val) + 2;
		h[n++] = (struct http_header){name, val};
	}
	if (in->c) {
		n = api_common_headers(in->c, h, n);
		in->c->status = in->status; /* for the access log */
	} else {
		h[n++] = (struct http_header){"request-id", in->rid};
	}
	http_respond(in->req, in->status, h, n, in->body.data, in->body.len);
	if (in->c)
		api_call_free(in->c);
}

/* A content-length within BUFFER_MAX (and not an event stream) is collected. */
static bool
want_buffer(const struct http_header *uh, size_t nuh)
{
	uint64_t len = UINT64_MAX;
	for (size_t i = 0; i < nuh; i++) {
		if (strcasecmp(uh[i].name, "content-type") == 0 &&
		    strncasecmp(uh[i].value, "text/event-stream", 17) == 0)
			return false;
		if (strcasecmp(uh[i].name, "content-length") == 0 &&
		    parse_uint_cstr(uh[i].value, BUFFER_MAX, &len) != 0)
			return false;
	}
	return len <= BUFFER_MAX;
}

static void
on_head(void *arg, int status, const struct http_header *uh, size_t nuh)
{
	struct ingress *in = arg;
	ingress_audit(in, status);
	if (strcmp(in->req->method, "HEAD") != 0 && want_buffer(uh, nuh)) {
		/* The edge's header strings live only during this call: copy them. */
		in->buffered = true;
		in->status = status;
		buf_init(&in->hdrs, 64 * 1024);
		buf_init(&in->body, BUFFER_MAX);
		for (size_t i = 0; i < nuh && in->nhdrs < MAX_HEADERS; i++) {
			if (strcasecmp(uh[i].name, "content-length") == 0)
				continue; /* http_respond writes its own */
			if (buf_add(&in->hdrs, uh[i].name, strlen(uh[i].name) + 1) != 0 ||
			    buf_add(&in->hdrs, uh[i].value, strlen(uh[i].value) + 1) != 0)
				break;
			in->nhdrs++;
		}
		return;
	}
	struct http_header h[MAX_HEADERS + 8];
	size_t n = 0;
	bool has_length = false;
	for (size_t i = 0; i < nuh && n < MAX_HEADERS; i++) {
		has_length |= strcasecmp(uh[i].name, "content-length") == 0;
		h[n++] = uh[i];
	}
	if (in->c) {
		n = api_common_headers(in->c, h, n);
		in->c->status = status; /* for the access log */
	} else {
		h[n++] = (struct http_header){"request-id", in->rid};
	}
	in->started = true;
	/* Without a length only chunked framing lets the client tell a complete answer
	 * from one that broke off (finish_broken). A HEAD answer's length describes no
	 * bytes that follow: lib/http ends it with its head and keeps the connection. */
	if (has_length && strcmp(in->req->method, "HEAD") != 0)
		http_stream_start(in->req, status, h, n);
	else
		http_stream_start_chunked(in->req, status, h, n);
	tunnel_stream_hold(in->st);
	http_stream_on_drain(in->req, on_client_drain, in);
}

static void
on_data(void *arg, const char *p, size_t len)
{
	struct ingress *in = arg;
	if (in->buffered) {
		if (buf_add(&in->body, p, len) != 0) { /* more than the announced length */
			tunnel_stream_cancel(in->st);
			in->st = NULL;
			reply_error(in, 502, "api_error",
			            "upstream answer larger than its content-length");
			ingress_free(in);
		}
		return;
	}
	in->held += len;
	if (http_stream_write(in->req, p, len) != 0) {
		/* Client gone (or, despite the window, too far behind): cancel upstream. */
		tunnel_stream_cancel(in->st);
		in->st = NULL;
		finish_broken(in);
		return;
	}
	release_sent(in);
}

static void
on_close(void *arg, int err)
{
	struct ingress *in = arg;
	in->st = NULL;
	if (in->started) {
		if (err != 0)
			finish_broken(in);
		else
			finish(in);
		return;
	}
	if (in->buffered && err == 0) {
		reply_buffered(in);
		ingress_free(in);
		return;
	}
	if (err == AL_E_AGAIN)
		reply_error(in, 503, "overloaded_error", "tunnel stream refused; retry");
	else if (err == AL_E_PROTO)
		reply_error(in, 502, "api_error",
		            "inner TLS with the gateway failed (the server log says why)");
	else
		reply_error(in, 502, "api_error", "tunnel connection lost before the answer");
	ingress_free(in);
}

static const struct tunnel_stream_cb stream_cb = {on_head, on_data, on_close};

static void
api_closed(struct api_call *c)
{
	struct ingress *in = c->owner;
	tunnel_stream_cancel(in->st);
	ingress_free(in);
}

static void
http_closed(struct http_request *req, void *arg)
{
	struct ingress *in = arg;
	tunnel_stream_cancel(in->st);
	ingress_free(in);
}

void
tunnel_ingress_forward(struct server *s, struct http_request *req, struct api_call *c,
                       const char *tunnel_id, const char *route, const char *path)
{
	struct ingress *in = xcalloc(1, sizeof(*in));
	struct http_header *h = xcalloc(req->nheaders + 1, sizeof(*h));
	size_t n = 0;
	in->srv = s;
	in->req = req;
	in->c = c;
	snprintf(in->tunnel_id, sizeof(in->tunnel_id), "%s", tunnel_id);
	snprintf(in->route, sizeof(in->route), "%s", route);
	if (c)
		snprintf(in->rid, sizeof(in->rid), "%s", c->request_id);
	else {
		char *rid = id_new("req_");
		snprintf(in->rid, sizeof(in->rid), "%s", rid);
		free(rid);
	}
	/* The airlock credential ends here. x-api-key wins when both are sent (as in
	 * auth_resolve), and then Authorization is the upstream's own bearer token
	 * (MCP OAuth), forwarded untouched. */
	const char *xk = http_request_header(req, "x-api-key");
	bool strip_auth = xk == NULL || *xk == '\0';
	for (size_t i = 0; i < req->nheaders; i++) {
		const char *nm = req->headers[i].name;
		/* A client that sends the server key both ways must not hand it upstream in
		 * Authorization. Expect was answered here (lib/http sent the 100) and the
		 * body is complete: the upstream has nothing to continue. */
		bool auth = strcmp(nm, "authorization") == 0;
		const char *bearer = auth ? auth_bearer(req->headers[i].value) : NULL;
		bool server_key = auth && (strip_auth || (bearer && strcmp(bearer, xk) == 0));
		if (server_key || strcmp(nm, "x-api-key") == 0 ||
		    strcmp(nm, "content-length") == 0 || strcmp(nm, "expect") == 0)
			continue;
		h[n++] = req->headers[i];
	}
	struct tunnel_request rq = {
	    .tunnel_id = tunnel_id,
	    .route = route,
	    .method = req->method,
	    .path = path,
	    .headers = h,
	    .nheaders = n,
	    .body = req->body.data,
	    .body_len = req->body.len,
	};
	int r = tunnel_stream_open(s, &rq, &stream_cb, in, &in->st);
	free(h);
	switch (r) {
	case 0:
		break;
	case AL_E_NOTFOUND:
		reply_error(in, 404, "not_found_error", "tunnel not found");
		goto fail;
	case AL_E_AGAIN:
		reply_error(in, 503, "overloaded_error", "no gateway connected for this tunnel");
		goto fail;
	case AL_E_UNSUPPORTED:
		reply_error(in, 503, "api_error", "the tunnel edge is not enabled on this server");
		goto fail;
	case AL_E_INVAL:
		reply_error(in, 400, "invalid_request_error", "invalid route or request");
		goto fail;
	case AL_E_PERM:
		reply_error(in, 503, "api_error",
		            "the tunnel has no active certificate: register its CA "
		            "(/v1/tunnels/{id}/certificates)");
		goto fail;
	default:
		reply_error(in, 500, "api_error", "internal error");
		goto fail;
	}
	log_debug("tunnel ingress", "tunnel_id", tunnel_id, "route", route, "method", req->method,
	          "request_id", in->rid);
	if (c)
		api_hold(c, in, api_closed);
	else
		http_request_on_close(req, http_closed, in);
	return;
fail:
	ingress_free(in);
}

/* Host-routed listener: https://<route>.<label>.<tunnel_domain>/<any path>. */
int
tunnel_resolve_host(struct server *s, const char *host, char *tunnel_id, char *route)
{
	char h[256];
	int r;
	size_t hl = strlen(host);
	if (hl == 0 || hl >= sizeof(h))
		return AL_E_NOTFOUND;
	/* Lower-case and drop the port. */
	for (size_t i = 0; i <= hl; i++)
		h[i] = (char)((host[i] >= 'A' && host[i] <= 'Z') ? host[i] + 32 : host[i]);
	char *colon = strrchr(h, ':');
	if (colon && h[0] != '[')
		*colon = '\0';
	char *dot = strchr(h, '.');
	if (dot == NULL || dot == h || (size_t)(dot - h) >= 64)
		return AL_E_NOTFOUND;
	*dot = '\0';
	if ((r = tunnel_store_find_domain(s->db, dot + 1, tunnel_id, 80)) == 0)
		memcpy(route, h, (size_t)(dot - h) + 1); /* < 64, checked above */
	return r;
}

static void
tunnel_ingress_host(struct http_request *req, void *arg)
{
	struct server *s = arg;
	struct principal who;
	char tid[80], route[64];
	const char *host = http_request_header(req, "host");
	struct ingress tmp = {.srv = s, .req = req};
	char *rid = id_new("req_"); /* each answer its own, as the API's */
	snprintf(tmp.rid, sizeof(tmp.rid), "%s", rid);
	free(rid);
	int r = auth_resolve(s, req, &who, NULL, 0);
	if (r != 0 || who.kind != PRINCIPAL_API_KEY) {
		/* The same words as the API's path form: none, unknown, or the wrong kind. */
		char msg[160];
		int st = r == AL_E_IO ? 500 : r != 0 ? 401 : 403;
		if (r == AL_E_IO)
			snprintf(msg, sizeof(msg), "cannot check the credential");
		else if (r == AL_E_INVAL)
			snprintf(msg, sizeof(msg),
			         "missing credentials: send a server API key in "
			         "x-api-key or Authorization: Bearer");
		else if (r != 0)
			snprintf(msg, sizeof(msg), "invalid x-api-key or bearer token");
		else
			snprintf(msg, sizeof(msg),
			         "%s cannot be used for tunnel ingress: send a server API key",
			         auth_kind_phrase(who.kind));
		log_warn("authentication failed", "request_id", tmp.rid, "method", req->method,
		         "route", "tunnel ingress (host)", "peer", req->peer, "credential",
		         who.cred, "reason", r == 0 ? "not a server API key" : who.fail, "key_id",
		         who.key_id[0] ? who.key_id : "-");
		auth_principal_reset(&who);
		reply_error(&tmp, st,
		            st == 500   ? "api_error"
		            : st == 401 ? "authentication_error"
		                        : "permission_error",
		            msg);
		return;
	}
	auth_principal_reset(&who);
	if (host == NULL || tunnel_resolve_host(s, host, tid, route) != 0) {
		reply_error(&tmp, 404, "not_found_error", "no route for host");
		return;
	}
	if (req->target[0] != '/') {
		reply_error(&tmp, 400, "invalid_request_error", "origin-form request target only");
		return;
	}
	tunnel_ingress_forward(s, req, NULL, tid, route, req->target);
}

/* ---- the host-routed listener ---- */

struct tunnel_ingress {
	struct http_server *http;
	struct tls_server_ctx *tls; /* off loopback: the API certificate */
};

int
tunnel_ingress_start(struct server *s)
{
	const char *addr = s->cfg.tunnel.ingress_listen;
	char err[512], port[16];
	int r, p = 0;
	if (s->tunnel == NULL || addr == NULL || *addr == '\0')
		return 0;
	struct tunnel_ingress *in = xcalloc(1, sizeof(*in));
	s->tunnel_ingress = in;
	if (!net_addr_is_loopback(addr)) {
		if (s->cfg.tls_cert_file == NULL) {
			log_error("tunnel ingress off loopback needs --tls-cert/--tls-key", NULL);
			return AL_E_INVAL;
		}
		in->tls = tls_server_ctx_new(s->cfg.tls_cert_file, s->cfg.tls_key_file, NULL, err,
		                             sizeof(err));
		if (in->tls == NULL) {
			log_error("tunnel ingress TLS", "error", err);
			return AL_E_INVAL;
		}
	}
	in->http = http_server_new(s->loop, NULL, tunnel_ingress_host, s);
	if ((r = http_server_listen(in->http, addr, in->tls, &p)) != 0) {
		log_error("cannot listen for tunnel ingress", "addr", addr, "error",
		          al_strerror(r));
		return r; /* freed by tunnel_ingress_stop */
	}
	snprintf(port, sizeof(port), "%d", p);
	log_info("tunnel ingress ready", "addr", addr, "port", port);
	return 0;
}

/* The drain (server_drain.c): new ingress connections are refused like the API's;
 * requests being relayed finish. */
void
tunnel_ingress_drain(struct server *s)
{
	if (s->tunnel_ingress != NULL && s->tunnel_ingress->http != NULL)
		http_server_shutdown(s->tunnel_ingress->http);
}

size_t
tunnel_ingress_conn_count(struct server *s)
{
	if (s->tunnel_ingress == NULL || s->tunnel_ingress->http == NULL)
		return 0;
	return http_server_conn_count(s->tunnel_ingress->http);
}

void
tunnel_ingress_stop(struct server *s)
{
	struct tunnel_ingress *in = s->tunnel_ingress;
	if (in == NULL)
		return;
	if (in->http) {
		http_server_shutdown(in->http);
		http_server_free(in->http);
	}
	tls_server_ctx_free(in->tls);
	free(in);
	s->tunnel_ingress = NULL;
}

int
tunnel_ingress_reload_tls(struct server *s, char *what, size_t whatlen)
{
	struct tunnel_ingress *in = s->tunnel_ingress;
	char err[512];
	if (in == NULL || in->tls == NULL)
		return 0;
	if (tls_server_ctx_reload(in->tls, s->cfg.tls_cert_file, s->cfg.tls_key_file, err,
	                          sizeof(err)) != 0) {
		log_error("tunnel ingress certificate not reloaded; keeping the running one",
		          "error", err);
		return AL_E_INVAL;
	}
	size_t n = strlen(what);
	snprintf(what + n, whatlen - n, "%stunnel ingress certificate", n ? ", " : "");
	return 0;
}
