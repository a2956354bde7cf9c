/* libcurl multi on the gateway's event loop; see gateway_upstream.h. Redirects are never
 * followed, proxies from the environment are ignored, and every address curl dials
 * passes the allow-list after DNS resolution (the reference's primary SSRF defence). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "curl_dl.h"

#include "buf.h"
#include "err.h"
#include "gateway_upstream.h"
#include "log.h"
#include "tunnel_proto.h"
#include "xalloc.h"

#define EASY_POOL 32
#define UP_READ (256 * 1024)

struct upstream {
	struct upstream_ctx *u;
	struct upstream *next, *prev;
	CURL *easy;
	struct curl_slist *hdrs;
	char *body;
	const struct upstream_cb *cb;
	void *arg;
	int status;
	bool head_sent;
	bool paused;
	bool cancelled;
	struct buf head;
	char *ssrf; /* why open_sock refused the address, or NULL */
};

struct upstream_ctx {
	struct loop *loop;
	CURLM *multi;
	struct loop_timer *timer;
	struct loop_timer *reap_timer;
	const struct gateway_config *cfg;
	struct upstream *list;
	struct upstream *dead; /* cancelled, removed on the next reap */
	size_t active;
	void (*after)(void *);
	void *after_arg;
	/* Finished easy handles, reset, for the next transfers: curl_easy_init/cleanup per
	 * request (a large calloc, buffers, and malloc_consolidate on their free) was the
	 * gateway's biggest cost for small requests. */
	CURL *pool[EASY_POOL];
	size_t npool;
};

static void
t_unlink(struct upstream **head, struct upstream *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else if (*head == t)
		*head = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->next = t->prev = NULL;
}

static void
t_free(struct upstream *t)
{
	struct upstream_ctx *u = t->u;
	curl_multi_remove_handle(u->multi, t->easy);
	if (u->npool < EASY_POOL) {
		curl_easy_reset(t->easy);
		u->pool[u->npool++] = t->easy;
	} else
		curl_easy_cleanup(t->easy);
	curl_slist_free_all(t->hdrs);
	free(t->ssrf);
	free(t->body);
	buf_free(&t->head);
	free(t);
}

static void
reap(struct loop *l, void *arg)
{
	struct upstream_ctx *u = arg;
	u->reap_timer = NULL;
	while (u->dead) {
		struct upstream *t = u->dead;
		t_unlink(&u->dead, t);
		t_free(t);
	}
}

static void
check_done(struct upstream_ctx *u)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(u->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct upstream *t = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
		if (t == NULL || t->cancelled)
			continue;
		CURLcode res = m->data.result;
		const struct upstream_cb *cb = t->cb;
		void *arg = t->arg;
		int status = 0;
		char msg[320] = "";
		if (res != CURLE_OK) {
			if (t->head_sent)
				status = -1;
			else if (t->ssrf) {
				status = 403;
				snprintf(msg, sizeof(msg), "%s", t->ssrf);
			} else if (res == CURLE_OPERATION_TIMEDOUT) {
				status = 504;
				snprintf(msg, sizeof(msg), "upstream timed out");
			} else {
				/* No CURLOPT_ERRORBUFFER (256 bytes per transfer, idle ones
				 * too): curl's error text and the socket's errno say enough. */
				long oe = 0;
				curl_easy_getinfo(t->easy, CURLINFO_OS_ERRNO, &oe);
				status = 502;
				if (oe > 0)
					snprintf(msg, sizeof(msg), "upstream error: %s (%s)",
					         curl_easy_strerror(res), strerror((int)oe));
				else
					snprintf(msg, sizeof(msg), "upstream error: %s",
					         curl_easy_strerror(res));
			}
		}
		/* Done: detach and free before telling the owner, which may start others. */
		t_unlink(&u->list, t);
		u->active--;
		t->cancelled = true;
		t->next = u->dead;
		if (u->dead)
			u->dead->prev = t;
		u->dead = t;
		if (u->reap_timer == NULL)
			u->reap_timer = loop_timer_add(u->loop, 0, reap, u);
		cb->done(arg, status, msg);
	}
}

static void
after(struct upstream_ctx *u)
{
	check_done(u);
	if (u->after)
		u->after(u->after_arg);
}

