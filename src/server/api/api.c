/* REST dispatch: request-id, credential resolution, route matching, JSON body
 * parsing and the reference error envelope; see api.h and docs/server/api.md. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "audit.h"
#include "auth.h"
#include "buf.h"
#include "console.h"
#include "db.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "routes.h"
#include "server.h"
#include "skills.h"
#include "util.h"
#include "xalloc.h"

static const struct api_route *const route_tables[] = {ROUTE_TABLES};

size_t
api_common_headers(struct api_call *c, struct http_header *h, size_t n)
{
	h[n++] = (struct http_header){"request-id", c->request_id};
	const char *ws = http_request_header(c->http, "anthropic-workspace-id");
	if (ws && strlen(ws) < 128)
		h[n++] = (struct http_header){"anthropic-workspace-id", ws};
	return n;
}

void
api_reply_json(struct api_call *c, int status, json_t *body)
{
	struct http_header h[8];
	size_t n = 0;
	char *s = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(body);
	if (s == NULL)
		s = xstrdup("null");
	h[n++] = (struct http_header){"content-type", "application/json"};
	n = api_common_headers(c, h, n);
	if (status == 400 || status == 404 || status == 409 || status == 412 || status == 413)
		h[n++] = (struct http_header){"x-should-retry", "false"};
	c->status = status;
	http_respond(c->http, status, h, n, s, strlen(s));
	secret_free(s); /* an answer may hold a secret (egress_secrets, a key's one reveal) */
	api_call_free(c);
}

void
api_reply_error_details(struct api_call *c, int status, const char *type, json_t *details,
                        const char *message)
{
	/* A store failure while the database server is out of reach is not our bug: the
	 * client is told so, and to retry (the connection comes back without a restart). */
	if (status == 500 && c->srv->db && db_unavailable(c->srv->db)) {
		status = 503;
		message = "the database is unreachable; try again shortly";
	}
	json_t *err = json_pack("{s:s, s:s}", "type", type, "message", message);
	if (details)
		json_object_set_new(err, "details", details);
	json_t *o = json_pack("{s:s, s:o, s:s}", "type", "error", "error", err, "request_id",
	                      c->request_id);
	api_reply_json(c, status, o);
}

void
api_reply_error(struct api_call *c, int status, const char *type, const char *error_code,
                const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_t *details = error_code ? json_pack("{s:s}", "error_code", error_code) : NULL;
	api_reply_error_details(c, status, type, details, msg);
}

/* How each library error answers a client; anything else is ours (500, logged). */
static const struct {
	int err, status;
	const char *type;
} err_replies[] = {
    {AL_E_INVAL, 400, "invalid_request_error"},   {AL_E_TOOBIG, 413, "invalid_request_error"},
    {AL_E_AUTH, 401, "authentication_error"},     {AL_E_PERM, 403, "permission_error"},
    {AL_E_NOTFOUND, 404, "not_found_error"},      {AL_E_CONFLICT, 409, "invalid_request_error"},
    {AL_E_PRECOND, 412, "invalid_request_error"}, {AL_E_TIMEOUT, 504, "timeout_error"},
    {AL_E_AGAIN, 529, "overloaded_error"},
};

void
api_reply_err(struct api_call *c, int err, const char *message)
{
	for (size_t i = 0; i < ARRAY_LEN(err_replies); i++)
		if (err_replies[i].err == err) {
			api_reply_error(c, err_replies[i].status, err_replies[i].type, NULL, "%s",
			                message);
			return;
		}
	log_error("internal error", "request_id", c->request_id, "error", al_strerror(err),
	          "detail", message);
	api_reply_error(c, 500, "api_error", NULL, "internal error");
}

bool
api_body_hook(struct http_request *req, struct http_body_sink *sink, void *srv)
{
	if (strcmp(req->method, "POST") != 0)
		return false;
	if (strcmp(req->path, "/v1/files") == 0)
		return files_upload_hook(srv, req, sink);
	/* /v1/skills and /v1/skills/{id}/versions */
	if (strcmp(req->path, "/v1/skills") == 0)
		return skills_upload_hook(srv, req, sink);
	if (strncmp(req->path, "/v1/skills/", 11) == 0) {
		const char *id = req->path + 11, *slash = strchr(id, '/');
		if (slash && slash > id && strcmp(slash, "/versions") == 0)
			return skills_upload_hook(srv, req, sink);
	}
	return false;
}

static void
held_closed(struct http_request *req, void *arg)
{
	struct api_call *c = arg;
	if (c->on_close)
		c->on_close(c);
	api_call_free(c);
}

