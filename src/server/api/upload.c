/* Shared upload and download plumbing; see upload.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "err.h"
#include "log.h"
#include "upload.h"
#include "xalloc.h"

#define UPLOAD_DL_CHUNK 65536
#define UPLOAD_DL_QUEUE (1u << 20)

bool
upload_may_stream(struct server *srv, const struct http_request *req, const char *pattern)
{
	struct principal who = {0};
	char why[256];
	bool ok = auth_resolve(srv, req, &who, why, sizeof(why)) == 0 &&
	          (who.kind == PRINCIPAL_API_KEY ||
	           (who.kind == PRINCIPAL_USER && auth_user_may(who.role, "POST", pattern)));
	auth_principal_reset(&who);
	return ok;
}

void
upload_base_init(struct upload_base *b, struct multipart *mp, void (*free)(void *u))
{
	b->mp = mp;
	b->free = free;
	b->fd = -1;
	b->sha = EVP_MD_CTX_new();
	if (b->sha == NULL || EVP_DigestInit_ex(b->sha, EVP_sha256(), NULL) != 1)
		abort(); /* out of memory: daemons abort on OOM */
}

void
upload_base_release(struct upload_base *b)
{
	if (b->fd >= 0) {
		close(b->fd);
		unlink(b->tmp);
	}
	multipart_free(b->mp);
	EVP_MD_CTX_free(b->sha);
}

int
upload_tmp_open(struct upload_base *b, const char *data_dir)
{
	return file_store_tmp_open(data_dir, b->tmp, sizeof(b->tmp), &b->fd);
}

int
upload_write(struct upload_base *b, uint64_t off, const void *p, size_t n)
{
	const char *d = p;
	while (n > 0) {
		ssize_t w = pwrite(b->fd, d, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		d += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

void
upload_sha_hex(struct upload_base *b, char hex[65])
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	hex[0] = '\0';
	EVP_DigestFinal_ex(b->sha, md, &mdlen);
	for (unsigned i = 0; i < mdlen && i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

int
upload_refuse(struct upload_base *b, int err, const char *msg)
{
	snprintf(b->msg, sizeof(b->msg), "%s", msg);
	return err;
}

static int
sink_write(struct http_request *req, const char *data, size_t len, void *arg, const char **message)
{
	struct upload_base *b = arg;
	int r = multipart_feed(b->mp, data, len);
	if (r != 0)
		*message = b->msg[0] ? b->msg : multipart_error(b->mp);
	return r;
}

static void
sink_abort(struct http_request *req, void *arg)
{
	struct upload_base *b = arg;
	b->free(b);
}

struct http_body_sink
upload_sink(void *u, size_t max_bytes)
{
	return (struct http_body_sink){
	    .max_bytes = max_bytes, .write = sink_write, .abort = sink_abort, .arg = u};
}

void *
upload_take(struct api_call *c, void *(*make)(struct server *srv, const char *ctype))
{
	struct upload_base *b;
	int r;
	if (c->http->body_streamed) {
		b = c->http->sink_arg; /* ours now */
		c->http->sink_arg = NULL;
	} else {
		b = make(c->srv, http_request_header(c->http, "content-type"));
		if (b == NULL) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "Content-Type must be multipart/form-data with a boundary");
			return NULL;
		}
		if ((r = multipart_feed(b->mp, c->http->body.data, c->http->body.len)) != 0) {
			api_reply_error(c,
			                r == AL_E_TOOBIG ? 413
			                : r == AL_E_IO   ? 500
			                                 : 400,
			                r == AL_E_IO ? "api_error" : "invalid_request_error", NULL,
			                "%s", b->msg[0] ? b->msg : multipart_error(b->mp));
			b->free(b);
			return NULL;
		}
	}
	if (multipart_finish(b->mp) != 0) {
		api_reply_error(c, 400, "invalid_request_error", NULL, "%s",
		                multipart_error(b->mp));
		b->free(b);
		return NULL;
	}
	return b;
}

struct download {
	struct api_call *c;
	int fd;
};

static void
download_free(struct download *d)
{
	if (d->fd >= 0)
		close(d->fd);
	free(d);
}

static void
download_closed(struct api_call *c)
{
	download_free(c->owner); /* the client left; api frees c */
}

/* Reads and queues until the client is a megabyte behind or the bytes end. */
static void
download_pump(struct http_request *req, void *arg)
{
	struct download *d = arg;
	char chunk[UPLOAD_DL_CHUNK];
	while (http_stream_queued(req) < UPLOAD_DL_QUEUE) {
		ssize_t n = read(d->fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		struct api_call *c = d->c;
		if (n < 0) {
			log_error("cannot read stored bytes", "request_id", c->request_id, "error",
			          strerror(errno));
			http_stream_abort(
			    req); /* the client must not take a short answer as whole */
			download_free(d);
			api_call_free(c);
			return;
		}
		if (n == 0) {
			download_free(d);
			api_stream_end(c);
			return;
		}
		if (http_stream_write(req, chunk, (size_t)n) != 0)
			return; /* gone: the close callback frees */
	}
}

void
upload_send_fd(struct api_call *c, int fd, const char *content_type)
{
	struct http_header h[8];
	size_t n = 0;
	h[n++] = (struct http_header){"content-type", content_type};
	n = api_common_headers(c, h, n);
	struct download *d = xcalloc(1, sizeof(*d));
	d->c = c;
	d->fd = fd;
	c->status = 200;
	api_hold(c, d, download_closed);
	http_stream_start_chunked(c->http, 200, h, n);
	http_stream_on_drain(c->http, download_pump, d);
	download_pump(c->http, d);
}
