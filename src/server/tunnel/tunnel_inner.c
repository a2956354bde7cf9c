/* Inner TLS, the client side: one TLS 1.3 session per tunnel stream from the server's
 * MCP client or ingress to the gateway, trusting only the tunnel's registered CAs, so
 * the edge relays ciphertext. Which CAs a tunnel trusts is cached per tunnel with the
 * last resumable session (resumption skips the certificate and key exchange work of a
 * full handshake on every request). See docs/server/tunnels.md "Inner TLS". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "err.h"
#include "log.h"
#include "server.h"
#include "tunnel.h"
#include "tunnel_cert.h"
#include "tunnel_inner.h"
#include "tunnel_proto.h"
#include "tunnel_store.h"
#include "util.h"
#include "xalloc.h"

/* A cached trust set is read again after this long even without a change made here: a
 * second server on the same database may have archived a CA. */
#define TRUST_TTL_MS 10000
#define RESP_MAX (64u << 20) /* plaintext waiting for its owner between two DATA frames */

struct trust {
	struct trust *next;
	char tunnel_id[80];
	SSL_CTX *ctx;        /* NULL when the tunnel has no live certificate */
	unsigned ever;       /* certificates it ever had (0: plain streams) */
	SSL_SESSION *resume; /* the latest resumable session, or NULL */
	uint64_t loaded_ms;
};

static struct trust *trusts; /* one server per process */

struct tunnel_inner {
	struct tunnel_pipe tp;
	char tunnel_id[80];
	struct buf req; /* the HTTP/1.1 request, until TLS took it all */
	size_t req_off;
	struct buf in; /* plaintext: the head until parsed, then body not yet handed on */
	size_t dec;    /* chunked: in[0..dec) is decoded body, the rest still coded */
	bool closed, resumed;
	/* the exchange in progress: a session carries one after another */
	bool head_req, head_done, done, has_length, chunked;
	struct tunnel_chunked ch;
	int status;
	struct http_header h[64];
	size_t nh;
	uint64_t length, body_seen;
	char err[256];
};

static void
trust_free(struct trust *t)
{
	SSL_CTX_free(t->ctx);
	SSL_SESSION_free(t->resume);
	free(t);
}

void
tunnel_inner_forget(struct server *s, const char *tunnel_id)
{
	for (struct trust **pp = &trusts; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->tunnel_id, tunnel_id) == 0) {
			struct trust *t = *pp;
			*pp = t->next;
			trust_free(t);
			return;
		}
}

void
tunnel_inner_cleanup(void)
{
	while (trusts) {
		struct trust *t = trusts;
		trusts = t->next;
		trust_free(t);
	}
}

struct ca_load {
	SSL_CTX *ctx;
	unsigned loaded;
};

static int
add_ca(void *arg, const char *pem, const char *fingerprint)
{
	struct ca_load *cl = arg;
	SSL_CTX *ctx = cl->ctx;
	BIO *b = BIO_new_mem_buf(pem, (int)strlen(pem));
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	int r = x && X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), x) == 1 ? 0 : AL_E_INVAL;
	if (r != 0)
		log_warn("tunnel certificate does not load; skipped", "fingerprint", fingerprint);
	else
		cl->loaded++;
	X509_free(x);
	BIO_free(b);
	ERR_clear_error();
	return 0; /* one bad row must not hide the others */
}

/* The gateway's own certificate must meet the key rule the CAs meet (RSA ≥ 2048 bits or
 * ECDSA ≥ P-256): OpenSSL's default security level lets RSA-1024 through. */
static int
verify_leaf(int ok, X509_STORE_CTX *x)
{
	char err[256];
	if (!ok || X509_STORE_CTX_get_error_depth(x) != 0)
		return ok;
	if (tunnel_cert_key_check(X509_STORE_CTX_get_current_cert(x), "gateway certificate", err,
	                          sizeof(err)) != 0) {
		log_warn("inner TLS: the gateway's certificate key is refused", "why", err);
		X509_STORE_CTX_set_error(x, X509_V_ERR_EE_KEY_TOO_SMALL);
		return 0;
	}
	return 1;
}

/* The client context for a tunnel's live CAs: TLS 1.3 only, verify the peer, chain of
 * exactly the gateway's certificate and a registered CA (depth 0: "signed directly"),
 * which need not be self-signed (PARTIAL_CHAIN: a registered intermediate is a trust
 * anchor too). */
static SSL_CTX *
ctx_new(struct server *s, const char *tunnel_id, unsigned *ever, unsigned *loaded)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_ciphersuites(ctx, TUNNEL_TLS13_SUITES);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_leaf);
	X509_VERIFY_PARAM *vp = SSL_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_depth(vp, 0);
	X509_VERIFY_PARAM_set_flags(vp, X509_V_FLAG_PARTIAL_CHAIN);
	struct ca_load cl = {ctx, 0};
	if (tunnel_store_cert_live(s->db, tunnel_id, add_ca, &cl, ever) != 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	*loaded = cl.loaded;
	return ctx;
}

