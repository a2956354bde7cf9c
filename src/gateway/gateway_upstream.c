/* Upstream side of the gateway on lib/httpc's native HTTP/1.1 transport (our loop,
 * llhttp, a keep-alive pool); see gateway_upstream.h. Redirects are never followed,
 * proxies never used, and every address dialled passes the allow-list after DNS
 * resolution (the reference's primary SSRF defence). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "buf.h"
#include "err.h"
#include "gateway_upstream.h"
#include "httpc.h"
#include "log.h"
#include "tunnel_proto.h"
#include "xalloc.h"

#define MAX_HEAD (64 * 1024)
#define CONNECT_MS 10000u
/* keep-alive connections to upstreams: under wrk 16 streams share one route, and a
 * small pool meant a new TCP connection for one request in twenty */
#define POOL 64

struct upstream {
	struct upstream_ctx *u;
	struct httpc_xfer *x;
	const struct upstream_cb *cb;
	void *arg;
	bool head_sent;
	bool cancelled; /* by upstream_cancel, or done: no callbacks from here on */
	bool paused;
	bool pause_asked; /* by upstream_pause, inside the data callback */
	/* The chunk the owner refused (data returned false): httpc counts it as taken, the
	 * owner has not, so it goes to the owner again first on resume. */
	char *held;
	size_t held_len;
	struct loop_timer *t_resume;
};

struct upstream_ctx {
	struct loop *loop;
	struct httpc *hc;
	const struct gateway_config *cfg;
	size_t active;
	void (*after)(void *);
	void *after_arg;
	char *ca_file; /* the CA options hc was given, to notice a reload */
	bool system_cas;
};

static void
t_free(struct upstream *t)
{
	loop_timer_cancel(t->u->loop, t->t_resume);
	free(t->held);
	free(t);
}

static void
after(struct upstream_ctx *u)
{
	if (u->after)
		u->after(u->after_arg);
}

static int
check_addr(const struct sockaddr *sa, socklen_t len, char *why, size_t whylen, void *arg)
{
	struct upstream_ctx *u = arg;
	if (gateway_config_ip_allowed(u->cfg, sa))
		return 0;
	char ip[INET6_ADDRSTRLEN] = "?";
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof(ip));
	snprintf(why, whylen, "IP validation failed: %s is not a private address", ip);
	/* The reply keeps the reference's words; the log names the setting to change. The
	 * start checks already named any IP-literal route this will refuse. */
	log_warn("upstream refused: address outside upstream.allowed_ips", "error", why);
	return -1;
}

static int
on_head(struct httpc_xfer *x, int status, void *arg)
{
	struct upstream *t = arg;
	if (t->cancelled)
		return AL_E_CLOSED;
	struct buf h;
	buf_init(&h, MAX_HEAD);
	size_t pos = 0;
	const char *n, *v;
	int r = 0;
	while (r == 0 && httpc_xfer_header_next(x, &pos, &n, &v)) {
		size_t nl = strlen(n);
		if (tunnel_hop_header(n, nl))
			continue;
		/* httpc stores exactly "name\0value\0": copy the pair as it is */
		r = buf_add(&h, n, nl + 1 + strlen(v) + 1);
	}
	if (r == 0) {
		t->head_sent = true;
		t->cb->head(t->arg, status, h.data ? h.data : "", h.len);
	}
	buf_free(&h); /* the owner copied it: an idle stream keeps none */
	after(t->u);
	return r == 0 ? 0 : AL_E_TOOBIG;
}

static int
on_data(struct httpc_xfer *x, const char *p, size_t n, void *arg)
{
	struct upstream *t = arg;
	if (t->cancelled)
		return AL_E_CLOSED;
	int r = 0;
	if (!t->cb->data(t->arg, p, n) && !t->cancelled) {
		t->held = xmalloc(n ? n : 1);
		memcpy(t->held, p, n);
		t->held_len = n;
		t->paused = true;
		r = HTTPC_PAUSE;
	} else if (t->pause_asked && !t->cancelled) {
		t->paused = true;
		r = HTTPC_PAUSE;
	}
	t->pause_asked = false;
	after(t->u);
	return r;
}

static void
on_done(struct httpc_xfer *x, const struct httpc_response *resp, void *arg)
{
	struct upstream *t = arg;
	struct upstream_ctx *u = t->u;
	int status = 0;
	char msg[320] = "";
	if (resp->err != 0) {
		if (t->head_sent) {
			status = -1;
		} else if (resp->err == AL_E_PERM) {
			status = 403;
			snprintf(msg, sizeof(msg), "%s", resp->errmsg);
		} else if (resp->err == AL_E_TIMEOUT) {
			status = 504;
			snprintf(msg, sizeof(msg), "upstream timed out");
		} else {
			status = 502;
			snprintf(msg, sizeof(msg), "upstream error: %s",
			         resp->errmsg[0] ? resp->errmsg : al_strerror(resp->err));
		}
	}
	if (!t->cancelled) {
		t->cancelled = true;
		u->active--;
		t->cb->done(t->arg, status, msg);
		after(u);
	}
	t_free(t);
}