void
api_hold(struct api_call *c, void *owner, void (*on_close)(struct api_call *c))
{
	c->held = true;
	c->owner = owner;
	c->on_close = on_close;
	http_request_on_close(c->http, held_closed, c);
}

void
api_stream_end(struct api_call *c)
{
	http_stream_end(c->http);
	api_call_free(c);
}

/* One line per request, when it is over (answered, stream ended, or the client left):
 * what an operator needs to find a request again and see who made it, never the
 * credential. The route is the template, so ids in paths do not make every line
 * unique to a log index; the request id ties it to the error envelope. */
static void
access_log(struct api_call *c)
{
	struct timespec now;
	char status[16], ms[32];
	clock_gettime(CLOCK_MONOTONIC, &now);
	double d =
	    (double)(now.tv_sec - c->t0.tv_sec) * 1e3 + (double)(now.tv_nsec - c->t0.tv_nsec) / 1e6;
	snprintf(ms, sizeof(ms), "%.3f", d);
	if (c->status > 0)
		snprintf(status, sizeof(status), "%d", c->status);
	else
		snprintf(status, sizeof(status), "-"); /* the client left before an answer */
	log_info("request", "request_id", c->request_id, "method", c->method, "route",
	         c->route ? c->route->pattern : "-", "status", status, "ms", ms, "credential",
	         c->who.cred ? c->who.cred : "-", "key_id", c->who.key_id[0] ? c->who.key_id : "-",
	         "peer", c->peer);
}

void
api_call_free(struct api_call *c)
{
	if (c == NULL)
		return;
	if (c->srv != NULL) {
		access_log(c);
		metrics_observe(c->srv, c->route ? c->route->pattern : NULL, c->status, &c->t0);
	}
	query_free(&c->query);
	json_decref(c->body);
	auth_principal_reset(&c->who);
	free(c);
}

int
api_body_required(struct api_call *c)
{
	if (c->body == NULL) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "request body must be a JSON object");
		return AL_E_INVAL;
	}
	return 0;
}

int
api_body_only(struct api_call *c, const char *const *allowed)
{
	const char *k;
	json_t *v;
	if (c->body == NULL)
		return 0;
	json_object_foreach(c->body, k, v)
	{
		bool ok = false;
		for (size_t i = 0; allowed[i]; i++)
			if (strcmp(k, allowed[i]) == 0)
				ok = true;
		if (!ok) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "%s: Extra inputs are not permitted", k);
			return AL_E_INVAL;
		}
	}
	return 0;
}

char *
api_page_cursor(int64_t seq, bool desc)
{
	char raw[64];
	int n = snprintf(raw, sizeof(raw), "%c%lld", desc ? 'd' : 'a', (long long)seq);
	return base64url_encode(raw, (size_t)n);
}

int
api_page_parse(struct api_call *c, unsigned dflt, unsigned max, bool default_desc,
               struct page_req *out)
{
	const char *limit = query_get(&c->query, "limit");
	const char *page = query_get(&c->query, "page");
	const char *order = query_get(&c->query, "order");
	uint64_t v;
	out->limit = dflt;
	out->has_cursor = false;
	out->after_seq = 0;
	out->desc = default_desc;
	if (limit) {
		if (parse_uint_cstr(limit, max, &v) != 0 || v < 1) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "limit: must be an integer between 1 and %u", max);
			return AL_E_INVAL;
		}
		out->limit = (unsigned)v;
	}
	if (order) {
		if (strcmp(order, "asc") == 0)
			out->desc = false;
		else if (strcmp(order, "desc") == 0)
			out->desc = true;
		else {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "order: must be 'asc' or 'desc'");
			return AL_E_INVAL;
		}
	}
	if (page && *page) {
		unsigned char *raw = NULL;
		size_t rl = 0;
		if (strlen(page) > 64 || base64_decode_any(page, strlen(page), &raw, &rl) != 0 ||
		    rl < 2 || (raw[0] != 'a' && raw[0] != 'd') ||
		    parse_uint((const char *)raw + 1, rl - 1, INT64_MAX, &v) != 0) {
			free(raw);
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "page: invalid cursor");
			return AL_E_INVAL;
		}
		bool cdesc = raw[0] == 'd';
		free(raw);
		if (order && cdesc != out->desc) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "page: cursor was issued for a different order");
			return AL_E_INVAL;
		}
		out->desc = cdesc;
		out->has_cursor = true;
		out->after_seq = (int64_t)v;
	}
	return 0;
}

