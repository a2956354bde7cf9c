/* MCP Streamable HTTP client (2025-11-25) on the server's event loop; see mcp_client.h
 * and docs/server/mcp.md. One operation (list tools, call a tool) at a time per
 * client; each is a short chain of HTTP exchanges (initialize, initialized, then the
 * request or its pages). Every outcome is delivered from a zero-delay timer, never
 * from inside libcurl's or the tunnel's callbacks, so a callback may free the client. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "httpc.h"
#include "log.h"
#include "loop.h"
#include "mcp_client.h"
#include "server.h"
#include "sse.h"
#include "tunnel.h"
#include "util.h"
#include "xalloc.h"

#define MAX_ERROR_BODY (64u << 10)
#define MAX_SESSION_ID 256
#define ONEWAY_TIMEOUT_MS 5000

enum op_kind { OP_LIST, OP_CALL };
enum phase { PH_NONE, PH_INIT, PH_NOTIFY, PH_REQUEST };

struct mcp_client {
	struct server *srv;
	struct loop *loop;
	struct httpc *httpc;
	char *url;
	unsigned timeout_ms, call_timeout_ms, connect_timeout_ms;
	/* tunnel hostnames go through the edge instead of DNS */
	bool tunnel;
	char tunnel_id[80];
	char route[64];
	char *path;
	char *bearer;     /* secret */
	char *identity;   /* agent identity JWT (short-lived, not a secret we keep) */
	char *session_id; /* MCP-Session-Id from the InitializeResult, NULL when none */
	char proto[32];   /* negotiated protocol version */
	bool ready;       /* initialized */
	long long next_id;

	/* the operation */
	bool busy;
	enum op_kind kind;
	char *tool;
	json_t *args;
	json_t *tools; /* tools/list pages merged */
	char *cursor;
	unsigned pages;
	bool reinit_used;
	mcp_done_fn *done;
	void *done_arg;

	/* the exchange in flight */
	enum phase phase;
	long long req_id;
	bool req_sent; /* the operation's request went out: cancelling must tell the server */
	struct httpc_xfer *hx;
	struct tunnel_stream *ts;
	struct loop_timer *deadline;
	struct loop_timer *finish;
	int status;
	bool is_sse;
	bool timed_out;
	struct buf body;
	bool body_ready;
	struct sse_parser sse;
	bool sse_ready;
	json_t *reply;      /* the JSON-RPC response whose id matched */
	char *resp_session; /* MCP-Session-Id header of this reply */
	int xerr;
	char xmsg[256];
};

static void ex_outcome(struct mcp_client *c);

/* ---- URL ---- */

