/* The egress proxy of one sandbox: accepts on the listener the monitor made inside the
 * sandbox's network namespace (its only way out), reads one bounded request head with
 * llhttp, decides host then address with lib/egress_policy, resolves once and dials
 * that address, then relays bytes. CONNECT tunnels; plain HTTP forwards one request
 * (absolute-form, Host must match) with `Connection: close`. Refusals are 403 with a
 * reason a model can act on; every decision is a log line. docs/worker/egress.md. */
#include "egress.h"
#include "egress_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <llhttp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "log.h"
#include "loop.h"
#include "monitor.h"
#include "util.h"
#include "xalloc.h"

#define HEAD_MAX 16384        /* a request head: request line and headers */
#define RELAY_BUF 65536       /* per direction and connection */
#define HEAD_TIMEOUT_MS 10000 /* slowloris: the whole head within this */
#define DIAL_TIMEOUT_MS 10000
#define IDLE_TIMEOUT_MS 300000 /* a relay silent both ways this long is closed */
#define PATH_LOG_MAX 256
#define EGRESS_PENDING_MAX 1024    /* decisions waiting to be reported */
#define BODY_INJECT_MAX (1u << 20) /* a body held for secret injection */
#define BODY_HELD_MAX 4            /* bodies held at once per sandbox (≈ 3 MiB each) */

#define PROXY_URL "http://127.0.0.1:3128"
const char *const egress_proxy_env[] = {
    "HTTP_PROXY=" PROXY_URL,
    "HTTPS_PROXY=" PROXY_URL,
    "ALL_PROXY=" PROXY_URL,
    "http_proxy=" PROXY_URL,
    "https_proxy=" PROXY_URL,
    "all_proxy=" PROXY_URL,
    "NO_PROXY=",
    "no_proxy=",
    "npm_config_proxy=" PROXY_URL,
    "npm_config_https_proxy=" PROXY_URL,
    "PIP_PROXY=" PROXY_URL,
    "GIT_HTTP_PROXY=" PROXY_URL,
    "JAVA_TOOL_OPTIONS=-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=3128 "
    "-Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=3128",
    NULL,
};

/* C_TLS: a CONNECT to a credential host, its two TLS handshakes under way */
enum cstate { C_HEAD, C_RESOLVE, C_DIAL, C_TLS, C_RELAY };

struct lookup {
	atomic_int refs; /* the resolver thread and the connection */
	int pipe[2];
	char host[EGRESS_HOST_MAX + 1];
	struct egress_addr addrs[8];
	size_t n;
	int gai;
};

struct conn {
	struct egress_proxy *px;
	struct conn *prev, *next;
	enum cstate st;
	int cfd, ufd;
	llhttp_t parser;
	struct buf head; /* the client's bytes while reading the head */
	struct buf url, field, value, hdrs;
	bool in_value, head_done, msg_done, bad_header;
	char host_hdr[EGRESS_HOST_MAX + 8];
	int n_host;
	bool is_connect;
	char method[24];
	char host[EGRESS_HOST_MAX + 1];
	uint16_t port;
	char path[PATH_LOG_MAX];
	struct egress_addr addr;
	char addr_txt[64];
	struct lookup *lk;
	struct loop_timer *timer;
	char rule[EGRESS_RULE_MAX];
	/* relay: up = client -> upstream, down = upstream -> client */
	char *up, *down;
	size_t up_len, down_len;
	bool c_eof, u_eof, c_shut, u_shut;
	bool hello_wait;    /* CONNECT: client bytes held until the TLS hello's SNI is checked */
	char injected[256]; /* credential ids whose value went into this request */
	/* plain HTTP to a host a body secret is for: the decoded body is held whole (its
	 * placeholders replaced, then sent with a Content-Length) */
	bool buffering, body_over, expect_continue;
	struct buf body;
	size_t up_big;    /* c->up's size when a held body made it larger than RELAY_BUF */
	int cmask, umask; /* what epoll watches now (relay) */
	/* a CONNECT tunnel past its SNI check moves bytes by splice(2) through these
	 * pipes (up: client -> upstream); up_len/down_len then count what each holds */
	int up_pipe[2], down_pipe[2];
	bool spliced;
	size_t cap; /* what a direction may hold: RELAY_BUF, or the pipes' size */
	uint64_t last_io_ms;
	uint64_t bytes_up, bytes_down;
	/* TLS termination: the handshakes of a CONNECT to a credential host (the bridges
	 * own the fds meanwhile); terminated: a request read in the clear from such a
	 * tunnel, whose target and upstream are fixed (docs/worker/egress.md) */
	struct egress_tls_bridge *cb, *ub;
	bool terminated;
};

/* An environment_variable credential: the sandbox holds placeholder, the proxy puts
 * value in its place in requests to hosts (docs/worker/egress.md "Secrets"). */
struct egress_secret {
	char id[80];
	char *placeholder, *value;
	struct egress_hostlist hosts;
	bool header, body;
};

#define EGRESS_MAX_SECRETS 32

struct egress_proxy {
	struct egress_secret secrets[EGRESS_MAX_SECRETS];
	size_t n_secrets;
	struct loop *loop;
	int lfd;
	const struct egress_operator *op;
	struct egress_env env;
	char *session_id;
	struct egress_addr own[32];
	size_t n_own;
	struct conn *conns;
	unsigned nconns;
	unsigned held; /* connections holding a body now */
	uint64_t head_ms, dial_ms;
	/* decisions not yet reported to the server (egress_proxy_take) */
	json_t *pending;
	uint64_t dropped;
	llhttp_settings_t settings;
	struct egress_ca *ca; /* TLS termination for credential hosts; NULL: none */
};

static void conn_close(struct conn *c);
static void conn_update(struct conn *c);
static void on_client(struct loop *l, int fd, int mask, void *arg);
static void arm(struct conn *c, uint64_t ms);
static bool hello_check(struct conn *c);
static void maybe_splice(struct conn *c);

bool
egress_wanted(const struct egress_operator *op, const struct egress_env *env)
{
	return op != NULL && env != NULL && env->type != EGRESS_ENV_NONE;
}

/* ---- logging and answers ---- */

static void
log_decision(struct conn *c, bool allowed)
{
	char port[8], up[24], down[24];
	snprintf(port, sizeof(port), "%u", c->port);
	snprintf(up, sizeof(up), "%llu", (unsigned long long)c->bytes_up);
	snprintf(down, sizeof(down), "%llu", (unsigned long long)c->bytes_down);
	log_info("egress", "session_id", c->px->session_id, "decision",
	         allowed ? "allowed" : "denied", "host", c->host[0] ? c->host : "-", "address",
	         c->addr_txt[0] ? c->addr_txt : "-", "port", port, "method", c->method, "path",
	         c->is_connect ? "-" : c->path, "bytes_up", up, "bytes_down", down, "rule", c->rule,
	         "credentials", c->injected[0] ? c->injected : "-");
	/* for the server's audit log; a sandbox that outruns the reports loses the oldest
	 * (counted, and logged above anyway) rather than the worker's memory */
	struct egress_proxy *px = c->px;
	char t[32];
	time_fmt_rfc3339(now_real_us(), t);
	if (json_array_size(px->pending) >= EGRESS_PENDING_MAX) {
		json_array_remove(px->pending, 0);
		px->dropped++;
	}
	json_array_append_new(
	    px->pending,
	    json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:I, s:I}", "time", t, "decision",
	              allowed ? "allowed" : "denied", "host", c->host[0] ? c->host : "-", "address",
	              c->addr_txt[0] ? c->addr_txt : "-", "port", (int)c->port, "method", c->method,
	              "path", c->is_connect ? "-" : c->path, "rule", c->rule, "bytes_up",
	              (json_int_t)c->bytes_up, "bytes_down", (json_int_t)c->bytes_down));
	if (c->injected[0]) /* which credentials went in, by id */
		json_object_set_new(json_array_get(px->pending, json_array_size(px->pending) - 1),
		                    "credentials", json_string(c->injected));
}