/* The tunnel's trust, loaded when missing or stale. NULL on a database error. */
static struct trust *
trust_get(struct server *s, const char *tunnel_id)
{
	uint64_t now = now_mono_ms();
	for (struct trust *t = trusts; t; t = t->next)
		if (strcmp(t->tunnel_id, tunnel_id) == 0) {
			if (now - t->loaded_ms < TRUST_TTL_MS)
				return t;
			tunnel_inner_forget(s, tunnel_id);
			break;
		}
	unsigned ever = 0, live = 0;
	SSL_CTX *ctx = ctx_new(s, tunnel_id, &ever, &live);
	if (ctx == NULL)
		return NULL;
	struct trust *t = xcalloc(1, sizeof(*t));
	snprintf(t->tunnel_id, sizeof(t->tunnel_id), "%s", tunnel_id);
	t->ever = ever;
	t->loaded_ms = now;
	/* a context without anchors verifies nothing: keep none, refuse below */
	if (live > 0)
		t->ctx = ctx;
	else
		SSL_CTX_free(ctx);
	t->next = trusts;
	trusts = t;
	return t;
}

/* Header names and values go into a text head: nothing that ends a line. */
static bool
header_ok(const char *v)
{
	for (; *v; v++)
		if (*v == '\r' || *v == '\n')
			return false;
	return true;
}

static int
build_request(struct tunnel_inner *in, const char *authority, const struct tunnel_request *rq)
{
	struct buf *b = &in->req;
	buf_wipe_free(b);
	in->req_off = 0;
	in->head_req = strcmp(rq->method, "HEAD") == 0;
	buf_init(b, (64u << 10) + rq->body_len);
	int r = buf_addf(b, "%s %s HTTP/1.1\r\nhost: %s\r\n", rq->method, rq->path, authority);
	for (size_t i = 0; r == 0 && i < rq->nheaders; i++) {
		const char *n = rq->headers[i].name, *v = rq->headers[i].value;
		if (n[0] == ':' || tunnel_hop_header(n, strlen(n)) || strcasecmp(n, "host") == 0 ||
		    strcasecmp(n, "content-length") == 0)
			continue;
		if (!header_ok(n) || !header_ok(v))
			return AL_E_INVAL;
		r = buf_addf(b, "%s: %s\r\n", n, v);
	}
	if (r == 0)
		r = buf_addf(b, "content-length: %zu\r\n\r\n", rq->body_len);
	if (r == 0 && rq->body_len)
		r = buf_add(b, rq->body, rq->body_len);
	return r == 0 ? 0 : AL_E_INVAL;
}

/* Hands TLS what of the request it takes (all of it once the handshake is done). */
static int
push_request(struct tunnel_inner *in)
{
	while (in->req_off < in->req.len) {
		int k = tunnel_pipe_write(&in->tp, in->req.data + in->req_off,
		                          in->req.len - in->req_off, in->err, sizeof(in->err));
		if (k < 0)
			return k;
		if (k == 0)
			return 0;
		in->req_off += (size_t)k;
	}
	if (in->req.data) {
		buf_wipe_free(&in->req); /* it may hold the upstream's bearer token */
		in->req_off = 0;
	}
	return 0;
}

int
tunnel_inner_open(struct server *s, const char *tunnel_id, const char *authority,
                  const struct tunnel_request *rq, struct tunnel_inner **out)
{
	int r;
	*out = NULL;
	struct trust *t = trust_get(s, tunnel_id);
	if (t == NULL)
		return AL_E_IO;
	if (t->ever == 0)
		return 0; /* no certificate was ever registered: plain streams */
	if (t->ctx == NULL)
		return AL_E_PERM; /* certificates were, none is live: the reference refuses */
	struct tunnel_inner *in = xcalloc(1, sizeof(*in));
	snprintf(in->tunnel_id, sizeof(in->tunnel_id), "%s", tunnel_id);
	buf_init(&in->in, TUNNEL_INNER_HEAD_MAX + RESP_MAX);
	SSL *ssl = SSL_new(t->ctx);
	if (ssl == NULL || tunnel_pipe_init(&in->tp, ssl) != 0) {
		if (ssl && in->tp.ssl == NULL)
			SSL_free(ssl);
		r = AL_E_IO;
		goto fail;
	}
	SSL_set_connect_state(ssl);
	/* SNI and the name the gateway's certificate must carry: <route>.<tunnel domain>,
	 * which a wildcard *.<tunnel domain> covers. */
	SSL_set_tlsext_host_name(ssl, authority);
	SSL_set1_host(ssl, authority);
	if (t->resume)
		SSL_set_session(ssl, t->resume);
	if ((r = build_request(in, authority, rq)) != 0)
		goto fail;
	if ((r = push_request(in)) != 0)
		goto fail;
	*out = in;
	return 0;
fail:
	tunnel_inner_free(in);
	return r;
}