int
mcp_url_split(const char *url, char *host, size_t hostlen, char **path, bool *https)
{
	const char *p;
	if (strncasecmp(url, "https://", 8) == 0) {
		*https = true;
		p = url + 8;
	} else if (strncasecmp(url, "http://", 7) == 0) {
		*https = false;
		p = url + 7;
	} else {
		return AL_E_INVAL;
	}
	size_t alen = strcspn(p, "/?#");
	if (alen == 0 || memchr(p, '@', alen) != NULL)
		return AL_E_INVAL; /* no host, or userinfo (credentials never go in URLs) */
	size_t hlen;
	if (p[0] == '[') {
		const char *rb = memchr(p, ']', alen);
		if (rb == NULL)
			return AL_E_INVAL;
		hlen = (size_t)(rb - p) + 1;
	} else {
		const char *colon = memchr(p, ':', alen);
		hlen = colon ? (size_t)(colon - p) : alen;
	}
	if (hlen == 0 || hlen >= hostlen)
		return AL_E_INVAL;
	for (size_t i = 0; i < hlen; i++) {
		char ch = p[i];
		host[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
	}
	host[hlen] = '\0';
	const char *rest = p + alen;
	size_t rlen = strcspn(rest, "#");
	if (rlen == 0)
		*path = xstrdup("/");
	else if (rest[0] == '?')
		*path = xasprintf("/%.*s", (int)rlen, rest);
	else
		*path = xasprintf("%.*s", (int)rlen, rest);
	return 0;
}

/* ---- lifetime ---- */

struct mcp_client *
mcp_client_new(const struct mcp_client_config *cfg)
{
	struct mcp_client *c = xcalloc(1, sizeof(*c));
	char host[256];
	bool https = false;

	c->srv = cfg->srv;
	c->loop = cfg->loop;
	c->httpc = cfg->httpc;
	c->url = xstrdup(cfg->url);
	c->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 30000;
	c->call_timeout_ms = cfg->call_timeout_ms ? cfg->call_timeout_ms : 120000;
	c->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 10000;
	c->next_id = 1;
	if (mcp_url_split(c->url, host, sizeof(host), &c->path, &https) == 0 && https && c->srv &&
	    tunnel_resolve_host(c->srv, host, c->tunnel_id, c->route) == 0)
		c->tunnel = true;
	return c;
}

void
mcp_client_set_identity(struct mcp_client *c, const char *token)
{
	free(c->identity);
	c->identity = token && *token ? xstrdup(token) : NULL;
}

void
mcp_client_set_bearer(struct mcp_client *c, const char *token)
{
	secret_free(c->bearer);
	c->bearer = token && *token ? xstrdup(token) : NULL;
}

bool
mcp_client_busy(const struct mcp_client *c)
{
	return c->busy;
}

/* ---- exchanges ---- */

struct hdrs {
	const char *name[8];
	char *value[8]; /* heap; the authorization value is a secret */
	size_t n;
};

static void
hdr_add(struct hdrs *h, const char *name, char *value)
{
	h->name[h->n] = name;
	h->value[h->n++] = value;
}

static void
hdrs_free(struct hdrs *h)
{
	for (size_t i = 0; i < h->n; i++)
		secret_free(h->value[i]);
	h->n = 0;
}

static void
hdrs_build(struct mcp_client *c, struct hdrs *h, bool has_body, bool initialize)
{
	h->n = 0;
	if (has_body)
		hdr_add(h, "content-type", xstrdup("application/json"));
	hdr_add(h, "accept", xstrdup("application/json, text/event-stream"));
	/* Both only after initialize (2025-11-25 transports: "on every request after"). */
	if (!initialize && c->proto[0])
		hdr_add(h, "mcp-protocol-version", xstrdup(c->proto));
	if (!initialize && c->session_id)
		hdr_add(h, "mcp-session-id", xstrdup(c->session_id));
	if (c->bearer)
		hdr_add(h, "authorization", xasprintf("Bearer %s", c->bearer));
	else if (c->identity)
		hdr_add(h, "authorization", xasprintf("Bearer %s", c->identity));
	if (c->identity)
		hdr_add(h, "x-agent-identity", xstrdup(c->identity));
}

static void
noop_done(struct httpc_xfer *x, const struct httpc_response *r, void *arg)
{
	(void)x;
	(void)r;
	(void)arg;
}
static void
noop_head(void *arg, int status, const struct http_header *h, size_t nh)
{
	(void)arg;
	(void)status;
	(void)h;
	(void)nh;
}
static void
noop_data(void *arg, const char *p, size_t n)
{
	(void)arg;
	(void)p;
	(void)n;
}
static void
noop_close(void *arg, int err)
{
	(void)arg;
	(void)err;
}
static const struct tunnel_stream_cb noop_tunnel_cb = {noop_head, noop_data, noop_close};

/* Starts a request whose answer nobody waits for (notifications/cancelled, the
 * session DELETE). Failures are only logged: these are courtesies to the server. */
static void
send_oneway(struct mcp_client *c, const char *method, const json_t *msg)
{
	struct hdrs h;
	char *body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
	int r;
	hdrs_build(c, &h, body != NULL, false);
	if (c->tunnel) {
		struct http_header hv[8];
		struct tunnel_stream *ts = NULL;
		for (size_t i = 0; i < h.n; i++)
			hv[i] = (struct http_header){h.name[i], h.value[i]};
		struct tunnel_request rq = {
		    c->tunnel_id, c->route, method, c->path,
		    hv,           h.n,      body,   body ? strlen(body) : 0};
		r = tunnel_stream_open(c->srv, &rq, &noop_tunnel_cb, NULL, &ts);
	} else {
		char *lines[8];
		for (size_t i = 0; i < h.n; i++)
			lines[i] = xasprintf("%s: %s", h.name[i], h.value[i]);
		struct httpc_request rq = {
		    .method = method,
		    .url = c->url,
		    .headers = (const char *const *)lines,
		    .nheaders = h.n,
		    .body = body,
		    .body_len = body ? strlen(body) : 0,
		    .timeout_ms = ONEWAY_TIMEOUT_MS,
		    .connect_timeout_ms = c->connect_timeout_ms,
		    .max_body = MAX_ERROR_BODY,
		    .on_done = noop_done,
		};
		r = httpc_start(c->httpc, &rq, NULL);
		for (size_t i = 0; i < h.n; i++)
			secret_free(lines[i]);
	}
	if (r != 0)
		log_debug("MCP notification not sent", "method", method, "error", al_strerror(r));
	hdrs_free(&h);
	free(body);
}

static void
on_finish(struct loop *l, void *arg)
{
	struct mcp_client *c = arg;
	(void)l;
	c->finish = NULL;
	ex_outcome(c);
}

static void
schedule_finish(struct mcp_client *c)
{
	if (c->finish == NULL)
		c->finish = loop_timer_add(c->loop, 0, on_finish, c);
}

/* Drops the transport and every per-exchange state (no callbacks afterwards). */
static void
ex_reset(struct mcp_client *c)
{
	if (c->hx) {
		struct httpc_xfer *x = c->hx;
		c->hx = NULL;
		httpc_cancel(x);
	}
	if (c->ts) {
		struct tunnel_stream *t = c->ts;
		c->ts = NULL;
		tunnel_stream_cancel(t);
	}
	loop_timer_cancel(c->loop, c->deadline);
	c->deadline = NULL;
	loop_timer_cancel(c->loop, c->finish);
	c->finish = NULL;
	if (c->body_ready)
		buf_free(&c->body);
	if (c->sse_ready)
		sse_parser_free(&c->sse);
	c->body_ready = c->sse_ready = false;
	json_decref(c->reply);
	c->reply = NULL;
	free(c->resp_session);
	c->resp_session = NULL;
	c->status = 0;
	c->is_sse = false;
	c->timed_out = false;
	c->xerr = 0;
	c->xmsg[0] = '\0';
}

static bool
id_matches(const json_t *msg, long long want)
{
	const json_t *id = json_object_get(msg, "id");
	return json_is_integer(id) && json_integer_value(id) == want &&
	       (json_object_get(msg, "result") || json_object_get(msg, "error"));
}

/* One SSE event of a POST response: the reply to our request, or a server
 * notification/request (progress, logging, ...) that we do not act on. */
static int
on_sse_event(const struct sse_event *ev, void *arg)
{
	struct mcp_client *c = arg;
	if (c->reply || ev->data.len == 0)
		return 0; /* priming events carry an id and empty data */
	json_t *m = json_loadb(ev->data.p, ev->data.len, 0, NULL);
	if (json_is_object(m) && id_matches(m, c->req_id)) {
		c->reply = m;
		schedule_finish(c);
		return 0;
	}
	json_decref(m);
	return 0;
}

static void
ex_head(struct mcp_client *c, int status, const char *ctype, const char *session)
{
	c->status = status;
	c->is_sse = ctype && strncasecmp(ctype, "text/event-stream", 17) == 0;
	free(c->resp_session);
	c->resp_session = session ? xstrdup(session) : NULL;
	if (c->is_sse && status >= 200 && status < 300) {
		sse_parser_init(&c->sse, MCP_MAX_RESPONSE, MCP_MAX_RESPONSE, on_sse_event, c);
		c->sse_ready = true;
	}
}

/* Body bytes of either transport. The bound applies to one JSON reply or one SSE
 * event; error bodies are only read for their message, so they are cut, not failed. */
static int
ex_data(struct mcp_client *c, const char *p, size_t n)
{
	int r;
	if (c->reply)
		return 0; /* answered; the rest of the stream does not matter */
	if (c->sse_ready) {
		r = sse_parser_feed(&c->sse, p, n);
	} else {
		r = buf_add(&c->body, p, n);
		if (r != 0 && (c->status < 200 || c->status >= 300))
			r = 0;
	}
	if (r != 0 && c->xerr == 0) {
		c->xerr = r;
		snprintf(c->xmsg, sizeof(c->xmsg), "reply larger than %u bytes",
		         (unsigned)MCP_MAX_RESPONSE);
		schedule_finish(c);
	}
	return r;
}

static int
hx_head(struct httpc_xfer *x, int status, void *arg)
{
	struct mcp_client *c = arg;
	ex_head(c, status, httpc_xfer_header(x, "content-type"),
	        httpc_xfer_header(x, "mcp-session-id"));
	return 0;
}

static int
hx_data(struct httpc_xfer *x, const char *p, size_t n, void *arg)
{
	(void)x;
	return ex_data(arg, p, n);
}

static void
hx_done(struct httpc_xfer *x, const struct httpc_response *resp, void *arg)
{
	struct mcp_client *c = arg;
	(void)x;
	c->hx = NULL;
	if (c->status == 0)
		c->status = resp->status;
	if (resp->status < 200 || resp->status >= 300) {
		/* httpc buffered the error body itself */
		buf_reset(&c->body);
		if (resp->body.len)
			buf_add(&c->body, resp->body.data,
			        resp->body.len < MAX_ERROR_BODY ? resp->body.len : MAX_ERROR_BODY);
	}
	if (resp->err && c->xerr == 0 && c->reply == NULL) {
		c->xerr = resp->err;
		snprintf(c->xmsg, sizeof(c->xmsg), "%s", resp->errmsg ? resp->errmsg : "");
	}
	schedule_finish(c);
}

static void
ts_head(void *arg, int status, const struct http_header *h, size_t nh)
{
	struct mcp_client *c = arg;
	const char *ctype = NULL, *sess = NULL;
	for (size_t i = 0; i < nh; i++) {
		if (strcasecmp(h[i].name, "content-type") == 0)
			ctype = h[i].value;
		else if (strcasecmp(h[i].name, "mcp-session-id") == 0)
			sess = h[i].value;
	}
	ex_head(c, status, ctype, sess);
}

static void
ts_data(void *arg, const char *p, size_t n)
{
	ex_data(arg, p, n);
}

static void
ts_close(void *arg, int err)
{
	struct mcp_client *c = arg;
	c->ts = NULL; /* ended: the edge frees it */
	if (err && c->xerr == 0 && c->reply == NULL) {
		c->xerr = err;
		snprintf(c->xmsg, sizeof(c->xmsg), "%s%s",
		         err == AL_E_PROTO ? "inner TLS with the gateway failed: "
		                           : "tunnel stream ",
		         err == AL_E_PROTO ? "see the server log" : al_strerror(err));
	}
	schedule_finish(c);
}

static const struct tunnel_stream_cb tunnel_cb = {ts_head, ts_data, ts_close};

static void
on_deadline(struct loop *l, void *arg)
{
	struct mcp_client *c = arg;
	(void)l;
	c->deadline = NULL;
	if (c->reply == NULL && c->xerr == 0) {
		c->xerr = AL_E_TIMEOUT;
		c->timed_out = true;
	}
	ex_outcome(c);
}

/* Sends one JSON-RPC message (msg is borrowed) and waits for the exchange to end. */
static void
ex_start(struct mcp_client *c, const json_t *msg, unsigned timeout_ms)
{
	struct hdrs h;
	char *body = json_dumps(msg, JSON_COMPACT);
	int r;

	ex_reset(c);
	buf_init(&c->body, MCP_MAX_RESPONSE);
	c->body_ready = true;
	hdrs_build(c, &h, true, c->phase == PH_INIT);
	if (c->tunnel) {
		struct http_header hv[8];
		for (size_t i = 0; i < h.n; i++)
			hv[i] = (struct http_header){h.name[i], h.value[i]};
		struct tunnel_request rq = {c->tunnel_id, c->route, "POST", c->path,
		                            hv,           h.n,      body,   strlen(body)};
		r = tunnel_stream_open(c->srv, &rq, &tunnel_cb, c, &c->ts);
		if (r != 0) {
			c->ts = NULL;
			c->xerr = r;
			snprintf(c->xmsg, sizeof(c->xmsg), "%s",
			         r == AL_E_AGAIN         ? "no gateway is connected to the tunnel"
			         : r == AL_E_UNSUPPORTED ? "the tunnel edge is not running"
			         : r == AL_E_PERM        ? "the tunnel has no active certificate"
			                                 : "the tunnel refused the request");
		}
	} else {
		char *lines[8];
		for (size_t i = 0; i < h.n; i++)
			lines[i] = xasprintf("%s: %s", h.name[i], h.value[i]);
		struct httpc_request rq = {
		    .method = "POST",
		    .url = c->url,
		    .headers = (const char *const *)lines,
		    .nheaders = h.n,
		    .body = body,
		    .body_len = strlen(body),
		    .timeout_ms = timeout_ms + 1000, /* backstop; our deadline fires first */
		    .connect_timeout_ms = c->connect_timeout_ms,
		    .max_body = MAX_ERROR_BODY,
		    .on_head = hx_head,
		    .on_data = hx_data,
		    .on_done = hx_done,
		    .arg = c,
		};
		r = httpc_start(c->httpc, &rq, &c->hx);
		for (size_t i = 0; i < h.n; i++)
			secret_free(lines[i]);
		if (r != 0) {
			c->hx = NULL;
			c->xerr = r;
			snprintf(c->xmsg, sizeof(c->xmsg), "invalid MCP server URL");
		}
	}
	hdrs_free(&h);
	free(body);
	if (r != 0)
		schedule_finish(c);
	else
		c->deadline = loop_timer_add(c->loop, timeout_ms, on_deadline, c);
}

/* ---- operations ---- */

static json_t *
rpc(long long id, const char *method, json_t *params)
{
	json_t *m = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", method);
	if (id > 0)
		json_object_set_new(m, "id", json_integer(id));
	if (params)
		json_object_set_new(m, "params", params);
	return m;
}

static void
op_clear(struct mcp_client *c)
{
	c->busy = false;
	c->phase = PH_NONE;
	c->req_sent = false;
	c->reinit_used = false;
	free(c->tool);
	c->tool = NULL;
	json_decref(c->args);
	c->args = NULL;
	json_decref(c->tools);
	c->tools = NULL;
	free(c->cursor);
	c->cursor = NULL;
	c->pages = 0;
	c->done = NULL;
	c->done_arg = NULL;
}

/* Ends the operation. The callback may free c, so nothing touches c afterwards. */
static void
op_finish(struct mcp_client *c, enum mcp_fail fail, int status, const char *msg,
          const json_t *result)
{
	mcp_done_fn *done = c->done;
	void *arg = c->done_arg;
	json_t *keep = json_incref((json_t *)result);
	ex_reset(c);
	op_clear(c);
	struct mcp_result r = {fail, status, msg ? msg : "", keep};
	if (done)
		done(arg, &r);
	json_decref(keep);
}

static void
send_initialize(struct mcp_client *c)
{
	c->ready = false;
	c->proto[0] = '\0';
	free(c->session_id);
	c->session_id = NULL;
	c->phase = PH_INIT;
	c->req_id = c->next_id++;
	json_t *m = rpc(c->req_id, "initialize",
	                json_pack("{s:s, s:{}, s:{s:s, s:s, s:s}}", "protocolVersion",
	                          MCP_PROTOCOL_VERSION, "capabilities", "clientInfo", "name",
	                          "airlock", "title", "airlock control plane", "version", "0.1.0"));
	ex_start(c, m, c->timeout_ms);
	json_decref(m);
}

static void
send_request(struct mcp_client *c)
{
	json_t *params;
	const char *method;
	c->phase = PH_REQUEST;
	c->req_id = c->next_id++;
	if (c->kind == OP_LIST) {
		method = "tools/list";
		params = c->cursor ? json_pack("{s:s}", "cursor", c->cursor) : json_object();
	} else {
		method = "tools/call";
		params = json_pack("{s:s, s:O}", "name", c->tool, "arguments", c->args);
	}
	json_t *m = rpc(c->req_id, method, params);
	c->req_sent = true;
	ex_start(c, m, c->kind == OP_CALL ? c->call_timeout_ms : c->timeout_ms);
	json_decref(m);
}

static void
op_begin(struct mcp_client *c)
{
	if (c->ready)
		send_request(c);
	else
		send_initialize(c);
}

static bool
session_id_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > MAX_SESSION_ID)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