static void
on_sock(struct loop *l, int fd, int mask, void *arg)
{
	struct upstream_ctx *u = arg;
	int running = 0;
	int ev =
	    (mask & LOOP_READ ? CURL_CSELECT_IN : 0) | (mask & LOOP_WRITE ? CURL_CSELECT_OUT : 0);
	curl_multi_socket_action(u->multi, fd, ev, &running);
	after(u);
}

static int
sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct upstream_ctx *u = userp;
	if (what == CURL_POLL_REMOVE) {
		loop_fd_del(u->loop, s);
		return 0;
	}
	int mask = (what & CURL_POLL_IN ? LOOP_READ : 0) | (what & CURL_POLL_OUT ? LOOP_WRITE : 0);
	loop_fd_set(u->loop, s, mask, on_sock, u);
	return 0;
}

static void
on_timer(struct loop *l, void *arg)
{
	struct upstream_ctx *u = arg;
	int running = 0;
	u->timer = NULL;
	curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	after(u);
}

static int
timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	struct upstream_ctx *u = userp;
	if (u->timer) {
		loop_timer_cancel(u->loop, u->timer);
		u->timer = NULL;
	}
	if (timeout_ms >= 0)
		u->timer = loop_timer_add(u->loop, (uint64_t)timeout_ms, on_timer, u);
	return 0;
}

struct upstream_ctx *
upstream_ctx_new(struct loop *l)
{
	struct upstream_ctx *u = xcalloc(1, sizeof(*u));
	u->loop = l;
	u->multi = curl_multi_init();
	curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
	curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
	/* Keep-alive connections to upstreams stay cached even when few transfers run
	 * (curl's default is 4 x the handles added right now): under wrk one request in
	 * twenty paid for a new TCP connection. */
	curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, 64L);
	return u;
}

void
upstream_ctx_set_config(struct upstream_ctx *u, const struct gateway_config *cfg)
{
	u->cfg = cfg;
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
	while (u->list) {
		struct upstream *t = u->list;
		t_unlink(&u->list, t);
		t_free(t);
	}
	if (u->reap_timer)
		loop_timer_cancel(u->loop, u->reap_timer);
	reap(u->loop, u);
	if (u->timer)
		loop_timer_cancel(u->loop, u->timer);
	while (u->npool > 0)
		curl_easy_cleanup(u->pool[--u->npool]);
	curl_multi_cleanup(u->multi);
	free(u);
}

static curl_socket_t
open_sock(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct upstream *t = clientp;
	if (!gateway_config_ip_allowed(t->u->cfg, &a->addr)) {
		char ip[INET6_ADDRSTRLEN] = "?";
		if (a->family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&a->addr)->sin_addr, ip,
			          sizeof(ip));
		else if (a->family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&a->addr)->sin6_addr, ip,
			          sizeof(ip));
		free(t->ssrf);
		t->ssrf = xasprintf("IP validation failed: %s is not a private address", ip);
		log_warn("upstream refused", "error", t->ssrf);
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static size_t
on_header(char *p, size_t size, size_t n, void *arg)
{
	struct upstream *t = arg;
	size_t len = size * n;
	if (t->cancelled)
		return 0;
	if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		const char *sp = memchr(p, ' ', len);
		uint64_t st;
		if (sp == NULL || (size_t)(sp - p) + 4 > len ||
		    parse_uint(sp + 1, 3, 999, &st) != 0)
			return 0;
		t->status = (int)st;
		buf_reset(&t->head);
		if (t->hdrs) {
			/* The request went out and an answer began: curl does not send it
			 * again (no redirects, no auth retries), so an idle stream need not
			 * keep its header list. */
			curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, NULL);
			curl_slist_free_all(t->hdrs);
			t->hdrs = NULL;
		}
		return len;
	}
	if (len <= 2) { /* end of a header block */
		if (t->status >= 200 && !t->head_sent) {
			t->head_sent = true;
			t->cb->head(t->arg, t->status, t->head.data ? t->head.data : "",
			            t->head.len);
			buf_free(&t->head); /* nghttp2 copied it: an idle stream keeps none */
		}
		return len;
	}
	const char *colon = memchr(p, ':', len);
	if (colon == NULL || colon == p)
		return len; /* obs-fold or junk: dropped */
	size_t nl = (size_t)(colon - p);
	if (tunnel_hop_header(p, nl))
		return len;
	const char *v = colon + 1;
	size_t vl = len - nl - 1;
	while (vl && (*v == ' ' || *v == '\t')) {
		v++;
		vl--;
	}
	while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
		vl--;
	for (size_t i = 0; i < nl; i++) {
		char c = p[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c + 32);
		if (buf_add(&t->head, &c, 1) != 0)
			return 0;
	}
	if (buf_add(&t->head, "", 1) != 0 || buf_add(&t->head, v, vl) != 0 ||
	    buf_add(&t->head, "", 1) != 0)
		return 0; /* upstream headers past 64 KiB: abort */
	return len;
}

