/* Outbound HTTP client on libcurl multi; see httpc.h. libcurl forbids most multi
 * calls from inside its own callbacks, and our data callbacks run user code that
 * starts and cancels transfers, so adds and removals requested while curl is on the
 * stack are deferred to a sweep that runs when curl returns. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "curl_dl.h"

#include "err.h"
#include "httpc.h"
#include "httpc_int.h"
#include "log.h"
#include "xalloc.h"

#define HTTPC_MAX_HEADER_BYTES (64 * 1024)
#define HTTPC_DEFAULT_MAX_BODY (8u * 1024 * 1024)

_Static_assert(CURL_ERROR_SIZE <= HTTPC_ERRBUF, "curl's error buffer size");

static void drive(struct httpc *c, curl_socket_t fd, int flags);

static void
on_timer(struct loop *l, void *arg)
{
	struct httpc *c = arg;
	c->timer = NULL;
	drive(c, CURL_SOCKET_TIMEOUT, 0);
}

static int
curl_timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	struct httpc *c = userp;
	loop_timer_cancel(c->l, c->timer);
	c->timer = NULL;
	if (timeout_ms >= 0)
		c->timer = loop_timer_add(c->l, (uint64_t)timeout_ms, on_timer, c);
	return 0;
}

static void
on_fd(struct loop *l, int fd, int mask, void *arg)
{
	int flags = 0;
	if (mask & LOOP_READ)
		flags |= CURL_CSELECT_IN;
	if (mask & LOOP_WRITE)
		flags |= CURL_CSELECT_OUT;
	drive(arg, fd, flags);
}

static int
curl_socket_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct httpc *c = userp;
	if (what == CURL_POLL_REMOVE) {
		loop_fd_del(c->l, s);
		return 0;
	}
	int mask = 0;
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		mask |= LOOP_READ;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		mask |= LOOP_WRITE;
	return loop_fd_set(c->l, s, mask, on_fd, c) == 0 ? 0 : -1;
}

struct httpc *
httpc_new(struct loop *l, const struct httpc_opts *o)
{
	struct httpc *c = xcalloc(1, sizeof(*c));
	c->l = l;
	if (o != NULL && o->ca_file != NULL)
		c->ca_file = xstrdup(o->ca_file);
	c->include_system_cas = o != NULL && o->include_system_cas;
	c->user_agent =
	    xstrdup(o != NULL && o->user_agent != NULL ? o->user_agent : "airlock/0.1.0");
	if (o != NULL && o->transport == HTTPC_NATIVE) {
		c->native = true;
		c->max_idle = o->max_idle ? o->max_idle : 4;
		c->addr_check = o->addr_check;
		c->addr_check_arg = o->addr_check_arg;
		httpc_native_init(c);
		return c;
	}
	if (o != NULL && (o->addr_check != NULL || o->include_system_cas)) {
		/* a silently skipped address check would be an SSRF hole */
		log_error("httpc option needs the native transport");
		free(c->ca_file);
		free(c->user_agent);
		free(c);
		return NULL;
	}
	if ((c->multi = curl_multi_init()) == NULL) {
		log_error("cannot start libcurl", "error", curl_dl_error());
		free(c->ca_file);
		free(c->user_agent);
		free(c);
		return NULL;
	}
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	return c;
}

void
httpc_free(struct httpc *c)
{
	if (c == NULL)
		return;
	while (c->xfers != NULL)
		httpc_xfer_destroy(c->xfers);
	if (c->native)
		httpc_native_free(c);
	else
		curl_multi_cleanup(c->multi);
	loop_timer_cancel(c->l, c->timer);
	free(c->ca_file);
	free(c->user_agent);
	free(c);
}

size_t
httpc_active(const struct httpc *c)
{
	return c->n;
}

void
httpc_xfer_destroy(struct httpc_xfer *x)
{
	struct httpc *c = x->c;
	if (!x->in_done && x->on_release != NULL)
		x->on_release(x->arg);
	if (c->native)
		httpc_native_release(x);
	if (x->added)
		curl_multi_remove_handle(c->multi, x->easy);
	if (x->easy != NULL)
		curl_easy_cleanup(x->easy);
	for (struct curl_slist *h = x->hdrs; h != NULL; h = h->next)
		explicit_wipe(h->data, strlen(h->data)); /* Authorization lines */
	if (x->hdrs != NULL)
		curl_slist_free_all(x->hdrs);
	if (x->body_copy != NULL) {
		/* request bodies carry tool output and credentials-adjacent data */
		secret_free(x->body_copy);
	}
	buf_free(&x->body);
	buf_free(&x->resp_hdrs);
	if (x->prev)
		x->prev->next = x->next;
	else
		c->xfers = x->next;
	if (x->next)
		x->next->prev = x->prev;
	c->n--;
	free(x);
}