static bool
version_ok(const char *v)
{
	/* 2024-11-05 too: servers on older SDKs (and stdio servers behind a bridge) still
	 * answer with it, and tools/list and tools/call have the same shape there */
	static const char *const known[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"};
	for (size_t i = 0; v && i < ARRAY_LEN(known); i++)
		if (strcmp(v, known[i]) == 0)
			return true;
	return false;
}

/* Printable, bounded text from a peer, for messages that end up in events. */
static void
peer_text(char *dst, size_t len, const char *src)
{
	size_t j = 0;
	for (size_t i = 0; src && src[i] && j + 1 < len; i++) {
		unsigned char ch = (unsigned char)src[i];
		dst[j++] = (ch < 0x20 || ch == 0x7f) ? ' ' : (char)ch;
	}
	dst[j] = '\0';
}

static void
rpc_error_text(const json_t *err, char *out, size_t len)
{
	char m[300];
	peer_text(m, sizeof(m), json_string_value(json_object_get(err, "message")));
	snprintf(out, len, "%lld: %s", (long long)json_integer_value(json_object_get(err, "code")),
	         m);
}

static void
on_reply(struct mcp_client *c, json_t *reply, const char *resp_session)
{
	char msg[512];
	const json_t *err = json_object_get(reply, "error");
	const json_t *res = json_object_get(reply, "result");

	if (c->phase == PH_INIT) {
		if (err) {
			char t[400];
			rpc_error_text(err, t, sizeof(t));
			snprintf(msg, sizeof(msg), "the MCP server refused initialize: %s", t);
			op_finish(c, MCP_FAIL_CONNECTION, 200, msg, NULL);
			return;
		}
		const char *v = json_string_value(json_object_get(res, "protocolVersion"));
		if (!version_ok(v)) {
			char t[40];
			peer_text(t, sizeof(t), v ? v : "(none)");
			snprintf(msg, sizeof(msg), "the MCP server speaks protocol version %s", t);
			op_finish(c, MCP_FAIL_CONNECTION, 200, msg, NULL);
			return;
		}
		if (resp_session && !session_id_ok(resp_session)) {
			op_finish(c, MCP_FAIL_CONNECTION, 200,
			          "the MCP server sent an invalid MCP-Session-Id", NULL);
			return;
		}
		snprintf(c->proto, sizeof(c->proto), "%s", v);
		c->session_id = resp_session ? xstrdup(resp_session) : NULL;
		c->phase = PH_NOTIFY;
		json_t *m = rpc(0, "notifications/initialized", NULL);
		ex_start(c, m, c->timeout_ms);
		json_decref(m);
		return;
	}
	/* PH_REQUEST */
	if (err) {
		char t[400];
		rpc_error_text(err, t, sizeof(t));
		op_finish(c, MCP_FAIL_RPC, 200, t, NULL);
		return;
	}
	if (!json_is_object(res)) {
		op_finish(c, MCP_FAIL_CONNECTION, 200, "the MCP server sent a malformed result",
		          NULL);
		return;
	}
	if (c->kind == OP_CALL) {
		op_finish(c, MCP_OK, 200, NULL, res);
		return;
	}
	const json_t *tools = json_object_get(res, "tools");
	if (!json_is_array(tools)) {
		op_finish(c, MCP_FAIL_CONNECTION, 200, "tools/list result has no tools array",
		          NULL);
		return;
	}
	if (json_array_size(c->tools) + json_array_size(tools) > MCP_MAX_TOOLS) {
		snprintf(msg, sizeof(msg), "the MCP server lists more than %d tools",
		         MCP_MAX_TOOLS);
		op_finish(c, MCP_FAIL_CONNECTION, 200, msg, NULL);
		return;
	}
	json_array_extend(c->tools, (json_t *)tools);
	c->pages++;
	const char *next = json_string_value(json_object_get(res, "nextCursor"));
	if (next && *next) {
		if (c->pages >= MCP_MAX_PAGES || (c->cursor && strcmp(c->cursor, next) == 0)) {
			op_finish(c, MCP_FAIL_CONNECTION, 200,
			          "tools/list pagination does not end (repeated cursor or too "
			          "many pages)",
			          NULL);
			return;
		}
		free(c->cursor);
		c->cursor = xstrdup(next);
		send_request(c);
		return;
	}
	json_t *all = json_pack("{s:O}", "tools", c->tools);
	op_finish(c, MCP_OK, 200, NULL, all);
	json_decref(all);
}

static void
ex_outcome(struct mcp_client *c)
{
	char msg[512];
	int status = c->status, xerr = c->xerr;
	bool timed_out = c->timed_out;
	char xmsg[sizeof(c->xmsg)];
	json_t *reply = c->reply;
	char *sess = c->resp_session;
	json_t *body = NULL;

	c->reply = NULL;
	c->resp_session = NULL;
	snprintf(xmsg, sizeof(xmsg), "%s", c->xmsg);
	/* what a refusing server said (a gateway names the rule), printable and bounded */
	char said[160] = "";
	if ((status == 401 || status == 403) && c->body_ready && c->body.len)
		peer_text(said, sizeof(said), c->body.data);
	/* A single JSON object answers a request when the reply was not SSE. */
	if (reply == NULL && c->body_ready && c->body.len)
		body = json_loadb(c->body.data, c->body.len, 0, NULL);
	if (reply == NULL && xerr == 0 && status >= 200 && status < 300 && !c->is_sse &&
	    c->phase != PH_NOTIFY && json_is_object(body) && id_matches(body, c->req_id))
		reply = json_incref(body);
	ex_reset(c);

	if (reply) {
		on_reply(c, reply, sess);
		goto out;
	}
	if (status == 401 || status == 403) {
		snprintf(msg, sizeof(msg), "the MCP server answered HTTP %d%s%s (%s)", status,
		         said[0] ? ": " : "", said,
		         c->bearer     ? "it refused the vault credential"
		         : c->identity ? "it refused the agent identity token; no vault credential "
		                         "matches this server URL"
		                       : "no vault credential matches this server URL");
		op_finish(c, MCP_FAIL_AUTH, status, msg, NULL);
		goto out;
	}
	if (status == 404 && c->session_id && c->phase != PH_INIT && !c->reinit_used) {
		/* The server ended our MCP session: start a new one, once per operation. */
		c->reinit_used = true;
		log_info("MCP session expired; initializing again");
		send_initialize(c);
		goto out;
	}
	if (c->phase == PH_NOTIFY && xerr == 0 && status >= 200 && status < 300) {
		c->ready = true;
		send_request(c);
		goto out;
	}
	if (timed_out) {
		snprintf(msg, sizeof(msg), "the MCP server did not answer within %u ms",
		         c->phase == PH_REQUEST && c->kind == OP_CALL ? c->call_timeout_ms
		                                                      : c->timeout_ms);
	} else if (xerr) {
		snprintf(msg, sizeof(msg), "cannot reach the MCP server: %s%s%s", al_strerror(xerr),
		         xmsg[0] ? ": " : "", xmsg);
	} else if (status >= 200 && status < 300) {
		snprintf(msg, sizeof(msg), "%s",
		         c->phase == PH_NOTIFY ? "unexpected reply to notifications/initialized"
		                               : "the MCP server's reply did not answer the "
		                                 "request");
	} else {
		char t[400] = "";
		const json_t *e = json_object_get(body, "error");
		if (json_is_object(e))
			rpc_error_text(e, t, sizeof(t));
		snprintf(msg, sizeof(msg), "the MCP server answered HTTP %d%s%s", status,
		         t[0] ? ": " : "", t);
	}
	op_finish(c, MCP_FAIL_CONNECTION, status, msg, NULL);
out:
	/* c may be gone here (the callback may free it): only locals below. */
	json_decref(reply);
	json_decref(body);
	free(sess);
}

static int
op_start(struct mcp_client *c, enum op_kind kind, mcp_done_fn *done, void *arg)
{
	if (c->busy)
		return AL_E_CONFLICT;
	c->busy = true;
	c->kind = kind;
	c->done = done;
	c->done_arg = arg;
	c->reinit_used = false;
	return 0;
}

int
mcp_client_list_tools(struct mcp_client *c, mcp_done_fn *done, void *arg)
{
	int r = op_start(c, OP_LIST, done, arg);
	if (r != 0)
		return r;
	c->tools = json_array();
	op_begin(c);
	return 0;
}

int
mcp_client_call_tool(struct mcp_client *c, const char *name, const json_t *arguments,
                     mcp_done_fn *done, void *arg)
{
	if (name == NULL)
		return AL_E_INVAL;
	int r = op_start(c, OP_CALL, done, arg);
	if (r != 0)
		return r;
	c->tool = xstrdup(name);
	c->args = json_is_object(arguments) ? json_deep_copy(arguments) : json_object();
	op_begin(c);
	return 0;
}

void
mcp_client_cancel(struct mcp_client *c, const char *reason)
{
	if (c == NULL || !c->busy)
		return;
	bool tell = c->phase == PH_REQUEST && c->req_sent && c->ready;
	long long id = c->req_id;
	ex_reset(c);
	op_clear(c);
	if (tell) {
		json_t *m = rpc(0, "notifications/cancelled",
		                json_pack("{s:I, s:s}", "requestId", (json_int_t)id, "reason",
		                          reason ? reason : "cancelled"));
		send_oneway(c, "POST", m);
		json_decref(m);
	}
}

void
mcp_client_free(struct mcp_client *c)
{
	if (c == NULL)
		return;
	ex_reset(c);
	op_clear(c);
	/* Spec: clients SHOULD end their MCP session with DELETE (405 is fine). */
	if (c->ready && c->session_id)
		send_oneway(c, "DELETE", NULL);
	secret_free(c->bearer);
	free(c->identity);
	free(c->session_id);
	free(c->url);
	free(c->path);
	free(c);
}