static size_t
on_write(char *p, size_t size, size_t n, void *arg)
{
	struct upstream *t = arg;
	size_t len = size * n;
	if (t->cancelled)
		return 0;
	if (!t->head_sent) { /* no blank line seen (HTTP/0.9-ish): refuse */
		return 0;
	}
	if (!t->cb->data(t->arg, p, len)) {
		t->paused = true;
		return CURL_WRITEFUNC_PAUSE;
	}
	return len;
}

int
upstream_start(struct upstream_ctx *u, const char *method, const char *url,
               const char *const *headers, size_t nheaders, const char *body, size_t blen,
               const struct upstream_cb *cb, void *arg, struct upstream **out)
{
	struct upstream *t = xcalloc(1, sizeof(*t));
	const struct gateway_config *cfg = u->cfg;
	t->u = u;
	t->cb = cb;
	t->arg = arg;
	buf_init(&t->head, 64 * 1024);
	t->easy = u->npool > 0 ? u->pool[--u->npool] : curl_easy_init();
	if (t->easy == NULL) {
		free(t);
		return AL_E_INTERNAL;
	}
	CURL *e = t->easy;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, t);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROXY, ""); /* never an env proxy: the hop we check is ours */
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_sock);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(e, CURLOPT_HTTP_TRANSFER_DECODING, 1L);
	curl_easy_setopt(e, CURLOPT_HTTP_CONTENT_DECODING, 0L);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	/* One recv (and one poll: curl checks the socket after each) per UP_READ bytes
	 * instead of per 16 KiB: on a bulk body they were a third of the gateway's
	 * syscalls. The buffer is malloc'ed whole but an idle stream touches one page. */
	curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)UP_READ);
	if (cfg->upstream_ca_file) {
		curl_easy_setopt(e, CURLOPT_CAINFO, cfg->upstream_ca_file);
		if (!cfg->include_system_cas)
			curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
	}
	if (strcmp(method, "GET") == 0)
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	else if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	else {
		bool post = strcmp(method, "POST") == 0;
		if (!post)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
		if (post || blen > 0) {
			t->body = xmalloc(blen ? blen : 1);
			if (blen)
				memcpy(t->body, body, blen);
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body);
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
		}
	}
	for (size_t i = 0; i < nheaders; i++)
		t->hdrs = curl_slist_append(t->hdrs, headers[i]);
	/* curl would add these on its own; the client's own choice travels instead. */
	t->hdrs = curl_slist_append(t->hdrs, "Expect:");
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->hdrs);
	t->next = u->list;
	if (u->list)
		u->list->prev = t;
	u->list = t;
	u->active++;
	if (curl_multi_add_handle(u->multi, e) != CURLM_OK) {
		t_unlink(&u->list, t);
		u->active--;
		t_free(t);
		return AL_E_INTERNAL;
	}
	*out = t;
	return 0;
}

void
upstream_resume(struct upstream *t)
{
	if (t == NULL || t->cancelled || !t->paused)
		return;
	t->paused = false;
	curl_easy_pause(t->easy, CURLPAUSE_CONT);
}

void
upstream_cancel(struct upstream *t)
{
	if (t == NULL || t->cancelled)
		return;
	struct upstream_ctx *u = t->u;
	t->cancelled = true;
	t_unlink(&u->list, t);
	u->active--;
	t->next = u->dead;
	if (u->dead)
		u->dead->prev = t;
	u->dead = t;
	if (u->reap_timer == NULL)
		u->reap_timer = loop_timer_add(u->loop, 0, reap, u);
}