/* One answer and the connection ends. Written with one non-blocking send: the socket's
 * buffer is empty at this point, and a client that does not read loses only the text. */
static void answer(struct conn *c, int status, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void
answer(struct conn *c, int status, const char *reason, const char *fmt, ...)
{
	char body[512], out[1024];
	va_list ap;
	va_start(ap, fmt);
	int bl = vsnprintf(body, sizeof(body) - 1, fmt, ap);
	va_end(ap);
	if (bl < 0)
		bl = 0;
	if ((size_t)bl >= sizeof(body) - 1)
		bl = (int)sizeof(body) - 2;
	body[bl++] = '\n';
	int n = snprintf(out, sizeof(out),
	                 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
	                 "Connection: close\r\n\r\n%.*s",
	                 status, reason, bl, bl, body);
	if (n > 0)
		(void)send(c->cfd, out, (size_t)n < sizeof(out) ? (size_t)n : sizeof(out) - 1,
		           MSG_NOSIGNAL | MSG_DONTWAIT);
	conn_close(c);
}

static void
deny(struct conn *c, const char *rule)
{
	snprintf(c->rule, sizeof(c->rule), "%s", rule);
	log_decision(c, false);
	answer(c, 403, "Forbidden", "airlock egress: %s is not allowed by %s",
	       c->host[0] ? c->host : "the request", rule);
}

/* ---- head parsing (llhttp) ---- */

static struct conn *
pconn(llhttp_t *p)
{
	return p->data;
}

static int
on_url(llhttp_t *p, const char *at, size_t len)
{
	return buf_add(&pconn(p)->url, at, len) == 0 ? 0 : HPE_USER;
}

static void
header_done(struct conn *c)
{
	static const char *const hop[] = {
	    "connection", "proxy-connection", "keep-alive", "proxy-authorization",
	    "te",         "upgrade",          "trailer"};
	const char *f = c->field.data ? c->field.data : "";
	const char *v = c->value.data ? c->value.data : "";
	if (strcasecmp(f, "expect") == 0 && strcasecmp(v, "100-continue") == 0)
		c->expect_continue = true;
	if (strcasecmp(f, "host") == 0) {
		c->n_host++;
		if (c->value.len >= sizeof(c->host_hdr))
			c->bad_header = true;
		else
			snprintf(c->host_hdr, sizeof(c->host_hdr), "%s", v);
	}
	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (strcasecmp(f, hop[i]) == 0)
			goto out;
	if (buf_addf(&c->hdrs, "%s: %s\r\n", f, v) != 0)
		c->bad_header = true;
out:
	buf_reset(&c->field);
	buf_reset(&c->value);
}

static int
on_header_field(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = pconn(p);
	if (c->in_value) {
		header_done(c);
		c->in_value = false;
	}
	return buf_add(&c->field, at, len) == 0 ? 0 : HPE_USER;
}

static int
on_header_value(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = pconn(p);
	c->in_value = true;
	return buf_add(&c->value, at, len) == 0 ? 0 : HPE_USER;
}

static int
on_headers_complete(llhttp_t *p)
{
	struct conn *c = pconn(p);
	if (c->in_value) {
		header_done(c);
		c->in_value = false;
	}
	c->head_done = true;
	return HPE_PAUSED;
}

static int
on_body(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = pconn(p);
	if (!c->buffering)
		return 0;
	if (buf_add(&c->body, at, len) != 0) {
		c->body_over = true;
		return HPE_USER;
	}
	return 0;
}

static int
on_message_complete(llhttp_t *p)
{
	pconn(p)->msg_done = true;
	return HPE_PAUSED;
}

/* ---- resolution: static names, literals, else getaddrinfo on a thread ---- */

static void
lookup_unref(struct lookup *lk)
{
	if (atomic_fetch_sub(&lk->refs, 1) == 1)
		free(lk);
}

static void *
lookup_thread(void *arg)
{
	struct lookup *lk = arg;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	lk->gai = getaddrinfo(lk->host, NULL, &hints, &res);
	for (struct addrinfo *ai = res; ai && lk->n < 8; ai = ai->ai_next) {
		char txt[INET6_ADDRSTRLEN];
		if (ai->ai_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, txt,
			          sizeof(txt));
		else if (ai->ai_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, txt,
			          sizeof(txt));
		else
			continue;
		if (egress_addr_parse(txt, &lk->addrs[lk->n]) == 0)
			lk->n++;
	}
	if (res)
		freeaddrinfo(res);
	(void)!write(lk->pipe[1], "", 1);
	close(lk->pipe[1]);
	lookup_unref(lk);
	return NULL;
}

static void dial(struct conn *c, const struct egress_addr *addrs, size_t n);

static void
on_lookup(struct loop *l, int fd, int mask, void *arg)
{
	struct conn *c = arg;
	struct lookup *lk = c->lk;
	(void)l;
	(void)mask;
	(void)fd;
	loop_fd_del(c->px->loop, lk->pipe[0]);
	close(lk->pipe[0]);
	c->lk = NULL;
	if (lk->gai != 0 || lk->n == 0) {
		snprintf(c->rule, sizeof(c->rule), "DNS (%s)",
		         lk->gai ? gai_strerror(lk->gai) : "no address");
		log_decision(c, false);
		answer(c, 502, "Bad Gateway", "airlock egress: %s does not resolve (%s)", c->host,
		       lk->gai ? gai_strerror(lk->gai) : "no address");
		lookup_unref(lk);
		return;
	}
	struct egress_addr addrs[8];
	size_t n = lk->n;
	memcpy(addrs, lk->addrs, n * sizeof(addrs[0]));
	lookup_unref(lk);
	dial(c, addrs, n);
}

static void
resolve(struct conn *c, bool is_ip)
{
	struct egress_addr a;
	pthread_t th;
	pthread_attr_t at;
	if (is_ip) {
		if (egress_addr_parse(c->host, &a) != 0) {
			deny(c, "the target parser");
			return;
		}
		dial(c, &a, 1);
		return;
	}
	if (egress_operator_resolve(c->px->op, c->host, &a)) {
		dial(c, &a, 1);
		return;
	}
	struct lookup *lk = xcalloc(1, sizeof(*lk));
	snprintf(lk->host, sizeof(lk->host), "%s", c->host);
	if (pipe2(lk->pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		free(lk);
		answer(c, 503, "Service Unavailable", "airlock egress: out of resources");
		return;
	}
	atomic_init(&lk->refs, 2);
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &at, lookup_thread, lk) != 0) {
		pthread_attr_destroy(&at);
		close(lk->pipe[0]);
		close(lk->pipe[1]);
		free(lk);
		answer(c, 503, "Service Unavailable", "airlock egress: out of resources");
		return;
	}
	pthread_attr_destroy(&at);
	c->lk = lk;
	c->st = C_RESOLVE;
	arm(c, c->px->dial_ms);
	loop_fd_set(c->px->loop, lk->pipe[0], LOOP_READ, on_lookup, c);
}