size_t
tunnel_inner_take(struct tunnel_inner *in, void *p, size_t len)
{
	return tunnel_pipe_take(&in->tp, p, len);
}

/* The response head: status line and fields, lower-case names, hop-by-hop dropped. */
static int
parse_head(struct tunnel_inner *in)
{
	struct tunnel_head h;
	int hl = tunnel_head_parse(in->in.data ? in->in.data : "", in->in.len, true, &h);
	if (hl == 0)
		return 0;
	if (hl < 0) {
		snprintf(in->err, sizeof(in->err),
		         "malformed HTTP/1.1 answer head from the gateway");
		return AL_E_PROTO;
	}
	if (h.status < 200) { /* no interim answers inside: one request, one answer */
		snprintf(in->err, sizeof(in->err), "interim answer %d from the gateway", h.status);
		return AL_E_PROTO;
	}
	for (size_t i = 0; i < h.nf && in->nh < sizeof(in->h) / sizeof(in->h[0]); i++) {
		char *n = xstrndup(h.f[i].name.p, h.f[i].name.n);
		for (char *c = n; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c + 32);
		if (strcmp(n, "transfer-encoding") == 0) {
			/* the gateway writes exactly this or nothing (docs/proto/tunnel.md) */
			if (h.f[i].value.n != 7 || strncasecmp(h.f[i].value.p, "chunked", 7) != 0) {
				free(n);
				snprintf(in->err, sizeof(in->err),
				         "unsupported transfer-encoding from the gateway");
				return AL_E_PROTO;
			}
			in->chunked = true;
		}
		if (tunnel_hop_header(n, strlen(n))) {
			free(n);
			continue;
		}
		if (strcmp(n, "content-length") == 0) {
			if (parse_uint(h.f[i].value.p, h.f[i].value.n, UINT64_MAX / 2,
			               &in->length) != 0) {
				free(n);
				snprintf(in->err, sizeof(in->err),
				         "bad content-length from the gateway");
				return AL_E_PROTO;
			}
			in->has_length = true;
		}
		in->h[in->nh].name = n;
		in->h[in->nh].value = xstrndup(h.f[i].value.p, h.f[i].value.n);
		in->nh++;
	}
	in->status = h.status;
	in->head_done = true;
	buf_consume(&in->in, (size_t)hl);
	/* RFC 9112 §6.3: no body after HEAD, 204 or 304, whatever the head says */
	if (in->head_req || h.status == 204 || h.status == 304) {
		in->chunked = in->has_length = false;
		in->done = true;
	} else if (in->chunked)
		in->has_length = false;
	else if (in->has_length && in->length == 0)
		in->done = true;
	return 1;
}

/* Frames the body bytes that arrived: decodes chunks, checks the length, notes the end.
 * Bytes past the end of the answer are an error: one request is in flight at a time. */
static int
frame_body(struct tunnel_inner *in)
{
	if (in->done) {
		if (in->in.len > in->dec) {
			snprintf(in->err, sizeof(in->err),
			         "bytes after the answer from the gateway");
			return AL_E_PROTO;
		}
		return 0;
	}
	if (in->chunked) {
		size_t n = in->in.len - in->dec, used = 0;
		int r = tunnel_chunked_decode(&in->ch, in->in.data + in->dec, &n, &used);
		size_t raw = in->in.len - in->dec;
		if (r < 0 || (r == 1 && used < raw)) {
			snprintf(in->err, sizeof(in->err),
			         "malformed chunked answer from the gateway");
			return AL_E_PROTO;
		}
		in->dec += n;
		in->in.len = in->dec;
		if (in->in.data)
			in->in.data[in->in.len] = '\0';
		in->done = r == 1;
		return 0;
	}
	in->dec = in->in.len;
	if (in->has_length) {
		if (in->body_seen + in->in.len > in->length) {
			snprintf(in->err, sizeof(in->err), "answer longer than its content-length");
			return AL_E_PROTO;
		}
		in->done = in->body_seen + in->in.len == in->length;
	} else if (in->closed)
		in->done = true; /* neither: the answer ran to close_notify */
	return 0;
}