int
api_metadata(struct api_call *c, json_t *in, json_t *base, bool patch, json_t **out)
{
	const char *k;
	json_t *v;
	if (!json_is_object(in)) {
		api_reply_error(c, 400, "invalid_request_error", "invalid_metadata",
		                "metadata: must be an object");
		return AL_E_INVAL;
	}
	json_t *m = base && patch ? json_deep_copy(base) : json_object();
	json_object_foreach(in, k, v)
	{
		if (strlen(k) == 0 || strlen(k) > 64) {
			api_reply_error(c, 400, "invalid_request_error", "invalid_metadata",
			                "metadata: keys must be 1 to 64 characters");
			goto fail;
		}
		if (json_is_null(v) && patch) {
			json_object_del(m, k);
			continue;
		}
		if (!json_is_string(v) || json_string_length(v) > 512) {
			api_reply_error(
			    c, 400, "invalid_request_error", "invalid_metadata",
			    "metadata.%s: values must be strings of at most 512 characters", k);
			goto fail;
		}
		json_object_set(m, k, v);
	}
	if (json_object_size(m) > 16) {
		api_reply_error(c, 400, "invalid_request_error", "invalid_metadata",
		                "metadata: at most 16 keys");
		goto fail;
	}
	*out = m;
	return 0;
fail:
	json_decref(m);
	return AL_E_INVAL;
}

json_t *
api_time(int64_t real_us)
{
	char ts[32];
	if (real_us == 0)
		return json_null();
	time_fmt_rfc3339(real_us, ts);
	return json_string(ts);
}

/* Matches "/v1/agents/{}/versions" against path, capturing {} segments. */
static bool
route_match(const char *pattern, const char *path, const char **caps, char *capbuf,
            size_t capbuf_len)
{
	size_t ncap = 0, used = 0;
	const char *p = pattern, *s = path;
	while (*p && *s) {
		/* trailing wildcard: the rest, slashes included. Tested by hand, not strcmp: this
		 * runs at every byte of every pattern tried, once per request per route. */
		if (p[0] == '{' && p[1] == '*' && p[2] == '}' && p[3] == '\0') {
			if (ncap >= 3)
				return false;
			caps[ncap++] = s; /* points into path: no capbuf bound on its length */
			return true;
		}
		if (p[0] == '{' && p[1] == '}') {
			const char *end = strchr(s, '/');
			size_t n = end ? (size_t)(end - s) : strlen(s);
			if (n == 0 || ncap >= 3 || used + n + 1 > capbuf_len)
				return false;
			memcpy(capbuf + used, s, n);
			capbuf[used + n] = '\0';
			caps[ncap++] = capbuf + used;
			used += n + 1;
			s += n;
			p += 2;
			continue;
		}
		if (*p != *s)
			return false;
		p++;
		s++;
	}
	/* tolerate one trailing slash */
	if (*p == '\0' && s[0] == '/' && s[1] == '\0')
		return true;
	return *p == '\0' && *s == '\0';
}

/* Replaces every U+0000 in the strings of v with U+FFFD. Only values can hold one
 * (jansson refuses NUL in keys); the parser's depth limit bounds the recursion. */
static void
nul_replace(json_t *v)
{
	static const char fffd[] = "\xef\xbf\xbd";
	if (json_is_string(v)) {
		const char *p = json_string_value(v);
		size_t len = json_string_length(v);
		if (memchr(p, '\0', len) == NULL)
			return;
		struct buf b;
		buf_init(&b, len * 3 + 1);
		for (size_t i = 0; i < len; i++) {
			/* cannot fail: the bound is three bytes per input byte */
			if (p[i] == '\0')
				(void)buf_add(&b, fffd, 3);
			else
				(void)buf_add(&b, p + i, 1);
		}
		(void)json_string_setn(v, b.data, b.len);
		buf_free(&b);
	} else if (json_is_array(v)) {
		size_t i;
		json_t *e;
		json_array_foreach(v, i, e) nul_replace(e);
	} else if (json_is_object(v)) {
		const char *k;
		json_t *e;
		json_object_foreach(v, k, e) nul_replace(e);
	}
}

/* Authentication, the route's credential check, the body, then the handler. Runs again
 * after a held call's key refetch. */
static void dispatch_route(struct api_call *c);

static void
refetch_abandoned(struct api_call *c)
{
	/* at shutdown the identity module goes before the listener drops held calls */
	if (c->srv->oidc != NULL)
		oidc_forget(c->srv->oidc, c);
}

static void
keys_refetched(void *arg, int r)
{
	struct api_call *c = arg;
	(void)r; /* a failed refetch leaves the old keys: authentication says what is wrong */
	http_request_on_close(c->http, NULL, NULL);
	c->held = false;
	c->on_close = NULL;
	c->owner = NULL;
	dispatch_route(c);
}