/* ---- dialling and relaying ---- */

static void
on_timeout(struct loop *l, void *arg)
{
	struct conn *c = arg;
	(void)l;
	c->timer = NULL;
	if (c->st == C_HEAD) {
		/* a slowloris client: no decision was made, nothing to log as one */
		answer(c, 408, "Request Timeout",
		       "airlock egress: request head not complete within %llu ms",
		       (unsigned long long)c->px->head_ms);
		return;
	}
	if (c->st == C_RESOLVE) {
		/* the lookup thread finishes on its own; conn_close drops our reference */
		snprintf(c->rule, sizeof(c->rule), "DNS (no answer in time)");
		log_decision(c, false);
		answer(c, 504, "Gateway Timeout", "airlock egress: %s did not resolve in time",
		       c->host);
		return;
	}
	if (c->st == C_DIAL) {
		snprintf(c->rule, sizeof(c->rule), "the dial timeout");
		log_decision(c, false);
		answer(c, 504, "Gateway Timeout", "airlock egress: %s (%s) did not answer", c->host,
		       c->addr_txt);
		return;
	}
	/* a relay: idle both ways for IDLE_TIMEOUT_MS (activity only stamps a time) */
	uint64_t idle = now_mono_ms() - c->last_io_ms;
	if (idle < IDLE_TIMEOUT_MS) {
		arm(c, IDLE_TIMEOUT_MS - idle);
		return;
	}
	log_decision(c, true);
	conn_close(c);
}

static void
arm(struct conn *c, uint64_t ms)
{
	loop_timer_cancel(c->px->loop, c->timer);
	c->timer = loop_timer_add(c->px->loop, ms, on_timeout, c);
}

static void on_upstream(struct loop *l, int fd, int mask, void *arg);

static void
dial(struct conn *c, const struct egress_addr *addrs, size_t n)
{
	struct egress_decision d = {0};
	size_t i;
	/* resolve once, dial that address: the first the address rules allow */
	for (i = 0; i < n; i++) {
		struct egress_decision di;
		egress_decide_addr(c->px->op, &addrs[i], c->px->own, c->px->n_own, &di);
		if (i == 0 || di.allow)
			d = di;
		if (di.allow)
			break;
	}
	egress_addr_format(&addrs[i < n ? i : 0], c->addr_txt, sizeof(c->addr_txt));
	if (!d.allow) {
		deny(c, d.rule);
		return;
	}
	c->addr = addrs[i];
	struct sockaddr_storage ss;
	socklen_t sl;
	memset(&ss, 0, sizeof(ss));
	if (egress_addr_is_v4(&c->addr)) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(c->port);
		memcpy(&s4->sin_addr, c->addr.a + 12, 4);
		sl = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(c->port);
		memcpy(&s6->sin6_addr, c->addr.a, 16);
		sl = sizeof(*s6);
	}
	c->ufd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->ufd < 0 ||
	    (connect(c->ufd, (struct sockaddr *)&ss, sl) != 0 && errno != EINPROGRESS)) {
		snprintf(c->rule, sizeof(c->rule), "the dial (%s)", strerror(errno));
		log_decision(c, false);
		answer(c, 502, "Bad Gateway", "airlock egress: cannot connect to %s (%s): %s",
		       c->host, c->addr_txt, strerror(errno));
		return;
	}
	char host_rule[EGRESS_RULE_MAX];
	snprintf(host_rule, sizeof(host_rule), "%s", c->rule);
	snprintf(c->rule, sizeof(c->rule), "%s; %s", host_rule, d.rule);
	c->st = C_DIAL;
	arm(c, c->px->dial_ms);
	loop_fd_set(c->px->loop, c->ufd, LOOP_WRITE, on_upstream, c);
}

static bool body_finish(struct conn *c);

/* Feeds client bytes of a plain-HTTP request to the parser; what it consumed (up to
 * the end of this one request) goes upstream, the rest is dropped. Buffering, the
 * parser's on_body keeps the decoded body instead. false: the connection was closed. */
static bool
http_feed(struct conn *c, const char *p, size_t n)
{
	if (c->msg_done || n == 0)
		return true;
	llhttp_errno_t e = llhttp_execute(&c->parser, p, n);
	size_t used = n;
	if (e == HPE_PAUSED && c->msg_done)
		used = (size_t)(llhttp_get_error_pos(&c->parser) - p);
	else if (e != HPE_OK) {
		c->msg_done = true; /* a malformed body: forward nothing more */
		used = 0;
	}
	if (c->buffering)
		return c->msg_done ? body_finish(c) : true;
	memcpy(c->up + c->up_len, p, used);
	c->up_len += used;
	c->bytes_up += used;
	return true;
}

/* Puts sec's value in place of every placeholder in b (a new buffer of at most max
 * bytes replaces it) and names sec in c->injected. false, b unchanged: none there, or
 * the result would pass max (then the placeholder stays: fail closed). */
static bool
replace_secret(struct conn *c, const struct egress_secret *sec, struct buf *b, size_t max)
{
	size_t pl = strlen(sec->placeholder), vl = strlen(sec->value);
	if (b->len < pl || memmem(b->data, b->len, sec->placeholder, pl) == NULL)
		return false;
	struct buf out;
	buf_init_secret(&out, max);
	const char *p = b->data, *end = b->data + b->len, *q;
	bool ok = true;
	while (ok && (q = memmem(p, (size_t)(end - p), sec->placeholder, pl)) != NULL) {
		ok = buf_add(&out, p, (size_t)(q - p)) == 0 && buf_add(&out, sec->value, vl) == 0;
		p = q + pl;
	}
	if (!ok || buf_add(&out, p, (size_t)(end - p)) != 0) {
		buf_wipe_free(&out);
		return false;
	}
	buf_wipe_free(b);
	*b = out;
	if (strstr(c->injected, sec->id) == NULL) {
		size_t il = strlen(c->injected);
		snprintf(c->injected + il, sizeof(c->injected) - il, "%s%s", il ? "," : "",
		         sec->id);
	}
	return true;
}

/* Plain HTTP: each credential whose hosts include the target and whose
 * injection_location allows headers gets its value in place of its placeholder in the
 * header lines (the whole head is here: a placeholder cannot be split across reads).
 * Bodies are not rewritten yet; elsewhere the placeholder leaves as it is. */
static void
inject_headers(struct conn *c)
{
	struct egress_proxy *px = c->px;
	for (size_t i = 0; i < px->n_secrets; i++) {
		struct egress_secret *sec = &px->secrets[i];
		if (sec->header && egress_list_match(&sec->hosts, c->host, c->port) != NULL)
			(void)replace_secret(c, sec, &c->hdrs, HEAD_MAX + 4096);
	}
}