int
tunnel_inner_rx(struct tunnel_inner *in, const char *p, size_t n)
{
	if (in->closed)
		return 0; /* after close_notify: nothing more is read */
	if (tunnel_pipe_feed(&in->tp, p, n) != 0)
		return AL_E_IO;
	int r = push_request(in);
	if (r != 0)
		return r;
	in->resumed = SSL_session_reused(in->tp.ssl);
	r = tunnel_pipe_read(&in->tp, &in->in, in->err, sizeof(in->err));
	if (r == AL_E_TOOBIG) {
		snprintf(in->err, sizeof(in->err), "answer head over 64 KiB");
		return AL_E_PROTO;
	}
	if (r < 0)
		return r;
	if (r == 1)
		in->closed = true;
	if (!in->head_done) {
		int h = parse_head(in);
		if (h < 0)
			return h;
		if (h == 0 && in->closed) {
			snprintf(in->err, sizeof(in->err),
			         "the gateway closed before its answer head");
			return AL_E_PROTO;
		}
		in->dec = 0;
	}
	if (in->head_done && (r = frame_body(in)) != 0)
		return r;
	if (in->head_done && in->closed && !in->done) {
		snprintf(in->err, sizeof(in->err), "the gateway closed inside its answer");
		return AL_E_PROTO;
	}
	return 0;
}

bool
tunnel_inner_head(struct tunnel_inner *in, int *status, const struct http_header **h, size_t *nh)
{
	*status = in->status;
	*h = in->h;
	*nh = in->nh;
	return in->head_done;
}

void
tunnel_inner_body(struct tunnel_inner *in, const char **p, size_t *n)
{
	*p = in->head_done ? in->in.data : NULL;
	*n = in->head_done ? in->in.len : 0;
}

void
tunnel_inner_body_taken(struct tunnel_inner *in)
{
	if (in->head_done) {
		in->body_seen += in->in.len;
		buf_reset(&in->in);
		in->dec = 0;
	}
}

bool
tunnel_inner_complete(const struct tunnel_inner *in)
{
	return in->head_done && in->done;
}

/* Whether a session whose answer is complete may carry another exchange: not closed, no
 * error, and still trusted (the tunnel's certificates have not changed since). */
bool
tunnel_inner_reusable(struct server *s, struct tunnel_inner *in)
{
	if (!in->done || in->closed || in->err[0] || in->req.len > in->req_off)
		return false;
	struct trust *t = trust_get(s, in->tunnel_id);
	return t != NULL && t->ctx != NULL && t->ctx == SSL_get_SSL_CTX(in->tp.ssl);
}

int
tunnel_inner_next(struct tunnel_inner *in, const char *authority, const struct tunnel_request *rq)
{
	for (size_t i = 0; i < in->nh; i++) {
		free((char *)in->h[i].name);
		free((char *)in->h[i].value);
	}
	in->nh = 0;
	in->head_done = in->done = in->has_length = in->chunked = false;
	memset(&in->ch, 0, sizeof(in->ch));
	in->status = 0;
	in->length = in->body_seen = 0;
	in->dec = 0;
	buf_reset(&in->in);
	int r = build_request(in, authority, rq);
	if (r == 0)
		r = push_request(in);
	return r;
}

const char *
tunnel_inner_error(const struct tunnel_inner *in)
{
	return in->err[0] ? in->err : "inner TLS session ended";
}

void
tunnel_inner_free(struct tunnel_inner *in)
{
	if (in == NULL)
		return;
	/* A session that did not fail is kept for the next stream of its tunnel. */
	if (in->tp.ssl && in->err[0] == '\0' && SSL_get_SSL_CTX(in->tp.ssl) != NULL) {
		for (struct trust *t = trusts; t; t = t->next) {
			if (strcmp(t->tunnel_id, in->tunnel_id) != 0 ||
			    t->ctx != SSL_get_SSL_CTX(in->tp.ssl))
				continue;
			SSL_SESSION *x = SSL_get1_session(in->tp.ssl);
			if (x && SSL_SESSION_is_resumable(x)) {
				SSL_SESSION_free(t->resume);
				t->resume = x;
			} else
				SSL_SESSION_free(x);
			break;
		}
	}
	if (in->tp.ssl)
		log_debug("inner TLS session ended", "tunnel_id", in->tunnel_id, "resumed",
		          in->resumed ? "yes" : "no", "complete", in->done ? "yes" : "no");
	/* Ended by us between exchanges (the stream is reset, so the alert goes nowhere):
	 * shut down so OpenSSL keeps the session resumable. */
	if (in->tp.ssl && in->err[0] == '\0')
		tunnel_pipe_close(&in->tp);
	tunnel_pipe_free(&in->tp);
	buf_wipe_free(&in->req);
	buf_free(&in->in);
	for (size_t i = 0; i < in->nh; i++) {
		free((char *)in->h[i].name);
		free((char *)in->h[i].value);
	}
	free(in);
}
