/* MCP tunnels in the control plane: the /v1/tunnels resources (tunnel_api.c), the TLS
 * edge that gateways dial (tunnel_edge.c) and the ingress that forwards MCP HTTP
 * exchanges through it (tunnel_ingress.c). See docs/server/tunnels.md. */
#ifndef AL_SERVER_TUNNEL_H
#define AL_SERVER_TUNNEL_H

#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "http.h"

struct server;
struct tunnel_stream;

/* Starts the edge when s->cfg.tunnel.listen is set (--tunnel-listen,
 * AIRLOCK_TUNNEL_LISTEN). Without the edge the /v1/tunnels routes still answer (resources
 * can be provisioned ahead). */
int tunnel_start(struct server *s);
void tunnel_stop(struct server *s);
/* SIGHUP: loads the edge's certificate files again (same paths); appends what was
 * reloaded to what ("a, b"). A pair that does not load is logged and the running one
 * kept (AL_E_INVAL). 0 when the edge is off. */
int tunnel_reload_tls(struct server *s, char *what, size_t whatlen);

/* The host-routed ingress listener (tunnel_ingress.c), started after the edge when
 * s->cfg.tunnel.ingress_listen is set and the edge runs; off loopback it serves TLS with
 * the API certificate. Stopped before the edge; its certificate reloads like the edge's. */
int tunnel_ingress_start(struct server *s);
void tunnel_ingress_stop(struct server *s);
/* The drain: the ingress listener closes, requests in flight finish (docs/server/drain.md). */
void tunnel_ingress_drain(struct server *s);
size_t tunnel_ingress_conn_count(struct server *s);
int tunnel_ingress_reload_tls(struct server *s, char *what, size_t whatlen);

/* Response side of one exchange. Callbacks never run after tunnel_stream_cancel() or
 * after on_close. on_head gets the status and the response headers (lower-case names,
 * hop-by-hop removed); on_data gets body bytes as they arrive (SSE is not buffered);
 * on_close gets 0 when the response ended normally, else AL_E_* (AL_E_CLOSED: reset
 * or connection lost). */
struct tunnel_stream_cb {
	void (*on_head)(void *arg, int status, const struct http_header *h, size_t nh);
	void (*on_data)(void *arg, const char *p, size_t n);
	void (*on_close)(void *arg, int err);
};

struct tunnel_request {
	const char *tunnel_id;
	const char *route;                 /* bare route name (subdomain), e.g. "echo" */
	const char *method;                /* GET, POST, DELETE, ... */
	const char *path;                  /* origin-form path and query, e.g. "/mcp?x=1" */
	const struct http_header *headers; /* end-to-end headers to forward */
	size_t nheaders;
	const char *body; /* copied; may be NULL */
	size_t body_len;
};

/* Opens one HTTP/2 stream on the least-loaded live connection of the tunnel.
 * Returns 0, AL_E_NOTFOUND (no such live tunnel), AL_E_AGAIN (no gateway connected),
 * AL_E_UNSUPPORTED (edge not running), AL_E_INVAL (bad route or headers). */
int tunnel_stream_open(struct server *s, const struct tunnel_request *req,
                       const struct tunnel_stream_cb *cb, void *arg, struct tunnel_stream **out);
/* Resets the stream (the gateway cancels the upstream request); no more callbacks. */
void tunnel_stream_cancel(struct tunnel_stream *st);
/* Flow control towards the gateway. Body bytes are acknowledged (the stream's HTTP/2
 * window reopened) when on_data returns, unless the owner called tunnel_stream_hold()
 * (e.g. in on_head): then only by tunnel_stream_release(st, n), as n of them leave the
 * owner's hands. The gateway never has more than one stream window (4 MiB) of a held
 * stream unacknowledged, which bounds what the owner must keep for a slow reader. */
void tunnel_stream_hold(struct tunnel_stream *st);
void tunnel_stream_release(struct tunnel_stream *st, size_t n);
/* Counts an error answer the ingress made itself (airlock_tunnel_ingress_errors_total). */
void tunnel_count_ingress_error(struct server *s);

/* Resolves a URL host "<route>.<label>.<tunnel_domain>" to a live tunnel id and route
 * (tunnel_ingress.c; the MCP client uses it too). Returns 0 or AL_E_NOTFOUND. tunnel_id
 * needs 80 bytes, route 64. */
int tunnel_resolve_host(struct server *s, const char *host, char *tunnel_id, char *route);

/* Inner TLS (tunnel_inner.c): drops what is cached for the tunnel (its trusted CAs and
 * resumable session) after its certificates changed; the next stream loads them again. */
void tunnel_inner_forget(struct server *s, const char *tunnel_id);

/* Edge bookkeeping used by the API module. */
void tunnel_edge_close_tunnel(struct server *s, const char *tunnel_id); /* archive */
/* The server drains: GOAWAY(NO_ERROR) to every gateway, so it opens nothing new here,
 * logs a drain rather than a loss, and reconnects (to the next server); streams in
 * flight finish. */
void tunnel_edge_drain(struct server *s);
unsigned tunnel_edge_conn_count(struct server *s, const char *tunnel_id);
/* The tunnel's live gateway connections (registered, not closing) as a JSON array of
 * tunnel_connection objects, in no promised order; empty when the edge is off. */
json_t *tunnel_edge_connections(struct server *s, const char *tunnel_id);
/* The edge's Prometheus families (connections, handshake failures, protocol errors,
 * streams...) appended to b; nothing when the edge is off. */
void tunnel_edge_metrics_render(struct server *s, struct buf *b);
const char *tunnel_domain(struct server *s); /* configured suffix, e.g. "tunnel.localhost" */

/* Ingress entry shared by the API route and the host-routed listener. cred_header is
 * the lower-case header that carried the airlock credential (stripped before
 * forwarding); the handler replies through finish callbacks it owns. */
void tunnel_ingress_forward(struct server *s, struct http_request *req, struct api_call *c,
                            const char *tunnel_id, const char *route, const char *path);

extern const struct api_route tunnel_routes[];

#endif