/* The secrets whose value goes into this request's body. */
static bool
body_secret_applies(const struct conn *c, const struct egress_secret *sec)
{
	return sec->body && egress_list_match(&sec->hosts, c->host, c->port) != NULL;
}

/* The held body is whole: placeholders replaced, the framing headers dropped and one
 * Content-Length written, the request queued upstream. A body past BODY_INJECT_MAX or a
 * malformed one is refused (the placeholder never leaves half-replaced). */
static bool
body_finish(struct conn *c)
{
	struct egress_proxy *px = c->px;
	if (c->body_over || llhttp_get_errno(&c->parser) != HPE_PAUSED) {
		snprintf(c->rule, sizeof(c->rule), "the body rules for secret injection (%s)",
		         c->body_over ? "over 1 MiB" : "malformed body");
		log_decision(c, false);
		answer(c, c->body_over ? 413 : 400,
		       c->body_over ? "Content Too Large" : "Bad Request",
		       "airlock egress: a request body to %s that may carry a secret must be "
		       "well-formed and at most %u bytes",
		       c->host, BODY_INJECT_MAX);
		return false;
	}
	for (size_t i = 0; i < px->n_secrets; i++)
		if (body_secret_applies(c, &px->secrets[i]))
			(void)replace_secret(c, &px->secrets[i], &c->body,
			                     BODY_INJECT_MAX + 64 * 1024);
	/* framing of our own: the body's length changed, its chunks are gone */
	struct buf h;
	buf_init_secret(&h, HEAD_MAX + 64);
	for (const char *l = c->hdrs.data, *end = l + c->hdrs.len; l && l < end;) {
		const char *nl = memchr(l, '\n', (size_t)(end - l));
		size_t ll = nl ? (size_t)(nl - l) + 1 : (size_t)(end - l);
		if (strncasecmp(l, "content-length:", 15) != 0 &&
		    strncasecmp(l, "transfer-encoding:", 18) != 0 &&
		    strncasecmp(l, "expect:", 7) != 0)
			(void)buf_add(&h, l, ll);
		l += ll;
	}
	/* never smaller than the relay buffer it replaces (sizes are assumed RELAY_BUF) */
	size_t total = HEAD_MAX + 128 + c->body.len;
	if (total < RELAY_BUF)
		total = RELAY_BUF;
	/* a new block, the old one wiped: realloc would free it as it is */
	char *nup = xmalloc(total);
	explicit_wipe(c->up, c->up_big > RELAY_BUF ? c->up_big : RELAY_BUF);
	free(c->up);
	c->up = nup;
	int n = snprintf(c->up, total,
	                 "%s %s HTTP/1.1\r\n%.*sContent-Length: %zu\r\nConnection: close\r\n\r\n",
	                 c->method, c->path, (int)h.len, h.data ? h.data : "", c->body.len);
	buf_wipe_free(&h);
	if (n < 0 || (size_t)n + c->body.len > total) {
		answer(c, 431, "Request Header Fields Too Large",
		       "airlock egress: request too large");
		return false;
	}
	memcpy(c->up + n, c->body.data ? c->body.data : "", c->body.len);
	c->up_len = (size_t)n + c->body.len;
	c->bytes_up = c->up_len;
	c->up_big = total;
	buf_wipe_free(&c->body);
	c->buffering = false;
	px->held--;
	return true;
}

/* Whether this plain-HTTP request's body is held for a body secret (it has one, to a
 * host such a secret is for). The head waits with it; an `Expect: 100-continue` is
 * answered here, as the origin will not see the request before the body is whole. */
static bool
start_buffering(struct conn *c)
{
	struct egress_proxy *px = c->px;
	bool has_body = (c->parser.flags & F_CHUNKED) ||
	                ((c->parser.flags & F_CONTENT_LENGTH) && c->parser.content_length > 0);
	bool applies = false;
	for (size_t i = 0; i < px->n_secrets && !applies; i++)
		applies = body_secret_applies(c, &px->secrets[i]);
	if (!has_body || !applies)
		return false;
	if (px->held >= BODY_HELD_MAX) {
		/* the memory bound wins: streamed as it is, the body keeps its placeholder */
		log_warn("egress: too many bodies held for secret injection; this one goes "
		         "without",
		         "session_id", px->session_id, "host", c->host);
		return false;
	}
	px->held++;
	inject_headers(c);
	c->buffering = true;
	buf_init_secret(&c->body, BODY_INJECT_MAX);
	if (c->expect_continue) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		memcpy(c->down, cont, sizeof(cont) - 1);
		c->down_len = sizeof(cont) - 1;
	}
	return true;
}

static void
relay_start(struct conn *c)
{
	static const char est[] = "HTTP/1.1 200 Connection established\r\n\r\n";
	/* the head's parse paused right after it: the rest is body or tunnel bytes */
	size_t used = (size_t)(llhttp_get_error_pos(&c->parser) - c->head.data);
	const char *rest = c->head.data + used;
	size_t nrest = c->head.len - used;
	c->up = xmalloc(RELAY_BUF);
	c->down = xmalloc(RELAY_BUF);
	c->st = C_RELAY;
	c->cmask = c->umask = -1; /* unknown: the first update sets both */
	c->cap = RELAY_BUF;
	c->last_io_ms = now_mono_ms();
	if (c->is_connect) {
		memcpy(c->down, est, sizeof(est) - 1);
		c->down_len = sizeof(est) - 1;
		/* bytes the client sent after the head (a TLS hello) go up as they are */
		memcpy(c->up, rest, nrest);
		c->up_len = nrest;
		c->bytes_up += nrest;
		c->hello_wait = true;
	} else if (!start_buffering(c)) {
		inject_headers(c);
		/* origin form, hop-by-hop headers dropped, one request per connection: a
		 * second request on it could name another Host than the one checked */
		int n = snprintf(c->up, RELAY_BUF,
		                 "%s %s HTTP/1.1\r\n%.*sConnection: close\r\n\r\n", c->method,
		                 c->path, (int)c->hdrs.len, c->hdrs.data ? c->hdrs.data : "");
		c->up_len = n > 0 && n < RELAY_BUF ? (size_t)n : 0;
		c->bytes_up += c->up_len;
		llhttp_resume(&c->parser);
		(void)http_feed(c, rest, nrest); /* not buffering: never closes */
	} else {
		llhttp_resume(&c->parser);
		if (!http_feed(c, rest, nrest)) {
			return;
		}
	}
	buf_free(&c->head);
	arm(c, IDLE_TIMEOUT_MS);
	if (c->hello_wait && !hello_check(c))
		return;
	conn_update(c);
}