/* The transfer ended without on_done (upstream_cancel, upstream_ctx_free). */
static void
on_release(void *arg)
{
	t_free(arg);
}

static void
on_resume(struct loop *l, void *arg)
{
	struct upstream *t = arg;
	t->t_resume = NULL;
	if (t->cancelled || !t->paused)
		return;
	if (t->held != NULL) {
		bool took = t->cb->data(t->arg, t->held, t->held_len);
		after(t->u);
		if (t->cancelled || !took)
			return; /* still held: the next upstream_resume tries again */
		free(t->held);
		t->held = NULL;
		t->held_len = 0;
		if (t->pause_asked) {
			t->pause_asked = false;
			return; /* taken, but paused again: the next upstream_resume goes on */
		}
	}
	t->paused = false;
	httpc_resume(t->x);
}

struct upstream_ctx *
upstream_ctx_new(struct loop *l)
{
	struct upstream_ctx *u = xcalloc(1, sizeof(*u));
	u->loop = l;
	/* a relay adds no User-Agent of its own; the client's travels */
	struct httpc_opts o = {.transport = HTTPC_NATIVE,
	                       .user_agent = "",
	                       .max_idle = POOL,
	                       .addr_check = check_addr,
	                       .addr_check_arg = u};
	u->hc = httpc_new(l, &o);
	if (u->hc == NULL) {
		free(u);
		return NULL;
	}
	return u;
}

void
upstream_ctx_set_config(struct upstream_ctx *u, const struct gateway_config *cfg)
{
	u->cfg = cfg;
	/* a reload may have narrowed allowed_ips: pooled connections were checked against
	 * the old list, so they go and the next requests dial (and are checked) anew */
	httpc_close_idle(u->hc);
}

void
upstream_ctx_set_after(struct upstream_ctx *u, void (*fn)(void *), void *arg)
{
	u->after = fn;
	u->after_arg = arg;
}

size_t
upstream_ctx_active(const struct upstream_ctx *u)
{
	return u->active;
}

void
upstream_ctx_free(struct upstream_ctx *u)
{
	if (u == NULL)
		return;
	httpc_free(u->hc); /* each live transfer's on_release frees its upstream */
	free(u->ca_file);
	free(u);
}

/* The config is reloaded in place, so compare what hc was given with what it says now. */
static void
sync_tls(struct upstream_ctx *u)
{
	const struct gateway_config *cfg = u->cfg;
	const char *want = cfg->upstream_ca_file;
	bool same_file = (want == NULL && u->ca_file == NULL) ||
	                 (want != NULL && u->ca_file != NULL && strcmp(want, u->ca_file) == 0);
	if (same_file && u->system_cas == cfg->include_system_cas)
		return;
	free(u->ca_file);
	u->ca_file = want ? xstrdup(want) : NULL;
	u->system_cas = cfg->include_system_cas;
	httpc_set_tls(u->hc, u->ca_file, u->system_cas);
}

int
upstream_start(struct upstream_ctx *u, const char *method, const char *url,
               const char *const *headers, size_t nheaders, const char *body, size_t blen,
               const struct upstream_cb *cb, void *arg, struct upstream **out)
{
	sync_tls(u);
	struct upstream *t = xcalloc(1, sizeof(*t));
	t->u = u;
	t->cb = cb;
	t->arg = arg;
	/* as curl did: GET and HEAD carry no body; POST always says Content-Length */
	bool bodyless = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	struct httpc_request req = {
	    .method = method,
	    .url = url,
	    .headers = headers,
	    .nheaders = nheaders,
	    .body = !bodyless && blen > 0 ? body : NULL,
	    .body_len = !bodyless ? blen : 0,
	    .connect_timeout_ms = CONNECT_MS,
	    .on_head = on_head,
	    .on_data = on_data,
	    .on_done = on_done,
	    .on_release = on_release,
	    .arg = t,
	    .stream_any_status = true,
	};
	int r = httpc_start(u->hc, &req, &t->x);
	if (r != 0) {
		log_warn("upstream request refused", "error", al_strerror(r));
		free(t);
		return r;
	}
	u->active++;
	*out = t;
	return 0;
}

void
upstream_resume(struct upstream *t)
{
	if (t == NULL || t->cancelled || !t->paused || t->t_resume != NULL)
		return;
	/* from the loop: the owner calls this from its own flush, not expecting callbacks */
	t->t_resume = loop_timer_add(t->u->loop, 0, on_resume, t);
}

void
upstream_pause(struct upstream *t)
{
	if (t != NULL && !t->cancelled)
		t->pause_asked = true;
}

void
upstream_cancel(struct upstream *t)
{
	if (t == NULL || t->cancelled)
		return;
	t->cancelled = true;
	t->u->active--;
	httpc_cancel(t->x); /* frees t through on_release, now or after httpc's callback */
}