static void
dispatch_route(struct api_call *c)
{
	const struct api_route *route = c->route;
	char why[256];
	auth_principal_reset(&c->who);
	if (route->creds & API_PUBLIC) {
		route->fn(c);
		return;
	}
	/* the web console's script: its cookie and CSRF header, only when no API
	 * credential was sent (console/console.c) */
	bool console = console_request(c->http);
	int r = console ? console_auth(c->srv, c->http, &c->who, why, sizeof(why))
	                : auth_resolve(c->srv, c->http, &c->who, why, sizeof(why));
	if (r == AL_E_NOTFOUND && !c->keys_refetched &&
	    oidc_refresh(c->srv->oidc, keys_refetched, c) == 0) {
		/* a user token signed by a key we have not seen: the IdP rotated its keys.
		 * Hold the call until the key set is fetched again, then authenticate anew. */
		c->keys_refetched = true;
		api_hold(c, c->srv->oidc, refetch_abandoned);
		return;
	}
	if (r == AL_E_AGAIN) {
		api_reply_error(c, 503, "api_error", NULL,
		                "cannot verify user tokens yet: %s; try again shortly", why);
		return;
	}
	if (r == AL_E_IO) {
		api_reply_err(c, r, "cannot check the credential"); /* a store failure: 500 */
		return;
	}
	if (r != 0) {
		/* what was presented and why it failed, never the credential itself */
		log_warn("authentication failed", "request_id", c->request_id, "method",
		         c->http->method, "route", route->pattern, "peer", c->http->peer,
		         "credential", c->who.cred, "reason", why[0] ? why : c->who.fail, "key_id",
		         c->who.key_id[0] ? c->who.key_id : "-");
		audit_api(c, "auth.fail", "deny", "401",
		          json_pack("{s:s, s:s, s:s?, s:s?, s:s}", "method", c->http->method,
		                    "route", route->pattern, "credential", c->who.cred, "reason",
		                    why[0] ? why : c->who.fail, "key_id", c->who.key_id));
		if (console)
			api_reply_error(c, r == AL_E_PERM ? 403 : 401,
			                r == AL_E_PERM ? "permission_error"
			                               : "authentication_error",
			                NULL, "console: %s", why);
		else if (why[0] != '\0')
			api_reply_error(c, 401, "authentication_error", NULL,
			                "invalid user token: %s", why);
		else
			api_reply_error(c, 401, "authentication_error", NULL, "%s",
			                r == AL_E_AUTH ? "invalid x-api-key or bearer token"
			                               : "missing credentials: send x-api-key or "
			                                 "Authorization: Bearer");
		return;
	}
	if (c->who.kind == PRINCIPAL_USER) {
		/* users act within what a server API key may do, as far as their role goes */
		if (!(route->creds & PRINCIPAL_API_KEY) ||
		    !auth_user_may(c->who.role, route->method, route->pattern)) {
			audit_api(c, "auth.denied", "deny", "403",
			          json_pack("{s:s, s:s, s:s}", "method", c->http->method, "route",
			                    route->pattern, "role", auth_role_name(c->who.role)));
			api_reply_error(c, 403, "permission_error", NULL, "role %s may not %s %s",
			                auth_role_name(c->who.role), c->http->method,
			                c->http->path);
			return;
		}
	} else if (!(route->creds & c->who.kind)) {
		audit_api(c, "auth.denied", "deny", "403",
		          json_pack("{s:s, s:s, s:s?}", "method", c->http->method, "route",
		                    route->pattern, "credential", c->who.cred));
		/* name the kind: "an environment key cannot..." tells the caller what to fix */
		api_reply_error(c, 403, "permission_error", NULL, "%s cannot be used for %s %s%s",
		                auth_kind_phrase(c->who.kind), c->http->method, c->http->path,
		                route->creds & PRINCIPAL_API_KEY ? ": send a server API key" : "");
		return;
	}
	/* a bank would rather refuse than act unaudited (docs/server/audit.md) */
	if (strcmp(c->http->method, "GET") != 0 && strcmp(c->http->method, "HEAD") != 0 &&
	    audit_refusing(c->srv)) {
		api_reply_error(c, 503, "api_error", NULL,
		                "the audit log cannot be written; refusing to act unaudited");
		return;
	}
	if (c->http->body.len > 0 && !(route->creds & API_RAW_BODY)) {
		json_error_t je;
		size_t flags = JSON_REJECT_DUPLICATES;
		if (route->creds & API_NUL_TEXT)
			flags |= JSON_ALLOW_NUL;
		c->body = json_loadb(c->http->body.data, c->http->body.len, flags, &je);
		if (c->body == NULL) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "invalid JSON body: %s (line %d column %d)", je.text,
			                je.line, je.column);
			return;
		}
		if (!json_is_object(c->body)) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "request body must be a JSON object");
			return;
		}
		if (route->creds & API_NUL_TEXT)
			nul_replace(c->body);
	}
	route->fn(c);
}