static void
conn_update(struct conn *c)
{
	int cm = 0, um = 0;
	if (c->st != C_RELAY)
		return;
	maybe_splice(c);
	if (!c->c_eof && !c->msg_done && c->up_len < c->cap)
		cm |= LOOP_READ;
	if (c->down_len > 0)
		cm |= LOOP_WRITE;
	if (!c->u_eof && c->down_len < c->cap)
		um |= LOOP_READ;
	if (c->up_len > 0 && !c->hello_wait)
		um |= LOOP_WRITE;
	/* a direction that ended and drained passes its end on */
	if (c->c_eof && c->up_len == 0 && !c->u_shut) {
		shutdown(c->ufd, SHUT_WR);
		c->u_shut = true;
	}
	if (c->u_eof && c->down_len == 0 && !c->c_shut) {
		shutdown(c->cfd, SHUT_WR);
		c->c_shut = true;
	}
	if (c->u_eof && c->down_len == 0 && (c->c_eof || c->msg_done || c->u_shut)) {
		log_decision(c, true);
		conn_close(c);
		return;
	}
	/* only changes reach epoll: a busy relay would make two epoll_ctl calls an event */
	if (cm != c->cmask)
		loop_fd_set(c->px->loop, c->cfd, cm, on_client, c);
	if (um != c->umask)
		loop_fd_set(c->px->loop, c->ufd, um, on_upstream, c);
	c->cmask = cm;
	c->umask = um;
}

/* CONNECT: the first client bytes, when they are a TLS ClientHello, must name the
 * CONNECT target in their SNI (no domain fronting: a CDN routes by SNI, not by the
 * address we checked). A hello without SNI and bytes that are not TLS pass: the address
 * dialled is the one decided either way. Returns false when the connection was closed. */
static bool
hello_check(struct conn *c)
{
	char sni[EGRESS_HOST_MAX + 1];
	if (c->up_len == 0) {
		if (c->c_eof)
			c->hello_wait = false; /* said nothing and left */
		return true;
	}
	int r = egress_sni_parse((const uint8_t *)c->up, c->up_len, sni);
	if (r == AL_E_AGAIN) {
		if (c->up_len < RELAY_BUF && !c->c_eof)
			return true;
		r = AL_E_PROTO; /* it never became whole */
	}
	c->hello_wait = false;
	if (r == 0 && strcmp(sni, c->host) == 0)
		return true;
	if (r == AL_E_NOTFOUND || r == AL_E_UNSUPPORTED)
		return true;
	/* the 200 is out: a TLS client sees the connection end */
	if (r == 0)
		snprintf(c->rule, sizeof(c->rule),
		         "the SNI check (the TLS server name '%s' is not the CONNECT target)", sni);
	else
		snprintf(c->rule, sizeof(c->rule), "the SNI check (a malformed TLS ClientHello)");
	log_decision(c, false);
	conn_close(c);
	return false;
}