static int
parse_status_line(const char *p, size_t n)
{
	/* "HTTP/1.1 200 OK", "HTTP/2 200" */
	size_t i = 0;
	while (i < n && p[i] != ' ')
		i++;
	if (i + 4 > n)
		return 0;
	uint64_t v;
	if (parse_uint(p + i + 1, 3, 999, &v) != 0 || v < 100)
		return 0;
	return (int)v;
}

static size_t
curl_header_cb(char *p, size_t sz, size_t nm, void *ud)
{
	struct httpc_xfer *x = ud;
	size_t n = sz * nm;
	if (x->cancelled)
		return 0;
	size_t len = n;
	while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r'))
		len--;
	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		/* a new head (after 1xx or a proxy CONNECT): forget the previous one */
		buf_reset(&x->resp_hdrs);
		x->status = parse_status_line(p, len);
		return n;
	}
	if (len == 0 && x->status >= 200 && x->on_head != NULL) {
		int r = x->on_head(x, x->status, x->arg);
		if (x->cancelled)
			return 0;
		if (r != 0) {
			x->cb_err = r;
			return 0;
		}
		return n;
	}
	const char *colon = memchr(p, ':', len);
	if (colon == NULL)
		return n; /* the blank line ending the head, or junk we ignore */
	size_t nlen = (size_t)(colon - p);
	const char *v = colon + 1;
	const char *end = p + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (memchr(p, '\0', len) != NULL)
		return n; /* a NUL would split our pair encoding; drop the line */
	char lname[256];
	if (nlen == 0 || nlen >= sizeof(lname))
		return n;
	for (size_t i = 0; i < nlen; i++)
		lname[i] = (char)tolower((unsigned char)p[i]);
	if (buf_add(&x->resp_hdrs, lname, nlen) != 0 || buf_add(&x->resp_hdrs, "", 1) != 0 ||
	    buf_add(&x->resp_hdrs, v, (size_t)(end - v)) != 0 ||
	    buf_add(&x->resp_hdrs, "", 1) != 0) {
		x->cb_err = AL_E_TOOBIG;
		return 0;
	}
	return n;
}

static size_t
curl_write_cb(char *p, size_t sz, size_t nm, void *ud)
{
	struct httpc_xfer *x = ud;
	size_t n = sz * nm;
	if (x->cancelled)
		return 0;
	if (x->on_data != NULL && (x->stream_any || (x->status >= 200 && x->status < 300))) {
		int r = x->on_data(x, p, n, x->arg);
		if (x->cancelled)
			return 0;
		if (r != 0) {
			x->cb_err = r;
			return 0;
		}
		return n;
	}
	if (buf_add(&x->body, p, n) != 0) {
		x->cb_err = AL_E_TOOBIG;
		return 0;
	}
	return n;
}

static int
map_curl_error(CURLcode rc)
{
	switch (rc) {
	case CURLE_OK:
		return 0;
	case CURLE_OPERATION_TIMEDOUT:
		return AL_E_TIMEOUT;
	case CURLE_FILESIZE_EXCEEDED:
		return AL_E_TOOBIG;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return AL_E_INVAL;
	default:
		return AL_E_IO;
	}
}

static void
finish(struct httpc_xfer *x, CURLcode rc)
{
	if (x->cancelled) {
		httpc_xfer_destroy(x);
		return;
	}
	struct httpc_response resp = {
	    .err = x->cb_err != 0 ? x->cb_err : map_curl_error(rc),
	    .status = x->status,
	    .body = x->body,
	    .errmsg = x->errbuf[0] ? x->errbuf : (rc != CURLE_OK ? curl_easy_strerror(rc) : ""),
	};
	x->in_done = true;
	x->on_done(x, &resp, x->arg);
	httpc_xfer_destroy(x);
}