/* Liveness and readiness for load balancers and service managers, without a
 * credential (they reveal nothing): /healthz answers while the loop runs; /readyz
 * also reads the database and checks that the audit log takes writes (audit_refusing,
 * which retries it), so a server whose storage is gone or that refuses to act unaudited
 * is taken out of rotation. /health and /ready are the same, the names the gateway uses. */
static bool
probe(struct api_call *c)
{
	const char *p = c->http->path;
	bool live = strcmp(p, "/healthz") == 0 || strcmp(p, "/health") == 0;
	bool ready = strcmp(p, "/readyz") == 0 || strcmp(p, "/ready") == 0;
	static const struct api_route routes[] = {{"GET", "/healthz", 0, NULL},
	                                          {"GET", "/readyz", 0, NULL}};
	if (!live && !ready)
		return false;
	c->route = &routes[live ? 0 : 1]; /* for the access log */
	if (strcmp(c->http->method, "GET") != 0 && strcmp(c->http->method, "HEAD") != 0) {
		api_reply_error(c, 405, "invalid_request_error", NULL,
		                "method %s not allowed on %s", c->http->method, p);
		return true;
	}
	if (live) {
		api_reply_json(c, 200, json_pack("{s:s}", "status", "ok"));
		return true;
	}
	const char *why = c->srv->draining ? "draining: the server is shutting down"
	                  : db_ping(c->srv->db) != 0
	                      ? (db_dialect(c->srv->db) == DB_DIALECT_PG
	                             ? "the database is unreachable"
	                             : "the database file is gone, replaced or unreadable")
	                  : audit_refusing(c->srv) ? "the audit log cannot be written"
	                                           : NULL;
	if (why == NULL)
		api_reply_json(c, 200, json_pack("{s:s}", "status", "ready"));
	else
		api_reply_json(c, 503,
		               json_pack("{s:s, s:s}", "status", "not ready", "reason", why));
	return true;
}

void
api_dispatch(struct http_request *req, void *arg)
{
	struct server *srv = arg;
	struct api_call *c = xcalloc(1, sizeof(*c));
	const struct api_route *route = NULL;
	bool path_known = false;
	const char *caps[3] = {NULL, NULL, NULL};
	c->srv = srv;
	c->http = req;
	clock_gettime(CLOCK_MONOTONIC, &c->t0);
	/* kept here: the request may be gone when the access log line is written */
	snprintf(c->method, sizeof(c->method), "%s", req->method);
	snprintf(c->peer, sizeof(c->peer), "%s", req->peer);
	char *rid = id_new("req_");
	snprintf(c->request_id, sizeof(c->request_id), "%s", rid);
	free(rid);

	if (probe(c) || console_dispatch(c))
		return;
	if (query_parse(req->query, &c->query) != 0) {
		api_reply_error(c, 400, "invalid_request_error", NULL, "malformed query string");
		return;
	}
	for (size_t t = 0; t < sizeof(route_tables) / sizeof(route_tables[0]) && !route; t++) {
		for (const struct api_route *r = route_tables[t]; r->pattern; r++) {
			if (!route_match(r->pattern, req->path, caps, c->capbuf, sizeof(c->capbuf)))
				continue;
			path_known = true;
			if (strcmp(r->method, req->method) == 0 ||
			    (strcmp(req->method, "HEAD") == 0 && strcmp(r->method, "GET") == 0)) {
				route = r;
				break;
			}
		}
	}
	if (route == NULL) {
		if (path_known)
			api_reply_error(c, 405, "invalid_request_error", NULL,
			                "method %s not allowed on %s", req->method, req->path);
		else
			api_reply_error(c, 404, "not_found_error", NULL, "no route for %s %s",
			                req->method, req->path);
		return;
	}
	/* route_match may have run on other patterns first: rerun on the winner so the
	 * captures are its own. */
	memset(caps, 0, sizeof(caps));
	route_match(route->pattern, req->path, caps, c->capbuf, sizeof(c->capbuf));
	for (int i = 0; i < 3; i++)
		c->params[i] = caps[i];

	c->route = route;
	dispatch_route(c);
}
