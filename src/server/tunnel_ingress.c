/* MCP ingress: forwards one client HTTP exchange to a tunnel route as one HTTP/2 stream
 * and relays the answer as it arrives (SSE event by event, never buffered whole).
 * Two entry forms: /v1/tunnels/{id}/routes/{route}/mcp on the API port, and any path
 * on the host-routed ingress listener (Host: <route>.<tunnel domain>). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "auth.h"
#include "err.h"
#include "log.h"
#include "server.h"
#include "tunnel.h"
#include "tunnel_proto.h"
#include "util.h"
#include "xalloc.h"

void tunnel_ingress_host(struct http_request *req, void *arg);

struct ingress {
	struct server *srv;
	struct http_request *req;
	struct api_call *c; /* API-port form; NULL on the host-routed listener */
	struct tunnel_stream *st;
	bool started;
	char rid[48];
};

static void
ingress_free(struct ingress *in)
{
	free(in);
}

/* Error before any byte of the answer went out. */
static void
reply_error(struct ingress *in, int status, const char *type, const char *msg)
{
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

static void
on_head(void *arg, int status, const struct http_header *uh, size_t nuh)
{
	struct ingress *in = arg;
	struct http_header h[72];
	size_t n = 0;
	for (size_t i = 0; i < nuh && n < 64; i++)
		h[n++] = uh[i];
	if (in->c)
		n = api_common_headers(in->c, h, n);
	else
		h[n++] = (struct http_header){"request-id", in->rid};
	in->started = true;
	http_stream_start(in->req, status, h, n);
}

static void
on_data(void *arg, const char *p, size_t len)
{
	struct ingress *in = arg;
	if (http_stream_write(in->req, p, len) != 0) {
		/* Client gone or too far behind: cancel upstream, end here. */
		tunnel_stream_cancel(in->st);
		in->st = NULL;
		finish(in);
	}
}

static void
on_close(void *arg, int err)
{
	struct ingress *in = arg;
	in->st = NULL;
	if (in->started) {
		finish(in);
		return;
	}
	if (err == AL_E_AGAIN)
		reply_error(in, 503, "overloaded_error", "tunnel stream refused; retry");
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
		if (strcmp(nm, "x-api-key") == 0 ||
		    (strip_auth && strcmp(nm, "authorization") == 0) ||
		    strcmp(nm, "content-length") == 0)
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
void
tunnel_ingress_host(struct http_request *req, void *arg)
{
	struct server *s = arg;
	struct principal who;
	char tid[80], route[64];
	const char *host = http_request_header(req, "host");
	struct ingress tmp = {.srv = s, .req = req};
	snprintf(tmp.rid, sizeof(tmp.rid), "req_ingress");
	int r = auth_resolve(s, req, &who);
	if (r != 0 || who.kind != PRINCIPAL_API_KEY) {
		reply_error(&tmp, 401, "authentication_error",
		            "send a server API key in x-api-key (or Authorization: Bearer)");
		return;
	}
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