/* Sends what one direction holds; false when the connection was closed (a reset). */
static bool
flush_dir(struct conn *c, bool to_client)
{
	char *b = to_client ? c->down : c->up;
	size_t *len = to_client ? &c->down_len : &c->up_len;
	if (*len == 0 || (!to_client && c->hello_wait))
		return true;
	ssize_t n;
	if (c->spliced)
		n = splice(to_client ? c->down_pipe[0] : c->up_pipe[0], NULL,
		           to_client ? c->cfd : c->ufd, NULL, *len,
		           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	else
		n = send(to_client ? c->cfd : c->ufd, b, *len, MSG_NOSIGNAL);
	if (n < 0 && errno != EAGAIN && errno != EINTR) {
		log_decision(c, true);
		conn_close(c);
		return false;
	}
	if (n > 0) {
		if (!c->spliced)
			memmove(b, b + n, *len - (size_t)n);
		*len -= (size_t)n;
	}
	return true;
}

/* A tunnel whose first bytes passed and whose buffers are empty goes over to splice:
 * the bytes no longer cross user space (CONNECT throughput, docs/worker/egress.md).
 * Without the pipes (no fds left) it stays on the buffers. */
static void
maybe_splice(struct conn *c)
{
	if (c->spliced || !c->is_connect || c->hello_wait || c->up_len || c->down_len)
		return;
	if (pipe2(c->up_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
		return;
	if (pipe2(c->down_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
		close(c->up_pipe[0]);
		close(c->up_pipe[1]);
		c->up_pipe[0] = c->up_pipe[1] = -1;
		return;
	}
	/* a user over its pipe quota gets one-page pipes: hold no more than they take, or
	 * a full pipe would leave a readable socket spinning the loop */
	int a = fcntl(c->up_pipe[1], F_GETPIPE_SZ), b = fcntl(c->down_pipe[1], F_GETPIPE_SZ);
	if (a <= 0 || b <= 0) {
		for (int i = 0; i < 2; i++) {
			close(c->up_pipe[i]);
			close(c->down_pipe[i]);
		}
		return;
	}
	c->cap = (size_t)(a < b ? a : b);
	if (c->cap > RELAY_BUF)
		c->cap = RELAY_BUF;
	c->spliced = true;
	free(c->up);
	free(c->down);
	c->up = c->down = NULL;
}

/* Moves what fd has into its direction's pipe: the bytes, 0 at EOF, -1 for nothing now. */
static ssize_t
splice_in(struct conn *c, bool from_client)
{
	size_t room = c->cap - (from_client ? c->up_len : c->down_len);
	ssize_t n = splice(from_client ? c->cfd : c->ufd, NULL,
	                   from_client ? c->up_pipe[1] : c->down_pipe[1], NULL, room,
	                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return -1;
	return n < 0 ? 0 : n; /* an error ends the direction like an EOF */
}

static void
relay_io(struct conn *c, int fd, int mask)
{
	bool client = fd == c->cfd;
	ssize_t n;
	c->last_io_ms = now_mono_ms();
	if ((mask & LOOP_WRITE) && !flush_dir(c, client))
		return;
	if ((mask & LOOP_READ) && c->spliced) {
		bool from_client = client;
		if (from_client ? (!c->c_eof && c->up_len < c->cap)
		                : (!c->u_eof && c->down_len < c->cap)) {
			n = splice_in(c, from_client);
			if (n == 0)
				*(from_client ? &c->c_eof : &c->u_eof) = true;
			else if (n > 0) {
				*(from_client ? &c->up_len : &c->down_len) += (size_t)n;
				*(from_client ? &c->bytes_up : &c->bytes_down) += (size_t)n;
				if (!flush_dir(c, !from_client))
					return;
			}
		}
	} else if (mask & LOOP_READ) {
		if (client && !c->c_eof && !c->msg_done && c->up_len < RELAY_BUF) {
			char tmp[RELAY_BUF];
			n = recv(fd, tmp, RELAY_BUF - c->up_len, 0);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
				c->c_eof = true;
				if (c->hello_wait && !hello_check(c))
					return;
			} else if (n > 0 && c->is_connect) {
				memcpy(c->up + c->up_len, tmp, (size_t)n);
				c->up_len += (size_t)n;
				c->bytes_up += (size_t)n;
				if (c->hello_wait && !hello_check(c))
					return;
			} else if (n > 0) {
				if (!http_feed(c, tmp, (size_t)n))
					return;
			}
			/* straight on, rather than one more trip through epoll */
			if (n > 0 && !flush_dir(c, false))
				return;
		} else if (!client && !c->u_eof && c->down_len < RELAY_BUF) {
			n = recv(fd, c->down + c->down_len, RELAY_BUF - c->down_len, 0);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				c->u_eof = true;
			else if (n > 0) {
				c->down_len += (size_t)n;
				c->bytes_down += (size_t)n;
				if (!flush_dir(c, true))
					return;
			}
		}
	}
	conn_update(c);
}

/* ---- TLS termination (docs/worker/egress.md "TLS termination") ---- */

static struct conn *conn_new(struct egress_proxy *px, int cfd, int ufd);

/* Only a tunnel to a host one of the session's credentials is for is opened: every
 * other one stays an untouched tunnel. An operator's no_terminate host (mTLS, pinned
 * clients) is never opened either, and so gets no secret: said in the log. */
static bool
terminate_wanted(struct conn *c)
{
	struct egress_proxy *px = c->px;
	bool due = false;
	for (size_t i = 0; i < px->n_secrets && !due; i++)
		due = egress_list_match(&px->secrets[i].hosts, c->host, c->port) != NULL;
	if (!due)
		return false;
	if (egress_list_match(&px->op->no_terminate, c->host, c->port) != NULL) {
		log_warn("egress: not terminating TLS to a host the operator's no_terminate lists: "
		         "its requests keep the secret placeholder",
		         "session_id", px->session_id, "host", c->host);
		return false;
	}
	if (px->ca == NULL) {
		log_warn("egress: no CA for TLS termination (a sandboxed worker with "
		         "--egress-policy makes one): this tunnel keeps the secret placeholder",
		         "session_id", px->session_id, "host", c->host);
		return false;
	}
	return true;
}

static void
on_client_tls(void *arg, bool ok, const char *why)
{
	struct conn *c = arg;
	struct egress_proxy *px = c->px;
	SSL *ssl = ok ? egress_tls_bridge_ssl(c->cb) : NULL;
	const char *sni = ssl ? SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) : NULL;
	int a[2] = {-1, -1}, b[2] = {-1, -1};
	if (!ok) {
		c->cb = NULL; /* freed by its caller */
		snprintf(c->rule, sizeof(c->rule),
		         "the sandbox's TLS handshake with the proxy (%s; does the client trust "
		         "SSL_CERT_FILE?)",
		         why);
		goto deny;
	}
	if (sni && strcasecmp(sni, c->host) != 0) {
		/* the leaf names the target; a client asking for another name is fronting */
		snprintf(c->rule, sizeof(c->rule),
		         "the SNI check (the TLS server name '%.200s' is not the CONNECT target)",
		         sni);
		goto deny;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, a) != 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, b) != 0) {
		snprintf(c->rule, sizeof(c->rule), "the proxy's resources (socketpair: %s)",
		         strerror(errno));
		if (a[0] >= 0) {
			close(a[0]);
			close(a[1]);
		}
		goto deny;
	}
	/* the requests inside go through the plain-HTTP code: same checks, same
	 * injection, one decision line each; the target and address are the tunnel's */
	struct conn *n = conn_new(px, a[1], b[1]);
	n->terminated = true;
	n->port = c->port;
	n->addr = c->addr;
	snprintf(n->host, sizeof(n->host), "%s", c->host);
	snprintf(n->addr_txt, sizeof(n->addr_txt), "%s", c->addr_txt);
	snprintf(n->rule, sizeof(n->rule), "%s", c->rule);
	egress_tls_bridge_start(c->cb, a[0]);
	egress_tls_bridge_start(c->ub, b[0]);
	c->cb = c->ub = NULL;
	size_t rl = strlen(c->rule);
	snprintf(c->rule + rl, sizeof(c->rule) - rl, "; TLS terminated for secret injection");
	log_decision(c, true);
	conn_close(c);
	return;
deny:
	log_decision(c, false);
	conn_close(c); /* the 200 is out: a TLS client sees the connection end */
}

static void
on_origin_tls(void *arg, bool ok, const char *why)
{
	struct conn *c = arg;
	static const char est[] = "HTTP/1.1 200 Connection established\r\n\r\n";
	if (!ok) {
		c->ub = NULL; /* freed by its caller */
		snprintf(c->rule, sizeof(c->rule), "the origin's TLS (%s)", why);
		log_decision(c, false);
		answer(c, 502, "Bad Gateway", "airlock egress: %s refused: %s", c->host, why);
		return;
	}
	/* the origin is who it says (verified against the system trust): now the sandbox's
	 * side, with a leaf for the target signed by the worker's CA */
	SSL_CTX *leaf = egress_ca_leaf_ctx(c->px->ca, c->host, (int64_t)time(NULL));
	SSL *s = leaf ? SSL_new(leaf) : NULL;
	if (s == NULL) {
		snprintf(c->rule, sizeof(c->rule), "the proxy's TLS (no certificate for the host)");
		log_decision(c, false);
		answer(c, 502, "Bad Gateway", "airlock egress: cannot make a certificate for %s",
		       c->host);
		return;
	}
	if (send(c->cfd, est, sizeof(est) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) !=
	    (ssize_t)sizeof(est) - 1) {
		SSL_free(s);
		log_decision(c, true);
		conn_close(c);
		return;
	}
	loop_fd_del(c->px->loop, c->cfd);
	c->cb = egress_tls_bridge_new(c->px->loop, s, c->cfd, true, c->px->head_ms, IDLE_TIMEOUT_MS,
	                              on_client_tls, c);
	c->cfd = -1; /* the bridge's now (closed with it) */
	if (c->cb == NULL) {
		log_decision(c, false);
		conn_close(c);
	}
}

/* A CONNECT to a credential host, dialled: TLS to the origin first (a bad certificate
 * is a 502 with the reason, before the sandbox is told anything), then the 200 and TLS
 * with the sandbox. The tunnel's bytes after the head would be a ClientHello sent
 * before the 200: refused, as the proxy cannot yet answer it. */
static void
tls_start(struct conn *c)
{
	size_t used = (size_t)(llhttp_get_error_pos(&c->parser) - c->head.data);
	struct in6_addr a6;
	struct in_addr a4;
	bool is_ip =
	    inet_pton(AF_INET, c->host, &a4) == 1 || inet_pton(AF_INET6, c->host, &a6) == 1;
	if (used != c->head.len) {
		snprintf(c->rule, sizeof(c->rule),
		         "the TLS termination rules (tunnel bytes sent before its 200)");
		log_decision(c, false);
		answer(c, 400, "Bad Request",
		       "airlock egress: %s: wait for the 200 before sending tunnel bytes", c->host);
		return;
	}
	SSL *s = egress_ca_origin_ssl(c->px->ca, c->host, is_ip);
	if (s == NULL) {
		snprintf(c->rule, sizeof(c->rule), "the origin's TLS (cannot set it up)");
		log_decision(c, false);
		answer(c, 502, "Bad Gateway", "airlock egress: cannot open TLS to %s", c->host);
		return;
	}
	loop_timer_cancel(c->px->loop, c->timer); /* the bridges keep their own deadlines */
	c->timer = NULL;
	loop_fd_del(c->px->loop, c->ufd);
	c->st = C_TLS;
	c->ub = egress_tls_bridge_new(c->px->loop, s, c->ufd, false, c->px->dial_ms,
	                              IDLE_TIMEOUT_MS, on_origin_tls, c);
	c->ufd = -1;
	if (c->ub == NULL) {
		log_decision(c, false);
		answer(c, 502, "Bad Gateway", "airlock egress: cannot open TLS to %s", c->host);
	}
}

/* A request read in the clear from a terminated tunnel: origin form, its Host the
 * tunnel's target (no fronting inside the tunnel either), then relayed to the origin's
 * TLS with the same injection as plain HTTP. */
static void
terminated_head(struct conn *c, const char *u)
{
	char hh[EGRESS_HOST_MAX + 1];
	uint16_t hp = 0;
	bool hip;
	if (c->is_connect || c->url.len == 0 || u[0] != '/') {
		deny(c, "the target rules (inside a TLS tunnel, a request in origin form)");
		return;
	}
	snprintf(c->path, sizeof(c->path), "%.*s", (int)c->url.len, u);
	if (c->url.len >= sizeof(c->path)) {
		answer(c, 414, "URI Too Long", "airlock egress: the path is too long");
		return;
	}
	if (c->n_host != 1 ||
	    egress_authority_parse(c->host_hdr, strlen(c->host_hdr), 443, hh, sizeof(hh), &hp,
	                           &hip) != 0 ||
	    strcmp(hh, c->host) != 0 || hp != c->port) {
		deny(c, "the Host check (the Host header must name the tunnel's target)");
		return;
	}
	relay_start(c);
}

static void
on_upstream(struct loop *l, int fd, int mask, void *arg)
{
	struct conn *c = arg;
	(void)l;
	if (c->st == C_DIAL) {
		int err = 0;
		socklen_t el = sizeof(err);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
			err = errno;
		if (err == EINPROGRESS)
			return;
		if (err != 0) {
			snprintf(c->rule, sizeof(c->rule), "the dial (%s)", strerror(err));
			log_decision(c, false);
			answer(c, 502, "Bad Gateway",
			       "airlock egress: cannot connect to %s (%s): %s", c->host,
			       c->addr_txt, strerror(err));
			return;
		}
		loop_fd_set(c->px->loop, c->cfd, 0, on_client, c);
		if (c->is_connect && terminate_wanted(c))
			tls_start(c);
		else
			relay_start(c);
		return;
	}
	relay_io(c, fd, mask);
}

/* The head is in: decide the host, then resolve and dial. */
static void
head_complete(struct conn *c)
{
	struct egress_decision d;
	bool is_ip = false;
	const char *path = NULL;
	size_t plen = 0;
	snprintf(c->method, sizeof(c->method), "%s",
	         llhttp_method_name((llhttp_method_t)c->parser.method));
	c->is_connect = c->parser.method == HTTP_CONNECT;
	loop_fd_set(c->px->loop, c->cfd, 0, on_client, c);
	if (c->bad_header || c->n_host > 1) {
		answer(c, 400, "Bad Request", "airlock egress: malformed request (headers)");
		return;
	}
	const char *u = c->url.data ? c->url.data : "";
	if (c->terminated) {
		terminated_head(c, u);
		return;
	}
	if (c->is_connect) {
		if (egress_authority_parse(u, c->url.len, 0, c->host, sizeof(c->host), &c->port,
		                           &is_ip) != 0) {
			c->host[0] = '\0';
			deny(c, "the target rules (CONNECT wants host:port; no zone ids, no "
			        "userinfo)");
			return;
		}
	} else {
		if (egress_url_parse(u, c->url.len, c->host, sizeof(c->host), &c->port, &path,
		                     &plen) != 0) {
			c->host[0] = '\0';
			deny(c, "the target rules (a proxy request wants an absolute http:// URL; "
			        "https goes through CONNECT)");
			return;
		}
		snprintf(c->path, sizeof(c->path), "%.*s", (int)plen, path);
		if (plen >= sizeof(c->path)) {
			answer(c, 414, "URI Too Long", "airlock egress: the path is too long");
			return;
		}
		/* no domain fronting: the Host header names the target */
		char hh[EGRESS_HOST_MAX + 1];
		uint16_t hp = 0;
		bool hip;
		if (c->n_host != 1 ||
		    egress_authority_parse(c->host_hdr, strlen(c->host_hdr), 80, hh, sizeof(hh),
		                           &hp, &hip) != 0 ||
		    strcmp(hh, c->host) != 0 || hp != c->port) {
			deny(c, "the Host check (the Host header must name the request's target)");
			return;
		}
	}
	egress_decide_host(c->px->op, &c->px->env, c->host, c->port, &d);
	if (!d.allow) {
		deny(c, d.rule);
		return;
	}
	snprintf(c->rule, sizeof(c->rule), "%s", d.rule);
	resolve(c, is_ip);
}

static void
on_client(struct loop *l, int fd, int mask, void *arg)
{
	struct conn *c = arg;
	(void)l;
	if (c->st == C_RELAY) {
		relay_io(c, fd, mask);
		return;
	}
	if (c->st != C_HEAD)
		return; /* resolving or dialling: the client waits */
	char *wp;
	if (buf_reserve(&c->head, 4096, &wp) != 0) {
		answer(c, 431, "Request Header Fields Too Large",
		       "airlock egress: request head over %d bytes", HEAD_MAX);
		return;
	}
	ssize_t n = recv(fd, wp, 4096, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_close(c);
		return;
	}
	buf_commit(&c->head, (size_t)n);
	llhttp_errno_t e = llhttp_execute(&c->parser, wp, (size_t)n);
	if (e == HPE_PAUSED && c->head_done) {
		head_complete(c);
		return;
	}
	if (e != HPE_OK) {
		answer(c, 400, "Bad Request", "airlock egress: malformed request (%s)",
		       llhttp_errno_name(e));
		return;
	}
	if (c->head.len >= HEAD_MAX)
		answer(c, 431, "Request Header Fields Too Large",
		       "airlock egress: request head over %d bytes", HEAD_MAX);
}

static void
conn_close(struct conn *c)
{
	struct egress_proxy *px = c->px;
	loop_timer_cancel(px->loop, c->timer);
	if (c->lk) {
		loop_fd_del(px->loop, c->lk->pipe[0]);
		close(c->lk->pipe[0]);
		lookup_unref(c->lk);
	}
	egress_tls_bridge_free(c->cb);
	egress_tls_bridge_free(c->ub);
	if (c->cfd >= 0) {
		loop_fd_del(px->loop, c->cfd);
		close(c->cfd);
	}
	if (c->ufd >= 0) {
		loop_fd_del(px->loop, c->ufd);
		close(c->ufd);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		px->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	px->nconns--;
	buf_free(&c->head);
	buf_free(&c->url);
	buf_free(&c->field);
	buf_free(&c->value);
	buf_wipe_free(&c->hdrs);
	for (int i = 0; c->spliced && i < 2; i++) {
		close(c->up_pipe[i]);
		close(c->down_pipe[i]);
	}
	if (c->buffering)
		px->held--;          /* closed while its body was held */
	if (c->up && c->injected[0]) /* the request with a secret in it */
		explicit_wipe(c->up, c->up_big > RELAY_BUF ? c->up_big : RELAY_BUF);
	buf_wipe_free(&c->body);
	free(c->up);
	free(c->down);
	free(c);
}

/* A connection reading a request head from cfd (ufd: an upstream already there). */
static struct conn *
conn_new(struct egress_proxy *px, int cfd, int ufd)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	c->px = px;
	c->cfd = cfd;
	c->ufd = ufd;
	c->st = C_HEAD;
	buf_init(&c->head, HEAD_MAX);
	buf_init(&c->url, HEAD_MAX);
	buf_init(&c->field, HEAD_MAX);
	buf_init(&c->value, HEAD_MAX);
	buf_init_secret(&c->hdrs, HEAD_MAX); /* injection puts values in it */
	llhttp_init(&c->parser, HTTP_REQUEST, &px->settings);
	c->parser.data = c;
	snprintf(c->method, sizeof(c->method), "-");
	c->next = px->conns;
	if (px->conns)
		px->conns->prev = c;
	px->conns = c;
	px->nconns++;
	arm(c, px->head_ms);
	loop_fd_set(px->loop, cfd, LOOP_READ, on_client, c);
	return c;
}

static void
on_accept(struct loop *l, int fd, int mask, void *arg)
{
	struct egress_proxy *px = arg;
	(void)l;
	(void)mask;
	for (int i = 0; i < 16; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0)
			return;
		if (px->nconns >= px->op->max_connections) {
			static const char busy[] =
			    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
			    "Connection: close\r\nContent-Length: 63\r\n\r\n"
			    "airlock egress: too many open connections from this sandbox\n";
			(void)send(cfd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(cfd);
			continue;
		}
		(void)conn_new(px, cfd, -1);
	}
}

static void
own_addresses(struct egress_proxy *px)
{
	struct ifaddrs *ifa = NULL;
	if (getifaddrs(&ifa) != 0)
		return;
	for (struct ifaddrs *i = ifa; i && px->n_own < 32; i = i->ifa_next) {
		char txt[INET6_ADDRSTRLEN];
		if (i->ifa_addr == NULL)
			continue;
		if (i->ifa_addr->sa_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, txt,
			          sizeof(txt));
		else if (i->ifa_addr->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, txt,
			          sizeof(txt));
		else
			continue;
		if (strchr(txt, '%') == NULL && egress_addr_parse(txt, &px->own[px->n_own]) == 0)
			px->n_own++;
	}
	freeifaddrs(ifa);
}

int
egress_proxy_new(struct loop *l, int listen_fd, const struct egress_operator *op,
                 struct egress_env *env, const char *session_id, struct egress_proxy **out)
{
	struct egress_proxy *px = xcalloc(1, sizeof(*px));
	int r;
	px->loop = l;
	px->lfd = listen_fd;
	px->op = op;
	px->env = *env;
	memset(env, 0, sizeof(*env));
	px->session_id = xstrdup(session_id);
	px->pending = json_array();
	px->head_ms = HEAD_TIMEOUT_MS;
	px->dial_ms = DIAL_TIMEOUT_MS;
	llhttp_settings_init(&px->settings);
	px->settings.on_url = on_url;
	px->settings.on_header_field = on_header_field;
	px->settings.on_header_value = on_header_value;
	px->settings.on_headers_complete = on_headers_complete;
	px->settings.on_message_complete = on_message_complete;
	px->settings.on_body = on_body;
	own_addresses(px);
	if ((r = loop_fd_set(l, listen_fd, LOOP_READ, on_accept, px)) != 0) {
		egress_proxy_free(px);
		return r;
	}
	*out = px;
	return 0;
}

void
egress_proxy_set_ca(struct egress_proxy *p, struct egress_ca *ca)
{
	p->ca = ca;
}

void
egress_proxy_set_timeouts(struct egress_proxy *p, uint64_t head_ms, uint64_t dial_ms)
{
	p->head_ms = head_ms;
	p->dial_ms = dial_ms;
}

int
egress_proxy_add_secret(struct egress_proxy *p, const char *id, const char *placeholder,
                        const char *value, const json_t *hosts, bool header, bool body)
{
	json_t *h;
	size_t i;
	if (p->n_secrets == EGRESS_MAX_SECRETS)
		return AL_E_TOOBIG;
	if (value[0] == '\0' || strpbrk(value, "\r\n") != NULL || !json_is_array(hosts))
		return AL_E_INVAL; /* a value that would split a header line */
	struct egress_secret *s = &p->secrets[p->n_secrets];
	memset(s, 0, sizeof(*s));
	json_array_foreach(hosts, i, h)
	{
		if (!json_is_string(h) ||
		    egress_hostlist_add(&s->hosts, json_string_value(h), false, NULL, 0) != 0) {
			egress_hostlist_free(&s->hosts);
			return AL_E_INVAL;
		}
	}
	snprintf(s->id, sizeof(s->id), "%s", id);
	s->placeholder = xstrdup(placeholder);
	s->value = xstrdup(value);
	s->header = header;
	s->body = body;
	p->n_secrets++;
	return 0;
}

json_t *
egress_proxy_take(struct egress_proxy *p, size_t max)
{
	if (p == NULL || json_array_size(p->pending) == 0)
		return NULL;
	json_t *out = json_array();
	while (json_array_size(out) < max && json_array_size(p->pending) > 0) {
		json_array_append(out, json_array_get(p->pending, 0));
		json_array_remove(p->pending, 0);
	}
	return out;
}

void
egress_proxy_untake(struct egress_proxy *p, json_t *batch)
{
	size_t i;
	json_t *d;
	/* back in front, in order; the newest past the bound go */
	json_array_foreach(batch, i, d) json_array_insert(p->pending, i, d);
	while (json_array_size(p->pending) > EGRESS_PENDING_MAX) {
		json_array_remove(p->pending, json_array_size(p->pending) - 1);
		p->dropped++;
	}
}

uint64_t
egress_proxy_dropped(const struct egress_proxy *p)
{
	return p ? p->dropped : 0;
}

void
egress_proxy_set_session(struct egress_proxy *p, const json_t *session)
{
	json_t *ms = json_object_get(json_object_get(session, "agent"), "mcp_servers"), *m;
	size_t i;
	if (p == NULL || !json_is_array(ms))
		return;
	egress_hostlist_free(&p->env.mcp);
	json_array_foreach(ms, i, m)
	{
		const char *url = json_string_value(json_object_get(m, "url"));
		char host[EGRESS_HOST_MAX + 1], pat[EGRESS_HOST_MAX + 8];
		const char *s;
		size_t n;
		bool ip;
		uint16_t port;
		if (url == NULL || (s = strstr(url, "://")) == NULL)
			continue;
		s += 3;
		n = strcspn(s, "/?#");
		if (egress_authority_parse(s, n, strncasecmp(url, "http://", 7) == 0 ? 80 : 443,
		                           host, sizeof(host), &port, &ip) != 0 ||
		    ip)
			continue;
		snprintf(pat, sizeof(pat), "%s:%u", host, port);
		(void)egress_hostlist_add(&p->env.mcp, pat, true, NULL, 0);
	}
}

void
egress_proxy_free(struct egress_proxy *p)
{
	if (p == NULL)
		return;
	while (p->conns)
		conn_close(p->conns);
	loop_fd_del(p->loop, p->lfd);
	close(p->lfd);
	egress_env_free(&p->env);
	for (size_t i = 0; i < p->n_secrets; i++) {
		secret_free(p->secrets[i].value);
		free(p->secrets[i].placeholder);
		egress_hostlist_free(&p->secrets[i].hosts);
	}
	json_decref(p->pending);
	free(p->session_id);
	free(p);
}