/* Applies deferred adds and cancels, then delivers finished transfers. */
static void
settle(struct httpc *c)
{
	if (c->need_sweep) {
		c->need_sweep = false;
		struct httpc_xfer *x = c->xfers, *next;
		for (; x != NULL; x = next) {
			next = x->next;
			if (x->cancelled) {
				httpc_xfer_destroy(x);
			} else if (!x->added) {
				if (curl_multi_add_handle(c->multi, x->easy) == CURLM_OK)
					x->added = true;
				else
					finish(x, CURLE_FAILED_INIT); /* still owed its on_done */
			}
		}
	}
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		CURL *e = m->easy_handle;
		CURLcode rc = m->data.result;
		struct httpc_xfer *x = NULL;
		curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
		curl_multi_remove_handle(c->multi, e);
		x->added = false;
		finish(x, rc);
	}
}

static void
drive(struct httpc *c, curl_socket_t fd, int flags)
{
	int running;
	c->depth++;
	curl_multi_socket_action(c->multi, fd, flags, &running);
	c->depth--;
	settle(c);
}

static int
add_header(struct httpc_xfer *x, const char *line)
{
	struct curl_slist *n = curl_slist_append(x->hdrs, line);
	if (n == NULL)
		return AL_E_INTERNAL;
	x->hdrs = n;
	return 0;
}

int
httpc_start(struct httpc *c, const struct httpc_request *req, struct httpc_xfer **out)
{
	int r = AL_E_INVAL;
	struct httpc_xfer *x = NULL;
	if (req->url == NULL || req->on_done == NULL)
		goto out;
	for (size_t i = 0; i < req->nheaders; i++)
		if (strpbrk(req->headers[i], "\r\n") != NULL)
			goto out; /* header injection */
	x = xcalloc(1, sizeof(*x));
	x->c = c;
	x->on_head = req->on_head;
	x->on_data = req->on_data;
	x->on_done = req->on_done;
	x->arg = req->arg;
	x->stream_any = req->stream_any_status;
	/* answers carry tokens and egress secrets: wiped as they grow and when freed */
	buf_init_secret(&x->body, req->max_body ? req->max_body : HTTPC_DEFAULT_MAX_BODY);
	buf_init(&x->resp_hdrs, HTTPC_MAX_HEADER_BYTES);
	x->next = c->xfers;
	if (c->xfers)
		c->xfers->prev = x;
	c->xfers = x;
	c->n++;
	if (c->native) {
		if ((r = httpc_native_start(x, req)) != 0)
			goto out;
		goto started;
	}
	r = AL_E_INTERNAL;
	x->easy = curl_easy_init();
	if (x->easy == NULL)
		goto out;
	CURL *e = x->easy;
	const char *method = req->method ? req->method : "GET";
	if (curl_easy_setopt(e, CURLOPT_URL, req->url) != CURLE_OK) {
		r = AL_E_INVAL;
		goto out;
	}
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(e, CURLOPT_USERAGENT, c->user_agent[0] ? c->user_agent : NULL);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	if (c->ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, curl_header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, curl_write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
	                 (long)(req->connect_timeout_ms ? req->connect_timeout_ms : 10000));
	if (req->timeout_ms)
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
	if (req->idle_timeout_s) {
		curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)req->idle_timeout_s);
	}
	if (req->body != NULL) {
		/* private copy: the caller's buffer may be gone before curl sends it */
		x->body_copy = xmalloc(req->body_len + 1);
		memcpy(x->body_copy, req->body, req->body_len);
		x->body_copy[req->body_len] = '\0';
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body_copy);
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	} else if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
	} else if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	}
	/* no 100-continue round trip: our peers answer POSTs directly */
	if ((r = add_header(x, "Expect:")) != 0)
		goto out;
	for (size_t i = 0; i < req->nheaders; i++)
		if ((r = add_header(x, req->headers[i])) != 0)
			goto out;
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
	if (c->depth > 0) {
		c->need_sweep = true;
	} else {
		if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
			r = AL_E_INTERNAL;
			goto out;
		}
		x->added = true;
	}
started:
	x->on_release = req->on_release; /* a failed start owes the caller nothing */
	if (out != NULL)
		*out = x;
	x = NULL;
	r = 0;
out:
	if (x != NULL)
		httpc_xfer_destroy(x);
	return r;
}

void
httpc_cancel(struct httpc_xfer *x)
{
	if (x == NULL || x->in_done || x->cancelled)
		return;
	x->cancelled = true;
	struct httpc *c = x->c;
	if (c->depth > 0)
		c->need_sweep = true;
	else
		httpc_xfer_destroy(x);
}

int
httpc_xfer_status(const struct httpc_xfer *x)
{
	return x->status;
}

