/* Outbound HTTP(S) client on our epoll loop, many transfers on one thread. Two
 * transports behind one API: libcurl's multi interface (loaded on first use; proxies,
 * HTTP/2) and a small native HTTP/1.1 client (llhttp, keep-alive pool, OpenSSL only for
 * https) that the worker uses to stay small. Buffered responses (bounded) or streamed
 * bodies (SSE). See docs/lib/httpc.md. */
#ifndef AL_HTTPC_H
#define AL_HTTPC_H

#include <stdbool.h>
#include <stddef.h>

#include <sys/socket.h>

#include "buf.h"
#include "loop.h"

struct httpc;
struct httpc_xfer;

enum httpc_transport {
	HTTPC_CURL = 0, /* libcurl: honours proxy variables, HTTP/2 */
	HTTPC_NATIVE,   /* HTTP/1.1 of our own: no proxy support, blocking DNS at connect */
};

/* Native transport: called for every resolved address before it is dialled. Non-zero
 * refuses it: the transfer fails with AL_E_PERM, response.errmsg = why, and no other
 * address is tried (an SSRF allow-list checked after DNS). */
typedef int httpc_addr_check_fn(const struct sockaddr *sa, socklen_t len, char *why, size_t whylen,
                                void *arg);

struct httpc_opts {
	const char *ca_file;     /* PEM bundle for server verification; NULL: system store */
	bool include_system_cas; /* with ca_file: trust the system store as well */
	const char *user_agent;  /* NULL: "airlock/<version>"; "": send none */
	enum httpc_transport transport;
	/* native transport only (httpc_new fails for libcurl with these set) */
	size_t max_idle; /* kept-alive connections pooled; 0 = 4 */
	httpc_addr_check_fn *addr_check;
	void *addr_check_arg;
};

/* What a finished transfer saw. Valid only during the done callback. */
struct httpc_response {
	int err;         /* 0, or why the transfer failed: AL_E_TIMEOUT, AL_E_TOOBIG (body over
	                  * max_body), AL_E_IO (connect/TLS/reset), or a data callback's error */
	int status;      /* HTTP status, 0 when no response head arrived */
	struct buf body; /* buffered body: whole body, or for streams the non-2xx body only */
	const char
	    *errmsg; /* the transport's message for err, "" if none; never contains credentials */
};

/* Streamed body bytes (only for 2xx responses unless stream_any_status; other
 * statuses are buffered into response.body so the caller can read the error
 * envelope). Return 0 to continue, HTTPC_PAUSE (native transport) when the bytes were
 * taken but no more should come until httpc_resume, anything else aborts the transfer
 * and becomes response.err. */
#define HTTPC_PAUSE 1
typedef int httpc_data_fn(struct httpc_xfer *x, const char *p, size_t n, void *arg);
/* The final response head arrived (status >= 200); headers are readable. Non-zero
 * aborts the transfer and becomes response.err. */
typedef int httpc_head_fn(struct httpc_xfer *x, int status, void *arg);
/* Called once per started transfer unless it was cancelled. The transfer is freed
 * when this returns. */
typedef void httpc_done_fn(struct httpc_xfer *x, const struct httpc_response *resp, void *arg);
/* The transfer ended without its on_done (httpc_cancel, httpc_free): the caller's
 * per-transfer state behind arg can go. Never called after on_done ran. */
typedef void httpc_release_fn(void *arg);

struct httpc_request {
	const char *method; /* "GET", "POST", "DELETE", ...; NULL = GET */
	const char *url;
	const char *const *headers; /* "Name: value" lines (copied) */
	size_t nheaders;
	const char *body; /* copied; NULL = no body */
	size_t body_len;
	unsigned timeout_ms;          /* whole transfer; 0 = none (long streams) */
	unsigned connect_timeout_ms;  /* 0 = 10 s */
	unsigned idle_timeout_s;      /* abort when no byte arrives for this long; 0 = never */
	size_t max_body;              /* buffered-body bound; 0 = 8 MiB */
	httpc_head_fn *on_head;       /* optional: e.g. "the stream is open" */
	httpc_data_fn *on_data;       /* NULL = buffer the body */
	httpc_done_fn *on_done;       /* required */
	httpc_release_fn *on_release; /* optional: see httpc_release_fn */
	void *arg;
	bool stream_any_status; /* on_data gets the body of every final status (a proxy) */
};

struct httpc *httpc_new(struct loop *l, const struct httpc_opts *o);
/* Cancels every transfer (no callbacks) and releases the client. Accepts NULL. */
void httpc_free(struct httpc *c);

/* Starts a transfer. *out (optional) receives a handle valid until on_done returns or
 * httpc_cancel. Errors (bad arguments) are returned at once and no callback runs. */
int httpc_start(struct httpc *c, const struct httpc_request *req, struct httpc_xfer **out);
/* Stops a transfer; its callbacks are never called again. Safe from inside the
 * transfer's own on_data. Accepts NULL. */
void httpc_cancel(struct httpc_xfer *x);
/* Status of the response head received so far (0 before it). */
int httpc_xfer_status(const struct httpc_xfer *x);
/* A response header of the (final) response, case-insensitive name, value trimmed;
 * NULL if absent. Valid until the transfer ends. */
const char *httpc_xfer_header(const struct httpc_xfer *x, const char *name);
/* Iterates the (final) response's headers: *pos starts at 0; each call sets *name
 * (lower-cased) and *value (trimmed) and returns true, false after the last. Same
 * lifetime as httpc_xfer_header. */
bool httpc_xfer_header_next(const struct httpc_xfer *x, size_t *pos, const char **name,
                            const char **value);
/* Native transport: reading continues after on_data returned HTTPC_PAUSE. Callbacks
 * run from the loop afterwards, never from inside this call. No-op when not paused. */
void httpc_resume(struct httpc_xfer *x);
/* Changes the CA options for connections opened from now on (configuration reload);
 * pooled https connections are closed, open ones finish as they are. */
void httpc_set_tls(struct httpc *c, const char *ca_file, bool include_system_cas);
/* Closes every pooled keep-alive connection (native; no-op for libcurl): after a
 * configuration change that may refuse addresses they were dialled to. */
void httpc_close_idle(struct httpc *c);
/* Number of transfers in flight (tests, shutdown). */
size_t httpc_active(const struct httpc *c);

/* The name of the proxy variable (HTTPS_PROXY, http_proxy, ALL_PROXY, ...) that
 * applies to url, taking NO_PROXY into account; NULL when none does. A client that
 * finds one should use HTTPC_CURL, the only transport that speaks to proxies. */
const char *httpc_proxy_env(const char *url);

/* Percent-encodes s for a URL path segment or query value (RFC 3986 unreserved kept). */
char *httpc_escape(const char *s);

#endif