bool
httpc_xfer_header_next(const struct httpc_xfer *x, size_t *pos, const char **name,
                       const char **value)
{
	if (*pos >= x->resp_hdrs.len)
		return false;
	const char *p = x->resp_hdrs.data + *pos;
	const char *v = p + strlen(p) + 1;
	*name = p;
	*value = v;
	*pos = (size_t)(v + strlen(v) + 1 - x->resp_hdrs.data);
	return true;
}

void
httpc_resume(struct httpc_xfer *x)
{
	if (x != NULL && x->c->native && !x->cancelled && !x->in_done)
		httpc_native_resume(x);
}

void
httpc_set_tls(struct httpc *c, const char *ca_file, bool include_system_cas)
{
	free(c->ca_file);
	c->ca_file = ca_file != NULL ? xstrdup(ca_file) : NULL;
	c->include_system_cas = include_system_cas;
	if (c->native)
		httpc_native_tls_reset(c);
}

void
httpc_close_idle(struct httpc *c)
{
	if (c->native)
		httpc_native_close_idle(c, false);
}

const char *
httpc_xfer_header(const struct httpc_xfer *x, const char *name)
{
	if (x->resp_hdrs.len == 0)
		return NULL; /* data may be NULL: no pointer arithmetic on it */
	const char *p = x->resp_hdrs.data;
	const char *end = p + x->resp_hdrs.len;
	while (p < end) {
		const char *v = p + strlen(p) + 1;
		if (strcasecmp(p, name) == 0)
			return v;
		p = v + strlen(v) + 1;
	}
	return NULL;
}

char *
httpc_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *o = xmalloc(n * 3 + 1);
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
			o[j++] = (char)ch;
		} else {
			o[j++] = '%';
			o[j++] = hex[ch >> 4];
			o[j++] = hex[ch & 15];
		}
	}
	o[j] = '\0';
	return o;
}

/* Whether host matches one NO_PROXY entry: "*", an exact name, or a domain suffix
 * ("example.com" and ".example.com" both cover "api.example.com"), as curl reads it. */
static bool
no_proxy_match(const char *host, size_t hlen, const char *e, size_t elen)
{
	while (elen > 0 && (*e == ' ' || *e == '\t'))
		e++, elen--;
	while (elen > 0 && (e[elen - 1] == ' ' || e[elen - 1] == '\t'))
		elen--;
	if (elen == 1 && *e == '*')
		return true;
	if (elen > 0 && *e == '.')
		e++, elen--;
	if (elen == 0 || elen > hlen)
		return false;
	if (strncasecmp(host + hlen - elen, e, elen) != 0)
		return false;
	return elen == hlen || host[hlen - elen - 1] == '.';
}

const char *
httpc_proxy_env(const char *url)
{
	static const char *const https_vars[] = {"https_proxy", "HTTPS_PROXY", "all_proxy",
	                                         "ALL_PROXY", NULL};
	static const char *const http_vars[] = {"http_proxy", "HTTP_PROXY", "all_proxy",
	                                        "ALL_PROXY", NULL};
	bool tls = strncasecmp(url, "https://", 8) == 0;
	const char *const *vars = tls ? https_vars : http_vars;
	const char *found = NULL;
	for (size_t i = 0; vars[i] != NULL && found == NULL; i++) {
		const char *v = getenv(vars[i]);
		if (v != NULL && v[0] != '\0')
			found = vars[i];
	}
	if (found == NULL)
		return NULL;
	/* the host part, without brackets or port */
	const char *h = strstr(url, "://");
	h = h ? h + 3 : url;
	size_t alen = strcspn(h, "/?#");
	const char *at = memchr(h, '@', alen);
	if (at != NULL) {
		alen -= (size_t)(at + 1 - h);
		h = at + 1;
	}
	size_t hlen;
	if (*h == '[') {
		const char *rb = memchr(h, ']', alen);
		h++;
		hlen = rb ? (size_t)(rb - h) : alen - 1;
	} else {
		const char *colon = memchr(h, ':', alen);
		hlen = colon ? (size_t)(colon - h) : alen;
	}
	const char *np = getenv("no_proxy");
	if (np == NULL || np[0] == '\0')
		np = getenv("NO_PROXY");
	for (const char *e = np; e != NULL && *e != '\0';) {
		size_t elen = strcspn(e, ",");
		if (no_proxy_match(h, hlen, e, elen))
			return NULL;
		e += elen;
		if (*e == ',')
			e++;
	}
	return found;
}
